package replication_test

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/certs"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startSourceCluster runs a Redis Cluster of 3 masters and 3 replicas with
// a password, loaded with keys of every type across the slots.
func startSourceCluster(t *testing.T) (*redistest.Cluster, *redis.ClusterClient) {
	t.Helper()
	cl := redistest.StartCluster(t, 3, 1, "--requirepass", "cluster-secret", "--masterauth", "cluster-secret")
	c := cl.Client()
	writeClusterDataset(t, c, "", 300)
	return cl, c
}

// writeClusterDataset writes n groups of keys of every type, each group
// under a prefix of its own, so that they spread over every shard.
func writeClusterDataset(t *testing.T, c *redis.ClusterClient, prefix string, n int) {
	t.Helper()
	ctx := redistest.Ctx(t)
	p := c.Pipeline()
	for i := range n {
		k := fmt.Sprintf("%sk%d:", prefix, i)
		p.Set(ctx, k+"str", strings.Repeat("v", i), 0)
		p.Set(ctx, k+"ttl", "expires", time.Hour)
		p.RPush(ctx, k+"list", "a", "b", i)
		p.SAdd(ctx, k+"intset", 1, 2, i)
		p.SAdd(ctx, k+"set", "x", "y", fmt.Sprint("m", i))
		p.ZAdd(ctx, k+"zset", redis.Z{Score: 1.5, Member: "m1"}, redis.Z{Score: float64(-i), Member: "m2"})
		p.HSet(ctx, k+"hash", "f1", "v1", "f2", i)
		p.PExpire(ctx, k+"hash", 30*time.Minute)
		p.XAdd(ctx, &redis.XAddArgs{Stream: k + "stream", ID: "1-1", Values: []string{"a", "1"}})
		p.PFAdd(ctx, k+"hll", "a", "b", i)
		if i%50 == 0 {
			// A big collection now and then: chunked writes.
			var ls []any
			for j := range 5000 {
				ls = append(ls, j)
			}
			p.RPush(ctx, k+"biglist", ls...)
			p.SAdd(ctx, k+"bigset", ls...)
		}
	}
	_, err := p.Exec(ctx)
	require.NoError(t, err)
}

// clusterLoad writes INCRs to 60 counters and RPUSHes a sequence to 30
// lists across the slots, until stopped, counting what the cluster
// acknowledged.
type clusterLoad struct {
	incrs, pushes atomic.Int64
	stop          func()
}

func startClusterLoad(t *testing.T, c *redis.ClusterClient) *clusterLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &clusterLoad{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ctx.Err() == nil; n++ {
			if err := c.Incr(ctx, fmt.Sprint("counter:", n%60)).Err(); err == nil {
				l.incrs.Add(1)
			}
			if err := c.RPush(ctx, fmt.Sprint("seq:", n%30), n).Err(); err == nil {
				l.pushes.Add(1)
			}
		}
	}()
	var once sync.Once
	l.stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(l.stop)
	return l
}

// waitProgress waits until the load has written 2,000 more INCRs and the
// destination uid is in sync again: the stream goes on after a fault.
func (l *clusterLoad) waitProgress(t *testing.T, a *apiClient, uid int, what string) {
	t.Helper()
	base := l.incrs.Load()
	redistest.Eventually(t, 3*time.Minute, what, func() error {
		if l.incrs.Load() < base+2000 {
			return fmt.Errorf("%d INCRs since", l.incrs.Load()-base)
		}
		if db := a.get(uid); db.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("sync %s: %+v", db.ReplicaSyncStatus, db.ReplicaSources)
		}
		return nil
	})
}

// total is the sum of the counters and the length of the lists at c.
func loadTotals(t *testing.T, c redis.Cmdable) (incrs, pushes int64) {
	ctx := redistest.Ctx(t)
	for i := range 60 {
		v, err := c.Get(ctx, fmt.Sprint("counter:", i)).Result()
		if err == redis.Nil {
			continue
		}
		require.NoError(t, err)
		n, _ := strconv.ParseInt(v, 10, 64)
		incrs += n
	}
	for i := range 30 {
		n, err := c.LLen(ctx, fmt.Sprint("seq:", i)).Result()
		require.NoError(t, err)
		pushes += n
	}
	return incrs, pushes
}

