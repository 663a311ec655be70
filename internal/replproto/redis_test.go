package replproto

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// redisServer is a redis-server process in a temporary directory, listening
// on a free loopback port.
type redisServer struct {
	t    *testing.T
	addr string
	dir  string
	tls  *tls.Config // client config when the server only speaks TLS
	pass string      // default user's password for the test client
}

// startRedis starts redis-server with the given extra configuration
// directives ("name", "value", ...). Replication PINGs are pushed far apart
// so that tests see only the commands they write, unless overridden.
func startRedis(t *testing.T, config ...string) *redisServer {
	t.Helper()
	return startRedisWith(t, &redisServer{t: t}, config...)
}

// startRedisWith is startRedis for a server value with client settings
// (TLS) already filled in.
func startRedisWith(t *testing.T, s *redisServer, config ...string) *redisServer {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs redis-server, not run with -short")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("install redis-server (apt-get install -y redis-server)")
	}
	dir := t.TempDir()
	port := redistest.FreePort(t)
	s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.dir = dir

	conf := []string{
		"bind", "127.0.0.1",
		"port", strconv.Itoa(port),
		"dir", dir,
		"logfile", filepath.Join(dir, "redis.log"),
		"daemonize", "no",
		"save", `""`,
		"appendonly", "no",
		"repl-ping-replica-period", "3600",
		// Redis 7 defaults to diskless sync; without the delay every full
		// sync would wait 5 s for more replicas to join.
		"repl-diskless-sync-delay", "0",
	}
	conf = append(conf, config...)
	var b strings.Builder
	for i := 0; i+1 < len(conf); i += 2 {
		b.WriteString(conf[i] + " " + conf[i+1] + "\n")
		if conf[i] == "requirepass" {
			s.pass = conf[i+1]
		}
		if conf[i] == "tls-port" {
			s.addr = net.JoinHostPort("127.0.0.1", conf[i+1])
		}
	}
	confPath := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(confPath, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, confPath)
	cmd.Dir = dir
	// A group of its own: its fork children (an RDB being written) die
	// with it, before the test's directory is removed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		pgid := cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if syscall.Kill(-pgid, 0) != nil {
				break // nobody left in the group
			}
		}
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(dir, "redis.log")); err == nil {
				t.Logf("redis.log:\n%s", tail(string(log), 3000))
			}
		}
	})
	s.waitReady()
	return s
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// waitReady waits until the server answers PING.
func (s *redisServer) waitReady() {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := s.tryClient()
		if err == nil {
			v, err := c.tryDo("PING")
			c.close()
			if err == nil && string(v.Str) == "PONG" {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server at %s not ready: %v", s.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// options returns replica Options for this server.
func (s *redisServer) options() Options {
	o := Options{Addr: s.addr, TLSConfig: s.tls, ReadTimeout: 10 * time.Second}
	if testing.Verbose() {
		o.Logger = testLogger(s.t)
	}
	return o
}

// testClient is a plain Redis client built on the resp package.
type testClient struct {
	t    *testing.T
	conn net.Conn
	r    *resp.Reader
	w    *resp.Writer
}

func (s *redisServer) tryClient() (*testClient, error) {
	var conn net.Conn
	var err error
	if s.tls != nil {
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", s.addr, s.tls)
	} else {
		conn, err = net.DialTimeout("tcp", s.addr, time.Second)
	}
	if err != nil {
		return nil, err
	}
	c := &testClient{t: s.t, conn: conn, r: resp.NewReader(bufio.NewReader(conn)), w: resp.NewWriter(bufio.NewWriter(conn))}
	if s.pass != "" {
		if v, err := c.tryDo("AUTH", s.pass); err != nil || v.IsError() {
			conn.Close()
			return nil, err
		}
	}
	return c, nil
}

// client returns a connected client, closed at the end of the test.
func (s *redisServer) client() *testClient {
	s.t.Helper()
	c, err := s.tryClient()
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(c.close)
	return c
}

func (c *testClient) close() { c.conn.Close() }

func (c *testClient) tryDo(args ...string) (resp.Value, error) {
	_ = c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.w.WriteCommandStrings(args...); err != nil {
		return resp.Value{}, err
	}
	if err := c.w.Flush(); err != nil {
		return resp.Value{}, err
	}
	return c.r.ReadValue()
}

// do runs a command and fails the test on I/O errors and error replies.
func (c *testClient) do(args ...string) resp.Value {
	c.t.Helper()
	v, err := c.tryDo(args...)
	if err != nil {
		c.t.Fatalf("%q: %v", args, err)
	}
	if v.IsError() {
		c.t.Fatalf("%q: %s", args, v.Str)
	}
	return v
}

// info returns the fields of an INFO section.
func (c *testClient) info(section string) map[string]string {
	c.t.Helper()
	v := c.do("INFO", section)
	fields := map[string]string{}
	for _, line := range strings.Split(string(v.Str), "\r\n") {
		if k, val, ok := strings.Cut(line, ":"); ok {
			fields[k] = val
		}
	}
	return fields
}

func (c *testClient) masterOffset() int64 {
	c.t.Helper()
	off, err := strconv.ParseInt(c.info("replication")["master_repl_offset"], 10, 64)
	if err != nil {
		c.t.Fatal(err)
	}
	return off
}

// replica0 returns the fields of the source's "slave0:" line
// (ip=...,port=...,state=...,offset=...,lag=...), or nil.
func (c *testClient) replica0() map[string]string {
	c.t.Helper()
	line, ok := c.info("replication")["slave0"]
	if !ok {
		return nil
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(line, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			fields[k] = v
		}
	}
	return fields
}

// eventually polls cond until it holds or 5 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
