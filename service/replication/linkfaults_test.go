package replication_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// TestALinkSilentMidLoadIsOutOfSync: the link from the source goes silent
// in the middle of the full load's RDB, its connection left open (a
// half-open link, a frozen router). The status must say so within the
// silence limit, as it does for a silent stream, not show a quiet
// "syncing" until the read timeout (60 s) gives up; and once bytes flow
// again the load ends and the destination equals the source.
func TestALinkSilentMidLoadIsOutOfSync(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-stall")
	fillStrings(t, src.Client(), "k:", 4000, 1000) // 4 MB
	proxy := redistest.StartProxy(t, src.Addr())
	proxy.Slow(8<<10, 5*time.Millisecond) // about 1.6 MB/s: a load of seconds
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 128 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: "redis://:pw-stall@" + proxy.Addr}}})
	logDestOnFailure(t, i, dst.UID)

	redistest.Eventually(t, 30*time.Second, "a quarter of the RDB transferred", func() error {
		if n := proxy.Forwarded(); n < 1<<20 {
			return fmt.Errorf("%d bytes forwarded", n)
		}
		return nil
	})
	proxy.Stall()
	stalled := time.Now()
	var s api.ReplicaSourceStatus
	// The silence limit is 15 s; the read timeout, which ends the
	// session, 60 s: the status must tell before that.
	redistest.Eventually(t, 40*time.Second, "the silent link is out of sync", func() error {
		s = a.get(dst.UID).ReplicaSources[0]
		if s.Status != api.SourceOutOfSync || s.LastError == "" {
			return fmt.Errorf("source %+v", s)
		}
		return nil
	})
	t.Logf("out of sync %s after the link went silent: %s", time.Since(stalled).Round(time.Second), s.LastError)
	require.Contains(t, s.LastError, "nothing received from the source")
	require.Less(t, s.RDBTransferred, int64(3<<20), "the load is not over")

	proxy.Unstall()
	proxy.Slow(0, 0)
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	eventuallyEqual(t, time.Minute, dc, src.Client())
	require.NoError(t, src.Client().Incr(redistest.Ctx(t), "after").Err())
	eventuallyEqual(t, time.Minute, dc, src.Client())
	require.Empty(t, a.get(dst.UID).ReplicaSources[0].LastError)
}

// TestABigKeyOverASlowLinkLoads: a source whose 4 MB key takes longer than
// a minute (Redis's repl-timeout) to arrive, over a link of about 50 KB/s
// (a 100 MB key over a link of a few Mbit/s is the same). The service
// decodes a key whole before it sends it on to the destination, which sat
// silent on its link meanwhile: it gave the link up after its repl-timeout,
// the load was cut, and the next full sync was cut at the same key, for
// ever. It must load once, and then stream.
func TestABigKeyOverASlowLinkLoads(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-big")
	ctx := redistest.Ctx(t)
	require.NoError(t, src.Client().Set(ctx, "big", noise(4<<20), 0).Err())
	fillStrings(t, src.Client(), "k:", 100, 100)
	proxy := redistest.StartProxy(t, src.Addr())
	proxy.Slow(2<<10, 40*time.Millisecond) // about 50 KB/s: the big key takes 80 s
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: "redis://:pw-big@" + proxy.Addr}}})
	logDestOnFailure(t, i, dst.UID)
	redistest.Eventually(t, 3*time.Minute, "the big key loaded", func() error {
		if n := proxy.Forwarded(); n < 4<<20 {
			return fmt.Errorf("%d bytes forwarded, source %+v", n, a.get(dst.UID).ReplicaSources[0])
		}
		return nil
	})
	proxy.Slow(0, 0)
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	eventuallyEqual(t, time.Minute, dc, src.Client())
	require.NoError(t, src.Client().Incr(ctx, "after").Err())
	eventuallyEqual(t, time.Minute, dc, src.Client())
	info, err := src.Client().InfoMap(ctx, "stats").Result()
	require.NoError(t, err)
	require.Equal(t, "1", info["Stats"]["sync_full"], "one full sync: the load was never cut")
}