// requireShards checks that a clustered source's status has one entry per
// master with the slots of all three, each in sync with a node.
func requireShards(t *testing.T, st api.ReplicaSourceStatus) {
	t.Helper()
	require.Len(t, st.Shards, 3, "one status per shard: %+v", st)
	assert.Equal(t, "0-5460", st.Shards[0].Slots)
	assert.Equal(t, "5461-10921", st.Shards[1].Slots)
	assert.Equal(t, "10922-16383", st.Shards[2].Slots)
	for _, sh := range st.Shards {
		assert.Equal(t, api.SourceInSync, sh.Status, "shard %+v", sh)
		assert.NotEmpty(t, sh.Node, "shard %+v", sh)
		assert.Positive(t, sh.RDBSize, "shard %+v", sh)
	}
}

func TestReplicaOfRedisCluster(t *testing.T) {
	cl, cc := startSourceCluster(t)
	load := startClusterLoad(t, cc)

	i := servicetest.Start(t)
	a := newAPI(t, i)
	// Any node names the cluster: here a replica.
	replica := cl.ReplicaOf(cl.Masters()[0])
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 512 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: replica.URL()}}})
	db := a.waitInSync(dst.UID, 3*time.Minute)
	require.Len(t, db.ReplicaSources, 1, "one status per source")
	requireShards(t, db.ReplicaSources[0])
	for _, sh := range db.ReplicaSources[0].Shards {
		assert.Equal(t, "master", sh.Role)
		assert.Equal(t, 1, sh.FullSyncs)
	}

	// More writes during the stream, of every type, then the load stops.
	writeClusterDataset(t, cc, "later:", 100)
	load.stop()
	dc := destClient(t, dst, 0)
	eventuallyEqualCluster(t, a, dst, dc, cl)
	incrs, pushes := loadTotals(t, dc)
	assert.Equal(t, load.incrs.Load(), incrs, "every acknowledged INCR, once")
	assert.Equal(t, load.pushes.Load(), pushes, "every acknowledged RPUSH, once")
	require.Positive(t, incrs)

	m := a.metrics()
	for _, sh := range db.ReplicaSources[0].Shards {
		label := fmt.Sprintf(`source="%s#%s"`, replica.Addr(), sh.Slots)
		assert.Equal(t, 1.0, metric(m, "replicad_replica_full_syncs_total", label), "metrics of shard %s:\n%s", sh.Slots, grep(m, "full_syncs"))
		assert.Positive(t, metric(m, "replicad_replica_commands_applied_total", label))
		assert.Equal(t, 1.0, metric(m, "replicad_replica_shard_info", label, `node="`+sh.Node+`"`, `role="master"`), grep(m, "shard_info"))
	}
	assert.NotContains(t, m, "cluster-secret")
}

// shardOf returns the status of the shard whose node is addr.
func shardOf(st api.ReplicaSourceStatus, addr string) (api.ReplicaShardStatus, bool) {
	for _, sh := range st.Shards {
		if sh.Node == addr {
			return sh, true
		}
	}
	return api.ReplicaShardStatus{}, false
}

// waitShard polls until the shard holding slots is replicated from node
// and the whole source is in sync.
func waitShard(t *testing.T, a *apiClient, uid int, slots, node string) api.ReplicaShardStatus {
	t.Helper()
	var got api.ReplicaShardStatus
	redistest.Eventually(t, 3*time.Minute, "shard "+slots+" replicated from "+node, func() error {
		db := a.get(uid)
		for _, sh := range db.ReplicaSources[0].Shards {
			if sh.Slots == slots {
				got = sh
			}
		}
		if got.Node != node || db.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("status %s, shard %+v", db.ReplicaSyncStatus, got)
		}
		return nil
	})
	return got
}

