package databases

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// process supervises one redis-server child: it (re)starts it until stopped.
type process struct {
	uid      int
	binary   string
	dir      string
	confPath string
	addr     string // where it listens
	log      *slog.Logger
	// started runs after each start of the child, on a goroutine of its
	// own that ends with ctx: it applies what the config cannot hold.
	started func(ctx context.Context)
	// fresh: the database was just created, so no server of a previous
	// life can hold its port. The first start then does not wait for the
	// port to be free: a port taken by someone else is the caller's news
	// at once (exited), not a 30 s wait.
	fresh bool
	// exited receives the error of the first run of the child that ends
	// (buffered, never blocks the supervisor).
	exited chan error

	// applyMu makes the applies of live settings (Manager.applyLive) to
	// this process take turns.
	applyMu sync.Mutex

	mu       sync.Mutex
	running  bool // a child is up (it may not answer yet)
	pid      int  // its process id
	restarts int
	lastErr  string
	health   health // what the watcher saw of the current child

	cancel context.CancelFunc
	done   chan struct{}
}

func (p *process) start(parent context.Context) {
	p.exited = make(chan error, 1)
	ctx, cancel := context.WithCancel(parent)
	p.cancel = cancel
	p.done = make(chan struct{})
	go p.supervise(ctx)
}

// stop ends the child and waits for it.
func (p *process) stop() {
	p.cancel()
	<-p.done
}

func (p *process) childPID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

func (p *process) supervise(ctx context.Context) {
	defer close(p.done)
	backoff := 100 * time.Millisecond
	for {
		began := time.Now()
		err := p.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		select {
		case p.exited <- err:
		default:
		}
		p.mu.Lock()
		p.restarts++
		p.lastErr = fmt.Sprint(err)
		p.health = health{}
		p.mu.Unlock()
		if time.Since(began) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		p.log.Warn("redis-server exited; restarting", "uid", p.uid, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (p *process) runOnce(ctx context.Context) error {
	// A redis-server of a previous life of the service may still be
	// shutting down on this port (it got SIGTERM when the service died):
	// wait for it to go, so that nobody mistakes it for the new one.
	p.mu.Lock()
	fresh := p.fresh
	p.fresh = false
	p.mu.Unlock()
	if !fresh {
		if err := waitPortFree(ctx, p.addr, 30*time.Second); err != nil {
			return err
		}
	}
	cmd := exec.Command(p.binary, p.confPath)
	cmd.Dir = p.dir
	// SIGTERM, not SIGKILL: redis-server then writes out its AOF buffer,
	// which appendfsync everysec may still hold for acknowledged writes.
	cmd.SysProcAttr = childProcAttr(syscall.SIGTERM)
	out, err := os.OpenFile(filepath.Join(p.dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open stdout log: %w", err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.binary, err)
	}
	p.mu.Lock()
	p.running = true
	p.pid = cmd.Process.Pid
	p.mu.Unlock()
	childCtx, childDone := context.WithCancel(ctx)
	defer childDone()
	if p.started != nil {
		go p.started(childCtx)
	}
	defer func() {
		p.mu.Lock()
		p.running, p.pid, p.health = false, 0, health{}
		p.mu.Unlock()
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err == nil {
			err = errors.New("exited with status 0")
		}
		return fmt.Errorf("redis-server: %w (see %s)", err, filepath.Join(p.dir, "redis.log"))
	case <-ctx.Done():
		// SIGTERM lets redis-server flush its AOF; SIGKILL if it hangs.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-waited
		}
		return ctx.Err()
	}
}

// waitPortFree polls until nothing accepts connections on addr.
func waitPortFree(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return nil
		}
		conn.Close()
		if time.Now().After(deadline) {
			return fmt.Errorf("port of %s is still taken by another process after %s", addr, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
