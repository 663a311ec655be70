package replication_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

func TestDroppedConnectionResumesWithPartialSync(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	proxy := redistest.StartProxy(t, src.Addr())
	writeDataset(t, src.Client(), "", 1000)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 128 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: "redis://:pw-123456@" + proxy.Addr}}})
	a.waitInSync(dst.UID, time.Minute)
	ctx := redistest.Ctx(t)
	for round := range 3 {
		for n := range 500 {
			src.Client().Incr(ctx, fmt.Sprint("counter:", n%10))
		}
		if proxy.Cut() == 0 {
			t.Fatal("the proxy carried no connection")
		}
		for n := range 500 {
			src.Client().HSet(ctx, "during-cut", fmt.Sprint(round, ":", n), n)
		}
		eventuallyEqual(t, time.Minute, destClient(t, dst, 0), src.Client())
	}
	m := a.metrics()
	if full, partial := metric(m, "replicad_replica_full_syncs_total"), metric(m, "replicad_replica_partial_syncs_total"); full != 1 || partial < 3 {
		t.Fatalf("full syncs %v, partial syncs %v: want 1 and at least 3\n%s", full, partial, grep(m, "syncs_total"))
	}
}

func TestSourceReplacedOnSameAddressFullSync(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	writeDataset(t, src.Client(), "first:", 100)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 128 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), src.Client())

	// A different server (no persistence: new replication id, other data) on
	// the same address: the destination must hold exactly the new data.
	src.Restart()
	writeDataset(t, src.Client(), "second:", 50)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), src.Client())
	if n := destClient(t, dst, 0).Exists(redistest.Ctx(t), "first:int").Val(); n != 0 {
		t.Fatal("keys of the old server remain")
	}
	if full := metric(a.metrics(), "replicad_replica_full_syncs_total"); full != 2 {
		t.Fatalf("full syncs = %v, want 2", full)
	}
}

func TestSourceRestartWithPersistence(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	writeDataset(t, src.Client(), "", 100)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 128 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	ctx := redistest.Ctx(t)
	src.Client().Set(ctx, "before-restart", "1", 0)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), src.Client())
	// The source restarts from its RDB (which continues its replication
	// history: see TestCleanSourceRestartContinues); the destination must
	// end up equal to the reloaded source.
	src.Client().Do(ctx, "SHUTDOWN", "SAVE")
	src.Restart()
	src.Client().Set(ctx, "after-restart", "2", 0)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), src.Client())
	if v := destClient(t, dst, 0).Get(ctx, "before-restart").Val(); v != "1" {
		t.Fatalf("data saved by the source before its restart: %q", v)
	}
}

func TestWrongPasswordStopsThenFixedSourceRecovers(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "right-password")
	writeDataset(t, src.Client(), "", 10)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: "redis://:wrong-password@" + src.Addr()}}})
	var db api.Database
	redistest.Eventually(t, time.Minute, "the sync stops with an authentication error", func() error {
		db = a.get(dst.UID)
		if db.ReplicaSync != api.SyncStopped || db.ReplicaSources[0].Status != api.SourceOutOfSync {
			return fmt.Errorf("sync %s, source %+v", db.ReplicaSync, db.ReplicaSources[0])
		}
		return nil
	})
	le := db.ReplicaSources[0].LastError
	if !strings.Contains(strings.ToLower(le), "auth") || strings.Contains(le, "wrong-password") {
		t.Fatalf("last_error %q: want an authentication error without the password", le)
	}
	// The password changes on the source, and the source list gets it.
	ctx := redistest.Ctx(t)
	src.Client().ConfigSet(ctx, "requirepass", "new-password")
	src.Password = "new-password"
	sources := []api.ReplicaSource{{URI: "redis://:new-password@" + src.Addr()}}
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &sources})
	enabled := api.SyncEnabled
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSync: &enabled})
	a.waitInSync(dst.UID, time.Minute)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), src.Client())
}