func TestClusterSourceFailover(t *testing.T) {
	cl, cc := startSourceCluster(t)
	load := startClusterLoad(t, cc)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	masters := cl.Masters()
	require.Len(t, masters, 3)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 512 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: masters[0].URL()}}})
	db := a.waitInSync(dst.UID, 3*time.Minute)
	requireShards(t, db.ReplicaSources[0])

	// A graceful failover: the promoted replica continues the stream.
	m0 := masters[0]
	sh0, ok := shardOf(db.ReplicaSources[0], m0.Addr())
	require.True(t, ok, "a shard replicated from %s: %+v", m0.Addr(), db.ReplicaSources[0].Shards)
	r0 := cl.ReplicaOf(m0)
	cl.Promote(r0, true)
	after := waitShard(t, a, dst.UID, sh0.Slots, r0.Addr())
	assert.Equal(t, 1, after.FullSyncs, "CLUSTER FAILOVER needs no full resync: %+v", after)
	assert.GreaterOrEqual(t, after.PartialSyncs, 1, "the new master continued from the checkpoint: %+v", after)
	assert.Equal(t, "master", after.Role)

	// kill -9 of another master: the cluster promotes its replica, and the
	// shard's syncer follows the slots there.
	m1 := masters[1]
	sh1, ok := shardOf(a.get(dst.UID).ReplicaSources[0], m1.Addr())
	require.True(t, ok)
	r1 := cl.ReplicaOf(m1)
	m1.Stop()
	cl.Promote(r1, false)
	after = waitShard(t, a, dst.UID, sh1.Slots, r1.Addr())
	// The replica may have received less than the syncer did before the
	// kill: then it cannot continue, and the status says a full resync
	// happened. Either way, one more sync of the shard.
	assert.Equal(t, sh1.FullSyncs+sh1.PartialSyncs+1, after.FullSyncs+after.PartialSyncs, "one more sync of the shard: %+v", after)
	t.Logf("after kill -9 of %s: shard %s continued with %d partial and %d full syncs", m1.Addr(), after.Slots, after.PartialSyncs, after.FullSyncs)

	load.stop()
	dc := destClient(t, dst, 0)
	eventuallyEqualCluster(t, a, dst, dc, cl)
	// Counters exact: the destination holds what the cluster holds (a
	// kill -9 may lose acknowledged writes in the cluster itself).
	srcIncrs, srcPushes := loadTotals(t, cc)
	incrs, pushes := loadTotals(t, dc)
	assert.Equal(t, srcIncrs, incrs)
	assert.Equal(t, srcPushes, pushes)
	assert.Positive(t, incrs)
}

func TestClusterSourceResharding(t *testing.T) {
	cl, cc := startSourceCluster(t)
	load := startClusterLoad(t, cc)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	masters := cl.Masters()
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 512 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: masters[2].URL()}}})
	db := a.waitInSync(dst.UID, 3*time.Minute)
	requireShards(t, db.ReplicaSources[0])

	// Slots 0 to 99 (keys of the dataset and of the load among them) move
	// from the first shard to the second, under load.
	var slots []int
	for s := range 100 {
		slots = append(slots, s)
	}
	cl.MoveSlots(masters[0], masters[1], slots...)

	// The status says so, then the destination is re-replicated.
	redistest.Eventually(t, time.Minute, "last_error tells of the resharding", func() error {
		st := a.get(dst.UID).ReplicaSources[0]
		if !strings.Contains(st.LastError, "slot map") {
			return fmt.Errorf("status %s, last_error %q", st.Status, st.LastError)
		}
		assert.Equal(t, api.SourceOutOfSync, st.Status)
		return nil
	})
	redistest.Eventually(t, 3*time.Minute, "in sync with the new slot map", func() error {
		st := a.get(dst.UID).ReplicaSources[0]
		if st.Status != api.SourceInSync || len(st.Shards) != 3 || st.Shards[0].Slots != "0-99,5461-10921" {
			return fmt.Errorf("status %s, last_error %q, shards %+v", st.Status, st.LastError, st.Shards)
		}
		return nil
	})
	st := a.get(dst.UID).ReplicaSources[0]
	assert.Empty(t, st.LastError)
	assert.Equal(t, "100-5460", st.Shards[1].Slots)
	// The reload is a full sync of every shard: the two new ones, and the
	// one whose slots stayed (its second).
	assert.Equal(t, 1, st.Shards[0].FullSyncs)
	assert.Equal(t, 1, st.Shards[1].FullSyncs)
	assert.Equal(t, "10922-16383", st.Shards[2].Slots)
	assert.Equal(t, 2, st.Shards[2].FullSyncs)

	load.stop()
	dc := destClient(t, dst, 0)
	eventuallyEqualCluster(t, a, dst, dc, cl)
	srcIncrs, srcPushes := loadTotals(t, cc)
	incrs, pushes := loadTotals(t, dc)
	assert.Equal(t, srcIncrs, incrs)
	assert.Equal(t, srcPushes, pushes)
	assert.Equal(t, load.incrs.Load(), incrs, "every acknowledged INCR, once")
}

