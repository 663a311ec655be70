package replication_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
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

// mergedLoads counts the full syncs the destination loaded over its link.
func mergedLoads(t *testing.T, i *servicetest.Instance, uid int) int {
	return strings.Count(destLog(t, i, uid), "MASTER <-> REPLICA sync: Finished with success")
}

// The shards of a clustered source go to their one-server destination as
// one full sync over its master link (one load of the destination,
// natively, not their keys as commands): every type, TTLs, the library
// every master holds once, writes during the load; each shard's stream
// then continues from the checkpoint the load carried, across a restart of
// the service too (which finds the cluster through the nodes the load
// kept).
func TestAClusteredSourceLoadsAsOneFullSync(t *testing.T) {
	cl, cc := startSourceCluster(t)
	ctx := redistest.Ctx(t)
	for _, m := range cl.MasterClients() {
		require.NoError(t, m.FunctionLoad(ctx, "#!lua name=app\nredis.register_function('one', function() return 1 end)").Err())
	}
	load := startClusterLoad(t, cc)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 512 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: cl.Masters()[0].URL()}}})
	logDestOnFailure(t, i, dst.UID)
	db := a.waitInSync(dst.UID, 3*time.Minute)
	requireShards(t, db.ReplicaSources[0])
	assert.Equal(t, 1, mergedLoads(t, i, dst.UID), "the shards were loaded as one full sync")
	load.stop()
	dc := destClient(t, dst, 0)
	eventuallyEqualCluster(t, a, dst, dc, cl)
	libs, err := dc.FunctionList(ctx, redis.FunctionListQuery{}).Result()
	require.NoError(t, err)
	require.Len(t, libs, 1)
	assert.Equal(t, "app", libs[0].Name)

	writeClusterDataset(t, cc, "after:", 20)
	eventuallyEqualCluster(t, a, dst, dc, cl)
	waitLoadPersisted(t, dc)
	i.Restart(t)
	writeClusterDataset(t, cc, "restarted:", 20)
	eventuallyEqualCluster(t, a, dst, dc, cl)
	for _, sh := range a.waitInSync(dst.UID, time.Minute).ReplicaSources[0].Shards {
		assert.Equal(t, 0, sh.FullSyncs, "continued after the restart, not loaded again: %+v", sh)
	}
	assert.Equal(t, 1, mergedLoads(t, i, dst.UID), "no second load")
}

// A merged load that a shard's master cuts midway leaves the destination
// with its previous data, readable all along; the status says what
// happened, and the load starts over and completes.
func TestAMergedLoadCutMidwayKeepsThePreviousData(t *testing.T) {
	old := redistest.Start(t)
	writeDataset(t, old.Client(), "one:", 100)
	cl, cc := startSourceCluster(t)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: old.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	eventuallyEqual(t, time.Minute, dc, old.Client())

	// One master writes its RDB slowly (1 ms a key, some 4,000 keys): the
	// load takes seconds. (Slower, the destination would answer its
	// readers seconds apart: it serves them between pieces of 64 KiB
	// loaded.)
	ctx := redistest.Ctx(t)
	writeClusterDataset(t, cc, "more:", 1000)
	slow := cl.MasterClients()[1]
	require.NoError(t, slow.ConfigSet(ctx, "rdb-key-save-delay", "1000").Err())
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: cl.Masters()[0].URL()}}})
	waitServingWhileLoading(t, dc, old.Client(), time.Minute)
	require.NoError(t, slow.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err())
	// The cut is told as one, naming the shard's node that cut it, and
	// the next load waits (at least 1.5 s), whichever shard's error
	// reached the destination first (the others' say the load stopped).
	redistest.Eventually(t, time.Minute, "the status tells the cut", func() error {
		st := a.get(dst.UID).ReplicaSources[0]
		if !strings.Contains(st.LastError, "full sync attempt 1 cut by the source") {
			return fmt.Errorf("last_error %q", st.LastError)
		}
		assert.Contains(t, st.LastError, "the source's node "+cl.Masters()[1].Addr(), "it names the node that cut")
		assert.Equal(t, api.SourceOutOfSync, st.Status)
		return nil
	})
	// The cut load was dropped, not swapped in: the destination kept its
	// previous data (readable meanwhile, above).
	assert.Contains(t, destLog(t, i, dst.UID), "Discarding temporary DB")
	if infoField(t, dc, "replication", "async_loading") == "1" {
		require.NoError(t, redistest.Diff(context.Background(), dc, old.Client()), "the previous data stays")
	}
	require.NoError(t, slow.ConfigSet(ctx, "rdb-key-save-delay", "0").Err())
	a.waitInSync(dst.UID, 2*time.Minute)
	eventuallyEqualCluster(t, a, dst, dc, cl)
	writeClusterDataset(t, cc, "after:", 20)
	eventuallyEqualCluster(t, a, dst, dc, cl)
	st := a.get(dst.UID).ReplicaSources[0]
	assert.Empty(t, st.LastError)
}

