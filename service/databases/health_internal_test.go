package databases

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
)

func TestStatusFollowsWhatTheWatcherSaw(t *testing.T) {
	now := time.Now()
	p := &process{}
	st := func() string { s, _ := p.status(now); return s }
	assert.Equal(t, api.StatusPending, st(), "no child")

	p.running, p.pid = true, 42
	assert.Equal(t, api.StatusPending, st(), "a child that has not answered")

	p.health = health{pid: 42, answered: now, loading: true, loadedPerc: 37.5}
	s, perc := p.status(now)
	assert.Equal(t, api.StatusLoading, s)
	assert.InDelta(t, 37.5, perc, 0.001)

	p.health = health{pid: 42, answered: now}
	assert.Equal(t, api.StatusPending, st(), "loaded, settings not applied yet")

	p.markReady(42)
	assert.Equal(t, api.StatusActive, st())

	p.health.answered = now.Add(-unresponsiveAfter - time.Second)
	assert.Equal(t, api.StatusPending, st(), "silent for too long: not active")

	p.health = health{pid: 41, answered: now, ready: true}
	assert.Equal(t, api.StatusPending, st(), "what a previous child said is not about this one")

	p.running, p.pid, p.restarts, p.failing, p.lastErr = false, 0, 6, 6, "redis-server: exit status 1: Failed listening on port 7000 (TCP), aborting."
	assert.Equal(t, api.StatusFailed, st(), "restarted again and again")
	assert.Equal(t, p.lastErr, p.problem(now), "a failed database says why")

	p.failing = 1
	assert.Equal(t, api.StatusPending, st(), "one crash is a restart, not a failure")
	assert.Equal(t, p.lastErr, p.problem(now), "until it serves again, the crash is why")

	p.waiting = "port 127.0.0.1:7000 is taken by another process"
	assert.Contains(t, p.problem(now), p.waiting)

	p.running, p.pid, p.waiting = true, 43, ""
	p.health = health{pid: 43, answered: now, ready: true}
	assert.Equal(t, api.StatusActive, st())
	assert.Empty(t, p.problem(now), "a database that serves has no problem")
}

// What a redis-server that could not start logged is why its database is
// down; only its own warnings count, and never a quoted configuration line.
func TestExitCauseReadsTheLastWarningsOfTheChild(t *testing.T) {
	path := filepath.Join(t.TempDir(), "redis.log")
	log := strings.Join([]string{
		"100:M 29 Nov 2026 02:00:00.000 # Server initialized",
		"100:M 29 Nov 2026 02:00:01.000 * Ready to accept connections",
		"200:S 29 Nov 2026 02:07:43.436 * monotonic clock: POSIX clock_gettime",
		"200:S 29 Nov 2026 02:07:43.436 # Warning: Could not create server TCP listening socket 127.0.0.1:7000: bind: Address already in use",
		"200:S 29 Nov 2026 02:07:43.436 # Failed listening on port 7000 (TCP), aborting.",
		"",
	}, "\n")
	require.NoError(t, os.WriteFile(path, []byte(log), 0o600))
	assert.Equal(t, "Warning: Could not create server TCP listening socket 127.0.0.1:7000: bind: Address already in use; Failed listening on port 7000 (TCP), aborting.", exitCause(path, 200))
	assert.Equal(t, "Server initialized", exitCause(path, 100))
	assert.Empty(t, exitCause(path, 300), "another child's lines say nothing of this one")
	assert.Empty(t, exitCause(filepath.Join(t.TempDir(), "none.log"), 200))

	require.NoError(t, os.WriteFile(path, []byte("300:M 29 Nov 2026 02:00:00.000 # Bad directive >>> 'requirepass hunter2'\n"), 0o600))
	assert.Equal(t, "Bad directive", exitCause(path, 300), "a quoted configuration line may hold a secret")

	// A huge log: only its end is read, and the cause is bounded.
	big := strings.Repeat("300:M 29 Nov 2026 02:00:00.000 * filler\n", 100000) + "300:M 29 Nov 2026 02:00:00.000 # " + strings.Repeat("x", 5000) + "\n"
	require.NoError(t, os.WriteFile(path, []byte(big), 0o600))
	assert.LessOrEqual(t, len(exitCause(path, 300)), 403)
}

// What a redis-server said on its standard error before it had a log (its
// configuration unreadable) is why its database is down: only what this
// child wrote, never a quoted configuration line.
func TestOutputCauseReadsWhatTheChildSaid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stdout.log")
	before := "an earlier child's output\n"
	out := before + "\n*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nReading the configuration file, at line 7\n>>> 'user app on #0123abcd ~* +@all'\nBad directive or wrong number of arguments\n"
	require.NoError(t, os.WriteFile(path, []byte(out), 0o600))
	got := outputCause(path, int64(len(before)))
	assert.Equal(t, "*** FATAL CONFIG FILE ERROR (Redis 7.0.15) *** | Reading the configuration file, at line 7 | Bad directive or wrong number of arguments", got)
	assert.NotContains(t, got, "0123abcd")
	assert.Empty(t, outputCause(path, int64(len(out))), "nothing written since")
	assert.Empty(t, outputCause(filepath.Join(t.TempDir(), "none.log"), 0))
}

func TestInfoFields(t *testing.T) {
	f := infoFields("# Server\r\nprocess_id:42\r\n# Persistence\r\nloading:1\r\nloading_loaded_perc:12.50\r\n")
	assert.Equal(t, "42", f["process_id"])
	assert.Equal(t, "1", f["loading"])
	assert.Equal(t, "12.50", f["loading_loaded_perc"])
}

// A running child whose status alone would mislead says why: silent for
// too long (stopped), answering only BUSY, or unable to write its AOF.
func TestDegradedSaysWhyARunningChildDoesNotServe(t *testing.T) {
	now := time.Now()
	p := &process{running: true, pid: 42, dir: "/data/dbs/1"}
	p.health = health{pid: 42, answered: now, ready: true}
	assert.Empty(t, p.degraded(now), "a child that serves")

	p.health.answered = now.Add(-unresponsiveAfter - 2*time.Second)
	assert.Contains(t, p.degraded(now), "has not answered for 12s")

	p.health.busySince = now.Add(-20 * time.Second)
	assert.Contains(t, p.degraded(now), "only BUSY for 20s")

	p.health = health{pid: 42, answered: now, ready: true, aofWriteErr: true}
	assert.Contains(t, p.degraded(now), "cannot write its AOF")

	p.health = health{pid: 41, answered: now.Add(-time.Minute)}
	assert.Empty(t, p.degraded(now), "what a previous child said is not about this one")
}
