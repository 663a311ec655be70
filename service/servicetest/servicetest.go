// Package servicetest starts real redis-replicad instances for tests: in
// process on an ephemeral port with a temporary data directory, and real
// redis-server children. A missing redis-server fails the test with what to
// install; it never skips.
package servicetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/app"
)

// Port windows: each instance of this test binary gets the next one, from a
// random start so that test binaries running side by side rarely meet.
var (
	windowSeed = uint64(rand.IntN(100))
	nextWindow atomic.Uint64
)

// Instance is a running service.
type Instance struct {
	App      *app.App
	URL      string // https://127.0.0.1:port
	Username string
	Password string
	CACert   string // PEM
	DataDir  string
	cfg      app.Config
	quiet    atomic.Bool // set once the test is over: no more logging
	recent   *logTail    // the last log lines, printed when the test fails
	// client is HTTPClient's, made once: a client per request left its
	// kept-alive connection open, and a test polling the API a thousand
	// times reached the service's bound on connections and hung.
	clientOnce sync.Once
	client     *http.Client
}

// RequireRedisServer fails the test when redis-server is not installed.
func RequireRedisServer(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs redis-server, not run with -short")
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is required by this test and is not on PATH: install Redis 7+ (apt-get install -y redis-server)")
	}
	return p
}

// Start runs an instance until the test ends.
func Start(t testing.TB) *Instance {
	t.Helper()
	return StartWith(t, nil)
}

// PortWindow returns the range of database ports and the API address of
// one instance, as StartWith draws them: for a test that runs
// redis-replicad as a program. listen may be 127.0.0.1:0 (any port) when
// REDIS_REPLICAD_TEST_PORTS does not confine the tests' ports.
func PortWindow(t testing.TB) (portMin, portMax int, listen string) {
	t.Helper()
	// 14000-29999: below the ephemeral ports (32768 and up) and apart from
	// the windows of StartProcess and of the controller tests.
	base, size, listen := 14000+200*int((windowSeed+nextWindow.Add(1))%80), 200, "127.0.0.1:0"
	if wb, n, sz, ok := redistest.ServiceWindows(); ok {
		base, size = wb+sz*int((windowSeed+nextWindow.Add(1))%uint64(n)), sz
		listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(redistest.FreePort(t)))
	}
	return base, base + size - 1, listen
}

// StartWith runs an instance whose configuration change adjusts first (a
// port range shared with another instance, another redis-server binary).
func StartWith(t testing.TB, change func(*app.Config)) *Instance {
	t.Helper()
	RequireRedisServer(t)
	i := &Instance{DataDir: t.TempDir(), recent: &logTail{}}
	portMin, portMax, listen := PortWindow(t)
	i.cfg = app.Config{
		PortMin: portMin, PortMax: portMax,
		DataDir: i.DataDir, Listen: listen, Name: "test",
		// Each instance draws its database ports from a window of its own, so
		// that two instances of one test do not race for the same port.
		Logger: testLogger(t, &i.quiet, i.recent),
	}
	if change != nil {
		change(&i.cfg)
	}
	i.start(t)
	t.Cleanup(func() {
		if t.Failed() {
			// Before the stop, which may unblock what is stuck.
			i.reportFailure(t)
		}
		i.stop(t)
		i.quiet.Store(true)
	})
	return i
}

func (i *Instance) start(t testing.TB) { i.startServing(t, true) }

func (i *Instance) startServing(t testing.TB, waitStarted bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := app.Start(ctx, i.cfg)
	if err != nil {
		t.Fatalf("start redis-replicad: %v", err)
	}
	// The API serves at once; tests start from an instance whose
	// databases are back, as they did before it served early, unless they
	// look at the start itself.
	if waitStarted {
		select {
		case <-a.Started():
		case <-ctx.Done():
			_ = a.Stop(context.Background())
			t.Fatalf("redis-replicad started but its databases did not come back within a minute")
		}
	}
	i.App, i.URL = a, a.URL()
	i.Username, i.Password, i.CACert = a.AdminUser(), a.AdminPassword(), string(a.CACert())
	// A restart keeps the address, so clients and state stay valid.
	i.cfg.Listen = a.Addr()
}

func (i *Instance) stop(t testing.TB) {
	if i.App == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := i.App.Stop(ctx); err != nil {
		t.Logf("stop redis-replicad: %v", err)
	}
	i.App = nil
	if i.client != nil {
		i.client.CloseIdleConnections() // of the stopped service
	}
}

// Stop stops the instance; Start it again with StartAgain.
func (i *Instance) Stop(t testing.TB) { i.stop(t) }

// StartAgain starts a stopped instance on the same data directory and address.
func (i *Instance) StartAgain(t testing.TB) { i.start(t) }

// StartAgainServing starts a stopped instance again and returns as soon as
// its API serves, before its databases are back (app.App.Started).
func (i *Instance) StartAgainServing(t testing.TB) { i.startServing(t, false) }

// Restart stops the instance and starts it again on the same data directory
// and address.
func (i *Instance) Restart(t testing.TB) {
	t.Helper()
	i.stop(t)
	i.start(t)
}

// HTTPClient trusts the instance's CA. It is the same client for every
// call, so that its connections are kept alive and reused.
func (i *Instance) HTTPClient() *http.Client {
	i.clientOnce.Do(func() {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(i.CACert))
		i.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	})
	return i.client
}

// testLogger sends the service's logs to recent (see RecentLogs), and to
// the test log unless REDIS_REPLICAD_TEST_QUIET is set (CI): then a failing
// test prints recent.
func testLogger(t testing.TB, quiet *atomic.Bool, recent *logTail) *slog.Logger {
	if os.Getenv("REDIS_REPLICAD_TEST_QUIET") != "" {
		return slog.New(slog.NewTextHandler(recent, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.MultiWriter(testWriter{t, quiet}, recent), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	t     testing.TB
	quiet *atomic.Bool
}

func (w testWriter) Write(p []byte) (int, error) {
	if !w.quiet.Load() {
		w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	}
	return len(p), nil
}

// Request makes one API request as user, with body (when not nil) as JSON,
// and returns the status and the answer's body.
func (i *Instance) Request(t testing.TB, user, password, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			t.Fatalf("%s %s: encode the body: %v", method, path, err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, i.URL+path, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	req.SetBasicAuth(user, password)
	resp, err := i.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", method, path, err)
	}
	return resp.StatusCode, data
}
