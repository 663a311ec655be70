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

// TestShardedDestinationMissingKeyErrorSaysWhy: a sharded destination
// expires keys by itself (a documented limit). A stream command of the
// source on a key that expired there while the destination lagged (found
// by the random workload: an XGROUP on a stream with a short TTL) stops
// the sync; its last_error must name the command and say that
// the key may have expired on the destination, not only quote Redis.
func TestShardedDestinationMissingKeyErrorSaysWhy(t *testing.T) {
	ctx := redistest.Ctx(t)
	src := redistest.Start(t, "--repl-backlog-size", "16mb")
	sc := src.Client()
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "sharded", MemorySize: 96 << 20, ShardsCount: 3,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)

	require.NoError(t, sc.XAdd(ctx, &redis.XAddArgs{Stream: "{t}stream", Values: []any{"f", "v"}}).Err())
	require.NoError(t, sc.XGroupCreate(ctx, "{t}stream", "g", "0").Err())
	require.NoError(t, sc.PExpire(ctx, "{t}stream", 3*time.Second).Err())
	eventuallyEqualSharded(t, a, dst.UID, time.Minute, sc)

	// The destination lags (a paused sync) while the TTL passes there; the
	// source uses the key just before it expires at the source too.
	paused, enabled := api.SyncPaused, api.SyncEnabled
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSync: &paused})
	require.NoError(t, sc.XGroupCreateConsumer(ctx, "{t}stream", "g", "consumer").Err())
	redistest.Eventually(t, time.Minute, "the key expired at the source", func() error {
		if n := sc.Exists(ctx, "{t}stream").Val(); n != 0 {
			return fmt.Errorf("exists %d", n)
		}
		return nil
	})
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSync: &enabled})

	var lastError string
	redistest.Eventually(t, time.Minute, "the sync stops with the destination's error", func() error {
		db := a.get(dst.UID)
		// Stopped, not an error on the way (the link coming back after
		// the pause, say) that the sync retries.
		if db.ReplicaSync != api.SyncStopped || len(db.ReplicaSources) != 1 || db.ReplicaSources[0].LastError == "" {
			return fmt.Errorf("sync %s, sources %+v", db.ReplicaSync, db.ReplicaSources)
		}
		lastError = db.ReplicaSources[0].LastError
		return nil
	})
	t.Log(lastError)
	assert.Contains(t, lastError, `XGROUP CREATECONSUMER "{t}stream"`)
	assert.Contains(t, lastError, "requires the key to exist")
	assert.True(t, strings.Contains(lastError, "may have expired on the destination by itself"), lastError)
}

// TestShardedDestinationApproximateStreamTrims: an XADD or XTRIM with an
// approximate trim and a LIMIT reaches the stream rewritten by the source
// as an exact trim that keeps its LIMIT, which a plain primary refuses;
// a sharded destination applied it as it came and stopped (found by
// TestRandomWorkloadShardedDestination).
func TestShardedDestinationApproximateStreamTrims(t *testing.T) {
	ctx := redistest.Ctx(t)
	src := redistest.Start(t, "--stream-node-max-entries", "4")
	sc := src.Client()
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "sharded", MemorySize: 96 << 20, ShardsCount: 3,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)

	for n := range 200 {
		require.NoError(t, sc.Do(ctx, "XADD", "events", "MAXLEN", "~", 10, "LIMIT", 8, "*", "n", n).Err())
		require.NoError(t, sc.Do(ctx, "XADD", "other", "MINID", "~", "0-1", "LIMIT", 4, "*", "n", n).Err())
	}
	require.NoError(t, sc.Do(ctx, "XTRIM", "other", "MAXLEN", "~", 20, "LIMIT", 8).Err())
	eventuallyEqualSharded(t, a, dst.UID, time.Minute, sc)
	db := a.waitInSync(dst.UID, time.Minute)
	assert.Empty(t, db.ReplicaSources[0].LastError)
}
