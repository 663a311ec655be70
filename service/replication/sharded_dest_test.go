package replication_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// fillEveryType writes n keys of every type (a tenth with a TTL), and two
// lists too big to be written whole (built under a staging name, then
// renamed), spread across all hash slots.
func fillEveryType(t *testing.T, c *redis.Client, n int) {
	ctx := redistest.Ctx(t)
	for start := 0; start < n; start += 1000 {
		pipe := c.Pipeline()
		for i := start; i < min(start+1000, n); i++ {
			k := fmt.Sprintf("k:%d", i)
			switch i % 7 {
			case 0:
				pipe.Set(ctx, k, strings.Repeat("v", i%50), 0)
			case 1:
				pipe.RPush(ctx, k, "a", i, "c")
			case 2:
				pipe.HSet(ctx, k, "f1", i, "f2", "x")
			case 3:
				pipe.SAdd(ctx, k, "m1", i, "m3")
			case 4:
				pipe.ZAdd(ctx, k, redis.Z{Score: float64(i), Member: "a"}, redis.Z{Score: 1.5, Member: "b"})
			case 5:
				pipe.XAdd(ctx, &redis.XAddArgs{Stream: k, Values: []any{"f", i}})
			case 6:
				pipe.PFAdd(ctx, k, "a", "b", i)
			}
			if i%10 == 0 {
				pipe.Expire(ctx, k, time.Hour)
			}
		}
		_, err := pipe.Exec(ctx)
		require.NoError(t, err)
	}
	for _, k := range []string{"big:list:1", "big:{tagged}:list"} {
		vals := make([]any, 0, 50000)
		for i := range 50000 {
			vals = append(vals, fmt.Sprintf("element-%08d", i))
		}
		require.NoError(t, c.RPush(ctx, k, vals...).Err())
	}
}

// shardedMasters are clients of the destination's current masters, as the
// API lists them, logged in as the application.
func shardedMasters(a *apiClient, uid int) ([]*redis.Client, func(), error) {
	db := a.get(uid)
	var out []*redis.Client
	for _, ep := range db.Endpoints {
		if ep.Role == "master" {
			out = append(out, redis.NewClient(&redis.Options{Addr: net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)), Password: db.AuthenticationRedisPass, MaxRetries: -1}))
		}
	}
	closeAll := func() {
		for _, c := range out {
			c.Close()
		}
	}
	if len(out) != db.ShardsCount {
		closeAll()
		return nil, nil, fmt.Errorf("%d masters listed, want %d: %+v", len(out), db.ShardsCount, db.Endpoints)
	}
	return out, closeAll, nil
}

// eventuallyEqualSharded polls until the sharded destination's masters
// hold exactly the source's keys (the service's replicad: keys aside).
func eventuallyEqualSharded(t *testing.T, a *apiClient, uid int, timeout time.Duration, sources ...*redis.Client) {
	t.Helper()
	redistest.Eventually(t, timeout, "the sharded destination equals the source key by key", func() error {
		masters, closeAll, err := shardedMasters(a, uid)
		if err != nil {
			return err
		}
		defer closeAll()
		return redistest.DiffMasters(context.Background(), masters, "replicad:", sources...)
	})
}

// nodePID is the process id of a node of a database.
func nodePID(t *testing.T, ep api.NodeEndpoint, password string) int {
	c := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)), Password: password})
	defer c.Close()
	info, err := c.Info(redistest.Ctx(t), "server").Result()
	require.NoError(t, err)
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, err := strconv.Atoi(v)
			require.NoError(t, err)
			return pid
		}
	}
	t.Fatalf("INFO server of node %d has no process_id", ep.Port)
	return 0
}