// connectedReplicas is what INFO replication of n says of its replicas.
func connectedReplicas(t *testing.T, n *redistest.Server) int {
	info, err := n.Client().Info(redistest.Ctx(t), "replication").Result()
	require.NoError(t, err)
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "connected_slaves:"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return -1
}

func TestClusterSourceReadFromReplica(t *testing.T) {
	cl, cc := startSourceCluster(t)
	load := startClusterLoad(t, cc)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	masters := cl.Masters()
	src := api.ReplicaSource{URI: masters[0].URL()}
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 512 << 20, ReplicaSources: []api.ReplicaSource{src}})
	db := a.waitInSync(dst.UID, 3*time.Minute)
	requireShards(t, db.ReplicaSources[0])

	// A wrong value is refused with what to write.
	bad := []api.ReplicaSource{{URI: src.URI, ReadFrom: "nearest"}}
	code, body := a.do("PUT", fmt.Sprintf("/v1/bdbs/%d", dst.UID), api.UpdateDatabaseRequest{ReplicaSources: &bad}, nil)
	assert.Equal(t, 400, code)
	assert.Contains(t, body, "use master or replica")

	// Reading from the replicas is the same source: the syncers continue
	// from their checkpoints there, nothing is reloaded.
	src.ReadFrom = api.ReadFromReplica
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{src}})
	redistest.Eventually(t, 3*time.Minute, "every shard replicated from a replica", func() error {
		db := a.get(dst.UID)
		for _, sh := range db.ReplicaSources[0].Shards {
			if sh.Role != "replica" || sh.Status != api.SourceInSync {
				return fmt.Errorf("shard %+v", sh)
			}
		}
		return nil
	})
	db = a.get(dst.UID)
	assert.Equal(t, int64(1), db.ReplicaGeneration, "no new generation")
	for _, sh := range db.ReplicaSources[0].Shards {
		assert.Equal(t, 1, sh.FullSyncs, "continued, not reloaded: %+v", sh)
		assert.GreaterOrEqual(t, sh.PartialSyncs, 1, "%+v", sh)
		for _, m := range masters {
			assert.NotEqual(t, m.Addr(), sh.Node, "a master is not read")
		}
	}
	// The masters serve their cluster replica only; each replica serves
	// the syncer (once a syncer that moved has connected again).
	redistest.Eventually(t, 30*time.Second, "each replica serves one syncer, each master its replica only", func() error {
		for _, m := range masters {
			if n := connectedReplicas(t, m); n != 1 {
				return fmt.Errorf("master %s has %d replicas", m.Addr(), n)
			}
			if n := connectedReplicas(t, cl.ReplicaOf(m)); n != 1 {
				return fmt.Errorf("the replica of %s has %d replicas", m.Addr(), n)
			}
		}
		return nil
	})

	// Without an online replica, the shard is read from its master.
	m0 := masters[0]
	sh0, ok := shardOf(db.ReplicaSources[0], cl.ReplicaOf(m0).Addr())
	require.True(t, ok)
	r0 := cl.ReplicaOf(m0)
	r0.Stop()
	after := waitShard(t, a, dst.UID, sh0.Slots, m0.Addr())
	assert.Equal(t, "master", after.Role)
	assert.Equal(t, 1, after.FullSyncs, "the master continues the replica's stream: %+v", after)

	// Once the replica is back, the shard is read from it again.
	r0.Restart()
	after = waitShard(t, a, dst.UID, sh0.Slots, r0.Addr())
	assert.Equal(t, "replica", after.Role)
	assert.Equal(t, 1, after.FullSyncs, "continued on the replica: %+v", after)

	load.stop()
	dc := destClient(t, dst, 0)
	eventuallyEqualCluster(t, a, dst, dc, cl)
	incrs, pushes := loadTotals(t, dc)
	srcIncrs, srcPushes := loadTotals(t, cc)
	assert.Equal(t, srcIncrs, incrs)
	assert.Equal(t, srcPushes, pushes)
	assert.Equal(t, load.incrs.Load(), incrs, "every acknowledged INCR, once")
}

