package databases

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/api"
)

// health is what the watcher of a child last saw of it. Status reads it and
// nothing else, so a status read never waits for a busy redis-server (one
// loading its AOF, or applying a fan-in of replication batches).
type health struct {
	pid        int       // the child that answered
	answered   time.Time // its last answer, of any kind
	loading    bool      // replaying its AOF (it answers LOADING)
	loadedPerc float64   // how far, in percent
	ready      bool      // its live settings (ACL users, maxmemory) are applied
	busySince  time.Time // since when it answers BUSY (a script runs), zero if it does not
	// aofWriteErr: its last write to its AOF failed (a full or read-only
	// disk), so it refuses every write (MISCONF) until one succeeds.
	aofWriteErr bool
	// usedMemory is its used_memory and master whether it is a master, at
	// its last answer: metrics and the console read them, never the
	// server itself.
	usedMemory int64
	master     bool
}

// Watch intervals: quick while a child comes up, so that its status follows
// at once; slow once it serves, to cost nothing.
const (
	watchStarting = 100 * time.Millisecond
	watchServing  = time.Second
	// A child that has not answered for this long is not called active:
	// status never lies.
	unresponsiveAfter = 10 * time.Second
)

// watch polls one child's INFO until ctx ends (the child exits or is
// stopped), on a connection of its own.
func (m *Manager) watch(ctx context.Context, uid int, p *process, password string) {
	c := redis.NewClient(&redis.Options{
		Network: "unix", Addr: m.Socket(uid), Username: InternalUser, Password: password,
		MaxRetries: -1, PoolSize: 1, DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
	})
	defer c.Close()
	for {
		serving := p.observe(ctx, c)
		m.killBusyScript(ctx, uid, p, c)
		wait := watchStarting
		if serving {
			wait = watchServing
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// observe asks the child how it is and records it; it says whether the child
// serves (answered, not loading, settings applied).
func (p *process) observe(ctx context.Context, c *redis.Client) bool {
	pid := p.childPID()
	if pid == 0 {
		return false
	}
	info, err := c.Info(ctx, "server", "persistence", "memory", "replication").Result()
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pid != pid {
		return false // another child now: its own watcher reports it
	}
	if err != nil {
		switch {
		case strings.HasPrefix(err.Error(), "LOADING"):
			p.health.pid, p.health.answered, p.health.loading = pid, now, true
		case strings.HasPrefix(err.Error(), "BUSY"):
			if p.health.busySince.IsZero() {
				p.health.busySince = now
			}
			return false
		}
		p.health.busySince = time.Time{}
		return false
	}
	p.health.busySince = time.Time{}
	fields := infoFields(info)
	if fields["process_id"] != strconv.Itoa(pid) {
		// A server of a previous life of the service still answers on the
		// socket while it shuts down: it says nothing about ours.
		return false
	}
	p.health.pid, p.health.answered = pid, now
	p.health.loading = fields["loading"] == "1"
	p.health.loadedPerc, _ = strconv.ParseFloat(fields["loading_loaded_perc"], 64)
	p.health.aofWriteErr = fields["aof_last_write_status"] == "err"
	p.health.usedMemory, _ = strconv.ParseInt(fields["used_memory"], 10, 64)
	p.health.master = fields["role"] == "master"
	return !p.health.loading && p.health.ready
}

// busyKillAfter is how long a destination may answer BUSY before the
// service kills its script. Redis answers BUSY only once a script has run
// for busy-reply-threshold (5 s): it is killed at the first BUSY, 5 s in.
const busyKillAfter = 0

// killBusyScript ends a script that has kept a Replica Of destination busy
// (for 5 s, when Redis starts answering BUSY). On a destination the application user may run only
// read-only scripts and functions, which SCRIPT KILL and FUNCTION KILL end
// safely; one that loops would otherwise hold back replication for ever
// (a busy server applies nothing of its master's stream).
func (m *Manager) killBusyScript(ctx context.Context, key int, p *process, c *redis.Client) {
	p.mu.Lock()
	since := p.health.busySince
	p.mu.Unlock()
	if since.IsZero() || time.Since(since) < busyKillAfter {
		return
	}
	uid, _ := splitKey(key)
	m.mu.Lock()
	d, ok := m.current[uid]
	if !ok {
		d, ok = m.clusters[uid]
	}
	m.mu.Unlock()
	if !ok || !d.IsReplica() {
		return // its own scripts are the application's business
	}
	for _, cmd := range [][]any{{"SCRIPT", "KILL"}, {"FUNCTION", "KILL"}} {
		if err := c.Do(ctx, cmd...).Err(); err == nil {
			m.cfg.Logger.Warn("killed a script that kept a Replica Of destination busy: it held back replication", "uid", uid, "busy_for", time.Since(since).Round(time.Second))
			return
		}
	}
}

// markReady records that the live settings of the running child are applied.
func (p *process) markReady(pid int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pid == pid && pid != 0 {
		p.health.ready = true
		p.health.pid = pid
		if p.health.answered.IsZero() {
			p.health.answered = time.Now()
		}
	}
}

// status is the database status of this process, from what was observed.
func (p *process) status(now time.Time) (string, float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.health
	switch {
	case !p.running || h.answered.IsZero() || h.pid != p.pid || now.Sub(h.answered) > unresponsiveAfter:
		if p.failing > 5 {
			return api.StatusFailed, 0
		}
		return api.StatusPending, 0
	case h.loading:
		return api.StatusLoading, h.loadedPerc
	case !h.ready:
		return api.StatusPending, 0
	}
	return api.StatusActive, 0
}

// memory is the child's used_memory and whether it is a master, as last
// seen; ok is false when it has not answered lately.
func (p *process) memory(now time.Time) (used int64, master, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.health
	if !p.running || h.answered.IsZero() || h.pid != p.pid || now.Sub(h.answered) > unresponsiveAfter {
		return 0, false, false
	}
	return h.usedMemory, h.master, true
}

// problem says why the child does not serve: its last run ended, or its
// port is taken (empty while it serves, loads, or starts).
func (p *process) problem(now time.Time) string {
	if st, _ := p.status(now); st != api.StatusPending && st != api.StatusFailed {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.waiting != "" && p.failing > 0:
		return p.waiting + "; before that: " + p.lastErr
	case p.waiting != "":
		return p.waiting
	case p.failing > 0:
		return p.lastErr
	}
	return ""
}

// degraded says why the running child does not fully serve, where its
// status alone would not tell: it answered once and has not for a while
// (stopped, or stalled on its disk), or it cannot write its AOF (so it
// refuses every write). Empty when neither holds.
func (p *process) degraded(now time.Time) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.health
	if !p.running || h.pid != p.pid || h.answered.IsZero() {
		return ""
	}
	if silent := now.Sub(h.answered); silent > unresponsiveAfter {
		if !h.busySince.IsZero() {
			return fmt.Sprintf("its redis-server (pid %d) has answered only BUSY for %s (a script or function runs)", h.pid, now.Sub(h.busySince).Round(time.Second))
		}
		return fmt.Sprintf("its redis-server (pid %d) has not answered for %s (stopped, or stalled on its disk)", h.pid, silent.Round(time.Second))
	}
	if h.aofWriteErr {
		return fmt.Sprintf("its redis-server cannot write its AOF, and refuses every write until it can: its disk is full or read-only (see %s)", filepath.Join(p.dir, "redis.log"))
	}
	return ""
}

// settingsPending says why the database's latest settings are not applied
// yet, while they are retried (Manager.reapplyLater); empty when they are.
func (p *process) settingsPending() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.applyErr == "" {
		return ""
	}
	if p.filesPending {
		return "its latest settings are not all applied yet (they are as soon as its files can be written): " + p.applyErr
	}
	return "its latest settings are not applied yet (they are as soon as its redis-server answers): " + p.applyErr
}

// infoFields parses the "name:value" lines of an INFO reply.
func infoFields(info string) map[string]string {
	out := map[string]string{}
	for line := range strings.SplitSeq(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && !strings.HasPrefix(k, "#") {
			out[k] = v
		}
	}
	return out
}
