package app_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
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

// The readers of one shard of a sharded destination hold memory that
// counts toward that shard's maxmemory, as on a one-server destination
// (TestReadersHoldingMemoryDoNotStopTheSync): the refusal was taken for a
// slot move, retried, then stopped the sync for good, blaming the data.
// Now the shard's own memory is read: the destination waits for the
// clients to free it, saying so, then is loaded again.
func TestReadersHoldingAShardsMemoryDoNotStopTheSync(t *testing.T) {
	i := servicetest.Start(t)
	src := redistest.Start(t)
	sc := src.Client()
	for n := range 1000 {
		require.NoError(t, sc.Set(ctx(t), fmt.Sprintf("k%d", n), strings.Repeat("v", 100), 0).Err())
	}
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst", MemorySize: 96 << 20, ShardsCount: 3,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	eventually(t, time.Minute, "in sync", func() error {
		if s := getDB(t, i, dst.UID).ReplicaSyncStatus; s != api.SourceInSync {
			return fmt.Errorf("status %s", s)
		}
		return nil
	})

	// A reader of the first master announces a 100 MB argument and sends
	// 40 MB of it (its shard's limit is 32 MiB), and a thousand
	// connections to it send nothing.
	var hogged api.NodeEndpoint
	for _, ep := range dst.Endpoints {
		if ep.Role == "master" {
			hogged = ep
			break
		}
	}
	release := holdMemory(t, net.JoinHostPort(hogged.Host, strconv.Itoa(hogged.Port)), dst.AuthenticationRedisPass, true)

	// Meanwhile the source writes, some of it to the hogged shard.
	for n := range 2000 {
		require.NoError(t, sc.Set(ctx(t), fmt.Sprintf("after%d", n), strings.Repeat("w", 100), 0).Err())
	}
	eventually(t, time.Minute, "the status says what the destination waits for", func() error {
		db := getDB(t, i, dst.UID)
		if db.ReplicaSync != api.SyncEnabled {
			t.Fatalf("the sync stopped: %+v", db.ReplicaSources)
		}
		if e := db.ReplicaSources[0].LastError; !strings.Contains(e, "waiting for its clients to free") || !strings.Contains(e, strconv.Itoa(hogged.Port)) {
			return fmt.Errorf("last_error %q (want the wait, on shard %d)", e, hogged.Port)
		}
		return nil
	})
	release()
	var masters []*redis.Client
	for _, ep := range dst.Endpoints {
		if ep.Role == "master" {
			masters = append(masters, nodeClient(t, ep, dst.AuthenticationRedisPass))
		}
	}
	eventually(t, 2*time.Minute, "the destination holds the source's data", func() error {
		if db := getDB(t, i, dst.UID); db.ReplicaSync != api.SyncEnabled {
			t.Fatalf("the sync stopped: %+v", db.ReplicaSources)
		}
		return redistest.DiffMasters(ctx(t), masters, "replicad:", sc)
	})
	eventually(t, time.Minute, "in sync", func() error {
		if s := getDB(t, i, dst.UID).ReplicaSyncStatus; s != api.SourceInSync {
			return fmt.Errorf("status %s", s)
		}
		return nil
	})
}

// A sharded destination that cannot be flushed for its load (a reader
// holds a shard over its maxmemory: the flush's transaction is refused out
// of memory) says so in its source's status, with Redis's reason, for as
// long as it keeps failing: it said "syncing" with no error, and Terraform
// waited its whole timeout for a load that never started.
func TestShardedDestinationFlushFailureIsShown(t *testing.T) {
	i := servicetest.Start(t)
	src := redistest.Start(t)
	require.NoError(t, src.Client().Set(ctx(t), "k", "v", 0).Err())
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "held", MemorySize: 64 << 20, ShardsCount: 2})
	var hogged api.NodeEndpoint
	for _, ep := range dst.Endpoints {
		if ep.Role == "master" {
			hogged = ep
			break
		}
	}
	// The shard's limit is 32 MiB.
	holdMemory(t, net.JoinHostPort(hogged.Host, strconv.Itoa(hogged.Port)), dst.AuthenticationRedisPass, false)
	sources := []api.ReplicaSource{{URI: src.URL()}}
	code, e := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", dst.UID), api.UpdateDatabaseRequest{ReplicaSources: &sources}, nil)
	require.Equal(t, 200, code, "%v", e)

	check := func() error {
		s := getDB(t, i, dst.UID).ReplicaSources[0]
		if s.Status == api.SourceInSync {
			t.Fatalf("in sync over its memory_size: %+v", s)
		}
		if !strings.Contains(s.LastError, "OOM") || strings.Contains(s.LastError, "EXECABORT") {
			return fmt.Errorf("status %s, last_error %q: want the OOM that refused the flush", s.Status, s.LastError)
		}
		return nil
	}
	eventually(t, 30*time.Second, "the status says why the load cannot start", check)
	// And goes on saying it across the next failed rounds.
	// (Counting the failures in the last 150 log lines would not do: once
	// the tail is full, each new line pushes an old one out, and the count
	// can stay the same while rounds keep failing.)
	for range 3 {
		mark := i.LogMark()
		eventually(t, 30*time.Second, "another failed round", func() error {
			if !strings.Contains(i.LogsSince(mark), "replication round failed; retrying") {
				return errors.New("no new failure yet")
			}
			return nil
		})
		require.NoError(t, check())
	}
}
