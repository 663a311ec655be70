package app_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// TestShardedDestinationWithTLS: a sharded database whose nodes speak only
// TLS is the Replica Of a plain Redis (the service writes to its nodes
// over their unix sockets, found by the TLS ports the cluster announces);
// applications read the source's keys through a TLS cluster client.
func TestShardedDestinationWithTLS(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	sc := src.Client()
	for k := range 500 {
		require.NoError(t, sc.Set(ctx(t), "k"+strconv.Itoa(k), k, 0).Err())
	}
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "secure-replica", MemorySize: 64 << 20, ShardsCount: 2, TLSMode: api.TLSEnabled,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	var cl api.Cluster
	code, e := call(t, i, "GET", "/v1/cluster", nil, &cl)
	require.Equal(t, 200, code, "%v", e)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM([]byte(cl.CACert)))
	var addrs []string
	for _, ep := range db.Endpoints {
		addrs = append(addrs, net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)))
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Password: db.AuthenticationRedisPass,
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: db.Endpoints[0].Host}})
	defer c.Close()
	eventually(t, 2*time.Minute, "every key of the source at the TLS sharded destination", func() error {
		if st := getDB(t, i, db.UID).ReplicaSyncStatus; st != api.SourceInSync {
			return fmt.Errorf("status %s", st)
		}
		var mu sync.Mutex
		keys := 0
		if err := c.ForEachMaster(ctx(t), func(ctx context.Context, m *redis.Client) error {
			n, err := m.Keys(ctx, "k*").Result()
			mu.Lock()
			keys += len(n)
			mu.Unlock()
			return err
		}); err != nil {
			return err
		}
		if keys != 500 {
			return fmt.Errorf("%d keys, want 500", keys)
		}
		for k := range 500 {
			if v, err := c.Get(ctx(t), "k"+strconv.Itoa(k)).Result(); err != nil || v != strconv.Itoa(k) {
				return fmt.Errorf("k%d = %q %v", k, v, err)
			}
		}
		return nil
	})
}
