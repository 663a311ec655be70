package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/cluster"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(redistest.FreePort(t)))
}

// A sharded database's own endpoint looks like a node of a Redis Cluster to
// the code that discovers clustered sources (go-redis parsing CLUSTER
// SHARDS), needs no redis-server for it, and refuses to stream.
func TestShardedEndpointAnswersTheClusterQuestions(t *testing.T) {
	g := New(slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	defer g.Close()
	want := cluster.Topology{Shards: []cluster.Shard{
		{Slots: []cluster.Range{{Start: 0, End: 5460}}, Nodes: []cluster.Node{
			{ID: "m0", Addr: "127.0.0.1:7001", Role: cluster.RoleMaster, Health: cluster.HealthOK, Offset: 42},
			{ID: "r0", Addr: "127.0.0.1:7004", Role: cluster.RoleReplica, Health: "failed", Offset: 40}}},
		{Slots: []cluster.Range{{Start: 5461, End: 10000}, {Start: 10002, End: 16383}}, Nodes: []cluster.Node{
			{ID: "m1", Addr: "db.example:7002", Role: cluster.RoleMaster, Health: cluster.HealthOK}}},
	}}
	var fail atomic.Bool
	addr := freeAddr(t)
	require.NoError(t, g.Ensure(Endpoint{UID: 1, Listen: addr, AdminUser: "admin", AdminPassword: "secret",
		UpstreamNetwork: "unix", UpstreamAddr: "/nonexistent/socket", Refuse: "this database is sharded",
		Cluster: func(context.Context) (cluster.Topology, error) {
			if fail.Load() {
				return cluster.Topology{}, errors.New("no node answers")
			}
			return want, nil
		}}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: addr, Username: "admin", Password: "secret", Protocol: 2, DisableIdentity: true})
	defer c.Close()
	on, err := cluster.Enabled(ctx, c)
	require.NoError(t, err)
	assert.True(t, on, "INFO cluster")
	got, err := cluster.Discover(ctx, c, false)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	// The wrong password learns nothing.
	bad := redis.NewClient(&redis.Options{Addr: addr, Username: "admin", Password: "wrong", Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	defer bad.Close()
	_, err = bad.ClusterShards(ctx).Result()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "WRONGPASS")
	// A failure to read the cluster is an error, not an empty cluster.
	fail.Store(true)
	_, err = c.ClusterShards(ctx).Result()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no node answers")
	// No stream from the database's own endpoint.
	err = c.Do(ctx, "PSYNC", "?", "-1").Err()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "this database is sharded")
}

// With TLS, each node gives its endpoint's port as its TLS port too.
func TestAppendShardsTLSPort(t *testing.T) {
	out := string(appendShards(nil, cluster.Topology{Shards: []cluster.Shard{{Slots: []cluster.Range{{Start: 0, End: 16383}},
		Nodes: []cluster.Node{{ID: "a", Addr: "127.0.0.1:7000", Role: cluster.RoleMaster, Health: cluster.HealthOK}}}}}, true))
	assert.Contains(t, out, "$4\r\nport\r\n:7000\r\n$8\r\ntls-port\r\n:7000\r\n")
}
