package replication_test

import (
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

// A Redis Cluster of 3 masters and 3 replicas into a sharded destination
// of 3 shards with replication, with INCR and RPUSH written across all
// slots from before the load to the end, through every fault of the issue
// in turn: CLUSTER FAILOVER of a source shard, kill -9 of a source master,
// kill -9 of a destination master, kill -9 of the service. The
// destination ends equal to the source key by key, the counters exact.
func TestClusterSourceIntoShardedDestinationUnderFaults(t *testing.T) {
	cl, cc := startSourceCluster(t)
	load := startClusterLoad(t, cc)
	p := servicetest.StartProcess(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service log:\n%s", p.Log())
		}
	})
	a := newAPI(t, &servicetest.Instance{URL: p.URL, Username: "admin", Password: p.Password(t), CACert: p.CACert(t)})
	masters := cl.Masters()
	require.Len(t, masters, 3)
	dst := a.create(api.CreateDatabaseRequest{Name: "sharded", MemorySize: 512 << 20, ShardsCount: 3, Replication: true,
		ReplicaSources: []api.ReplicaSource{{URI: masters[0].URL()}}})
	a.waitInSync(dst.UID, 3*time.Minute)

	progress := func(what string) {
		t.Helper()
		load.waitProgress(t, a, dst.UID, what)
	}

	// CLUSTER FAILOVER of a source shard.
	r0 := cl.ReplicaOf(masters[0])
	sh0, ok := shardOf(a.get(dst.UID).ReplicaSources[0], masters[0].Addr())
	require.True(t, ok)
	cl.Promote(r0, true)
	waitShard(t, a, dst.UID, sh0.Slots, r0.Addr())
	progress("the stream goes on after CLUSTER FAILOVER of a source shard")

	// kill -9 of a source master; the cluster promotes its replica.
	m1 := masters[1]
	sh1, ok := shardOf(a.get(dst.UID).ReplicaSources[0], m1.Addr())
	require.True(t, ok)
	r1 := cl.ReplicaOf(m1)
	m1.Stop()
	cl.Promote(r1, false)
	waitShard(t, a, dst.UID, sh1.Slots, r1.Addr())
	progress("the stream goes on after kill -9 of a source master")

	// kill -9 of a destination master.
	db := a.get(dst.UID)
	var victim api.NodeEndpoint
	for _, ep := range db.Endpoints {
		if ep.Role == "master" {
			victim = ep
			break
		}
	}
	require.NoError(t, syscall.Kill(nodePID(t, victim, db.AuthenticationRedisPass), syscall.SIGKILL))
	progress("the stream goes on after kill -9 of a destination master")

	// kill -9 of the service.
	p.Kill(t)
	p.Start(t)
	progress("the stream goes on after kill -9 of the service")

	load.stop()
	eventuallyEqualSharded(t, a, dst.UID, 3*time.Minute, cl.MasterClients()...)
	db = a.get(dst.UID)
	var addrs []string
	for _, ep := range db.Endpoints {
		addrs = append(addrs, net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)))
	}
	dc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Password: db.AuthenticationRedisPass})
	defer dc.Close()
	// Counters exact: the destination holds what the cluster holds (a
	// kill -9 may lose acknowledged writes in the cluster itself).
	srcIncrs, srcPushes := loadTotals(t, cc)
	incrs, pushes := loadTotals(t, dc)
	assert.Equal(t, srcIncrs, incrs, "INCRs")
	assert.Equal(t, srcPushes, pushes, "RPUSHes")
	assert.Positive(t, incrs)
}

// A source transaction far bigger than the queue between reader and writer
// (100,000 SETs, about 13 MB, over every slot) into a sharded destination,
// which gathers a source transaction whole before splitting it by slot: it
// is applied, and what follows it too.
func TestShardedDestinationBigSourceTransaction(t *testing.T) {
	src := redistest.Start(t)
	sc := src.Client()
	ctx := redistest.Ctx(t)
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "bigtx", MemorySize: 256 << 20, ShardsCount: 2,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, 2*time.Minute)
	tx := sc.TxPipeline()
	value := strings.Repeat("v", 100)
	for k := range 100000 {
		tx.Set(ctx, fmt.Sprint("tx:", k), value, 0)
	}
	_, err := tx.Exec(ctx)
	require.NoError(t, err)
	require.NoError(t, sc.Set(ctx, "after", "1", 0).Err())
	eventuallyEqualSharded(t, a, dst.UID, 2*time.Minute, sc)
}

// A source master freezes (SIGSTOP, as a hung host or a partition does):
// the cluster promotes its replica within seconds, and the shard's syncer
// must follow it promptly with a partial resync, not wait a minute on the
// frozen link (by then the promoted node's backlog has moved past the
// checkpoint, and every destination is flushed and reloaded).
func TestAFrozenSourceMasterIsLeftPromptly(t *testing.T) {
	cl, cc := startSourceCluster(t)
	load := startClusterLoad(t, cc)
	a := newAPI(t, servicetest.Start(t))
	masters := cl.Masters()
	dst := a.create(api.CreateDatabaseRequest{Name: "sharded", MemorySize: 384 << 20, ShardsCount: 3,
		ReplicaSources: []api.ReplicaSource{{URI: masters[1].URL()}}})
	a.waitInSync(dst.UID, 3*time.Minute)
	sh0, ok := shardOf(a.get(dst.UID).ReplicaSources[0], masters[0].Addr())
	require.True(t, ok)
	r0 := cl.ReplicaOf(masters[0])
	pid := masters[0].PID()
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	// The cluster fails it over by itself (node timeout 1.5 s).
	redistest.Eventually(t, time.Minute, "the cluster promotes the replica", func() error {
		info, err := r0.Client().Info(redistest.Ctx(t), "replication").Result()
		if err != nil || !strings.Contains(info, "role:master") {
			return fmt.Errorf("%v %s", err, info)
		}
		return nil
	})
	promoted := time.Now()
	var got api.ReplicaShardStatus
	redistest.Eventually(t, 20*time.Second, "the shard read from the promoted node", func() error {
		db := a.get(dst.UID)
		got, _ = shardOf(db.ReplicaSources[0], r0.Addr())
		if got.Slots != sh0.Slots || db.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("%s after the promotion: status %s, shards %+v", time.Since(promoted).Round(time.Second), db.ReplicaSyncStatus, db.ReplicaSources[0].Shards)
		}
		return nil
	})
	require.Equal(t, sh0.FullSyncs, got.FullSyncs, "a partial resync, no reload: %+v", got)
	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
	load.stop()
	cl.WaitOK()
	eventuallyEqualSharded(t, a, dst.UID, 3*time.Minute, cl.MasterClients()...)
}