// TestClusterSourceAcrossServiceKill9 kills the service with SIGKILL while
// a clustered source is streamed under load, several times: each shard
// resumes from its own checkpoint with a partial sync, and the counters are
// exact.
func TestClusterSourceAcrossServiceKill9(t *testing.T) {
	cl, cc := startSourceCluster(t)
	p := servicetest.StartProcess(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service log:\n%s", p.Log())
		}
	})
	inst := &servicetest.Instance{URL: p.URL, Username: "admin", Password: p.Password(t), CACert: p.CACert(t)}
	a := newAPI(t, inst)
	dst := a.create(api.CreateDatabaseRequest{Name: "counters", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: cl.Nodes[1].URL()}}})
	a.waitInSync(dst.UID, 3*time.Minute)
	// A kill before the load is persisted loads everything again (the
	// destination restarts from its AOF of before the load).
	waitLoadPersisted(t, destClient(t, dst, 0))
	load := startClusterLoad(t, cc)
	for round := range 3 {
		base := load.incrs.Load()
		redistest.Eventually(t, time.Minute, "the stream is being applied", func() error {
			if load.incrs.Load() < base+2000 {
				return fmt.Errorf("written %d", load.incrs.Load()-base)
			}
			if db := a.get(dst.UID); db.ReplicaSyncStatus != api.SourceInSync {
				return fmt.Errorf("status %s", db.ReplicaSyncStatus)
			}
			return nil
		})
		t.Logf("round %d: killing the service after %d INCRs", round, load.incrs.Load())
		p.Kill(t)
		p.Start(t)
	}
	db := a.waitInSync(dst.UID, 3*time.Minute)
	for _, sh := range db.ReplicaSources[0].Shards {
		assert.Equal(t, 0, sh.FullSyncs, "the restarted service continued shard %s: %+v", sh.Slots, sh)
		// At least one: a busy machine may make a shard reconnect again
		// (and continue again) before the status is read.
		assert.GreaterOrEqual(t, sh.PartialSyncs, 1, "%+v", sh)
	}
	load.stop()
	dc := destClient(t, dst, 0)
	eventuallyEqualCluster(t, a, dst, dc, cl)
	incrs, pushes := loadTotals(t, dc)
	assert.Equal(t, load.incrs.Load(), incrs, "every acknowledged INCR, once")
	assert.Equal(t, load.pushes.Load(), pushes, "every acknowledged RPUSH, once")
	m := a.metrics()
	assert.Equal(t, 0.0, metric(m, "replicad_replica_full_syncs_total"), grep(m, "syncs_total"))
	assert.Equal(t, 3.0, float64(strings.Count(grep(m, "replicad_replica_partial_syncs_total{"), "\n")+1), grep(m, "partial_syncs_total"))
}

// TestClusterSourceOverTLS replicates a Redis Cluster whose nodes serve
// TLS with their own CA (the cluster bus and its replication too): the
// shards are found on their TLS ports and replicated over TLS.
func TestClusterSourceOverTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := certs.LoadOrCreateCA(dir, "cluster test CA")
	require.NoError(t, err)
	_, _, err = ca.LoadOrIssue(dir, "node", []string{"127.0.0.1"}, true)
	require.NoError(t, err)
	tlsPorts := map[int]int{}
	cl := redistest.StartClusterWith(t, 3, 1, func(i int) []string {
		tlsPorts[i] = redistest.FreePort(t)
		return []string{"--requirepass", "cluster-secret", "--masterauth", "cluster-secret",
			"--tls-port", strconv.Itoa(tlsPorts[i]), "--tls-cert-file", filepath.Join(dir, "node.pem"),
			"--tls-key-file", filepath.Join(dir, "node-key.pem"), "--tls-ca-cert-file", filepath.Join(dir, "ca.pem"),
			"--tls-cluster", "yes", "--tls-replication", "yes", "--tls-auth-clients", "no"}
	})
	cc := cl.Client()
	writeClusterDataset(t, cc, "", 100)

	i := servicetest.Start(t)
	a := newAPI(t, i)
	uri := fmt.Sprintf("redis://:cluster-secret@127.0.0.1:%d", tlsPorts[0])
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: uri, Encryption: true, ServerCert: string(ca.CertPEM)}}})
	db := a.waitInSync(dst.UID, 3*time.Minute)
	requireShards(t, db.ReplicaSources[0])
	for _, sh := range db.ReplicaSources[0].Shards {
		_, port, _ := strings.Cut(sh.Node, ":")
		p, _ := strconv.Atoi(port)
		assert.Contains(t, slices.Collect(maps.Values(tlsPorts)), p, "shard %+v is read on a TLS port", sh)
	}
	writeClusterDataset(t, cc, "later:", 20)
	eventuallyEqualCluster(t, a, dst, destClient(t, dst, 0), cl)
}

