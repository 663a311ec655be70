package servicetest

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

// Process is redis-replicad running as a separate OS process, for tests that
// kill it (kill -9) and start it again.
type Process struct {
	DataDir string
	Listen  string
	URL     string
	Cmd     *exec.Cmd
	// Args are extra flags of serve, given at every start.
	Args    []string
	binary  string
	logPath string
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary builds cmd/redis-replicad once per test binary.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "redis-replicad-bin")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "redis-replicad")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/redis-replicad")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = err
			buildPath = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build redis-replicad: %v\n%s", buildErr, buildPath)
	}
	return buildPath
}

// StartProcess runs the binary on a fresh data directory, with args as
// extra flags of serve.
func StartProcess(t testing.TB, args ...string) *Process {
	t.Helper()
	RequireRedisServer(t)
	p := &Process{DataDir: t.TempDir(), binary: Binary(t), Listen: freeAddr(t), Args: args}
	p.logPath = filepath.Join(p.DataDir, "service.log")
	p.URL = "https://" + p.Listen
	p.Start(t)
	t.Cleanup(func() {
		if p.Cmd != nil && p.Cmd.ProcessState == nil {
			_ = p.Cmd.Process.Signal(syscall.SIGTERM)
			_ = p.Cmd.Wait()
		}
	})
	return p
}

// Start starts the process and waits for /healthz.
func (p *Process) Start(t testing.TB) {
	t.Helper()
	log, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	base, size := 30000+200*int(time.Now().UnixNano()%13), 200 // below the ephemeral ports
	if wb, n, sz, ok := redistest.ServiceWindows(); ok {
		base, size = wb+sz*int(time.Now().UnixNano()%int64(n)), sz
	}
	args := append([]string{"serve", "--data-dir", p.DataDir, "--listen", p.Listen,
		"--port-range", strconv.Itoa(base) + "-" + strconv.Itoa(base+size-1)}, p.Args...)
	p.Cmd = exec.Command(p.binary, args...)
	p.Cmd.Stdout, p.Cmd.Stderr = log, log
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.binary, err)
	}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		resp, err := client.Get(p.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			out, _ := os.ReadFile(p.logPath)
			t.Fatalf("redis-replicad did not answer /healthz: %v\n%s", err, out)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Kill sends SIGKILL and waits for the process to end.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	_ = p.Cmd.Process.Kill()
	_ = p.Cmd.Wait()
}

// Password is the generated API password.
func (p *Process) Password(t testing.TB) string {
	b, err := os.ReadFile(filepath.Join(p.DataDir, "admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// CACert is the instance's CA certificate.
func (p *Process) CACert(t testing.TB) string {
	b, err := os.ReadFile(filepath.Join(p.DataDir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Log is what the process has written so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// freeAddr is a loopback address for the process to listen on, from
// redistest's window below the ephemeral ports.
func freeAddr(t testing.TB) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(redistest.FreePort(t)))
}
