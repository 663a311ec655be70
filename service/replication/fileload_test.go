package replication_test

import (
	"strconv"
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

// rdbKeysLoaded is how many keys the destination's redis-server last
// loaded from an RDB file (INFO persistence), as its application user sees.
func rdbKeysLoaded(t *testing.T, db api.Database) int {
	info, err := destClient(t, db, 0).Info(redistest.Ctx(t), "persistence").Result()
	require.NoError(t, err)
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "rdb_last_load_keys_loaded:"); ok {
			n, err := strconv.Atoi(v)
			require.NoError(t, err)
			return n
		}
	}
	t.Fatal("INFO persistence has no rdb_last_load_keys_loaded")
	return 0
}

// One source's full load goes through an RDB file that the destination
// loads natively: every type and encoding, big keys whole or in chunks,
// TTLs, consumer groups, several databases, with writes during the load;
// and the stream continues from the checkpoint the file carried.
func TestSingleSourceLoadsFromAFile(t *testing.T) {
	src := redistest.Start(t)
	sc := src.ClientDB(0)
	writeDataset(t, sc, "", 30000)
	writeDataset(t, src.ClientDB(5), "db5:", 100)
	// A big string, over the raw limit below: written from its parts.
	require.NoError(t, sc.Set(redistest.Ctx(t), "bigstring", strings.Repeat("s", 300<<10), time.Hour).Err())
	w := startIncrWriter(t, sc, 50)

	// The path of a destination whose link cannot take the load.
	i := servicetest.StartWith(t, func(c *app.Config) { c.FileLoadRawLimit = 256 << 10; c.NoLinkLoad = true })
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 512 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, 2*time.Minute)
	loaded := rdbKeysLoaded(t, dst)
	assert.Greater(t, loaded, 200, "the destination loaded the dataset from an RDB file")
	w.stop()
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 5), src.ClientDB(5))
	pending, err := destClient(t, dst, 0).XPending(redistest.Ctx(t), "stream", "g1").Result()
	require.NoError(t, err)
	assert.EqualValues(t, 1, pending.Count, "the consumer group's pending entry")

	// The stream goes on, from the checkpoint the file carried: no
	// second full sync.
	writeDataset(t, sc, "after:", 100)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)
	stats, err := sc.Info(redistest.Ctx(t), "stats").Result()
	require.NoError(t, err)
	assert.Contains(t, stats, "sync_full:1\r\n", "one full sync")
	assert.Equal(t, loaded, rdbKeysLoaded(t, dst), "one file load")

	// A restart of the service resumes from the checkpoint too.
	i.Restart(t)
	writeDataset(t, sc, "restarted:", 100)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)

	// Another source, with the same function library as the first: the
	// destination loads its file in place of everything it held, the
	// library included.
	const lib = "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return args[1] end)"
	ctx := redistest.Ctx(t)
	require.NoError(t, sc.FunctionLoadReplace(ctx, lib).Err())
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)
	other := redistest.Start(t)
	oc := other.ClientDB(0)
	require.NoError(t, oc.FunctionLoad(ctx, lib).Err())
	writeDataset(t, oc, "other:", 100)
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: other.URL()}}})
	a.waitInSync(dst.UID, 2*time.Minute)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), oc)
	got, err := destClient(t, dst, 0).FCall(ctx, "myfunc", nil, "hello").Text()
	require.NoError(t, err)
	assert.Equal(t, "hello", got, "the library came with the other source's data")
}

// A dataset that cannot go through a file (here a stream bigger than the
// raw limit, which cannot be written from chunks) is loaded with commands
// instead, whole.
func TestFileLoadFallsBackToCommands(t *testing.T) {
	src := redistest.Start(t)
	sc := src.ClientDB(0)
	writeDataset(t, sc, "", 1000)
	for n := range 500 {
		require.NoError(t, sc.XAdd(redistest.Ctx(t), &redis.XAddArgs{Stream: "bigstream", Values: []any{"n", n, "pad", noise(40)}}).Err())
	}
	i := servicetest.StartWith(t, func(c *app.Config) { c.FileLoadRawLimit = 4 << 10 })
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, 2*time.Minute)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)
	assert.Equal(t, 0, rdbKeysLoaded(t, dst), "no file was loaded")
}