func TestManyToOneAndOneToMany(t *testing.T) {
	i := servicetest.Start(t)
	a := newAPI(t, i)
	var srcs []*redistest.Server
	var sources []api.ReplicaSource
	for n := range 3 {
		s := redistest.Start(t, "--requirepass", fmt.Sprint("pw-source-", n))
		writeDataset(t, s.Client(), fmt.Sprintf("s%d:", n), 500)
		srcs = append(srcs, s)
		sources = append(sources, api.ReplicaSource{URI: s.URL()})
	}
	// Many to one.
	dst := a.create(api.CreateDatabaseRequest{Name: "many-to-one", MemorySize: 256 << 20, ReplicaSources: sources})
	a.waitInSync(dst.UID, time.Minute)
	ctx := redistest.Ctx(t)
	for n, s := range srcs {
		s.Client().Set(ctx, fmt.Sprintf("s%d:live", n), "x", 0)
	}
	dc := destClient(t, dst, 0)
	eventuallyEqual(t, time.Minute, dc, srcs[0].Client(), srcs[1].Client(), srcs[2].Client())

	// Reordering is no change: nothing is flushed.
	reordered := []api.ReplicaSource{sources[2], sources[0], sources[1]}
	if db := a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &reordered}); db.ReplicaGeneration != 1 {
		t.Fatalf("reordering changed the generation to %d", db.ReplicaGeneration)
	}
	// Removing a source re-replicates: its keys disappear.
	two := sources[:2]
	if db := a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &two}); db.ReplicaGeneration != 2 {
		t.Fatalf("removing a source: generation %d, want 2", db.ReplicaGeneration)
	}
	a.waitInSync(dst.UID, time.Minute)
	eventuallyEqual(t, time.Minute, dc, srcs[0].Client(), srcs[1].Client())

	// One to many: the first source feeds three destinations of the instance.
	var dsts []api.Database
	for n := range 3 {
		dsts = append(dsts, a.create(api.CreateDatabaseRequest{Name: fmt.Sprint("copy-", n), MemorySize: 64 << 20,
			ReplicaSources: []api.ReplicaSource{{URI: srcs[0].URL()}}}))
	}
	srcs[0].Client().Set(ctx, "fan-out", "y", 0)
	for _, d := range dsts {
		a.waitInSync(d.UID, time.Minute)
		eventuallyEqual(t, time.Minute, destClient(t, d, 0), srcs[0].Client())
	}
}

func TestLocalSourcePauseResumeStop(t *testing.T) {
	i := servicetest.Start(t)
	a := newAPI(t, i)
	src := a.create(api.CreateDatabaseRequest{Name: "src", MemorySize: 64 << 20})
	sc := destClient(t, src, 0)
	writeDataset(t, sc, "", 100)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: a.sourceURL(src.UID)}}})
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	eventuallyEqual(t, time.Minute, dc, sc)
	ctx := redistest.Ctx(t)

	// Paused: writes do not arrive; enabled: they do, from the same position.
	paused := api.SyncPaused
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSync: &paused})
	sc.Set(ctx, "while-paused", "1", 0)
	if err := sc.Do(ctx, "WAIT", 0, 300).Err(); err != nil {
		t.Fatal(err)
	}
	if dc.Exists(ctx, "while-paused").Val() != 0 {
		t.Fatal("a write arrived while paused")
	}
	enabled := api.SyncEnabled
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSync: &enabled})
	eventuallyEqual(t, time.Minute, dc, sc)
	if m := a.metrics(); metric(m, "replicad_replica_full_syncs_total") != 1 || metric(m, "replicad_replica_partial_syncs_total") != 1 {
		t.Fatalf("resume after pause should be a partial sync:\n%s", grep(m, "syncs_total"))
	}

	// Stopped then enabled: flush and reload.
	stopped := api.SyncStopped
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSync: &stopped})
	db := a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSync: &enabled})
	if db.ReplicaGeneration != 2 {
		t.Fatalf("enabling a stopped sync: generation %d, want 2", db.ReplicaGeneration)
	}
	// The reload may still run while the destination serves its previous
	// data (equal to the source's here): wait for it.
	redistest.Eventually(t, time.Minute, "stop then enable reloads", func() error {
		if m := a.metrics(); metric(m, "replicad_replica_full_syncs_total") != 2 {
			return fmt.Errorf("stop then enable should reload:\n%s", grep(m, "syncs_total"))
		}
		return nil
	})
	a.waitInSync(dst.UID, time.Minute)
	eventuallyEqual(t, time.Minute, dc, sc)
}

