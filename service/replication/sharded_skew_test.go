package replication_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// A source whose keys share one hash tag holds more than one shard's part
// of memory_size, though less than memory_size: the full load fills that
// shard alone. It must not say in sync; it stops, saying out of memory,
// with the database's memory_size and the shard's part of it told apart.
func TestShardedDestinationLoadSkewedByAHashTagOutOfMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	src := redistest.Start(t)
	sc := src.Client()
	ctx := redistest.Ctx(t)
	p := sc.Pipeline()
	for n := range 150 {
		p.Set(ctx, fmt.Sprint("{hot}:", n), strings.Repeat("x", 200000), 0)
	}
	_, err := p.Exec(ctx)
	require.NoError(t, err)
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "skewed", MemorySize: 48 << 20, ShardsCount: 3,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	redistest.Eventually(t, 90*time.Second, "the load stops on out of memory", func() error {
		db := a.get(dst.UID)
		require.NotEqual(t, api.SourceInSync, db.ReplicaSyncStatus, "in sync though a shard cannot hold the keys: %+v", db.ReplicaSources)
		if !strings.Contains(db.ReplicaSources[0].LastError, "out of memory") {
			return fmt.Errorf("sync %s status %s, source %+v", db.ReplicaSync, db.ReplicaSyncStatus, db.ReplicaSources[0])
		}
		return nil
	})
	// What the user set is 48 MiB: the error must not call 16 MiB the
	// memory_size, and must say it is split across the shards.
	e := a.get(dst.UID).ReplicaSources[0].LastError
	require.NotContains(t, e, "memory_size is 16 MiB", "the shard's part named as the memory_size")
	require.Contains(t, e, "memory_size of 48 MiB split across 3 shards", "says the memory_size is split")
	require.Contains(t, e, "hash tag", "says why one shard fills first")
}
