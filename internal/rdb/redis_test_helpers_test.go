package rdb

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// testRedis is a redis-server started for one test, on a free loopback
// port, in its own temporary directory, with persistence off.
type testRedis struct {
	t    *testing.T
	dir  string
	addr string
	cmd  *exec.Cmd
}

// startRedis starts redis-server. A missing binary is a failure, not a
// skip: these tests are the proof that the decoder reads what Redis writes.
func startRedis(t *testing.T, extra ...string) *testRedis {
	t.Helper()
	return startRedisWithDump(t, nil, extra...)
}

// startRedisWithDump starts redis-server with dump (if not nil) as its
// dump.rdb, so it loads that data at startup.
func startRedisWithDump(t *testing.T, dump []byte, extra ...string) *testRedis {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs redis-server, not run with -short")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server not found in PATH: install redis-server (apt-get install -y redis-server)")
	}
	for attempt := 0; ; attempt++ {
		s, err := tryStartRedis(t, bin, dump, extra)
		if err == nil {
			return s
		}
		if attempt == 2 {
			t.Fatalf("start redis-server: %v", err)
		}
	}
}

func tryStartRedis(t *testing.T, bin string, dump []byte, extra []string) (*testRedis, error) {
	dir := t.TempDir()
	if dump != nil {
		if err := os.WriteFile(filepath.Join(dir, "dump.rdb"), dump, 0o600); err != nil {
			return nil, err
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	args := append([]string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--logfile", filepath.Join(dir, "redis.log"), "--enable-debug-command", "local",
	}, extra...)
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &testRedis{t: t, dir: dir, addr: fmt.Sprintf("127.0.0.1:%d", port), cmd: cmd}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(dir, "redis.log")); err == nil && len(log) > 0 {
				t.Logf("redis-server %s log tail:\n%s", s.addr, tail(string(log), 2000))
			}
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			return nil, fmt.Errorf("redis-server exited: %s", tail(string(log), 1000))
		default:
		}
		c := s.client(0)
		err := c.Ping(context.Background()).Err() // fails with LOADING while a dump loads
		c.Close()
		if err == nil {
			return s, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, fmt.Errorf("redis-server on %s did not answer PING", s.addr)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// client returns a RESP2 client bound to database db.
func (s *testRedis) client(db int) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: s.addr, DB: db, Protocol: 2, DisableIdentity: true,
		MaxRetries: -1, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
	})
}

// do runs one command and fails the test on error.
func (s *testRedis) do(c *redis.Client, args ...any) any {
	s.t.Helper()
	v, err := c.Do(context.Background(), args...).Result()
	if err != nil && err != redis.Nil {
		s.t.Fatalf("%s %v: %v", s.addr, args, err)
	}
	return v
}

// save runs SAVE and returns the dump.
func (s *testRedis) save() []byte {
	s.t.Helper()
	c := s.client(0)
	defer c.Close()
	s.do(c, "SAVE")
	b, err := os.ReadFile(filepath.Join(s.dir, "dump.rdb"))
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

// applier sends commands to a server over one connection (SELECT is
// connection state), pipelined in batches.
type applier struct {
	t     *testing.T
	conn  *redis.Conn
	pipe  redis.Pipeliner
	n     int
	total int
}

func newApplier(t *testing.T, s *testRedis) *applier {
	c := s.client(0)
	t.Cleanup(func() { c.Close() })
	conn := c.Conn()
	t.Cleanup(func() { conn.Close() })
	return &applier{t: t, conn: conn, pipe: conn.Pipeline()}
}

// emit copies the command (its slices are only valid during the call).
func (a *applier) emit(cmd [][]byte) error {
	args := make([]any, len(cmd))
	for i, b := range cmd {
		args[i] = string(b)
	}
	a.pipe.Do(context.Background(), args...)
	a.total++
	if a.n++; a.n >= 500 {
		return a.flush()
	}
	return nil
}

func (a *applier) flush() error {
	if a.n == 0 {
		return nil
	}
	cmds, err := a.pipe.Exec(context.Background())
	a.n = 0
	if err != nil {
		for _, c := range cmds {
			if c.Err() != nil {
				return fmt.Errorf("%v: %w", truncArgs(c.Args()), c.Err())
			}
		}
		return err
	}
	return nil
}

func truncArgs(args []any) string {
	s := fmt.Sprint(args)
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// kv turns a RESP2 flat reply [k1 v1 k2 v2 ...] into a map.
func kv(t *testing.T, v any) map[string]any {
	t.Helper()
	arr, ok := v.([]any)
	if !ok || len(arr)%2 != 0 {
		t.Fatalf("not a flat map reply: %#v", v)
	}
	m := make(map[string]any, len(arr)/2)
	for i := 0; i < len(arr); i += 2 {
		m[fmt.Sprint(arr[i])] = arr[i+1]
	}
	return m
}

// rawReplica opens a raw connection that asks for a full resync, as the
// replication service does.
func rawReplica(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	return conn, bufio.NewReaderSize(conn, 4096)
}

func writeCmd(t *testing.T, c net.Conn, args ...string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
}

func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return strings.TrimRight(line, "\r\n")
}

func ioReadFull(r *bufio.Reader, p []byte) (int, error) { return io.ReadFull(r, p) }