// TestShardedDestination replicates a plain source into a database of 3
// shards with a replica each: a full load of every type while counters are
// written (every fifth batch a MULTI over keys of many slots), the stream,
// a kill -9 of the service mid-stream, and a kill -9 of a destination
// master whose replica the cluster promotes. After each, the destination
// equals the source key by key: nothing lost, nothing applied twice.
func TestShardedDestination(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456", "--repl-backlog-size", "256mb")
	sc := src.Client()
	ctx := redistest.Ctx(t)
	fillEveryType(t, sc, 20000)

	p := servicetest.StartProcess(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service log:\n%s", p.Log())
		}
	})
	inst := &servicetest.Instance{URL: p.URL, Username: "admin", Password: p.Password(t), CACert: p.CACert(t)}
	a := newAPI(t, inst)

	// (1) The load, with a writer running during it.
	w := startIncrWriter(t, sc, 50)
	dst := a.create(api.CreateDatabaseRequest{Name: "sharded", MemorySize: 384 << 20, ShardsCount: 3, Replication: true,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, 3*time.Minute)
	w.stop()
	require.Greater(t, w.written.Load(), int64(0), "nothing was written during the load")
	// Multi-key commands over several slots, on the stream.
	require.NoError(t, sc.MSet(ctx, "mset:a", "1", "mset:b", "2", "mset:c", "3").Err())
	require.NoError(t, sc.Del(ctx, "k:1", "k:2", "k:3", "k:4").Err())
	eventuallyEqualSharded(t, a, dst.UID, 2*time.Minute, sc)
	// Every master holds a part of the keys.
	masters, closeAll, err := shardedMasters(a, dst.UID)
	require.NoError(t, err)
	for _, m := range masters {
		n, err := m.DBSize(ctx).Result()
		require.NoError(t, err)
		assert.Greater(t, n, int64(20000/6), "a master holds %d keys", n)
		// The application cannot write, nor touch the checkpoints.
		assert.ErrorContains(t, m.Set(ctx, "x", "y", 0).Err(), "NOPERM")
	}
	closeAll()
	// (4) The source's MULTIs over many slots were split by slot: said.
	db := a.get(dst.UID)
	require.Len(t, db.ReplicaSources, 1)
	assert.Contains(t, db.ReplicaSources[0].SyncNote, "slot by slot", "the status says that transactions were split")
	assert.Empty(t, db.ReplicaSources[0].LastError)

	// (2) kill -9 of the service mid-stream, twice.
	w = startIncrWriter(t, sc, 50)
	for round := range 2 {
		base := w.written.Load()
		redistest.Eventually(t, time.Minute, "the stream is being applied", func() error {
			if w.written.Load() < base+20000 {
				return fmt.Errorf("written %d", w.written.Load()-base)
			}
			if db := a.get(dst.UID); db.ReplicaSyncStatus != api.SourceInSync {
				return fmt.Errorf("status %s", db.ReplicaSyncStatus)
			}
			return nil
		})
		t.Logf("round %d: killing the service after %d writes", round, w.written.Load())
		p.Kill(t)
		p.Start(t)
	}
	a.waitInSync(dst.UID, 2*time.Minute)
	w.stop()
	eventuallyEqualSharded(t, a, dst.UID, 2*time.Minute, sc)
	m := a.metrics()
	if full, partial := metric(m, "replicad_replica_full_syncs_total"), metric(m, "replicad_replica_partial_syncs_total"); full != 0 || partial < 1 {
		t.Fatalf("after the last restart: full syncs %v, partial %v; want a partial sync only", full, partial)
	}

	// (3) kill -9 of a destination master: its replica is promoted, the
	// writer follows it.
	w = startIncrWriter(t, sc, 50)
	redistest.Eventually(t, time.Minute, "the stream is being applied", func() error {
		if w.written.Load() < 20000 {
			return fmt.Errorf("written %d", w.written.Load())
		}
		return nil
	})
	db = a.get(dst.UID)
	var victim api.NodeEndpoint
	for _, ep := range db.Endpoints {
		if ep.Role == "master" {
			victim = ep
			break
		}
	}
	pid := nodePID(t, victim, db.AuthenticationRedisPass)
	t.Logf("killing destination master %d (pid %d) after %d writes", victim.Port, pid, w.written.Load())
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	base := w.written.Load()
	redistest.Eventually(t, 2*time.Minute, "the stream goes on after the failover", func() error {
		if w.written.Load() < base+20000 {
			return fmt.Errorf("written %d", w.written.Load()-base)
		}
		if db := a.get(dst.UID); db.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("status %s: %+v", db.ReplicaSyncStatus, db.ReplicaSources)
		}
		return nil
	})
	w.stop()
	eventuallyEqualSharded(t, a, dst.UID, 2*time.Minute, sc)
	db = a.get(dst.UID)
	assert.Empty(t, db.ReplicaSources[0].LastError)

	// (3b) The same, where the cluster promotes the replica before the
	// service restarts the killed master: the master is stopped first
	// (SIGSTOP, no exit for the service to see) until its replica is
	// promoted, then killed; it comes back as the new master's replica.
	w = startIncrWriter(t, sc, 50)
	redistest.Eventually(t, time.Minute, "the stream is being applied", func() error {
		if w.written.Load() < 20000 {
			return fmt.Errorf("written %d", w.written.Load())
		}
		return nil
	})
	db = a.get(dst.UID)
	var standby api.NodeEndpoint
	for _, ep := range db.Endpoints {
		if ep.Role == "master" && ep.Port != victim.Port {
			victim = ep
			break
		}
	}
	for _, ep := range db.Endpoints {
		if ep.Role == "replica" && ep.Master == net.JoinHostPort(victim.Host, strconv.Itoa(victim.Port)) {
			standby = ep
		}
	}
	require.NotZero(t, standby.Port, "no replica of %d: %+v", victim.Port, db.Endpoints)
	pid = nodePID(t, victim, db.AuthenticationRedisPass)
	t.Logf("stopping destination master %d (pid %d) after %d writes, until %d is promoted", victim.Port, pid, w.written.Load(), standby.Port)
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	redistest.Eventually(t, time.Minute, "the replica is promoted", func() error {
		for _, ep := range a.get(dst.UID).Endpoints {
			if ep.Port == standby.Port && ep.Role == "master" {
				return nil
			}
		}
		return fmt.Errorf("node %d not master yet", standby.Port)
	})
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	base = w.written.Load()
	redistest.Eventually(t, 2*time.Minute, "the stream goes on into the promoted replica", func() error {
		if w.written.Load() < base+20000 {
			return fmt.Errorf("written %d", w.written.Load()-base)
		}
		if db := a.get(dst.UID); db.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("status %s: %+v", db.ReplicaSyncStatus, db.ReplicaSources)
		}
		return nil
	})
	w.stop()
	eventuallyEqualSharded(t, a, dst.UID, 2*time.Minute, sc)
	redistest.Eventually(t, time.Minute, "the killed master is back as a replica", func() error {
		for _, ep := range a.get(dst.UID).Endpoints {
			if ep.Port == victim.Port {
				if ep.Role != "replica" {
					return fmt.Errorf("node %d: %+v", ep.Port, ep)
				}
				return nil
			}
		}
		return fmt.Errorf("node %d not listed", victim.Port)
	})
	db = a.get(dst.UID)
	assert.Empty(t, db.ReplicaSources[0].LastError)
	m = a.metrics()
	assert.Zero(t, metric(m, "replicad_replica_full_syncs_total"), "a failover of the destination made a full sync")
	for _, l := range strings.Split(p.Log(), "\n") {
		if strings.Contains(l, "WARN") || strings.Contains(l, "ERROR") || strings.Contains(l, "sync") {
			t.Log(l)
		}
	}
}

