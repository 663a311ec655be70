package app_test

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
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// TestShardedSourceOfTheSameInstance: a sharded database is the source of a
// plain database of the same instance through its source URL. A
// regenerated admin password (no grace period) closes the sessions of
// every node's endpoint: the destination says why it stopped, and the new
// URL resumes every shard from its checkpoint, without a reload.
func TestShardedSourceOfTheSameInstance(t *testing.T) {
	i := servicetest.StartWith(t, func(c *app.Config) { c.AdminPasswordGrace = -1 })
	src := mustCreate(t, i, api.CreateDatabaseRequest{Name: "sharded-src", MemorySize: 64 << 20, ShardsCount: 2})
	cc := clusterClient(t, src, src.AuthenticationRedisPass)
	for k := range 500 {
		require.NoError(t, cc.Set(ctx(t), fmt.Sprint("key:", k), k, 0).Err())
		require.NoError(t, cc.HSet(ctx(t), fmt.Sprint("hash:", k), "f", k).Err())
	}
	var url api.SourceURL
	code, e := call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d/source_url", src.UID), nil, &url)
	require.Equal(t, 200, code, "%v", e)
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "plain-dst", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: url.URI}}})
	dc := dbClient(t, dst, dst.AuthenticationRedisPass)
	var masters []*redis.Client
	for _, ep := range src.Endpoints {
		require.Equal(t, "master", ep.Role)
		masters = append(masters, nodeClient(t, ep, src.AuthenticationRedisPass))
	}
	equal := func(what string) {
		t.Helper()
		eventually(t, 2*time.Minute, what, func() error {
			if db := getDB(t, i, dst.UID); db.ReplicaSyncStatus != api.SourceInSync {
				return fmt.Errorf("status %s: %+v", db.ReplicaSyncStatus, db.ReplicaSources)
			}
			return redistest.Diff(ctx(t), dc, masters...)
		})
	}
	equal("the destination equals the sharded source")
	st := getDB(t, i, dst.UID).ReplicaSources[0]
	require.Len(t, st.Shards, 2, "%+v", st)
	for _, sh := range st.Shards {
		assert.Equal(t, 1, sh.FullSyncs, "%+v", sh)
	}

	// A new admin password: the old one opens nothing, on any endpoint.
	var pw api.AdminPassword
	code, e = call(t, i, "POST", fmt.Sprintf("/v1/bdbs/%d/actions/regenerate_admin_password", src.UID), nil, &pw)
	require.Equal(t, 200, code, "%v", e)
	require.NoError(t, cc.Set(ctx(t), "after-regeneration", "1", 0).Err())
	eventually(t, time.Minute, "the destination says the password is wrong", func() error {
		st := getDB(t, i, dst.UID).ReplicaSources[0]
		if st.Status == api.SourceInSync || !strings.Contains(strings.ToUpper(st.LastError), "WRONGPASS") {
			return fmt.Errorf("status %s, last_error %q", st.Status, st.LastError)
		}
		return nil
	})
	exists, err := dc.Exists(ctx(t), "after-regeneration").Result()
	require.NoError(t, err)
	assert.Zero(t, exists, "a write reached the destination through a session of the old password")

	sources := []api.ReplicaSource{{URI: pw.URI}}
	code, e = call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", dst.UID), api.UpdateDatabaseRequest{ReplicaSources: &sources}, nil)
	require.Equal(t, 200, code, "%v", e)
	equal("the destination follows again with the new URL")
	st = getDB(t, i, dst.UID).ReplicaSources[0]
	require.Len(t, st.Shards, 2, "%+v", st)
	for _, sh := range st.Shards {
		assert.Equal(t, 1, sh.FullSyncs, "new credentials reloaded shard %s: %+v", sh.Slots, sh)
		assert.Positive(t, sh.PartialSyncs, "shard %s continued: %+v", sh.Slots, sh)
	}
}

// TestShardedSourceReadFromReplica: a destination with read_from =
// "replica" streams each shard of a sharded source from its replica's
// replication endpoint, as the source's CLUSTER SHARDS names it.
func TestShardedSourceReadFromReplica(t *testing.T) {
	i := servicetest.Start(t)
	src := mustCreate(t, i, api.CreateDatabaseRequest{Name: "sharded-src", MemorySize: 64 << 20, ShardsCount: 2, Replication: true})
	cc := clusterClient(t, src, src.AuthenticationRedisPass)
	for k := range 300 {
		require.NoError(t, cc.RPush(ctx(t), fmt.Sprint("list:", k), k, "x").Err())
	}
	var url api.SourceURL
	code, e := call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d/source_url", src.UID), nil, &url)
	require.Equal(t, 200, code, "%v", e)
	// The replicas must be linked before the destination asks for them.
	eventually(t, time.Minute, "the source's replicas are online", func() error {
		for _, ep := range getDB(t, i, src.UID).Endpoints {
			if ep.Role == "replica" && infoField(t, nodeClient(t, ep, src.AuthenticationRedisPass), "replication", "master_link_status") != "up" {
				return fmt.Errorf("replica %d not linked", ep.Port)
			}
		}
		return nil
	})
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "plain-dst", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: url.URI, ReadFrom: api.ReadFromReplica}}})
	dc := dbClient(t, dst, dst.AuthenticationRedisPass)
	replicaEndpoints := map[string]bool{}
	var masters []*redis.Client
	for _, ep := range getDB(t, i, src.UID).Endpoints {
		if ep.Role == "replica" {
			replicaEndpoints[fmt.Sprintf("%s:%d", ep.Host, ep.ReplicationPort)] = true
		} else {
			masters = append(masters, nodeClient(t, ep, src.AuthenticationRedisPass))
		}
	}
	require.NoError(t, cc.Set(ctx(t), "later", "1", 0).Err())
	eventually(t, 2*time.Minute, "the destination equals the source, read from its replicas", func() error {
		db := getDB(t, i, dst.UID)
		if db.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("status %s: %+v", db.ReplicaSyncStatus, db.ReplicaSources)
		}
		for _, sh := range db.ReplicaSources[0].Shards {
			if sh.Role != "replica" || !replicaEndpoints[sh.Node] {
				return fmt.Errorf("shard %s read from %s (%s), not a replica's endpoint %v", sh.Slots, sh.Node, sh.Role, replicaEndpoints)
			}
		}
		return redistest.Diff(ctx(t), dc, masters...)
	})
}