// Masters holding different code under one library name cannot be merged
// into one RDB (Redis refuses the second library): the destination drops
// that load, keeps what it had, and loads the shards another way, ending
// in sync with every key and the library of one of them.
func TestAMergedLoadTheDestinationRefusesFallsBack(t *testing.T) {
	cl, _ := startSourceCluster(t)
	ctx := redistest.Ctx(t)
	for n, m := range cl.MasterClients() {
		code := fmt.Sprintf("#!lua name=app\nredis.register_function('f%d', function() return %d end)", n, n)
		require.NoError(t, m.FunctionLoad(ctx, code).Err())
	}
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: cl.Masters()[0].URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, 3*time.Minute)
	dc := destClient(t, dst, 0)
	eventuallyEqualCluster(t, a, dst, dc, cl)
	libs, err := dc.FunctionList(ctx, redis.FunctionListQuery{}).Result()
	require.NoError(t, err)
	require.Len(t, libs, 1)
	assert.Equal(t, "app", libs[0].Name)
	assert.Contains(t, destLog(t, i, dst.UID), "Library 'app' already exists", "the merged load was tried and refused")
}

// A key of a slot its shard does not own (a resharding under way: the
// slot is migrating, the key already moved) would be in two shards' RDBs
// if they forked at different moments, and Redis aborts on a key an RDB
// holds twice. The merge stops at such a key, and the shards load another
// way: the destination holds every master's keys, and never restarted.
func TestAKeyOutsideItsShardStopsTheMerge(t *testing.T) {
	cl, cc := startSourceCluster(t)
	ctx := redistest.Ctx(t)
	masters := cl.Masters()
	from, to := masters[0], masters[1]
	slot := 7 // of the first master (0-5460)
	keys, err := cl.MasterClients()[0].ClusterGetKeysInSlot(ctx, slot, 1).Result()
	require.NoError(t, err)
	if len(keys) == 0 {
		// A key of that slot ("{x}" hashes the braces' content only).
		for n := 0; ; n++ {
			k := fmt.Sprintf("{%d}moved", n)
			if s, _ := cc.ClusterKeySlot(ctx, k).Result(); s == int64(slot) {
				require.NoError(t, cc.Set(ctx, k, "v", 0).Err())
				keys = []string{k}
				break
			}
		}
	}
	moved, err := cc.Dump(ctx, keys[0]).Result()
	require.NoError(t, err)
	migrateKeys(t, cl, from, to, int64(slot), keys[0])

	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: from.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	// Every shard loaded; the source is out of sync while its slot is
	// open (see TestAnOpenSlotKeepsAClusteredSourceOutOfSync).
	redistest.Eventually(t, 3*time.Minute, "every shard in sync, the slot open", func() error {
		src := a.get(dst.UID).ReplicaSources[0]
		for _, sh := range src.Shards {
			if sh.Status != api.SourceInSync {
				return fmt.Errorf("shard %s: %s %q", sh.Slots, sh.Status, sh.LastError)
			}
		}
		if len(src.Shards) != 3 || src.Status != api.SourceOutOfSync || !strings.Contains(src.LastError, fmt.Sprintf("slot %d is open", slot)) {
			return fmt.Errorf("status %s %q, shards %+v", src.Status, src.LastError, src.Shards)
		}
		return nil
	})
	dc := destClient(t, dst, 0)
	pid := i.App.Databases().PID(ctx, dst.UID)
	got, err := dc.Dump(ctx, keys[0]).Result()
	require.NoError(t, err, "the destination holds the key that moved")
	assert.Equal(t, moved, got)
	assert.Equal(t, pid, i.App.Databases().PID(ctx, dst.UID), "the destination did not restart")
	assert.NotContains(t, destLog(t, i, dst.UID), "Duplicated key")

	// The resharding ends; the destination follows.
	for _, m := range cl.Masters() {
		require.NoError(t, m.Client().Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", cl.NodeID(to)).Err())
	}
	a.waitInSync(dst.UID, 3*time.Minute)
	eventuallyEqualCluster(t, a, dst, dc, cl)
}

// The shards of a merged load land in the destination at once, so the
// memory their masters say they use is summed before the load: shards that
// each fit but together do not are refused before the destination takes
// them (it took several times its memory_size when each was checked
// alone).
func TestAMergedLoadChecksTheShardsMemoryTogether(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 0)
	ctx := redistest.Ctx(t)
	cc := cl.Client()
	val := strings.Repeat("m", 1<<20)
	for _, tag := range []string{"{a}", "{b}", "{c}"} { // one tag per shard
		for n := range 8 {
			require.NoError(t, cc.Set(ctx, fmt.Sprintf("%s:big:%d", tag, n), val, 0).Err())
		}
	}
	i := servicetest.Start(t)
	a := newAPI(t, i)
	// 8 MiB: each shard (about 12 MiB) is under twice that, the three are
	// not.
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 8 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: cl.Masters()[0].URL()}}})
	logDestOnFailure(t, i, dst.UID)
	dc := destClient(t, dst, 0)
	var peak int64
	redistest.Eventually(t, 2*time.Minute, "the sync stops on out of memory", func() error {
		if v, err := strconv.ParseInt(infoField(t, dc, "memory", "used_memory"), 10, 64); err == nil {
			peak = max(peak, v)
		}
		db := a.get(dst.UID)
		if db.ReplicaSync != api.SyncStopped {
			return fmt.Errorf("sync %s", db.ReplicaSync)
		}
		if e := db.ReplicaSources[0].LastError; !strings.Contains(e, "out of memory") || !strings.Contains(e, "together") {
			return fmt.Errorf("last error %q", e)
		}
		return nil
	})
	assert.Less(t, peak, int64(16<<20), "the destination took the shards (peak used_memory)")
	n, err := dc.DBSize(ctx).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "nothing was loaded")
}