// TestShardedDestinationOfManySources replicates a Redis Cluster of 3
// masters and a plain server, both written to during the load and the
// stream, into a sharded destination of 2 shards (other slots than the
// source cluster's): the destination is the union of both, key by key, and
// every acknowledged INCR and RPUSH is there once.
func TestShardedDestinationOfManySources(t *testing.T) {
	cl, cc := startSourceCluster(t)
	load := startClusterLoad(t, cc)
	plain := redistest.Start(t, "--requirepass", "pw-123456")
	pc := plain.Client()
	ctx := redistest.Ctx(t)
	for i := range 2000 {
		require.NoError(t, pc.HSet(ctx, fmt.Sprintf("plain:%d", i), "f", i).Err())
	}
	// The plain source's writes, in MULTIs over many slots, on keys of
	// its own.
	wctx, stopPlain := context.WithCancel(ctx)
	plainDone := make(chan struct{})
	go func() {
		defer close(plainDone)
		for n := 0; wctx.Err() == nil; n++ {
			pipe := pc.TxPipeline()
			for k := range 10 {
				pipe.Incr(wctx, fmt.Sprint("plain:ctr:", (n+k)%25))
			}
			_, _ = pipe.Exec(wctx)
		}
	}()
	w := &incrWriter{stop: func() { stopPlain(); <-plainDone }}
	t.Cleanup(w.stop)

	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "union", MemorySize: 512 << 20, ShardsCount: 2,
		ReplicaSources: []api.ReplicaSource{{URI: cl.Masters()[0].URL()}, {URI: plain.URL()}}})
	a.waitInSync(dst.UID, 3*time.Minute)
	writeClusterDataset(t, cc, "later:", 50)
	load.stop()
	w.stop()
	sources := append(cl.MasterClients(), pc)
	eventuallyEqualSharded(t, a, dst.UID, 2*time.Minute, sources...)
	masters, closeAll, err := shardedMasters(a, dst.UID)
	require.NoError(t, err)
	defer closeAll()
	var incrs, pushes int64
	for _, m := range masters {
		// Each master answers for its own slots: ask the one that holds
		// each key.
		for k := range 60 {
			v, err := m.Get(ctx, fmt.Sprint("counter:", k)).Result()
			if err == nil {
				n, _ := strconv.ParseInt(v, 10, 64)
				incrs += n
			}
		}
		for k := range 30 {
			if n, err := m.LLen(ctx, fmt.Sprint("seq:", k)).Result(); err == nil {
				pushes += n
			}
		}
	}
	assert.Equal(t, load.incrs.Load(), incrs, "every acknowledged INCR of the cluster, once")
	assert.Equal(t, load.pushes.Load(), pushes, "every acknowledged RPUSH of the cluster, once")
	require.Positive(t, incrs)
	db := a.get(dst.UID)
	require.Len(t, db.ReplicaSources, 2)
	for _, st := range db.ReplicaSources {
		assert.Empty(t, st.LastError, "%+v", st)
	}

	// Keyless commands of the plain source: a function library reaches
	// every master, a message every subscriber of the cluster, once.
	sub := masters[len(masters)-1].Subscribe(ctx, "news")
	defer sub.Close()
	_, err = sub.Receive(ctx) // subscribed
	require.NoError(t, err)
	require.NoError(t, pc.FunctionLoad(ctx, "#!lua name=acc\nredis.register_function('one', function() return 1 end)").Err())
	require.NoError(t, pc.Publish(ctx, "news", "hello").Err())
	msg, err := sub.ReceiveMessage(ctx)
	require.NoError(t, err)
	assert.Equal(t, "hello", msg.Payload)
	redistest.Eventually(t, time.Minute, "the function on every master", func() error {
		for _, m := range masters {
			libs, err := m.FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: "acc"}).Result()
			if err != nil {
				return err
			}
			if len(libs) != 1 {
				return fmt.Errorf("%s has %d libraries", m.Options().Addr, len(libs))
			}
		}
		return nil
	})

	// No longer a destination: the data stays, the service's keys go.
	none := []api.ReplicaSource{}
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &none})
	redistest.Eventually(t, time.Minute, "no replicad: key left on the masters", func() error {
		for _, m := range masters {
			keys, err := m.Keys(ctx, "replicad:*").Result()
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				return fmt.Errorf("%s holds %d keys such as %q", m.Options().Addr, len(keys), keys[0])
			}
		}
		return nil
	})
	require.NoError(t, redistest.DiffMasters(ctx, masters, "", sources...))
}

