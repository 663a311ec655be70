package replication_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// CLUSTER FAILOVER of a source shard while its full load is under way
// (the master sends its RDB slowly), then keys of that shard deleted
// before the load is taken again: into a sharded destination, nothing of
// the cut load stays that the source no longer has, the counters exact.
func TestClusterSourceFailoverDuringTheFullLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	cl, cc := startSourceCluster(t)
	ctx := redistest.Ctx(t)
	masters := cl.Masters()
	for _, n := range cl.Nodes {
		require.NoError(t, n.Client().ConfigSet(ctx, "rdb-key-save-delay", "3000").Err())
	}
	load := startClusterLoad(t, cc)
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "loadfail", MemorySize: 384 << 20, ShardsCount: 3, Replication: true,
		ReplicaSources: []api.ReplicaSource{{URI: masters[1].URL()}}})
	m0 := masters[0]
	redistest.Eventually(t, time.Minute, "the shard of the first master loads", func() error {
		info, err := m0.Client().Info(ctx, "persistence").Result()
		if err != nil {
			return err
		}
		if !containsLine(info, "rdb_bgsave_in_progress:1") {
			return fmt.Errorf("no RDB being sent")
		}
		return nil
	})
	r0 := cl.ReplicaOf(m0)
	cl.Promote(r0, true)
	for _, n := range cl.Nodes {
		if n.Running() {
			require.NoError(t, n.Client().ConfigSet(ctx, "rdb-key-save-delay", "0").Err())
		}
	}
	// Keys of the cut load deleted at the source: they must not stay.
	for i := range 300 {
		require.NoError(t, cc.Del(ctx, fmt.Sprintf("k%d:str", i)).Err())
		require.NoError(t, cc.Del(ctx, fmt.Sprintf("k%d:hash", i)).Err())
	}
	a.waitInSync(dst.UID, 3*time.Minute)
	load.stop()
	cl.WaitOK()
	eventuallyEqualSharded(t, a, dst.UID, 3*time.Minute, cl.MasterClients()...)
	dc, err := shardedClusterClient(a.get(dst.UID))
	require.NoError(t, err)
	defer dc.Close()
	srcIncrs, srcPushes := loadTotals(t, cc)
	incrs, pushes := loadTotals(t, dc)
	assert.Equal(t, srcIncrs, incrs, "INCRs")
	assert.Equal(t, srcPushes, pushes, "RPUSHes")
}

func containsLine(info, line string) bool {
	for i := 0; i+len(line) <= len(info); i++ {
		if info[i:i+len(line)] == line && (i == 0 || info[i-1] == '\n') {
			return true
		}
	}
	return false
}
