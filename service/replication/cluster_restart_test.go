package replication_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// A source cluster without replicas under writes: a master killed (-9)
// and started again from its AOF, then every node killed and started
// again. Into a destination of 2 shards (the source has 3): it ends equal
// key by key, the counters exact, and says in sync only then.
func TestClusterSourceMasterWithoutReplicaAndWholeClusterRestarted(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	cl := redistest.StartCluster(t, 3, 0, "--requirepass", "cluster-secret", "--masterauth", "cluster-secret")
	cc := cl.Client()
	writeClusterDataset(t, cc, "", 100)
	load := startClusterLoad(t, cc)
	p := servicetest.StartProcess(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service log:\n%s", p.Log())
		}
	})
	a := newAPI(t, &servicetest.Instance{URL: p.URL, Username: "admin", Password: p.Password(t), CACert: p.CACert(t)})
	masters := cl.Masters()
	dst := a.create(api.CreateDatabaseRequest{Name: "restarts", MemorySize: 256 << 20, ShardsCount: 2,
		ReplicaSources: []api.ReplicaSource{{URI: masters[0].URL()}}})
	a.waitInSync(dst.UID, 3*time.Minute)

	progress := func(what string) {
		t.Helper()
		load.waitProgress(t, a, dst.UID, what)
	}
	check := func(what string) {
		t.Helper()
		load.stop()
		cl.WaitOK()
		eventuallyEqualSharded(t, a, dst.UID, 3*time.Minute, cl.MasterClients()...)
		db := a.get(dst.UID)
		dc, err := shardedClusterClient(db)
		require.NoError(t, err)
		defer dc.Close()
		srcIncrs, srcPushes := loadTotals(t, cc)
		incrs, pushes := loadTotals(t, dc)
		assert.Equal(t, srcIncrs, incrs, "INCRs after %s", what)
		assert.Equal(t, srcPushes, pushes, "RPUSHes after %s", what)
		assert.Positive(t, incrs)
	}

	// A master without a replica killed, then started again from its AOF.
	masters[1].Stop()
	redistest.Eventually(t, time.Minute, "the shard's status says its master is down without a replica", func() error {
		db := a.get(dst.UID)
		if db.ReplicaSyncStatus == api.SourceInSync {
			return fmt.Errorf("still %s with a source shard down", db.ReplicaSyncStatus)
		}
		sh, ok := shardOf(db.ReplicaSources[0], masters[1].Addr())
		if !ok || sh.Status == api.SourceInSync || !strings.Contains(sh.LastError, "no replica to promote") || !strings.Contains(sh.LastError, masters[1].Addr()) {
			return fmt.Errorf("shard %+v", db.ReplicaSources[0].Shards)
		}
		return nil
	})
	masters[1].Restart()
	cl.WaitOK()
	progress("the stream goes on after a master without a replica came back")
	check("a master without a replica restarted")

	// Every node killed and started again.
	load = startClusterLoad(t, cc)
	progress("writes before the whole cluster restarts")
	for _, n := range cl.Nodes {
		n.Stop()
	}
	for _, n := range cl.Nodes {
		n.Restart()
	}
	cl.WaitOK()
	progress("the stream goes on after the whole cluster restarted")
	check("the whole cluster restarted")
}

// shardedClusterClient is a cluster client of a sharded database.
func shardedClusterClient(db api.Database) (*redis.ClusterClient, error) {
	var addrs []string
	for _, ep := range db.Endpoints {
		addrs = append(addrs, fmt.Sprintf("%s:%d", ep.Host, ep.Port))
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("no endpoints: %+v", db)
	}
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Password: db.AuthenticationRedisPass}), nil
}