// TestShardedDestinationRefusesWhatItCannotApply: a source using another
// database than 0, and a command over keys of two slots that cannot be
// split (RENAME), stop the sync with a last_error that says why.
func TestShardedDestinationRefusesWhatItCannotApply(t *testing.T) {
	ctx := redistest.Ctx(t)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	for name, tc := range map[string]struct {
		before, after func(c *redis.Client)
		want          string
	}{
		"database 1 in the dataset": {
			before: func(c *redis.Client) {
				c1 := redis.NewClient(&redis.Options{Addr: c.Options().Addr, Password: c.Options().Password, DB: 1})
				defer c1.Close()
				require.NoError(t, c1.Set(ctx, "in-db-1", "x", 0).Err())
			},
			want: "database 0 only",
		},
		"database 1 on the stream": {
			after: func(c *redis.Client) {
				c1 := redis.NewClient(&redis.Options{Addr: c.Options().Addr, Password: c.Options().Password, DB: 1})
				defer c1.Close()
				require.NoError(t, c1.Set(ctx, "in-db-1", "x", 0).Err())
			},
			want: "database 0 only",
		},
		"RENAME across slots": {
			after: func(c *redis.Client) {
				require.NoError(t, c.Set(ctx, "a", "1", 0).Err())
				require.NoError(t, c.Rename(ctx, "a", "b").Err())
			},
			want: `RENAME "a"`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			src := redistest.Start(t, "--requirepass", "pw-123456")
			sc := src.Client()
			require.NoError(t, sc.Set(ctx, "k", "v", 0).Err())
			if tc.before != nil {
				tc.before(sc)
			}
			dst := a.create(api.CreateDatabaseRequest{Name: "refuses-" + strconv.Itoa(int(time.Now().UnixNano()%100000)), MemorySize: 96 << 20, ShardsCount: 2,
				ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
			if tc.after != nil {
				a.waitInSync(dst.UID, 2*time.Minute)
				tc.after(sc)
			}
			redistest.Eventually(t, 2*time.Minute, "the sync stops with a clear error", func() error {
				db := a.get(dst.UID)
				if len(db.ReplicaSources) != 1 || !strings.Contains(db.ReplicaSources[0].LastError, tc.want) {
					return fmt.Errorf("status %s: %+v", db.ReplicaSyncStatus, db.ReplicaSources)
				}
				if db.ReplicaSyncStatus == api.SourceInSync {
					return fmt.Errorf("still in sync")
				}
				return nil
			})
		})
	}
}

// TestShardedDestinationOfADestination: a one-server database that is
// itself a Replica Of is the source of a sharded one (a chain): writes
// reach the end of the chain, and the middle's checkpoints never do.
func TestShardedDestinationOfADestination(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	sc := src.Client()
	fillEveryType(t, sc, 2000)
	inst := servicetest.Start(t)
	a := newAPI(t, inst)
	mid := a.create(api.CreateDatabaseRequest{Name: "mid", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(mid.UID, time.Minute)
	end := a.create(api.CreateDatabaseRequest{Name: "end", MemorySize: 192 << 20, ShardsCount: 3,
		ReplicaSources: []api.ReplicaSource{{URI: a.sourceURL(mid.UID)}}})
	a.waitInSync(end.UID, 2*time.Minute)
	ctx := redistest.Ctx(t)
	for i := range 100 {
		require.NoError(t, sc.Incr(ctx, fmt.Sprint("chained:", i%7)).Err())
	}
	eventuallyEqualSharded(t, a, end.UID, 2*time.Minute, sc)
	db := a.waitInSync(end.UID, time.Minute)
	assert.Empty(t, db.ReplicaSources[0].LastError)

	// A FLUSHALL at the source empties every master of the end and keeps
	// its checkpoints: after a restart, both continue without a reload.
	require.NoError(t, sc.FlushAll(ctx).Err())
	for i := range 50 {
		require.NoError(t, sc.Set(ctx, fmt.Sprint("after-flush:", i), i, 0).Err())
	}
	eventuallyEqualSharded(t, a, end.UID, 2*time.Minute, sc)
	inst.Restart(t)
	require.NoError(t, sc.Incr(ctx, "after-restart").Err())
	a.waitInSync(end.UID, 2*time.Minute)
	eventuallyEqualSharded(t, a, end.UID, 2*time.Minute, sc)
	m := a.metrics()
	assert.Zero(t, metric(m, "replicad_replica_full_syncs_total"), "a reload after the restart:\n%s", grep(m, "syncs_total"))
}

// TestShardedDestinationReportsKeysItExpired: as on a one-server
// destination, a PERSIST that finds its key already expired by the
// sharded destination (while the sync was paused) is named in sync_note.
func TestShardedDestinationReportsKeysItExpired(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 96 << 20, ShardsCount: 3, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	ctx := redistest.Ctx(t)
	sc := src.Client()
	require.NoError(t, sc.Set(ctx, "short-lived", "v", 2*time.Second).Err())
	require.NoError(t, sc.Set(ctx, "kept", "v", time.Hour).Err())
	require.NoError(t, sc.Persist(ctx, "kept").Err())
	eventuallyEqualSharded(t, a, dst.UID, time.Minute, sc)
	assert.Empty(t, a.get(dst.UID).ReplicaSources[0].SyncNote, "commands that found their key say nothing")

	paused := api.SyncPaused
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSync: &paused})
	require.NoError(t, sc.Persist(ctx, "short-lived").Err())
	redistest.Eventually(t, time.Minute, "the destination expires the key by itself", func() error {
		masters, closeAll, err := shardedMasters(a, dst.UID)
		if err != nil {
			return err
		}
		defer closeAll()
		for _, m := range masters {
			// KEYS answers for the master's own slots, without MOVED.
			if keys, err := m.Keys(ctx, "short-lived").Result(); err != nil || len(keys) != 0 {
				return fmt.Errorf("still there (%v)", err)
			}
		}
		return nil
	})
	enabled := api.SyncEnabled
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSync: &enabled})
	redistest.Eventually(t, time.Minute, "the lost key is reported", func() error {
		db := a.get(dst.UID)
		if note := db.ReplicaSources[0].SyncNote; !strings.Contains(note, `PERSIST "short-lived"`) {
			return fmt.Errorf("sync_note %q", note)
		}
		return nil
	})
}

