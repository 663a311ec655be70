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

// read_from switched back and forth through the API while the source's
// shards fail over (CLUSTER FAILOVER) under writes, into a sharded
// destination: it ends equal key by key, the counters exact, and every
// shard is read from where read_from says.
func TestClusterSourceReadFromSwitchedDuringFailovers(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	cl, cc := startSourceCluster(t)
	load := startClusterLoad(t, cc)
	a := newAPI(t, servicetest.Start(t))
	masters := cl.Masters()
	src := api.ReplicaSource{URI: masters[0].URL()}
	dst := a.create(api.CreateDatabaseRequest{Name: "race", MemorySize: 384 << 20, ShardsCount: 2,
		ReplicaSources: []api.ReplicaSource{src}})
	a.waitInSync(dst.UID, 3*time.Minute)
	// Each round fails over another shard (a replica just demoted may not
	// be ready to stand again at once).
	originals := cl.Masters()
	for round := range 3 {
		if round%2 == 0 {
			src.ReadFrom = api.ReadFromReplica
		} else {
			src.ReadFrom = api.ReadFromMaster
		}
		a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{src}})
		m := originals[round]
		cl.Promote(cl.ReplicaOf(m), true)
	}
	cl.WaitReplicasOnline()
	redistest.Eventually(t, 3*time.Minute, "every shard in sync, read from a replica (the last read_from)", func() error {
		db := a.get(dst.UID)
		if db.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("sync %s: %+v", db.ReplicaSyncStatus, db.ReplicaSources)
		}
		for _, sh := range db.ReplicaSources[0].Shards {
			if sh.Role != "replica" || sh.Status != api.SourceInSync {
				return fmt.Errorf("shard %+v", sh)
			}
		}
		return nil
	})
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
