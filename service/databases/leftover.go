package databases

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A redis-server of a previous life of the service gets SIGTERM when the
// service dies (Pdeathsig), but may not act on it: a server busy in a
// script, or hung, keeps running without a parent, holding its database's
// port (and its files) for ever. The next start of that database ends it
// first. Such a server is known by its working directory, the database's
// own (each child starts there), and its program: nobody else runs a
// redis-server there.

// leftoverServers lists the redis-server processes (binary names the
// service's) whose working directory is dir, or inside dir when below is
// set, other than this process's own children.
func leftoverServers(dir, binary string, below bool) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil // not Linux: nothing to find this way
	}
	dir = filepath.Clean(dir)
	self := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		proc := filepath.Join("/proc", e.Name())
		cwd, err := os.Readlink(filepath.Join(proc, "cwd"))
		if err != nil {
			continue // gone, or not ours to look at
		}
		// A directory removed under the process reads "... (deleted)".
		cwd = strings.TrimSuffix(cwd, " (deleted)")
		if cwd != dir && !(below && strings.HasPrefix(cwd, dir+string(filepath.Separator))) {
			continue
		}
		exe, err := os.Readlink(filepath.Join(proc, "exe"))
		if err != nil || !isServerBinary(strings.TrimSuffix(exe, " (deleted)"), binary) {
			continue // an operator's shell in the database's directory, say
		}
		if ppid, state, ok := procStat(pid); !ok || ppid == self || state == 'Z' {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// isServerBinary says whether exe is a redis-server: the one the service
// runs (Debian's redis-server is a link to redis-check-rdb, which the
// kernel names), or one of that name (a wrapper given as --redis-server
// execs it).
func isServerBinary(exe, binary string) bool {
	if exe == binary || strings.HasPrefix(filepath.Base(exe), "redis-server") {
		return true
	}
	resolved, err := filepath.EvalSymlinks(binary)
	return err == nil && exe == resolved
}

// procStat reads the parent and the state of pid from /proc/<pid>/stat.
func procStat(pid int) (ppid int, state byte, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0][0], err == nil
}

// gone says whether pid has ended (a zombie that nobody reaped yet holds
// no port and no file).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	_, state, ok := procStat(pid)
	return !ok || state == 'Z'
}

// leftoverGrace is how long a leftover server is given to finish its
// shutdown (write out its AOF) before it is killed.
const leftoverGrace = 10 * time.Second

// endLeftovers ends the servers of leftoverServers(dir, binary, below):
// SIGTERM (and SIGCONT, for a stopped one), then SIGKILL after
// leftoverGrace. It returns once they are gone, ctx ends, or leftoverGrace
// more has passed after the SIGKILL (a process stuck in the kernel: the
// caller goes on, and finds the port taken).
// found, when set, is told first that there are some.
func endLeftovers(ctx context.Context, log *slog.Logger, dir, binary string, below bool, found func()) {
	pids := leftoverServers(dir, binary, below)
	if len(pids) == 0 {
		return
	}
	if found != nil {
		found()
	}
	for _, pid := range pids {
		log.Warn("a redis-server of a previous life of the service still runs in a database's directory, holding its port: ending it", "pid", pid, "dir", dir)
		_ = syscall.Kill(pid, syscall.SIGTERM)
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	deadline := time.Now().Add(leftoverGrace)
	killed := false
	for {
		pids = slices.DeleteFunc(pids, gone)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			if killed {
				log.Error("a leftover redis-server does not end, even killed", "pids", pids)
				return
			}
			for _, pid := range pids {
				log.Warn("a leftover redis-server did not stop within its grace period: killing it", "pid", pid, "grace", leftoverGrace)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			killed, deadline = true, time.Now().Add(leftoverGrace)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}
