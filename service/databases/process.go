package databases

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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

	// applyTurn makes the applies of live settings (Manager.applyLive) to
	// this process take turns: a buffered channel of one, so that an apply
	// waiting for its turn gives up with its context (the API's apply must
	// never wait for ever behind the start's).
	applyTurn chan struct{}

	mu       sync.Mutex
	running  bool // a child is up (it may not answer yet)
	pid      int  // its process id
	restarts int
	// failing counts the runs in a row that ended within a few seconds;
	// lastErr is why the last run ended, with the cause redis-server
	// logged (problem reports it).
	failing int
	lastErr string
	waiting string // why the next child waits to start (its port is taken)
	lastPID int    // the pid of the last child started, whose log lines say why it ended
	// outFrom is where the last child's output starts in stdout.log: what
	// it said before it opened its log (its configuration unreadable).
	outFrom int64
	health  health // what the watcher saw of the current child
	// applyErr says why the latest settings are not applied yet, while
	// reapplying retries them in the background (Manager.reapplyLater).
	applyErr   string
	reapplying bool
	// filesPending: the files of its latest settings could not be
	// written (Manager.filesNotWritten); reapplying writes them.
	filesPending bool

	ctx    context.Context // ends when the process is stopped
	cancel context.CancelFunc
	done   chan struct{}
	bg     sync.WaitGroup // reapplyLater's goroutine
}

func (p *process) start(parent context.Context) {
	p.exited = make(chan error, 1)
	ctx, cancel := context.WithCancel(parent)
	p.ctx, p.cancel = ctx, cancel
	p.done = make(chan struct{})
	go p.supervise(ctx)
}

// stop ends the child and waits for it.
func (p *process) stop() {
	p.cancel()
	<-p.done
	p.bg.Wait()
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
		served := time.Since(began) > 10*time.Second
		cause := fmt.Sprint(err)
		why := exitCause(filepath.Join(p.dir, "redis.log"), p.lastPID)
		if why == "" {
			p.mu.Lock()
			from := p.outFrom
			p.mu.Unlock()
			why = outputCause(filepath.Join(p.dir, "stdout.log"), from)
		}
		if why != "" {
			cause += ": " + why
		}
		p.mu.Lock()
		p.restarts++
		p.failing++
		if served {
			p.failing = 1
		}
		p.lastErr = cause
		p.health = health{}
		p.mu.Unlock()
		if served {
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
		endLeftovers(ctx, p.log, p.dir, p.binary, false, func() {
			p.mu.Lock()
			p.waiting = "a redis-server of the service's previous life still runs in its directory, holding its port: ending it"
			p.mu.Unlock()
		})
		err := waitPortFree(ctx, p.addr, 30*time.Second, func() {
			p.mu.Lock()
			p.waiting = fmt.Sprintf("port %s is taken by another process: waiting for it to be free (a redis-server of the service's previous life shutting down, or another program)", p.addr)
			p.mu.Unlock()
		})
		p.mu.Lock()
		p.waiting = ""
		p.mu.Unlock()
		if err != nil {
			return err
		}
	}
	// Until a child starts, no log lines are its: a start that fails (the
	// binary gone) must not be explained by the previous child's.
	p.mu.Lock()
	p.lastPID = 0
	p.mu.Unlock()
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
	if st, err := out.Stat(); err == nil {
		p.mu.Lock()
		p.outFrom = st.Size()
		p.mu.Unlock()
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.binary, err)
	}
	p.mu.Lock()
	p.running = true
	p.pid = cmd.Process.Pid
	p.lastPID = p.pid
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
		// SIGCONT after it, as init systems do: a server stopped (SIGSTOP,
		// a debugger) would otherwise only take its SIGTERM once
		// continued, and the stop would wait for the SIGKILL.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Process.Signal(syscall.SIGCONT)
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-waited
		}
		return ctx.Err()
	}
}

// waitPortFree polls until nothing accepts connections on addr; slow runs
// once if the port is still taken after a second.
func waitPortFree(ctx context.Context, addr string, timeout time.Duration, slow func()) error {
	began := time.Now()
	deadline := began.Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return nil
		}
		conn.Close()
		if time.Now().After(deadline) {
			return fmt.Errorf("port of %s is still taken by another process after %s", addr, timeout)
		}
		if slow != nil && time.Since(began) > time.Second {
			slow()
			slow = nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// exitCause is what a redis-server that ended logged as its last warnings
// ("# ..." lines of its pid), such as a port it could not listen on, so
// that the API can say why a database is down. It reads the end of the log
// only, and keeps nothing of a line past ">>>" (where Redis quotes a
// configuration line).
func exitCause(logPath string, pid int) string {
	if pid == 0 {
		return ""
	}
	f, err := os.Open(logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	const tail = 16 << 10
	if st, err := f.Stat(); err == nil && st.Size() > tail {
		_, _ = f.Seek(st.Size()-tail, io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, tail))
	prefix := strconv.Itoa(pid) + ":"
	var warnings []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		_, msg, ok := strings.Cut(line, " # ")
		if !ok {
			continue
		}
		msg, _, _ = strings.Cut(msg, ">>>")
		if msg = strings.TrimSpace(msg); msg != "" {
			warnings = append(warnings, msg)
		}
	}
	if len(warnings) > 2 {
		warnings = warnings[len(warnings)-2:]
	}
	out := strings.Join(warnings, "; ")
	if len(out) > 400 {
		out = out[:400] + "..."
	}
	return out
}

// outputCause is the end of what a redis-server wrote to its standard
// output and error (path) from offset on: a server that cannot read its
// configuration says why there, before it opens its log. Lines quoting a
// configuration line (">>> '...'") are left out: they may hold a secret.
func outputCause(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const tail = 16 << 10
	if st, err := f.Stat(); err == nil && st.Size()-offset > tail {
		offset = st.Size() - tail
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, tail))
	var lines []string
	for line := range strings.SplitSeq(string(b), "\n") {
		line, _, _ = strings.Cut(line, ">>>")
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	out := strings.Join(lines[max(0, len(lines)-3):], " | ")
	if len(out) > 400 {
		out = out[:400] + "..."
	}
	return out
}