// A shard whose RDB is loaded waits, its stream unread, for the slowest
// shard of the merged load; its master buffers the writes meanwhile, and
// cuts it over its output buffer limit. Every merged load would meet the
// same, so the destination loads the shards with commands instead (each
// streams as soon as it is loaded) and gets in sync, where it reloaded
// for ever.
func TestAMergedLoadShardCutWhileWaitingFallsBack(t *testing.T) {
	cl, cc := startSourceCluster(t)
	writeClusterDataset(t, cc, "more:", 1000)
	ctx := redistest.Ctx(t)
	masters := cl.Masters()
	var busy *redistest.Server
	var tag string
	for n := 0; busy == nil; n++ {
		tag = fmt.Sprintf("{w%d}", n)
		owner, err := cc.MasterForKey(ctx, tag)
		require.NoError(t, err)
		for _, m := range masters {
			if m.Addr() == owner.Options().Addr {
				busy = m
			}
		}
	}
	require.NoError(t, busy.Client().ConfigSet(ctx, "client-output-buffer-limit", "replica 8mb 4mb 5").Err())
	for _, m := range masters {
		if m != busy {
			// Another shard loads slowly (about 10 s).
			require.NoError(t, m.Client().ConfigSet(ctx, "rdb-key-save-delay", "3000").Err())
			break
		}
	}
	// About 2 MB/s of writes to the busy shard.
	wctx, stop := context.WithCancel(ctx)
	writer := make(chan struct{})
	go func() {
		defer close(writer)
		v := strings.Repeat("z", 20<<10)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
			}
			cc.Set(wctx, fmt.Sprintf("%s%d", tag, n%500), v, 0)
		}
	}()
	defer func() { stop(); <-writer }()

	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 512 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: masters[0].URL()}}})
	logDestOnFailure(t, i, dst.UID)
	seen := watchSourceErrors(t, a, dst.UID)
	a.waitInSync(dst.UID, 2*time.Minute)
	errs := seen()
	assert.True(t, slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, "while it waited for the other shards") }),
		"the status said why the merged load stopped: %q", errs)
	stop()
	<-writer
	eventuallyEqualCluster(t, a, dst, destClient(t, dst, 0), cl)
}

// Masters that save their RDB to disk before they send it answer FULLRESYNC
// at once and send the payload once saved: a merged load waits for the
// slowest save (the barrier is the FULLRESYNC, not the payload, which
// turned the merge off for good when a save took longer than the barrier's
// timeout), and keeps the destination's link alive meanwhile (its
// repl-timeout is shorter than that wait here).
func TestAMergedLoadWaitsForAShardThatSavesToDisk(t *testing.T) {
	cl, cc := startSourceCluster(t)
	ctx := redistest.Ctx(t)
	masters := cl.Masters()
	for _, m := range masters {
		require.NoError(t, m.Client().ConfigSet(ctx, "repl-diskless-sync", "no").Err())
	}
	// One master's save takes several seconds.
	require.NoError(t, masters[1].Client().ConfigSet(ctx, "rdb-key-save-delay", "10000").Err())
	// A link repl-timeout shorter than the slowest save.
	i := servicetest.StartWith(t, func(c *app.Config) {
		c.MergeReadyTimeout, c.LinkReplTimeout = 2*time.Second, 3*time.Second
	})
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20})
	logDestOnFailure(t, i, dst.UID)
	admin := i.App.Databases().Client(dst.UID)
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: masters[0].URL()}}})
	a.waitInSync(dst.UID, 2*time.Minute)
	assert.Equal(t, "3", infoConfig(t, admin, "repl-timeout"), "the destination's repl-timeout stayed short")
	assert.Equal(t, 1, mergedLoads(t, i, dst.UID), "the shards were loaded as one full sync")
	assert.NotContains(t, destLog(t, i, dst.UID), "timeout", "the destination's link timed out")
	for _, m := range masters {
		require.NoError(t, m.Client().ConfigSet(ctx, "rdb-key-save-delay", "0").Err())
	}
	writeClusterDataset(t, cc, "after:", 20)
	eventuallyEqualCluster(t, a, dst, destClient(t, dst, 0), cl)
}

// infoConfig is a parameter of a server's configuration.
func infoConfig(t *testing.T, c *redis.Client, name string) string {
	t.Helper()
	v, err := c.ConfigGet(redistest.Ctx(t), name).Result()
	require.NoError(t, err)
	return v[name]
}
