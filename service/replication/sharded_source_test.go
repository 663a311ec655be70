package replication_test

import (
	"fmt"
	"net"
	"slices"
	"strconv"
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

// appCluster is an application's cluster client of a sharded database.
func appCluster(t *testing.T, db api.Database) *redis.ClusterClient {
	var addrs []string
	for _, ep := range db.Endpoints {
		addrs = append(addrs, net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)))
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Password: db.AuthenticationRedisPass, MaxRedirects: 16})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestShardedDatabaseAsSource replicates a sharded database of one
// instance (3 shards with a replica each, TLS required for replication,
// only the other instance's syncer certificate admitted), written to during
// the load and the stream, into a plain database and a 3-shard database of
// another instance (the latter compressed), through the source URL alone:
// the destinations find the shards through the source's replication
// gateway. Both equal the source key by key with every counter exact; then
// again after a source master is killed under load and the cluster promotes
// its replica.
func TestShardedDatabaseAsSource(t *testing.T) {
	us := newAPI(t, servicetest.Start(t))
	eu := newAPI(t, servicetest.Start(t))
	src := us.create(api.CreateDatabaseRequest{Name: "orders", MemorySize: 384 << 20, ShardsCount: 3, Replication: true,
		TLSMode: api.TLSReplicaSSL, ClientCertificates: []string{eu.cluster().SyncerCert}})
	cc := appCluster(t, src)
	writeClusterDataset(t, cc, "", 300)
	load := startClusterLoad(t, cc)

	url := us.sourceURL(src.UID)
	from := func(level int) []api.ReplicaSource {
		return []api.ReplicaSource{{URI: url, Encryption: true, ServerCert: us.cluster().ProxyCert, Compression: level}}
	}
	plain := eu.create(api.CreateDatabaseRequest{Name: "orders-plain", MemorySize: 512 << 20, ReplicaSources: from(0)})
	sharded := eu.create(api.CreateDatabaseRequest{Name: "orders-sharded", MemorySize: 512 << 20, ShardsCount: 3, Replication: true,
		ReplicaSources: from(3)})
	for _, uid := range []int{plain.UID, sharded.UID} {
		st := eu.waitInSync(uid, 3*time.Minute).ReplicaSources[0]
		require.Len(t, st.Shards, 3, "one status per shard of the source: %+v", st)
		var slots []string
		for _, sh := range st.Shards {
			slots = append(slots, sh.Slots)
			assert.Equal(t, api.SourceInSync, sh.Status, "%+v", sh)
			assert.Equal(t, "master", sh.Role, "%+v", sh)
			assert.Equal(t, 1, sh.FullSyncs, "%+v", sh)
			// Each shard streams from its node's own replication endpoint.
			assert.NotEqual(t, url, sh.Node)
			assert.True(t, slices.ContainsFunc(src.Endpoints, func(ep api.NodeEndpoint) bool {
				return ep.Role == "master" && sh.Node == net.JoinHostPort(ep.Host, strconv.Itoa(ep.ReplicationPort))
			}), "shard %s streams from %q, not a master's replication endpoint: %+v", sh.Slots, sh.Node, src.Endpoints)
		}
		assert.Equal(t, []string{"0-5461", "5462-10922", "10923-16383"}, slots)
		assert.Empty(t, st.LastError)
	}
	assert.True(t, eu.get(sharded.UID).ReplicaSources[0].CompressionActive, "the gateway compresses each shard's stream")

	// check waits until both destinations equal the source's masters key
	// by key, with the counters of the load exactly as the source has them.
	check := func(what string) {
		t.Helper()
		srcMasters, closeAll, err := shardedMasters(us, src.UID)
		require.NoError(t, err)
		defer closeAll()
		eventuallyEqual(t, 2*time.Minute, destClient(t, plain, 0), srcMasters...)
		eventuallyEqualSharded(t, eu, sharded.UID, 2*time.Minute, srcMasters...)
		incrs, pushes := loadTotals(t, cc)
		require.Positive(t, incrs)
		for name, c := range map[string]redis.Cmdable{"plain": destClient(t, plain, 0), "sharded": appCluster(t, eu.get(sharded.UID))} {
			gotIncrs, gotPushes := loadTotals(t, c)
			assert.Equal(t, incrs, gotIncrs, "%s: the %s destination's counters", what, name)
			assert.Equal(t, pushes, gotPushes, "%s: the %s destination's lists", what, name)
		}
	}

	writeClusterDataset(t, cc, "later:", 100)
	load.stop()
	check("after load and stream")
	assert.Equal(t, load.incrs.Load(), func() int64 { n, _ := loadTotals(t, cc); return n }(), "the source holds every acknowledged INCR")

	// Failover of a source shard under load: its master stops (so that the
	// service does not restart it before the cluster sees it gone), the
	// cluster promotes its replica, then the master is killed; it comes
	// back as a replica. The destinations follow the slots to the new
	// master's endpoint.
	load = startClusterLoad(t, cc)
	db := us.get(src.UID)
	var victim, standby api.NodeEndpoint
	for _, ep := range db.Endpoints {
		if ep.Role == "master" {
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
	redistest.Eventually(t, time.Minute, "writes during the stream", func() error {
		if load.incrs.Load() < 2000 {
			return fmt.Errorf("%d INCRs", load.incrs.Load())
		}
		return nil
	})
	pid := nodePID(t, victim, db.AuthenticationRedisPass)
	t.Logf("stopping source master %d (pid %d) until %d is promoted", victim.Port, pid, standby.Port)
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	redistest.Eventually(t, 2*time.Minute, "the source's replica is promoted", func() error {
		for _, ep := range us.get(src.UID).Endpoints {
			if ep.Port == standby.Port && ep.Role == "master" {
				return nil
			}
		}
		return fmt.Errorf("node %d not master yet", standby.Port)
	})
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	base := load.incrs.Load()
	redistest.Eventually(t, 2*time.Minute, "writes after the failover", func() error {
		if load.incrs.Load() < base+2000 {
			return fmt.Errorf("%d INCRs since", load.incrs.Load()-base)
		}
		return nil
	})
	load.stop()
	for _, uid := range []int{plain.UID, sharded.UID} {
		st := eu.waitInSync(uid, 3*time.Minute).ReplicaSources[0]
		require.Len(t, st.Shards, 3, "%+v", st)
		syncs := 0
		for _, sh := range st.Shards {
			syncs += sh.FullSyncs + sh.PartialSyncs
		}
		assert.Greater(t, syncs, 3, "the failed-over shard synced again: %+v", st.Shards)
		assert.True(t, slices.ContainsFunc(st.Shards, func(sh api.ReplicaShardStatus) bool {
			return sh.Node == net.JoinHostPort(standby.Host, strconv.Itoa(standby.ReplicationPort))
		}), "a shard streams from the promoted node's endpoint (port %d): %+v", standby.ReplicationPort, st.Shards)
		t.Logf("database %d after the source failover: %+v", uid, st.Shards)
	}
	check("after the source failover")
	redistest.Eventually(t, time.Minute, "the killed master is back as a replica", func() error {
		i := slices.IndexFunc(us.get(src.UID).Endpoints, func(ep api.NodeEndpoint) bool { return ep.Port == victim.Port })
		if i < 0 || us.get(src.UID).Endpoints[i].Role != "replica" {
			return fmt.Errorf("node %d is not a replica yet", victim.Port)
		}
		return nil
	})

	// A plain kill -9 of a source master under load: the service restarts
	// it, or the cluster promotes its replica first, whichever comes
	// first; either way the destinations end equal to the source.
	load = startClusterLoad(t, cc)
	base = load.incrs.Load()
	redistest.Eventually(t, time.Minute, "writes during the stream", func() error {
		if load.incrs.Load() < base+2000 {
			return fmt.Errorf("%d INCRs since", load.incrs.Load()-base)
		}
		return nil
	})
	db = us.get(src.UID)
	i := slices.IndexFunc(db.Endpoints, func(ep api.NodeEndpoint) bool { return ep.Role == "master" && ep.Port != standby.Port })
	require.GreaterOrEqual(t, i, 0, "%+v", db.Endpoints)
	pid = nodePID(t, db.Endpoints[i], db.AuthenticationRedisPass)
	t.Logf("kill -9 of source master %d (pid %d)", db.Endpoints[i].Port, pid)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	base = load.incrs.Load()
	redistest.Eventually(t, 2*time.Minute, "writes after the kill", func() error {
		if load.incrs.Load() < base+2000 {
			return fmt.Errorf("%d INCRs since", load.incrs.Load()-base)
		}
		return nil
	})
	load.stop()
	for _, uid := range []int{plain.UID, sharded.UID} {
		st := eu.waitInSync(uid, 3*time.Minute).ReplicaSources[0]
		t.Logf("database %d after the kill -9: %+v", uid, st.Shards)
	}
	check("after a kill -9 of a source master")
}
