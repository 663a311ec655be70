package replication_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// TestACommandOfMoreThanAMillionArgumentsOnTheStream: a client may send
// one HSET, SADD or RPUSH of any number of arguments (Redis refuses a
// multibulk only past 2^31), and the source propagates it whole to its
// replicas. One of 1.2 million arguments must be applied like any other
// command, the sync going on after it.
func TestACommandOfMoreThanAMillionArgumentsOnTheStream(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	src := redistest.Start(t, "--repl-backlog-size", "128mb")
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 512 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, time.Minute)
	ctx := redistest.Ctx(t)
	// One command of this size takes the source seconds to run.
	o := *src.Client().Options()
	o.ReadTimeout = time.Minute
	sc := redis.NewClient(&o)
	t.Cleanup(func() { sc.Close() })

	const pairs = 530_000
	args := make([]any, 0, 2+2*pairs)
	args = append(args, "HSET", "wide-hash")
	for n := range pairs {
		args = append(args, fmt.Sprint("f", n), n)
	}
	require.NoError(t, sc.Do(ctx, args...).Err())
	members := make([]any, 0, 2+2*pairs)
	members = append(members, "SADD", "wide-set")
	for n := range 2*pairs - 10_000 {
		members = append(members, n)
	}
	require.NoError(t, sc.Do(ctx, members...).Err())
	require.NoError(t, sc.Incr(ctx, "after").Err())

	do := *destClient(t, dst, 0).Options()
	do.ReadTimeout = time.Minute // reading the big keys back, under load
	dc := redis.NewClient(&do)
	t.Cleanup(func() { dc.Close() })
	// "after" follows the big commands: once it is there, they are
	// applied, and one comparison of the big keys is enough.
	redistest.Eventually(t, 2*time.Minute, "the command after the big ones applied", func() error {
		if v, err := dc.Get(ctx, "after").Result(); err != nil || v != "1" {
			return fmt.Errorf("after: %q %v, source %+v", v, err, a.get(dst.UID).ReplicaSources[0])
		}
		return nil
	})
	require.NoError(t, redistest.Diff(ctx, dc, sc))
	db := a.waitInSync(dst.UID, time.Minute)
	require.Empty(t, db.ReplicaSources[0].LastError)
	require.Equal(t, api.SyncEnabled, db.ReplicaSync)
}

// TestASessionAfterAStallHasItsOwnStallClock: the destination froze with
// a command pending, and the watchdog restarted the syncer from its
// checkpoint, as it should. The next session asks the source for the
// same commands again, over a link slow enough that they take longer
// than the stall limit to arrive: the new session's writer waits for the
// source, not for the destination, and is not stuck. It was taken for
// stuck at once, with the last session's clock and offsets ("applied
// nothing for 27s ... received N"), and restarted again and again.
func TestASessionAfterAStallHasItsOwnStallClock(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, time.Minute)
	ctx := redistest.Ctx(t)
	sc, dc := src.Client(), destClient(t, dst, 0)

	thaw := freeze(t, pidOf(t, dc))
	require.NoError(t, sc.Set(ctx, "big", noise(2<<20), 0).Err())
	require.NoError(t, sc.Incr(ctx, "after-big").Err())
	redistest.Eventually(t, time.Minute, "the frozen destination's syncer restarted", func() error {
		if s := a.get(dst.UID).ReplicaSources[0]; !strings.Contains(s.LastError, "stuck") {
			return fmt.Errorf("source %+v", s)
		}
		return nil
	})
	thaw()
	eventuallyEqual(t, 90*time.Second, dc, sc)
	db := a.waitInSync(dst.UID, time.Minute)
	require.Empty(t, db.ReplicaSources[0].LastError)
	// One stall, the frozen destination's; under load, one more at most.
	require.LessOrEqual(t, metric(a.metrics(), "replicad_replica_stalls_total"), 2.0,
		"the syncer was restarted again and again after the destination thawed")
}

