package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// server is a plain redis-server started by the harness: a source, or a
// native replica (the baseline).
type server struct {
	name     string
	port     int
	dir      string
	password string
	proc     *proc
	c        *redis.Client
}

func (s *server) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }
func (s *server) url() string  { return "redis://:" + s.password + "@" + s.addr() }

// Source servers: no persistence, diskless replication without delay, so
// both sides get their RDB the same way and at once.
var sourceArgs = []string{"--save", "", "--appendonly", "no", "--repl-diskless-sync", "yes",
	"--repl-diskless-sync-delay", "0"}

// Native replicas are configured as the service configures its databases
// (service/databases/config.go): AOF with fsync every second, no RDB
// snapshots, 17 logical databases. Everything else is Redis's default, so
// the replica receives the RDB to disk and then loads it, as a stock
// replica does.
var replicaArgs = []string{"--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--databases", "17",
	// The service rewrites an AOF once it has grown by half the database's
	// memory_size (and by its base size): 1 GiB for the streaming database.
	"--auto-aof-rewrite-min-size", "1gb"}

func (b *runner) startServer(ctx context.Context, name string, args ...string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(b.runDir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &server{name: name, port: port, dir: dir, password: serverPassword}
	all := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--requirepass", s.password, "--masterauth", s.password, "--logfile", "redis.log",
		"--protected-mode", "no"}, args...)
	s.proc, err = b.procs.start("redis-server "+name, exec.Command(b.redisServer, all...), "", syscall.SIGKILL)
	if err != nil {
		return nil, err
	}
	s.c = redis.NewClient(&redis.Options{Addr: s.addr(), Password: s.password, MaxRetries: -1,
		ReadTimeout: time.Minute, WriteTimeout: time.Minute, PoolSize: 4})
	deadline := time.Now().Add(20 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := s.c.Ping(pctx).Err()
		cancel()
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil || s.proc.exited() {
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			return nil, fmt.Errorf("redis-server %s on %d did not answer: %v\n%s", name, port, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopServer kills s and removes its data.
func (b *runner) stopServer(s *server) {
	if s == nil {
		return
	}
	s.c.Close()
	b.procs.kill(s.proc)
	_ = os.RemoveAll(s.dir)
}

// info returns the fields of an INFO section.
func info(ctx context.Context, c *redis.Client, sections ...string) (map[string]string, error) {
	text, err := c.Info(ctx, sections...).Result()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok {
			out[k] = v
		}
	}
	return out, nil
}

func infoInt(m map[string]string, k string) int64 {
	n, _ := strconv.ParseInt(m[k], 10, 64)
	return n
}

// replOffset is the replication offset of a server: what a source produced,
// or what a replica has processed.
func replOffset(ctx context.Context, c *redis.Client) (int64, error) {
	m, err := info(ctx, c, "replication")
	if err != nil {
		return 0, err
	}
	if m["role"] == "slave" {
		return infoInt(m, "slave_repl_offset"), nil
	}
	return infoInt(m, "master_repl_offset"), nil
}

// replicaOf makes the native replica r a replica of src and returns when it
// has loaded src's dataset and streams.
func replicaOf(ctx context.Context, r, src *server, pollEvery time.Duration) (time.Duration, error) {
	began := time.Now()
	if err := r.c.Do(ctx, "REPLICAOF", "127.0.0.1", strconv.Itoa(src.port)).Err(); err != nil {
		return 0, fmt.Errorf("REPLICAOF: %w", err)
	}
	for {
		m, err := info(ctx, r.c, "replication")
		if err == nil && m["master_link_status"] == "up" && m["master_sync_in_progress"] == "0" {
			return time.Since(began), nil
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("native replica %s not in sync: %w (%v)", r.name, ctx.Err(), m)
		}
		time.Sleep(pollEvery)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// serverPassword is shared by the harness's redis-servers, so that a native
// replica's masterauth fits every source.
const serverPassword = "bench-secret"
