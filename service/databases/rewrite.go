package databases

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// AOF rewrites are scheduled by the service, not by redis-server: each one
// forks, and the child takes a whole core while it writes the dataset out.
// Redis's own trigger (the AOF doubled and is over 64 MB) forks every few
// seconds under a steady write load on a small dataset, and with many
// databases their forks pile up on the same cores; either way the lag of
// every replica on the machine jumps by hundreds of milliseconds on a small
// machine. So the service:
//   - rewrites a database's AOF once it has grown by its base size and by at
//     least half the database's memory_size (64 MiB at least), which bounds
//     the AOF to about twice what the database may hold;
//   - runs one rewrite at a time per instance, the most overdue first;
//   - lowers the priority of every fork child of its databases (rewrites,
//     and the snapshots of full syncs) to nice 19, so that a child only uses
//     CPU that serving and replicating leave idle.
const (
	rewriteNice = 19
	// minRewriteGrowth is the least growth that triggers a rewrite.
	minRewriteGrowth = 64 << 20
	// defaultRewriteCheck is how often every database is looked at.
	defaultRewriteCheck = 500 * time.Millisecond
)

// aofState is what INFO persistence says about a database's forks and AOF.
type aofState struct {
	enabled  bool
	forking  bool  // an AOF rewrite or snapshot child runs (or is scheduled)
	current  int64 // size of the AOF
	base     int64 // its size after the last rewrite
	rewrites int64 // rewrites done since the start of the process
}

func parseAOFState(info string) aofState {
	var st aofState
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "aof_enabled":
			st.enabled = v == "1"
		case "aof_rewrite_in_progress", "aof_rewrite_scheduled", "rdb_bgsave_in_progress", "module_fork_in_progress":
			st.forking = st.forking || v == "1"
		case "aof_current_size":
			st.current = n
		case "aof_base_size":
			st.base = n
		case "aof_rewrites":
			st.rewrites = n
		}
	}
	return st
}

// rewriteGrowth is how much a database's AOF must grow past its base before
// it is rewritten.
func rewriteGrowth(st aofState, memorySize, floor int64) int64 {
	return max(st.base, memorySize/2, floor)
}

// overdue says how far past its threshold a database's AOF is (≥ 1: due).
func overdue(st aofState, memorySize, floor int64) float64 {
	if !st.enabled {
		return 0 // a destination loading with its AOF off
	}
	return float64(st.current-st.base) / float64(rewriteGrowth(st, memorySize, floor))
}

// scheduleRewrites looks at every database each interval until ctx ends:
// it lowers the priority of fork children, and starts the most overdue
// rewrite when no fork runs.
func (m *Manager) scheduleRewrites(ctx context.Context) {
	defer close(m.rewriterDone)
	every := m.cfg.RewriteCheck
	if every <= 0 {
		every = defaultRewriteCheck
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.checkRewrites(ctx)
	}
}

func (m *Manager) checkRewrites(ctx context.Context) {
	floor := m.cfg.MinRewriteGrowth
	if floor <= 0 {
		floor = minRewriteGrowth
	}
	m.mu.Lock()
	type candidate struct {
		uid, pid int
		memory   int64
	}
	var dbs []candidate
	for uid, p := range m.procs {
		if pid := p.childPID(); pid != 0 {
			dbs = append(dbs, candidate{uid, pid, m.current[uid].MemorySize})
		}
	}
	m.mu.Unlock()

	forking, found := false, false
	best, bestScore := candidate{}, 1.0
	for _, db := range dbs {
		st, err := m.aofState(ctx, db.uid)
		if err != nil {
			continue // not answering (starting, loading): nothing to do
		}
		if st.forking {
			forking = true
			m.lowerChildPriority(db.pid)
			continue
		}
		if s := overdue(st, db.memory, floor); s >= bestScore {
			best, bestScore, found = db, s, true
		}
	}
	if forking || !found {
		return
	}
	if err := m.rewrite(ctx, best.uid, best.pid); err != nil {
		m.cfg.Logger.Warn("start AOF rewrite", "uid", best.uid, "err", err)
	}
}

func (m *Manager) aofState(ctx context.Context, uid int) (aofState, error) {
	c := m.Client(uid)
	if c == nil {
		return aofState{}, errors.New("not running")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := c.Info(ctx, "persistence").Result()
	if err != nil {
		return aofState{}, err
	}
	return parseAOFState(info), nil
}

// rewrite starts a rewrite of uid's AOF and lowers its child's priority as
// soon as it exists.
func (m *Manager) rewrite(ctx context.Context, uid, pid int) error {
	c := m.Client(uid)
	if c == nil {
		return errors.New("not running")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.Do(ctx, "BGREWRITEAOF").Err(); err != nil {
		return fmt.Errorf("BGREWRITEAOF: %w", err)
	}
	m.cfg.Logger.Debug("AOF rewrite started", "uid", uid)
	// redis-server has forked by the time it answers; look for the child
	// for a little while in case /proc lags.
	for range 50 {
		if m.lowerChildPriority(pid) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// lowerChildPriority sets the fork children of redis-server pid to nice
// rewriteNice and returns how many it found.
func (m *Manager) lowerChildPriority(pid int) int {
	children, err := childPIDs(pid)
	if err != nil {
		return 0
	}
	for _, child := range children {
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, child, rewriteNice); err != nil {
			m.cfg.Logger.Debug("lower the priority of a fork child", "pid", child, "err", err)
		}
	}
	return len(children)
}

// childPIDs lists the children of process pid (its main thread's, which is
// the thread redis-server forks from).
func childPIDs(pid int) ([]int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}