// TestASourceReplicaPromotedContinues: the source is a replica of another
// server, and is promoted (REPLICAOF NO ONE) while that server is written
// to: it starts a new history, and a native sub-replica continues across
// it with a partial sync. So must the service, and every later cut of the
// link too (the checkpoint follows the new history), with the INCR
// counters exactly those of the promoted source.
func TestASourceReplicaPromotedContinues(t *testing.T) {
	ctx := redistest.Ctx(t)
	r := redistest.Start(t)
	// A backlog that holds whatever the writers send while the link is
	// down: a full sync is then no one's fault but the service's.
	s := redistest.Start(t, "--replicaof", "127.0.0.1", fmt.Sprint(r.Port), "--repl-backlog-size", "256mb")
	// Synced with its master first: a replica's own full sync gives it
	// its master's history, and its replicas resync in full then.
	redistest.Eventually(t, time.Minute, "the source replica synced", func() error {
		info, err := s.Client().Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("%v: %s", err, info)
		}
		return nil
	})
	proxy := redistest.StartProxy(t, s.Addr())
	a := newAPI(t, servicetest.Start(t))
	w := startIncrWriter(t, r.Client(), 20)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: "redis://" + proxy.Addr}}})
	a.waitInSync(dst.UID, time.Minute)
	redistest.Eventually(t, time.Minute, "counters streamed through the replica", func() error {
		if n := w.written.Load(); n < 20000 {
			return fmt.Errorf("%d written", n)
		}
		return nil
	})
	// Promoted under writes to its former master, which it no longer
	// follows from then on.
	require.NoError(t, s.Client().SlaveOf(ctx, "NO", "ONE").Err())
	w.stop()
	w2 := startIncrWriter(t, s.Client(), 20)
	redistest.Eventually(t, time.Minute, "counters written to the promoted source", func() error {
		if n := w2.written.Load(); n < 20000 {
			return fmt.Errorf("%d written", n)
		}
		return nil
	})
	proxy.Cut()
	cut := w2.written.Load()
	redistest.Eventually(t, time.Minute, "counters written after the cut", func() error {
		if n := w2.written.Load(); n < cut+10000 {
			return fmt.Errorf("%d written", n-cut)
		}
		return nil
	})
	w2.stop()
	dc := destClient(t, dst, 0)
	eventuallyEqual(t, time.Minute, dc, s.Client())
	a.waitInSync(dst.UID, time.Minute)
	info, err := s.Client().InfoMap(ctx, "stats").Result()
	require.NoError(t, err)
	require.Equal(t, "1", info["Stats"]["sync_full"], "one full sync, the first: the promotion and the cut continued")
}

// TestASourceRestartedFromAnOlderSnapshot: a source without AOF is killed
// and restarts from its last RDB snapshot, which holds its replication id
// and the offset of that moment: the writes after it are lost at the
// source. Written to again before the service reconnects, its offset soon
// passes the destination's checkpoint: had it kept the snapshot's
// replication id (Redis 7.0 starts a new one; a server that kept it would
// accept the checkpoint's PSYNC), the destination would keep the lost
// writes with the new ones on top. It must end equal to the source.
func TestASourceRestartedFromAnOlderSnapshot(t *testing.T) {
	ctx := redistest.Ctx(t)
	src := redistest.Start(t, "--save", "", "--appendonly", "no", "--repl-backlog-size", "64mb")
	proxy := redistest.StartProxy(t, src.Addr())
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: "redis://" + proxy.Addr}}})
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	sc := src.Client()
	incr := func(n int) {
		p := sc.Pipeline()
		for k := range n {
			p.Incr(ctx, fmt.Sprint("counter:", k%40))
		}
		_, err := p.Exec(ctx)
		require.NoError(t, err)
	}
	incr(4000)
	eventuallyEqual(t, time.Minute, dc, sc)
	require.NoError(t, sc.Save(ctx).Err())
	incr(4000) // lost at the source by the kill
	eventuallyEqual(t, time.Minute, dc, sc)
	proxy.Down()
	src.Restart()
	sc = src.Client()
	incr(40000) // past the destination's checkpoint
	proxy.Restore()
	eventuallyEqual(t, time.Minute, dc, sc)
	a.waitInSync(dst.UID, time.Minute)
	require.NoError(t, redistest.Diff(ctx, dc, sc))
}