// TestSameClusterUnderTwoNodesIsRefused: two nodes of one cluster given as
// two sources are the same source; its writes would be applied twice.
func TestSameClusterUnderTwoNodesIsRefused(t *testing.T) {
	cl, _ := startSourceCluster(t)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: cl.Nodes[0].URL()}, {URI: cl.Nodes[4].URL()}}})
	redistest.Eventually(t, 2*time.Minute, "the sync stops", func() error {
		db := a.get(dst.UID)
		if db.ReplicaSync != api.SyncStopped {
			return fmt.Errorf("sync %s: %+v", db.ReplicaSync, db.ReplicaSources)
		}
		for _, s := range db.ReplicaSources {
			if strings.Contains(s.LastError, "same replication history") {
				return nil
			}
		}
		return fmt.Errorf("no source says why: %+v", db.ReplicaSources)
	})
}

// TestClusterSourceURLNodeDownAtRestart: the service restarts while the
// node its source URL names is dead (killed, its replica promoted): it finds
// the cluster through the nodes it kept in the destination, and every shard
// continues from its checkpoint.
func TestClusterSourceURLNodeDownAtRestart(t *testing.T) {
	cl, cc := startSourceCluster(t)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	m0 := cl.Masters()[0]
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: m0.URL()}}})
	db := a.waitInSync(dst.UID, 3*time.Minute)
	sh0, ok := shardOf(db.ReplicaSources[0], m0.Addr())
	require.True(t, ok)
	dc := destClient(t, dst, 0)
	waitLoadPersisted(t, dc)

	i.Stop(t)
	r0 := cl.ReplicaOf(m0)
	m0.Stop()
	cl.Promote(r0, false)
	writeClusterDataset(t, cc, "while-down:", 50)
	i.StartAgain(t)

	after := waitShard(t, a, dst.UID, sh0.Slots, r0.Addr())
	// (The counts start again with the service.)
	assert.Equal(t, 0, after.FullSyncs, "continued, not reloaded: %+v", after)
	assert.Equal(t, 1, after.PartialSyncs, "%+v", after)
	writeClusterDataset(t, cc, "after:", 50)
	eventuallyEqualCluster(t, a, dst, dc, cl)
}

// eventuallyEqualCluster polls until the destination dc (of dst) equals
// the cluster cl key by key. The masters are asked again at every poll: a
// busy machine may see a failover in the meantime. When it fails it logs
// what explainClusterDiff tells.
func eventuallyEqualCluster(t *testing.T, a *apiClient, dst api.Database, dc *redis.Client, cl *redistest.Cluster) {
	t.Helper()
	t.Cleanup(func() { explainClusterDiff(t, a, dst, cl) })
	redistest.Eventually(t, 2*time.Minute, "destination equals the cluster", func() error {
		masters := cl.MasterClients()
		defer func() {
			for _, m := range masters {
				m.Close()
			}
		}()
		return redistest.Diff(context.Background(), dc, masters...)
	})
}

// explainClusterDiff logs, once a test failed, what tells a lagging shard
// from a lost batch: each shard's status, the checkpoints the destination
// holds, and each node's role, replication ID and offset.
func explainClusterDiff(t *testing.T, a *apiClient, dst api.Database, cl *redistest.Cluster) {
	t.Helper()
	if !t.Failed() {
		return
	}
	ctx := context.Background()
	db := a.get(dst.UID)
	t.Logf("status %s generation %d", db.ReplicaSyncStatus, db.ReplicaGeneration)
	for _, st := range db.ReplicaSources {
		for _, sh := range st.Shards {
			t.Logf("shard %+v", sh)
		}
	}
	cps, err := destClient(t, dst, 16).HGetAll(ctx, "replicad:checkpoints").Result()
	t.Logf("checkpoints (err %v):", err)
	for _, k := range slices.Sorted(maps.Keys(cps)) {
		t.Logf("  %s = %s", k, cps[k])
	}
	for _, n := range cl.Nodes {
		c := n.Client()
		info, err := c.Info(ctx, "replication").Result()
		c.Close()
		if err != nil {
			t.Logf("node %s: %v", n.Addr(), err)
			continue
		}
		var parts []string
		for _, line := range strings.Split(info, "\r\n") {
			for _, f := range []string{"role:", "master_replid:", "master_replid2:", "master_repl_offset:", "second_repl_offset:", "master_port:", "master_link_status:", "connected_slaves:"} {
				if strings.HasPrefix(line, f) {
					parts = append(parts, line)
				}
			}
		}
		t.Logf("node %s: %s", n.Addr(), strings.Join(parts, " "))
	}
}

