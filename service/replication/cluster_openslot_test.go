package replication_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// replicaStates lists the states INFO replication of n gives its replicas
// (wait_bgsave, send_bulk, online).
func replicaStates(t *testing.T, n *redistest.Server) []string {
	t.Helper()
	c := n.Client()
	info, err := c.Info(redistest.Ctx(t), "replication").Result()
	require.NoError(t, err)
	var out []string
	for _, line := range strings.Split(info, "\r\n") {
		if !strings.HasPrefix(line, "slave") {
			continue
		}
		for _, f := range strings.Split(line, ",") {
			if v, ok := strings.CutPrefix(f, "state="); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

// A slot left open by a resharding (MIGRATING at its owner, IMPORTING at
// another master, as a redis-cli --cluster reshard that stopped on an
// error leaves it) while a sharded destination loads the shards: each
// shard forks when its syncer asks, not all at once, and a key that
// migrates between two forks is in both RDBs while the shard it left
// streams its DEL, applied after the other shard loaded the key. No
// stream carries a RESTORE-ASKING and the slot map does not change: the
// destination lacked the keys while the source said in-sync. An open slot
// is a sign of resharding: the source stays out of sync until it closes,
// and is then loaded again.
func TestAnOpenSlotKeepsAClusteredSourceOutOfSync(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 0, "--requirepass", "cluster-secret", "--masterauth", "cluster-secret")
	cc := cl.Client()
	writeClusterDataset(t, cc, "", 100)
	ctx := redistest.Ctx(t)
	var keys []string
	for i := range 30 {
		k := fmt.Sprintf("{mig}:%d", i)
		require.NoError(t, cc.Set(ctx, k, i, 0).Err())
		keys = append(keys, k)
	}
	slot, err := cc.ClusterKeySlot(ctx, keys[0]).Result()
	require.NoError(t, err)
	owner, err := cc.MasterForKey(ctx, keys[0])
	require.NoError(t, err)
	var from, to *redistest.Server
	for _, m := range cl.Masters() {
		switch {
		case m.Addr() == owner.Options().Addr:
			from = m
		case to == nil:
			to = m
		}
	}
	require.NotNil(t, from)
	// The shard the keys leave sends its RDB slowly (30 ms a key) from
	// the moment it is asked; the one they go to forks 5 s after it is
	// asked (Redis's default diskless delay): the keys move in between.
	require.NoError(t, from.Client().ConfigSet(ctx, "repl-diskless-sync-delay", "0").Err())
	require.NoError(t, from.Client().ConfigSet(ctx, "rdb-key-save-delay", "30000").Err())
	require.NoError(t, to.Client().ConfigSet(ctx, "repl-diskless-sync-delay", "5").Err())

	// Every shard asks for its full sync at once (none waits for a load
	// slot, which would let the other fork first).
	a := newAPI(t, servicetest.StartWith(t, func(c *app.Config) { c.MaxConcurrentLoads = 3 }))
	dst := a.create(api.CreateDatabaseRequest{Name: "sharded", MemorySize: 256 << 20, ShardsCount: 2,
		ReplicaSources: []api.ReplicaSource{{URI: from.URL()}}})
	redistest.Eventually(t, time.Minute, "the shard of "+from.Addr()+" forked for its RDB", func() error {
		if v := infoField(t, from.Client(), "persistence", "rdb_bgsave_in_progress"); v != "1" {
			return fmt.Errorf("rdb_bgsave_in_progress %q, replicas %v", v, replicaStates(t, from))
		}
		return nil
	})
	// (A diskless sync's replica is in wait_bgsave until its RDB is sent.)
	require.Equal(t, "0", infoField(t, to.Client(), "persistence", "rdb_bgsave_in_progress"), "the shard of %s forked already", to.Addr())
	for _, st := range replicaStates(t, to) {
		require.Equal(t, "wait_bgsave", st, "the shard of %s forked already: the keys cannot move between the two forks", to.Addr())
	}
	migrateKeys(t, cl, from, to, slot, keys...)
	require.NoError(t, from.Client().ConfigSet(ctx, "rdb-key-save-delay", "0").Err())

	db := a.get(dst.UID)
	var addrs []string
	for _, ep := range db.Endpoints {
		addrs = append(addrs, net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)))
	}
	dc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Password: db.AuthenticationRedisPass})
	defer dc.Close()
	redistest.Eventually(t, 2*time.Minute, "every shard loaded, the source out of sync while its slot is open", func() error {
		src := a.get(dst.UID).ReplicaSources[0]
		if len(src.Shards) != 3 {
			return fmt.Errorf("shards %+v", src.Shards)
		}
		for _, sh := range src.Shards {
			if sh.Status != api.SourceInSync {
				return fmt.Errorf("shard %s: %s %q", sh.Slots, sh.Status, sh.LastError)
			}
		}
		if src.Status == api.SourceInSync {
			var missing []string
			for _, k := range keys {
				if n, err := dc.Exists(context.Background(), k).Result(); err == nil && n == 0 {
					missing = append(missing, k)
				}
			}
			require.Empty(t, missing, "the source says in-sync while keys that migrated are missing at the destination")
			return fmt.Errorf("in sync with every key: the slot is open, yet nothing says so")
		}
		if !strings.Contains(src.LastError, "slot "+strconv.FormatInt(slot, 10)) {
			return fmt.Errorf("status %s, last_error %q", src.Status, src.LastError)
		}
		return nil
	})

	// The slot moves to its new owner: the destination is loaded again.
	toID := cl.NodeID(to)
	for _, n := range []*redistest.Server{to, from} {
		require.NoError(t, n.Client().Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", toID).Err())
	}
	cl.WaitOK()
	a.waitInSync(dst.UID, 2*time.Minute)
	eventuallyEqualSharded(t, a, dst.UID, 2*time.Minute, cl.MasterClients()...)
}
