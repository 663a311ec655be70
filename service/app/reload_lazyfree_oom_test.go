package app_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// A reload over the master link swaps the new dataset in and has Redis free
// the previous one in the background ("Discarding old DB in background").
// The service checked the destination's memory right after the swap, while
// the old dataset was still being freed, and stopped the sync for good,
// "out of memory (raise its memory_size): the loaded data takes N MiB", for
// a dataset that fits in memory_size.
func TestAReloadOverTheLinkIsNotStoppedByTheOldDatasetBeingFreed(t *testing.T) {
	i := servicetest.Start(t)
	src := mustCreate(t, i, api.CreateDatabaseRequest{Name: "src", MemorySize: 1 << 30})
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20})
	source := dbClient(t, src, src.AuthenticationRedisPass)
	destination := dbClient(t, dst, dst.AuthenticationRedisPass)
	fill := func(from, to int) {
		for start := from; start < to; start += 10000 {
			pipe := source.Pipeline()
			for k := start; k < min(start+10000, to); k++ {
				pipe.Set(ctx(t), "k:"+strconv.Itoa(k), "0123456789012345678901234567890123456789", 0)
			}
			_, err := pipe.Exec(ctx(t))
			require.NoError(t, err)
		}
	}
	fill(0, 900_000)
	sources := []api.ReplicaSource{{URI: sourceURL(t, i, src.UID)}}
	put := func(req api.UpdateDatabaseRequest) {
		code, apiErr := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", dst.UID), req, nil)
		require.Equal(t, 200, code, "%v", apiErr)
	}
	put(api.UpdateDatabaseRequest{ReplicaSources: &sources})
	get := func() api.Database {
		var got api.Database
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", dst.UID), nil, &got)
		require.Len(t, got.ReplicaSources, 1)
		return got
	}
	inSync := func() error {
		got := get()
		if s := got.ReplicaSources[0]; got.ReplicaSync != api.SyncEnabled || s.Status != api.SourceInSync {
			return fmt.Errorf("sync %s, status %s: %s", got.ReplicaSync, s.Status, s.LastError)
		}
		return nil
	}
	eventually(t, 2*time.Minute, "the destination is loaded", inSync)
	used := func() int64 {
		n, err := strconv.ParseInt(infoField(t, destination, "memory", "used_memory"), 10, 64)
		require.NoError(t, err)
		return n
	}
	old := used()
	require.LessOrEqual(t, old, int64(128<<20), "setup: the old dataset must take at most half of memory_size, for a load over the link")

	// The source grows while the sync is stopped; enabled again, it
	// reloads in full: the new dataset fits in memory_size, the two
	// together do not.
	stopped, enabled := api.SyncStopped, api.SyncEnabled
	put(api.UpdateDatabaseRequest{ReplicaSync: &stopped})
	fill(900_000, 1_500_000)
	put(api.UpdateDatabaseRequest{ReplicaSync: &enabled})

	deadline := time.Now().Add(2 * time.Minute)
	for inSync() != nil {
		got := get()
		require.NotEqual(t, api.SyncStopped, got.ReplicaSync,
			"the sync stopped during the reload (old dataset %d MiB, memory_size 256 MiB): %s", old>>20, got.ReplicaSources[0].LastError)
		require.True(t, time.Now().Before(deadline), "not in sync 2 minutes after the reload began: %v", inSync())
		time.Sleep(50 * time.Millisecond)
	}
	require.Less(t, used(), int64(256<<20), "setup: the new dataset fits in memory_size")
	// 1.5M keys: their count and a few of them (a full Diff takes minutes).
	want, err := source.DBSize(ctx(t)).Result()
	require.NoError(t, err)
	got, err := destination.DBSize(ctx(t)).Result()
	require.NoError(t, err)
	require.Equal(t, want, got)
	for _, k := range []int{0, 899_999, 900_000, 1_499_999} {
		v, err := destination.Get(ctx(t), "k:"+strconv.Itoa(k)).Result()
		require.NoError(t, err, "k:%d", k)
		require.Equal(t, "0123456789012345678901234567890123456789", v)
	}
}
