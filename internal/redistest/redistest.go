// Package redistest runs plain redis-server processes for tests, and compares
// two Redis databases key by key. A missing redis-server fails the test with
// what to install; it never skips.
package redistest

import (
	"context"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a redis-server child of the test.
type Server struct {
	Port     int
	Dir      string
	Password string
	args     []string
	cmd      *exec.Cmd
	t        testing.TB
}

// Addr is 127.0.0.1:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URL is the redis:// URL of the server, with its password.
func (s *Server) URL() string {
	if s.Password == "" {
		return "redis://" + s.Addr()
	}
	return "redis://:" + s.Password + "@" + s.Addr()
}

// Client connects to db 0.
func (s *Server) Client() *redis.Client { return s.ClientDB(0) }

// ClientDB connects to logical database db.
func (s *Server) ClientDB(db int) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: s.Password, DB: db, MaxRetries: -1})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// Start runs redis-server on a free port with extra config args
// ("--name", "value" pairs).
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs redis-server, not run with -short")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is required by this test and is not on PATH: install Redis 7+ (apt-get install -y redis-server)")
	}
	clustered, busGiven := false, false
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--cluster-enabled":
			clustered = args[i+1] == "yes"
		case "--cluster-port":
			busGiven = true
		}
	}
	if clustered && !busGiven {
		// Redis's default bus port, its port + 10000, lies outside the
		// test's ports (TestPortsEnv), where others' may be: the server
		// could not start (TestShardedDatabaseBusRefusesStrangers).
		args = append(slices.Clone(args), "--cluster-port", strconv.Itoa(FreePort(t)))
	}
	s := &Server{Dir: t.TempDir(), t: t, args: args}
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--requirepass" {
			s.Password = args[i+1]
		}
	}
	s.Port = FreePort(t)
	s.start(bin)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start(bin string) {
	s.t.Helper()
	all := append([]string{"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--dir", s.Dir,
		"--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0", "--logfile", filepath.Join(s.Dir, "redis.log")}, s.args...)
	s.cmd = exec.Command(bin, all...)
	// A group of its own: Stop kills its fork children (an RDB being
	// written into Dir) with it, before the test's directory is removed.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: s.Password, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
			s.t.Fatalf("redis-server on %d did not answer: %v\n%s", s.Port, err, log)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// PID is the server's process id (to freeze it with SIGSTOP, say).
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Stop kills the server (its data goes with it unless persistence was asked).
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.ProcessState == nil {
		pgid := s.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		_ = s.cmd.Wait()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if syscall.Kill(-pgid, 0) != nil {
				break // nobody left in the group
			}
		}
	}
}

// Restart stops the server and starts a new one on the same port and
// directory with the same arguments plus extra ones.
func (s *Server) Restart(extra ...string) {
	s.t.Helper()
	s.Stop()
	s.args = append(s.args, extra...)
	bin, _ := exec.LookPath("redis-server")
	s.start(bin)
}

// Ports of FreePort: 4000-10999, below the kernel's ephemeral ports (32768
// and up) and apart from the windows of the service's tests (11000-32599).
// A port taken from the ephemeral range could become the local port of any
// outgoing connection of a test running beside, between the check and the
// server's bind ("Address already in use", seen in CI).
const (
	freePortMin   = 4000
	freePortCount = 7000
)

// nextFreePort walks the window from a point of its own per test process,
// so that two test binaries running at once seldom try the same ports.
var nextFreePort atomic.Int64

func init() { nextFreePort.Store(rand.Int64N(freePortCount)) }

// TestPortsEnv, when set to "MIN-MAX", confines the ports tests listen on
// to that range (a shared machine where each user has a range of its own):
// its first third goes to FreePort, the rest to the service's instances
// (ServiceWindows).
const TestPortsEnv = "REDIS_REPLICAD_TEST_PORTS"

// testPorts parses TestPortsEnv: ok is false when it is unset.
func testPorts() (lo, hi int, ok bool) {
	v := os.Getenv(TestPortsEnv)
	if v == "" {
		return 0, 0, false
	}
	a, b, found := strings.Cut(v, "-")
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if !found || err1 != nil || err2 != nil || hi-lo < 299 {
		panic(TestPortsEnv + " must be MIN-MAX with at least 300 ports, not " + v)
	}
	return lo, hi, true
}

// freeWindow is the window of FreePort.
func freeWindow() (lo, count int) {
	if l, h, ok := testPorts(); ok {
		return l, (h - l + 1) / 3
	}
	return freePortMin, freePortCount
}

// ServiceWindows returns where the service's instances of tests take their
// windows of database ports when TestPortsEnv is set: base, a count of
// windows of size each; ok is false when it is unset.
func ServiceWindows() (base, count, size int, ok bool) {
	l, h, ok := testPorts()
	if !ok {
		return 0, 0, 0, false
	}
	base = l + (h-l+1)/3
	size = 60
	return base, (h + 1 - base) / size, size, true
}

// FreePort returns a loopback port that nothing listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	lo, count := freeWindow()
	for range count {
		port := lo + int(nextFreePort.Add(1)%int64(count))
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // in use
		}
		l.Close()
		return port
	}
	t.Fatalf("no free port in %d-%d", lo, lo+count-1)
	return 0
}

// Eventually polls cond until it returns nil or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %s: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval, not a wait for an outcome
	}
}

// Ctx is a context bounded by the test.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