// TestCutsAroundTheEndOfTheRDB: the link cut a byte before the end of the
// full sync's RDB, right at its end, a byte after (in the middle of the
// first command of the stream) and further into the stream, while INCRs
// flow: each time the destination ends equal to the source, every counter
// exactly, and in sync; a link cut once the RDB was whole continues with
// a partial sync.
func TestCutsAroundTheEndOfTheRDB(t *testing.T) {
	for _, delta := range []int{-1, 0, 1, 300} {
		t.Run(fmt.Sprint(delta), func(t *testing.T) {
			ctx := redistest.Ctx(t)
			src := redistest.Start(t, "--repl-backlog-size", "64mb")
			fillStrings(t, src.Client(), "k:", 2000, 100)
			w := startIncrWriter(t, src.Client(), 20)
			proxy := redistest.StartProxy(t, src.Addr())
			proxy.CutAroundRDBEnd(delta)
			i := servicetest.Start(t)
			a := newAPI(t, i)
			dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20,
				ReplicaSources: []api.ReplicaSource{{URI: "redis://" + proxy.Addr}}})
			logDestOnFailure(t, i, dst.UID)
			redistest.Eventually(t, time.Minute, "the link cut and the sync resumed", func() error {
				if proxy.CutPending() {
					return fmt.Errorf("not cut yet: %+v", a.get(dst.UID).ReplicaSources[0])
				}
				if s := a.get(dst.UID).ReplicaSources[0]; s.Status != api.SourceInSync {
					return fmt.Errorf("source %+v", s)
				}
				return nil
			})
			w.stop()
			eventuallyEqual(t, time.Minute, destClient(t, dst, 0), src.Client())
			a.waitInSync(dst.UID, time.Minute)
			// The RDB whole, the sync continues from its end; one byte
			// short, it starts over.
			full := "1"
			if delta < 0 {
				full = "2"
			}
			require.Equal(t, full, infoField(t, src.Client(), "stats", "sync_full"), "full syncs")
			require.NoError(t, src.Client().Incr(ctx, "after").Err())
			eventuallyEqual(t, time.Minute, destClient(t, dst, 0), src.Client())
		})
	}
}

// TestTheLagOfALinkThatSlowsDownGrows: a source said in sync, whose link
// then slows down to 50 KB/s under four times that in writes: it is not in
// sync, and its lag counts from when it last was, growing, as the README
// says; it stayed 0.
func TestTheLagOfALinkThatSlowsDownGrows(t *testing.T) {
	src := redistest.Start(t, "--repl-backlog-size", "256mb", "--client-output-buffer-limit", "replica 0 0 0")
	proxy := redistest.StartProxy(t, src.Addr())
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 128 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: "redis://" + proxy.Addr}}})
	a.waitInSync(dst.UID, time.Minute)
	proxy.Slow(2<<10, 40*time.Millisecond) // about 50 KB/s
	ctx := redistest.Ctx(t)
	slowed := time.Now()
	redistest.Eventually(t, time.Minute, "a lag of 5 s", func() error {
		// About 200 KB/s of writes, between the polls.
		p := src.Client().Pipeline()
		for n := range 20 {
			p.Set(ctx, fmt.Sprint("k:", n), noise(2000), 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			return err
		}
		if s := a.get(dst.UID).ReplicaSources[0]; s.Status == api.SourceInSync || s.Lag < 5000 {
			return fmt.Errorf("%s after %s: %+v", s.Status, time.Since(slowed).Round(time.Second), s)
		}
		return nil
	})
	proxy.Slow(0, 0)
	a.waitInSync(dst.UID, time.Minute)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), src.Client())
}