// waitLoadPersisted waits until the destination's AOF holds its load: the
// AOF, off during the load, is on again and rewritten from the loaded data.
func waitLoadPersisted(t *testing.T, dc *redis.Client) {
	t.Helper()
	redistest.Eventually(t, time.Minute, "the destination's AOF holds the load", func() error {
		info, err := dc.Info(context.Background(), "persistence").Result()
		if err != nil {
			return err
		}
		for _, want := range []string{"aof_enabled:1\r", "aof_rewrite_in_progress:0\r", "aof_rewrite_scheduled:0\r"} {
			if !strings.Contains(info, want) {
				return fmt.Errorf("no %q in %s", want, info)
			}
		}
		return nil
	})
}

// A shard's replica whose own master link is down refuses PSYNC
// (NOMASTERLINK) while its master is healthy: the shard is read from the
// master for a while, instead of asking the same replica again and again.
func TestClusterSourceReplicaWithoutItsMasterIsReadAround(t *testing.T) {
	cl, cc := startSourceCluster(t)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	masters := cl.Masters()
	src := api.ReplicaSource{URI: masters[0].URL(), ReadFrom: api.ReadFromReplica}
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20, ReplicaSources: []api.ReplicaSource{src}})
	m0 := masters[0]
	r0 := cl.ReplicaOf(m0)
	// The cluster's replicas may still be linking to their masters: the
	// shard is read from its master until its replica serves.
	var sh0 api.ReplicaShardStatus
	redistest.Eventually(t, 3*time.Minute, "the shard of "+m0.Addr()+" is read from its replica", func() error {
		db := a.get(dst.UID)
		sh, ok := shardOf(db.ReplicaSources[0], r0.Addr())
		if !ok || sh.Status != api.SourceInSync || db.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("status %s, shards %+v", db.ReplicaSyncStatus, db.ReplicaSources[0].Shards)
		}
		sh0 = sh
		return nil
	})

	// The replica can no longer log in to its master, and its syncer's
	// session is cut: it answers the next PSYNC with NOMASTERLINK.
	ctx := redistest.Ctx(t)
	rc := r0.Client()
	require.NoError(t, rc.ConfigSet(ctx, "masterauth", "not-the-password").Err())
	require.NoError(t, rc.Do(ctx, "CLIENT", "KILL", "TYPE", "master").Err())
	require.NoError(t, rc.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err())
	redistest.Eventually(t, 30*time.Second, "the replica's link to its master is down", func() error {
		if v := infoField(t, rc, "replication", "master_link_status"); v != "down" {
			return fmt.Errorf("master_link_status %q", v)
		}
		return nil
	})
	writeClusterDataset(t, cc, "after:", 50)
	waitShard(t, a, dst.UID, sh0.Slots, m0.Addr())
	eventuallyEqualCluster(t, a, dst, destClient(t, dst, 0), cl)
}

