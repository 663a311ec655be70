package replication_test

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// A source removed from a destination takes its series with it. They used
// to stay until the destination was deleted: a removed source's stalled
// gauge, applied offset and counters were scraped for ever, its last
// value frozen (a stalled source stayed stalled in every dashboard).
func TestARemovedSourceLeavesNoSeries(t *testing.T) {
	i := servicetest.Start(t)
	a := newAPI(t, i)
	kept := a.create(api.CreateDatabaseRequest{Name: "kept", MemorySize: 32 << 20})
	removed := redistest.Start(t)
	require.NoError(t, removed.Client().Set(redistest.Ctx(t), "k", "v", 0).Err())
	both := []api.ReplicaSource{{URI: a.sourceURL(kept.UID)}, {URI: removed.URL()}}
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: both})
	a.waitInSync(dst.UID, time.Minute)
	series := fmt.Sprintf(`destination="%d",name="dst",source="%s"`, dst.UID, removed.Addr())
	require.Contains(t, a.metrics(), series, "the series of the source before it is removed")

	one := both[:1]
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &one})
	a.waitInSync(dst.UID, time.Minute)
	redistest.Eventually(t, 30*time.Second, "the removed source's series are gone", func() error {
		var left []string
		for _, line := range strings.Split(a.metrics(), "\n") {
			if strings.Contains(line, `source="`+removed.Addr()) {
				left = append(left, line)
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("%d series left, as %s", len(left), left[0])
		}
		return nil
	})
	assert.Contains(t, a.metrics(), fmt.Sprintf(`replicad_replica_applied_offset{destination="%d",name="dst",source="127.0.0.1:%d"}`, dst.UID, kept.ReplicationPort),
		"the series of the source that stays")
}

// A source that sends nothing, not even its pings (frozen, or its link
// blackholed), is held out of sync by the watchdog: replicad_replica_stalled
// says so ("1 while the watchdog holds the source out of sync"; it stayed
// 0), and the watchdog says it once in the log, not once a second for as
// long as the source is silent.
func TestASilentSourceIsStalledInMetricsAndLoggedOnce(t *testing.T) {
	i := servicetest.Start(t)
	a := newAPI(t, i)
	src := redistest.Start(t)
	require.NoError(t, src.Client().Set(redistest.Ctx(t), "k", "v", 0).Err())
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	stalled := func() float64 {
		return metric(a.metrics(), "replicad_replica_stalled", fmt.Sprintf(`destination="%d"`, dst.UID), `source="`+src.Addr()+`"`)
	}
	require.Equal(t, 0.0, stalled())

	mark := i.LogMark()
	require.NoError(t, syscall.Kill(src.PID(), syscall.SIGSTOP))
	frozen := true
	t.Cleanup(func() {
		if frozen {
			_ = syscall.Kill(src.PID(), syscall.SIGCONT)
		}
	})
	var silentSince time.Time
	redistest.Eventually(t, time.Minute, "the watchdog finds the source silent", func() error {
		s := a.get(dst.UID).ReplicaSources[0]
		if s.Status != api.SourceOutOfSync || !strings.Contains(s.LastError, "nothing received from the source") {
			return fmt.Errorf("status %s: %s", s.Status, s.LastError)
		}
		silentSince = time.Now()
		return nil
	})
	assert.Equal(t, 1.0, stalled(), "replicad_replica_stalled while the watchdog holds the source out of sync")
	// Silent a while longer (the read timeout, a minute, ends the session
	// later): the status keeps saying so, the log does not repeat it.
	redistest.Eventually(t, time.Minute, "the source stays silent for 8 s more", func() error {
		if s := a.get(dst.UID).ReplicaSources[0]; !strings.Contains(s.LastError, "nothing received from the source") {
			return fmt.Errorf("status %s: %s", s.Status, s.LastError)
		}
		if time.Since(silentSince) < 8*time.Second {
			return fmt.Errorf("silent for %s", time.Since(silentSince).Round(time.Second))
		}
		return nil
	})
	assert.Equal(t, 1.0, stalled())
	logged := strings.Count(i.LogsSince(mark), "replication watchdog")
	assert.Equal(t, 1, logged, "watchdog lines about one silence:\n%s", i.LogsSince(mark))

	require.NoError(t, syscall.Kill(src.PID(), syscall.SIGCONT))
	frozen = false
	a.waitInSync(dst.UID, time.Minute)
	redistest.Eventually(t, 30*time.Second, "the stalled gauge is 0 again", func() error {
		if v := stalled(); v != 0 {
			return fmt.Errorf("replicad_replica_stalled %g", v)
		}
		return nil
	})
}

