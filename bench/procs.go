package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procs are the children of the harness. stopAll ends every one of them,
// most recent first; a child also gets SIGKILL (SIGTERM for the service, so
// that it stops its own databases) if the harness dies first.
type procs struct {
	mu   sync.Mutex
	list []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// start runs cmd with its output in logPath.
func (ps *procs) start(name string, cmd *exec.Cmd, logPath string, deathSig syscall.Signal) (*proc, error) {
	if logPath != "" {
		f, err := os.Create(logPath)
		if err != nil {
			return nil, err
		}
		defer f.Close() // the child keeps its own descriptor
		cmd.Stdout, cmd.Stderr = f, f
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: deathSig, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

// stop ends p: SIGTERM, then SIGKILL after grace.
func (ps *procs) stop(p *proc, grace time.Duration) {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill ends p at once, with its process group: a redis-server's fork
// child (an AOF rewrite just after a sync, say) would otherwise live on
// and take CPU from the next measurement.
func (ps *procs) kill(p *proc) {
	if p == nil || p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (ps *procs) stopAll() {
	ps.mu.Lock()
	list := ps.list
	ps.list = nil
	ps.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		grace := 2 * time.Second
		if list[i].name == "redis-replicad" {
			grace = 30 * time.Second
		}
		ps.stop(list[i], grace)
	}
}

// procStat is what /proc says about one process.
type procStat struct {
	RSS   int64 // bytes
	HWM   int64 // peak RSS since start or the last resetPeak, bytes
	CPU   float64
	RChar int64 // bytes read by read-like system calls, sockets included
	WChar int64
}

var clockTick = 100.0 // USER_HZ; 100 on every Linux the harness targets

func readProc(pid int) (procStat, error) {
	var s procStat
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			s.RSS = kb(f[1])
		case "VmHWM:":
			s.HWM = kb(f[1])
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name may hold spaces: fields start after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) > 13 {
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		s.CPU = (ut + st) / clockTick
	}
	if io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		for _, line := range strings.Split(string(io), "\n") {
			k, v, ok := strings.Cut(line, ": ")
			if !ok {
				continue
			}
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			switch k {
			case "rchar":
				s.RChar = n
			case "wchar":
				s.WChar = n
			}
		}
	}
	return s, nil
}

func kb(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n << 10 }

// resetPeak resets VmHWM to the current RSS (Linux 4.0+); sampling covers
// kernels without it.
func resetPeak(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}

// childrenOf lists the pids of pid's children.
func childrenOf(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// pidListening returns the pid of a child of parent whose command line
// names port (the service starts redis-server with a config file in a
// directory of the database; its command line shows "*:port" or the port).
func childListening(parent, port int) int {
	want := ":" + strconv.Itoa(port)
	for _, c := range childrenOf(parent) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c))
		if strings.Contains(string(b), want) {
			return c
		}
	}
	return 0
}

// meter follows one process during a phase: peak RSS (sampled every 20 ms
// and from VmHWM) and CPU seconds and I/O bytes between start and stop.
type meter struct {
	pid   int
	start procStat
	peak  int64
	hwmOK bool // VmHWM was reset at start, so it covers the phase only
	stopC chan struct{}
	done  chan struct{}
}

func startMeter(pid int) *meter {
	m := &meter{pid: pid, stopC: make(chan struct{}), done: make(chan struct{})}
	if pid == 0 {
		close(m.done)
		return m
	}
	m.hwmOK = resetPeak(pid)
	m.start, _ = readProc(pid)
	m.peak = m.start.RSS
	go func() {
		defer close(m.done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stopC:
				return
			case <-t.C:
				if s, err := readProc(pid); err == nil && s.RSS > m.peak {
					m.peak = s.RSS
				}
			}
		}
	}()
	return m
}

// usage is what a meter measured.
type usage struct {
	PeakRSS    int64   `json:"peak_rss_bytes"`
	CPUSeconds float64 `json:"cpu_seconds"`
	ReadBytes  int64   `json:"read_bytes"`
	WriteBytes int64   `json:"write_bytes"`
}

func (m *meter) stop() usage {
	if m.pid == 0 {
		return usage{}
	}
	close(m.stopC)
	<-m.done
	end, err := readProc(m.pid)
	if err != nil {
		return usage{PeakRSS: m.peak}
	}
	peak := max(m.peak, end.RSS)
	if m.hwmOK {
		peak = max(peak, end.HWM)
	}
	return usage{PeakRSS: peak, CPUSeconds: end.CPU - m.start.CPU, ReadBytes: end.RChar - m.start.RChar, WriteBytes: end.WChar - m.start.WChar}
}