// migrateKeys starts moving slot from one master to another and moves
// keys of it, as redis-cli --cluster reshard does, without ending the move
// (CLUSTER SETSLOT ... NODE).
func migrateKeys(t *testing.T, cl *redistest.Cluster, from, to *redistest.Server, slot int64, keys ...string) {
	t.Helper()
	ctx := redistest.Ctx(t)
	require.NoError(t, to.Client().Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", cl.NodeID(from)).Err())
	require.NoError(t, from.Client().Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", cl.NodeID(to)).Err())
	args := []any{"MIGRATE", "127.0.0.1", to.Port, "", 0, 10000, "AUTH", to.Password, "KEYS"}
	for _, k := range keys {
		args = append(args, k)
	}
	require.NoError(t, from.Client().Do(ctx, args...).Err())
}

// slotlessMaster turns a replica of the cluster into a master that serves
// no slot yet (as a node added to a cluster is, before a resharding moves
// slots to it), and waits until the others know it.
func slotlessMaster(t *testing.T, cl *redistest.Cluster) *redistest.Server {
	t.Helper()
	ctx := redistest.Ctx(t)
	masters := cl.Masters()
	nw := cl.ReplicaOf(masters[len(masters)-1])
	require.NoError(t, nw.Client().Do(ctx, "CLUSTER", "RESET", "SOFT").Err())
	nodes, err := masters[0].Client().ClusterNodes(ctx).Result()
	require.NoError(t, err)
	bus := ""
	for _, line := range strings.Split(nodes, "\n") {
		if strings.Contains(line, "myself") { // id ip:port@bus flags ...
			_, bus, _ = strings.Cut(strings.Fields(line)[1], "@")
			bus, _, _ = strings.Cut(bus, ",")
		}
	}
	require.NoError(t, nw.Client().Do(ctx, "CLUSTER", "MEET", "127.0.0.1", masters[0].Port, bus).Err())
	id := cl.NodeID(nw)
	redistest.Eventually(t, time.Minute, "the new master is known and its cluster ok", func() error {
		nodes, err := masters[0].Client().ClusterNodes(ctx).Result()
		if err != nil || !strings.Contains(nodes, id) {
			return fmt.Errorf("%v: %s", err, nodes)
		}
		info, err := nw.Client().ClusterInfo(ctx).Result()
		if err != nil || !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("%v %s", err, info)
		}
		return nil
	})
	return nw
}

// Keys migrating into a master that serves no slot yet (the first slot of
// a resharding to a new node) have no syncer to follow them, and the shard
// they leave sends their DEL: the source is not in sync while that lasts
// (the status says why), and once the slot has moved the destination is
// loaded again, from every shard, the new one included.
func TestKeysMigratingIntoAMasterWithoutSlots(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 1, "--requirepass", "cluster-secret", "--masterauth", "cluster-secret")
	cc := cl.Client()
	writeClusterDataset(t, cc, "", 100)
	ctx := redistest.Ctx(t)
	nw := slotlessMaster(t, cl)
	slot, err := cc.ClusterKeySlot(ctx, "k0:str").Result()
	require.NoError(t, err)
	owner, err := cc.MasterForKey(ctx, "k0:str")
	require.NoError(t, err)
	var from *redistest.Server
	for _, m := range cl.Masters() {
		if m.Addr() == owner.Options().Addr {
			from = m
		}
	}
	require.NotNil(t, from)
	keys, err := from.Client().ClusterGetKeysInSlot(ctx, int(slot), 1000).Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	migrateKeys(t, cl, from, nw, slot, keys...)
	nwID := cl.NodeID(nw)

	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: from.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	dc := destClient(t, dst, 0)
	redistest.Eventually(t, 2*time.Minute, "the status says the keys migrate to a master without slots", func() error {
		db := a.get(dst.UID)
		src := db.ReplicaSources[0]
		if src.Status == api.SourceInSync {
			missing := 0
			for _, k := range keys {
				if dc.Exists(ctx, k).Val() == 0 {
					missing++
				}
			}
			require.Zero(t, missing, "in-sync while %d keys that migrated are missing at the destination", missing)
		}
		if !strings.Contains(src.LastError, "serves no slot") || src.Status != api.SourceOutOfSync {
			return fmt.Errorf("status %s, last error %q", src.Status, src.LastError)
		}
		return nil
	})

	// The slot moves: the destination is loaded again with the new shard.
	for _, n := range []*redistest.Server{nw, from} {
		require.NoError(t, n.Client().Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", nwID).Err())
	}
	cl.WaitOK()
	writeClusterDataset(t, cc, "after:", 20)
	redistest.Eventually(t, 2*time.Minute, "in sync from 4 shards", func() error {
		db := a.get(dst.UID)
		if db.ReplicaSyncStatus != api.SourceInSync || len(db.ReplicaSources[0].Shards) != 4 {
			return fmt.Errorf("status %s, shards %+v", db.ReplicaSyncStatus, db.ReplicaSources[0].Shards)
		}
		return nil
	})
	eventuallyEqualCluster(t, a, dst, dc, cl)
}