// The lag says how far behind its source a destination is. It counted
// only commands received and not applied, so it stayed 0 while the source
// was not followed at all: killed, or frozen, the destination missing
// whatever it did meanwhile, and an alert on the lag never fired. Now,
// while a source is not in sync, its lag counts at least from when it last
// was (for a silent source, from when it last sent something), in the
// status and the metrics alike, and is 0 again once the source is followed.
func TestLagGrowsWhileTheSourceIsNotFollowed(t *testing.T) {
	i := servicetest.Start(t)
	a := newAPI(t, i)
	src := redistest.Start(t)
	require.NoError(t, src.Client().Set(redistest.Ctx(t), "k", "v", 0).Err())
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	lagMetric := func() float64 {
		return metric(a.metrics(), "replicad_replica_lag_seconds", fmt.Sprintf(`destination="%d"`, dst.UID), `source="`+src.Addr()+`"`)
	}
	require.Zero(t, a.get(dst.UID).ReplicaSources[0].Lag)

	// Killed: the destination misses what the source would do; the lag
	// grows with the time it is gone.
	src.Stop() // SIGKILL
	killed := time.Now()
	var first int64
	redistest.Eventually(t, time.Minute, "the lag of the killed source grows", func() error {
		s := a.get(dst.UID).ReplicaSources[0]
		if s.Status == api.SourceInSync {
			return fmt.Errorf("in sync with a killed source")
		}
		if s.Lag < 3000 {
			return fmt.Errorf("status %s, lag %d ms, %s after the kill: %s", s.Status, s.Lag, time.Since(killed).Round(time.Second), s.LastError)
		}
		first = s.Lag
		return nil
	})
	assert.GreaterOrEqual(t, lagMetric(), float64(first)/1000, "replicad_replica_lag_seconds follows the status")
	assert.LessOrEqual(t, time.Duration(first)*time.Millisecond, time.Since(killed)+time.Second, "the lag counts from when the source was last in sync")
	redistest.Eventually(t, 30*time.Second, "the lag keeps growing", func() error {
		if s := a.get(dst.UID).ReplicaSources[0]; s.Lag <= first+1000 {
			return fmt.Errorf("lag %d ms, was %d", s.Lag, first)
		}
		return nil
	})

	// Back: followed again, the lag is 0 again.
	src.Restart()
	redistest.Eventually(t, time.Minute, "in sync with no lag once the source is back", func() error {
		s := a.get(dst.UID).ReplicaSources[0]
		if s.Status != api.SourceInSync || s.Lag != 0 {
			return fmt.Errorf("status %s, lag %d ms: %s", s.Status, s.Lag, s.LastError)
		}
		return nil
	})

	// Frozen: the lag counts from what the source last sent, not from when
	// the watchdog noticed its silence.
	require.NoError(t, syscall.Kill(src.PID(), syscall.SIGSTOP))
	frozenAt := time.Now()
	frozen := true
	t.Cleanup(func() {
		if frozen {
			_ = syscall.Kill(src.PID(), syscall.SIGCONT)
		}
	})
	redistest.Eventually(t, time.Minute, "the frozen source is out of sync", func() error {
		s := a.get(dst.UID).ReplicaSources[0]
		if s.Status != api.SourceOutOfSync {
			return fmt.Errorf("status %s, lag %d ms", s.Status, s.Lag)
		}
		// Since it last sent, before it froze (the watchdog notices a
		// few seconds later: the source answers no question either).
		assert.GreaterOrEqual(t, s.Lag, time.Since(frozenAt).Milliseconds()-1000, "lag of a frozen source: %s", s.LastError)
		return nil
	})
	require.NoError(t, syscall.Kill(src.PID(), syscall.SIGCONT))
	frozen = false
	redistest.Eventually(t, time.Minute, "in sync with no lag once the source answers", func() error {
		s := a.get(dst.UID).ReplicaSources[0]
		if s.Status != api.SourceInSync || s.Lag != 0 {
			return fmt.Errorf("status %s, lag %d ms: %s", s.Status, s.Lag, s.LastError)
		}
		return nil
	})
}

// A source that is down is retried every few seconds (backoff up to 10 s)
// for as long as it is down, and each retry logged a warning: a source
// down for a night wrote thousands of identical lines. The same failure
// is now logged once a minute, with how many retries it stands for.
func TestADownSourceIsNotLoggedAtEachRetry(t *testing.T) {
	i := servicetest.Start(t)
	a := newAPI(t, i)
	src := redistest.Start(t)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	errs := func() float64 {
		return metric(a.metrics(), "replicad_replica_errors_total", fmt.Sprintf(`destination="%d"`, dst.UID), `source="`+src.Addr()+`"`)
	}
	before := errs()
	mark := i.LogMark()
	src.Stop()
	redistest.Eventually(t, time.Minute, "the syncer retries the source a few times", func() error {
		if n := errs() - before; n < 7 {
			return fmt.Errorf("%g retries", n)
		}
		return nil
	})
	logs := i.LogsSince(mark)
	// The session's end, then the refused connections: two kinds of error.
	assert.LessOrEqual(t, strings.Count(logs, "replication link failed"), 2, "warnings about the failed retries:\n%s", logs)
	assert.Contains(t, a.get(dst.UID).ReplicaSources[0].LastError, "connection refused", "the status says why at each retry")
}