func TestInvalidSourcesRejected(t *testing.T) {
	i := servicetest.Start(t)
	a := newAPI(t, i)
	x := a.create(api.CreateDatabaseRequest{Name: "x", MemorySize: 8 << 20})
	y := a.create(api.CreateDatabaseRequest{Name: "y", MemorySize: 8 << 20, ReplicaSources: []api.ReplicaSource{{URI: a.sourceURL(x.UID)}}})
	many := make([]api.ReplicaSource, 33)
	for n := range many {
		many[n] = api.ReplicaSource{URI: fmt.Sprintf("redis://10.0.0.1:%d", 1000+n)}
	}
	cases := []struct {
		uid     int
		sources []api.ReplicaSource
		mention string
	}{
		{x.UID, []api.ReplicaSource{{URI: a.sourceURL(x.UID)}}, "itself"},
		{x.UID, []api.ReplicaSource{{URI: a.sourceURL(y.UID)}}, "cycle"},
		{x.UID, many, "at most 32"},
		{x.UID, []api.ReplicaSource{{URI: "redis://:topsecret@host"}}, "port"},
		{x.UID, []api.ReplicaSource{{URI: "redis://h:1"}, {URI: "redis://h:1"}}, "twice"},
		{x.UID, []api.ReplicaSource{{URI: "redis://h:1", Compression: 9}}, "compression"},
	}
	for _, c := range cases {
		code, body := a.do("PUT", fmt.Sprintf("/v1/bdbs/%d", c.uid), api.UpdateDatabaseRequest{ReplicaSources: &c.sources}, nil)
		if code != 400 || !strings.Contains(body, c.mention) || strings.Contains(body, "topsecret") {
			t.Errorf("sources %d: %d %s, want 400 mentioning %q", len(c.sources), code, body, c.mention)
		}
	}
	if db := a.get(x.UID); len(db.ReplicaSources) != 0 {
		t.Fatalf("a rejected update changed the database: %+v", db.ReplicaSources)
	}
}

func TestDestinationOutOfMemoryStops(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	ctx := redistest.Ctx(t)
	pipe := src.Client().Pipeline()
	for n := range 3000 {
		pipe.Set(ctx, fmt.Sprint("blob:", n), strings.Repeat("x", 2000), 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "small", MemorySize: 4 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	redistest.Eventually(t, time.Minute, "the sync stops on out of memory", func() error {
		db := a.get(dst.UID)
		if db.ReplicaSync != api.SyncStopped || !strings.Contains(db.ReplicaSources[0].LastError, "out of memory") {
			return fmt.Errorf("sync %s, source %+v", db.ReplicaSync, db.ReplicaSources[0])
		}
		return nil
	})
}

// With a bound of one full load at a time, a destination of several
// sources loads them one after the other (the API never shows two receiving their RDB at once) and ends
// with every key of every source.
func TestFullLoadsRunWithinTheInstancesBound(t *testing.T) {
	i := servicetest.StartWith(t, func(c *app.Config) { c.MaxConcurrentLoads = 1 })
	a := newAPI(t, i)
	sources, clients := filledSources(t, 4, 5000)
	dst := a.create(api.CreateDatabaseRequest{Name: "many-sources", MemorySize: 256 << 20, ReplicaSources: sources})
	most := mostReceivingAtOnce(t, a, dst.UID)
	assert.LessOrEqual(t, most[dst.UID], 1, "sources seen loading at once")
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), clients...)
}

// A merged load (the shards of a clustered source as one full sync of
// their destination) takes one of the instance's load slots for all its
// shards: with a bound of one, two destinations of one clustered source
// never receive at once, and each ends equal to the cluster.
func TestAMergedLoadTakesOneSlot(t *testing.T) {
	i := servicetest.StartWith(t, func(c *app.Config) { c.MaxConcurrentLoads = 1 })
	a := newAPI(t, i)
	cl, cc := startSourceCluster(t)
	writeClusterDataset(t, cc, "more:", 3000)
	var dsts []api.Database
	for n := range 2 {
		dsts = append(dsts, a.create(api.CreateDatabaseRequest{Name: fmt.Sprintf("merged-%d", n), MemorySize: 256 << 20,
			ReplicaSources: []api.ReplicaSource{{URI: cl.Masters()[0].URL()}}}))
	}
	var mu sync.Mutex
	both := false
	ctx, cancel := context.WithCancel(redistest.Ctx(t))
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for ctx.Err() == nil {
			receiving := 0
			for _, d := range dsts {
				if receivingShards(a.get(d.UID)) > 0 {
					receiving++
				}
			}
			mu.Lock()
			both = both || receiving > 1
			mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	for _, d := range dsts {
		a.waitInSync(d.UID, 3*time.Minute)
		eventuallyEqualCluster(t, a, d, destClient(t, d, 0), cl)
	}
	cancel()
	<-watched
	mu.Lock()
	defer mu.Unlock()
	assert.False(t, both, "two destinations received their shards' RDBs at once")
}

// receivingShards counts the shards of db's sources receiving their RDB.
func receivingShards(db api.Database) int {
	n := 0
	for _, s := range db.ReplicaSources {
		for _, sh := range s.Shards {
			if sh.RDBTransferred > 0 && (sh.RDBSize < 0 || sh.RDBTransferred < sh.RDBSize) {
				n++
			}
		}
	}
	return n
}

// filledSources starts n redis-servers of keys keys each (names unique
// to each) and returns them as replica sources, with a client of each.
func filledSources(t *testing.T, n, keys int) ([]api.ReplicaSource, []*redis.Client) {
	t.Helper()
	ctx := redistest.Ctx(t)
	var sources []api.ReplicaSource
	var clients []*redis.Client
	for range n {
		s := redistest.Start(t)
		c := s.Client()
		p := c.Pipeline()
		for k := range keys {
			p.Set(ctx, fmt.Sprintf("%s:key:%d", s.Addr(), k), strings.Repeat("x", 100), 0)
		}
		_, err := p.Exec(ctx)
		require.NoError(t, err)
		sources = append(sources, api.ReplicaSource{URI: s.URL()})
		clients = append(clients, c)
	}
	return sources, clients
}

// receivingSources counts db's sources receiving their RDB: some of it
// transferred, the end not yet (a diskless RDB's size is unknown, -1,
// until its end).
func receivingSources(db api.Database) int {
	n := 0
	for _, s := range db.ReplicaSources {
		if s.RDBTransferred > 0 && (s.RDBSize < 0 || s.RDBTransferred < s.RDBSize) {
			n++
		}
	}
	return n
}

// mostReceivingAtOnce waits until uid is in sync and returns the most of
// its sources seen receiving their RDB at once.
func mostReceivingAtOnce(t *testing.T, a *apiClient, uid int) map[int]int {
	t.Helper()
	most := map[int]int{}
	redistest.Eventually(t, 2*time.Minute, "every source in sync", func() error {
		db := a.get(uid)
		most[uid] = max(most[uid], receivingSources(db))
		if db.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("status %s", db.ReplicaSyncStatus)
		}
		return nil
	})
	return most
}

