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

// A destination master frozen (SIGSTOP) under the stream long enough for
// the cluster to promote its replica, then woken: it may apply what the
// writer had sent it before it learns it is a replica, and loses that with
// its resync. Then a source shard failed over with TAKEOVER (no offset
// agreement). The destination ends equal, the counters exact.
func TestShardedDestinationMasterFrozenThenWokenAndSourceTakeover(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	cl, cc := startSourceCluster(t)
	load := startClusterLoad(t, cc)
	a := newAPI(t, servicetest.Start(t))
	masters := cl.Masters()
	dst := a.create(api.CreateDatabaseRequest{Name: "frozen", MemorySize: 384 << 20, ShardsCount: 3, Replication: true,
		ReplicaSources: []api.ReplicaSource{{URI: masters[0].URL()}}})
	a.waitInSync(dst.UID, 3*time.Minute)

	progress := func(what string) {
		t.Helper()
		load.waitProgress(t, a, dst.UID, what)
	}

	db := a.get(dst.UID)
	var victim api.NodeEndpoint
	for _, ep := range db.Endpoints {
		if ep.Role == "master" {
			victim = ep
			break
		}
	}
	pid := nodePID(t, victim, db.AuthenticationRedisPass)
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	victimAddr := net.JoinHostPort(victim.Host, strconv.Itoa(victim.Port))
	redistest.Eventually(t, time.Minute, "a replica of the frozen master is promoted", func() error {
		for _, ep := range a.get(dst.UID).Endpoints {
			if ep.Role != "replica" {
				continue
			}
			c := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)), Password: db.AuthenticationRedisPass})
			nodes, err := c.ClusterNodes(redistest.Ctx(t)).Result()
			c.Close()
			if err != nil {
				continue
			}
			for _, line := range strings.Split(nodes, "\n") {
				f := strings.Fields(line)
				if len(f) > 2 && strings.HasPrefix(f[1], victimAddr) && strings.Contains(f[2], "fail") && !strings.Contains(f[2], "fail?") {
					if strings.Contains(nodes, "myself,master") {
						return nil
					}
				}
			}
		}
		return fmt.Errorf("not yet")
	})
	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
	progress("the stream goes on after a frozen destination master was failed over and woke")

	// CLUSTER FAILOVER TAKEOVER of a source shard.
	r2 := cl.ReplicaOf(masters[2])
	require.NoError(t, r2.Client().Do(redistest.Ctx(t), "CLUSTER", "FAILOVER", "TAKEOVER").Err())
	cl.Promote(r2, false)
	progress("the stream goes on after CLUSTER FAILOVER TAKEOVER of a source shard")

	load.stop()
	cl.WaitOK()
	eventuallyEqualSharded(t, a, dst.UID, 3*time.Minute, cl.MasterClients()...)
	db = a.get(dst.UID)
	var addrs []string
	for _, ep := range db.Endpoints {
		addrs = append(addrs, net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)))
	}
	dc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Password: db.AuthenticationRedisPass})
	defer dc.Close()
	srcIncrs, srcPushes := loadTotals(t, cc)
	incrs, pushes := loadTotals(t, dc)
	assert.Equal(t, srcIncrs, incrs, "INCRs")
	assert.Equal(t, srcPushes, pushes, "RPUSHes")
	assert.Positive(t, incrs)
}