// TestALinkBlackHoledMidLoadOverASlowLinkReconnects: a full load of 4 MB
// over a link of about 200 KB/s, INCR counters written all along, whose
// connection is black-holed in the middle of the RDB (no FIN: the route
// died under it, a new connection gets through). Sampled all along, the
// status never says in-sync while the RDB is incomplete, and its lag grows
// from the start; within the silence limit the source is out-of-sync
// with a last_error that says so; the service gives the dead connection
// up at its read timeout (60 s), dials again, loads, and the destination
// ends equal to the source key by key, every counter exact.
func TestALinkBlackHoledMidLoadOverASlowLinkReconnects(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	src := redistest.Start(t, "--repl-backlog-size", "128mb")
	fillStrings(t, src.Client(), "k:", 4000, 1000) // 4 MB
	proxy := redistest.StartProxy(t, src.Addr())
	proxy.Slow(4<<10, 20*time.Millisecond) // about 200 KB/s: a load of 20 s
	i := servicetest.Start(t)
	a := newAPI(t, i)
	w := startIncrWriter(t, src.Client(), 5)
	created := time.Now()
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 128 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: "redis://" + proxy.Addr}}})
	logDestOnFailure(t, i, dst.UID)

	// The sampler: until the link is fast again, no load can be whole.
	var lies []string
	sample := func() api.ReplicaSourceStatus {
		s := a.get(dst.UID).ReplicaSources[0]
		age := time.Since(created)
		if s.Status == api.SourceInSync {
			lies = append(lies, fmt.Sprintf("in-sync %s after the create, %d of the RDB's bytes transferred: %+v", age.Round(time.Second), s.RDBTransferred, s))
		} else if age > 3*time.Second && time.Duration(s.Lag)*time.Millisecond < age-3*time.Second {
			lies = append(lies, fmt.Sprintf("a lag of %d ms %s after the create, never in sync: %+v", s.Lag, age.Round(time.Second), s))
		}
		return s
	}
	redistest.Eventually(t, time.Minute, "a quarter of the RDB transferred", func() error {
		sample()
		if n := proxy.Forwarded(); n < 1<<20 {
			return fmt.Errorf("%d bytes forwarded", n)
		}
		return nil
	})
	proxy.BlackHole()
	holed := time.Now()
	var s api.ReplicaSourceStatus
	redistest.Eventually(t, time.Minute, "the silent link is out of sync", func() error {
		if s = sample(); s.Status != api.SourceOutOfSync || !strings.Contains(s.LastError, "nothing received from the source") {
			return fmt.Errorf("source %+v", s)
		}
		return nil
	})
	t.Logf("out of sync %s after the black hole: %s", time.Since(holed).Round(time.Second), s.LastError)
	// The next connection's load at full speed, once the service dials it.
	forwarded := proxy.Forwarded()
	redistest.Eventually(t, 2*time.Minute, "a new connection after the read timeout", func() error {
		sample()
		if n := proxy.Forwarded(); n < forwarded+64<<10 {
			return fmt.Errorf("%d bytes forwarded since the black hole", n-forwarded)
		}
		return nil
	})
	t.Logf("a new connection %s after the black hole", time.Since(holed).Round(time.Second))
	proxy.Slow(0, 0)
	require.Empty(t, lies, "the status while the load could not be whole")
	w.stop()
	dc := destClient(t, dst, 0)
	eventuallyEqual(t, time.Minute, dc, src.Client())
	db := a.waitInSync(dst.UID, time.Minute)
	require.Empty(t, db.ReplicaSources[0].LastError)
	require.NoError(t, redistest.Diff(redistest.Ctx(t), dc, src.Client()))
}

// TestAllSixteenDatabasesWithBigTransactionsAndScripts: a source with
// keys in each of its 16 databases, a sorted set of a million members
// among them, loaded in full; then on the stream a MULTI/EXEC of 60,000
// writes that SELECTs every database in turn, a script of 60,000 writes
// and a pipeline of 50,000 tiny commands: the destination equals the
// source in every database, key by key, and is in sync.
func TestAllSixteenDatabasesWithBigTransactionsAndScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	src := redistest.Start(t, "--repl-backlog-size", "256mb")
	ctx := redistest.Ctx(t)
	o := *src.Client().Options()
	o.ReadTimeout = time.Minute
	sc := redis.NewClient(&o)
	t.Cleanup(func() { sc.Close() })
	all := make([]int, 16)
	for n := range all {
		all[n] = n
		c := selectDB(sc, n)
		require.NoError(t, c.Set(ctx, fmt.Sprint("in-db:", n), n, 0).Err())
		require.NoError(t, c.RPush(ctx, "seq", "loaded").Err())
		c.Close()
	}
	require.NoError(t, sc.Eval(ctx, `for i = 1, tonumber(ARGV[1]) do redis.call('ZADD', KEYS[1], i, 'm' .. i) end return 1`,
		[]string{"zset"}, 1_000_000).Err())

	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 512 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, 2*time.Minute)
	dc := destClient(t, dst, 0)

	tx := sc.TxPipeline()
	for k := range 60_000 {
		if k%4000 == 0 {
			tx.Do(ctx, "SELECT", k/4000)
		}
		tx.RPush(ctx, "seq", k)
		tx.Incr(ctx, fmt.Sprint("counter:", k%7))
	}
	_, err := tx.Exec(ctx)
	require.NoError(t, err)
	require.NoError(t, sc.Eval(ctx, `for i = 1, tonumber(ARGV[1]) do redis.call('HSET', KEYS[1], 'f' .. i, i); redis.call('INCR', KEYS[2]) end return 1`,
		[]string{"script:hash", "script:count"}, 30_000).Err())
	p := sc.Pipeline()
	for k := range 50_000 {
		p.Incr(ctx, fmt.Sprint("tiny:", k%100))
	}
	_, err = p.Exec(ctx)
	require.NoError(t, err)
	eventuallyStrictEqual(t, 2*time.Minute, dc, sc, all...)
	db := a.waitInSync(dst.UID, time.Minute)
	require.Empty(t, db.ReplicaSources[0].LastError)
}