// TestDestinationOutOfMemoryOnTheStreamStops: the stream's writes reach the
// destination over its master link, where Redis answers nothing; a write
// refused for memory still stops the sync, saying so.
func TestDestinationOutOfMemoryOnTheStreamStops(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	ctx := redistest.Ctx(t)
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "small", MemorySize: 4 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	for n := range 40 {
		require.NoError(t, src.Client().Set(ctx, fmt.Sprint("blob:", n), strings.Repeat("x", 200000), 0).Err())
	}
	redistest.Eventually(t, time.Minute, "the sync stops on out of memory", func() error {
		db := a.get(dst.UID)
		if db.ReplicaSync != api.SyncStopped || !strings.Contains(db.ReplicaSources[0].LastError, "out of memory") {
			return fmt.Errorf("sync %s, source %+v", db.ReplicaSync, db.ReplicaSources[0])
		}
		return nil
	})
	assert.Contains(t, a.get(dst.UID).ReplicaSources[0].LastError, `SET "blob:`, "the batch is named")
}

// A source's transaction goes to the destination whole, from its MULTI to
// its EXEC, over the master link that every source of the destination
// shares: while one arrives slowly, the other sources' writes wait behind
// it. Their status says so, naming the source that holds the link; the
// watchdog does not take them for stuck (it restarted them, blaming the
// destination), and everything is applied once the transaction is.
func TestASlowTransactionOfOneSourceIsNotBlamedOnTheOthers(t *testing.T) {
	sa := redistest.Start(t, "--client-output-buffer-limit", "replica 0 0 0")
	sb := redistest.Start(t)
	proxy := redistest.StartProxy(t, sa.Addr())
	i := servicetest.Start(t)
	a := newAPI(t, i)
	d := a.create(api.CreateDatabaseRequest{Name: "d", MemorySize: 512 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: "redis://" + proxy.Addr}, {URI: sb.URL()}}})
	logDestOnFailure(t, i, d.UID)
	a.waitInSync(d.UID, time.Minute)
	seen := watchSourceErrors(t, a, d.UID)
	ctx := redistest.Ctx(t)
	proxy.Slow(4096, 20*time.Millisecond) // about 200 KB/s from A
	tx := sa.Client().TxPipeline()
	for n := range 100000 {
		tx.HSet(ctx, "a:hash", fmt.Sprint("f", n), n)
	}
	_, err := tx.Exec(ctx)
	require.NoError(t, err)
	// B writes while A's transaction arrives (about 15 s).
	redistest.Eventually(t, time.Minute, "B's status names the transaction it waits behind", func() error {
		require.NoError(t, sb.Client().Incr(ctx, "b:ticks").Err())
		b := a.get(d.UID).ReplicaSources[1]
		if !strings.Contains(b.LastError, "holds for a transaction") || !strings.Contains(b.LastError, proxy.Addr) {
			return fmt.Errorf("B %s: %q", b.Status, b.LastError)
		}
		return nil
	})
	proxy.Slow(0, 0)
	dc := destClient(t, d, 0)
	eventuallyEqual(t, 2*time.Minute, dc, sa.Client(), sb.Client())
	for _, e := range seen() {
		assert.NotContains(t, e, "stuck", "a source waiting behind another's transaction was taken for stuck")
	}
}