// A node of a sharded destination that restarts with less than it applied
// (here: its AOF turned off) is caught up at once, with the source idle:
// its writers hold no master link that would tell them, and used to go on
// until the source's next write or ping (never, with a long ping period)
// saying in-sync.
func TestShardedDestinationNodeRestartsWithLessThanItApplied(t *testing.T) {
	src := redistest.Start(t, "--repl-backlog-size", "64mb", "--repl-ping-replica-period", "3600")
	sc := src.Client()
	ctx := redistest.Ctx(t)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "sharded", MemorySize: 128 << 20, ShardsCount: 2,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, 2*time.Minute)

	// From here node 0 applies writes in memory only.
	admin := i.App.Databases().Client(dst.UID)
	t.Cleanup(func() { admin.Close() })
	require.NoError(t, admin.ConfigSet(ctx, "appendonly", "no").Err())
	for n := range 200 {
		require.NoError(t, sc.Incr(ctx, "k"+strconv.Itoa(n)).Err())
	}
	eventuallyEqualSharded(t, a, dst.UID, time.Minute, sc)
	a.waitInSync(dst.UID, time.Minute)

	killDestination(t, i, dst.UID)
	// 45 s: before the source's read timeout, 60 s, would end the wait.
	eventuallyEqualSharded(t, a, dst.UID, 45*time.Second, sc)
	require.NoError(t, sc.Incr(ctx, "k0").Err())
	eventuallyEqualSharded(t, a, dst.UID, time.Minute, sc)
	a.waitInSync(dst.UID, time.Minute)
}