// replicad_replica_stalled is about the session the watchdog watches: once
// that session ends (the sync paused, here, while the source was silent),
// nothing holds the source stalled. The gauge stayed 1 for as long as the
// sync was paused.
func TestAPausedSyncIsNotStalled(t *testing.T) {
	i := servicetest.Start(t)
	a := newAPI(t, i)
	src := redistest.Start(t)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	stalled := func() float64 {
		return metric(a.metrics(), "replicad_replica_stalled", fmt.Sprintf(`destination="%d"`, dst.UID), `source="`+src.Addr()+`"`)
	}
	require.NoError(t, syscall.Kill(src.PID(), syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(src.PID(), syscall.SIGCONT) })
	redistest.Eventually(t, time.Minute, "the silent source is stalled", func() error {
		if v := stalled(); v != 1 {
			return fmt.Errorf("replicad_replica_stalled %g", v)
		}
		return nil
	})
	paused := api.SyncPaused
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSync: &paused})
	redistest.Eventually(t, 30*time.Second, "the paused sync is not stalled", func() error {
		if v := stalled(); v != 0 {
			return fmt.Errorf("replicad_replica_stalled %g", v)
		}
		return nil
	})
}

// A silent source's session ends at the read timeout (a minute): its lag
// still counts from what the source last sent. The end of the session
// made the status look in sync for an instant (the watchdog's note gone,
// the stream's reader too), and the lag started again from 0.
func TestTheLagOfASilentSourceOutlivesItsSession(t *testing.T) {
	i := servicetest.Start(t)
	a := newAPI(t, i)
	src := redistest.Start(t)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	require.NoError(t, syscall.Kill(src.PID(), syscall.SIGSTOP))
	frozen := time.Now()
	t.Cleanup(func() { _ = syscall.Kill(src.PID(), syscall.SIGCONT) })
	redistest.Eventually(t, 2*time.Minute, "the silent source's session ends", func() error {
		s := a.get(dst.UID).ReplicaSources[0]
		if s.LastError == "" || strings.Contains(s.LastError, "nothing received from the source") {
			return fmt.Errorf("status %s, lag %d ms, %s after the freeze: %s", s.Status, s.Lag, time.Since(frozen).Round(time.Second), s.LastError)
		}
		return nil
	})
	s := a.get(dst.UID).ReplicaSources[0]
	assert.NotEqual(t, api.SourceInSync, s.Status)
	assert.GreaterOrEqual(t, time.Duration(s.Lag)*time.Millisecond, time.Since(frozen)-10*time.Second,
		"the lag counts from before the freeze (pings come every 10 s): %s", s.LastError)
}

// A restarted service knew nothing of when its sources were last in sync,
// so a source that was down when it came back (or a sync it found paused)
// had a lag of 0 for ever, though the destination missed everything the
// source did: the lag alert never fired. The restart is now a lower bound:
// from then on, such a source's lag grows until it is followed again.
func TestLagGrowsAfterARestartWhileTheSourceIsNotFollowed(t *testing.T) {
	i := servicetest.Start(t)
	a := newAPI(t, i)
	src := redistest.Start(t)
	other := redistest.Start(t)
	require.NoError(t, src.Client().Set(redistest.Ctx(t), "k", "v", 0).Err())
	require.NoError(t, other.Client().Set(redistest.Ctx(t), "o", "v", 0).Err())
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	paused := a.create(api.CreateDatabaseRequest{Name: "paused", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: other.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	a.waitInSync(paused.UID, time.Minute)
	sync := api.SyncPaused
	a.update(paused.UID, api.UpdateDatabaseRequest{ReplicaSync: &sync})

	i.Stop(t)
	src.Stop() // SIGKILL: down when the service comes back
	i.StartAgain(t)
	back := time.Now()
	for _, uid := range []int{dst.UID, paused.UID} {
		redistest.Eventually(t, time.Minute, "the lag grows after the restart", func() error {
			s := a.get(uid).ReplicaSources[0]
			if s.Status == api.SourceInSync {
				return fmt.Errorf("database %d in sync", uid)
			}
			if s.Lag < 3000 {
				return fmt.Errorf("database %d: status %s, lag %d ms, %s after the restart: %s", uid, s.Status, s.Lag, time.Since(back).Round(time.Second), s.LastError)
			}
			return nil
		})
	}

	src.Restart()
	redistest.Eventually(t, time.Minute, "in sync with no lag once the source is back", func() error {
		s := a.get(dst.UID).ReplicaSources[0]
		if s.Status != api.SourceInSync || s.Lag != 0 {
			return fmt.Errorf("status %s, lag %d ms: %s", s.Status, s.Lag, s.LastError)
		}
		return nil
	})
}
