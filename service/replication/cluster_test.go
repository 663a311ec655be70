package replication_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
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

// total is the sum of the counters and the length of the lists at c.
func loadTotals(t *testing.T, c *redis.Client) (incrs, pushes int64) {
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
	eventuallyEqual(t, 2*time.Minute, dc, cl.MasterClients()...)
	incrs, pushes := loadTotals(t, dc)
	assert.Equal(t, load.incrs.Load(), incrs, "every acknowledged INCR, once")
	assert.Equal(t, load.pushes.Load(), pushes, "every acknowledged RPUSH, once")
	require.Positive(t, incrs)

	m := a.metrics()
	for _, sh := range db.ReplicaSources[0].Shards {
		label := fmt.Sprintf(`source="%s#%s"`, replica.Addr(), sh.Slots)
		assert.Equal(t, 1.0, metric(m, "replicad_replica_full_syncs_total", label), "metrics of shard %s:\n%s", sh.Slots, grep(m, "full_syncs"))
		assert.Positive(t, metric(m, "replicad_replica_commands_applied_total", label))
	}
	assert.NotContains(t, m, "cluster-secret")
}
