package replication_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/layout"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// Logical database 16 of the service's databases is its own (the
// checkpoints of a destination), yet their application user can reach it
// (SELECT 16, MOVE k 16, COPY ... DB 16). What an application puts there
// used to stop the sync of every destination of the database, for good
// (the full load refused it too): it is not replicated, the sync goes on,
// and the source's sync_note counts it.
func TestTheServicesDatabaseOfASourceIsNotReplicated(t *testing.T) {
	i := servicetest.Start(t)
	a := newAPI(t, i)
	src := a.create(api.CreateDatabaseRequest{Name: "src", MemorySize: 64 << 20})
	ctx := redistest.Ctx(t)
	sc, s16 := destClient(t, src, 0), destClient(t, src, layout.CheckpointDB)
	require.NoError(t, sc.Set(ctx, "k", "1", 0).Err())
	require.NoError(t, s16.Set(ctx, "before-the-load", "x", 0).Err(), "SELECT 16 is open to the application")

	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: a.sourceURL(src.UID)}}})
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)

	// While it streams.
	require.NoError(t, s16.Set(ctx, "while-streaming", "x", 0).Err())
	require.NoError(t, sc.Set(ctx, "moved", "1", 0).Err())
	require.NoError(t, sc.Set(ctx, "copied", "1", 0).Err())
	require.NoError(t, sc.Move(ctx, "moved", layout.CheckpointDB).Err())
	require.NoError(t, sc.Do(ctx, "COPY", "copied", "copied", "DB", layout.CheckpointDB).Err())
	require.NoError(t, sc.Set(ctx, "after", "1", 0).Err())
	eventuallyEqual(t, time.Minute, dc, sc)

	// A write right before a dropped COPY is not held back until the
	// source's next ping (10 s).
	pipe := sc.Pipeline()
	pipe.Set(ctx, "right-before", "1", 0)
	pipe.Do(ctx, "COPY", "after", "after", "DB", layout.CheckpointDB, "REPLACE")
	_, err := pipe.Exec(ctx)
	require.NoError(t, err)
	redistest.Eventually(t, 5*time.Second, "the write before the COPY is applied", func() error {
		return dc.Get(ctx, "right-before").Err()
	})
	db := a.waitInSync(dst.UID, time.Minute)
	s := db.ReplicaSources[0]
	assert.Empty(t, s.LastError)
	assert.Equal(t, api.SyncEnabled, db.ReplicaSync)
	assert.Contains(t, s.SyncNote, fmt.Sprintf("logical database %d", layout.CheckpointDB))

	// Nothing of it reached the destination's own database 16.
	internal := i.App.Databases().Client(dst.UID)
	require.NotNil(t, internal)
	for _, k := range []string{"before-the-load", "while-streaming", "moved", "copied"} {
		n, err := internal.Do(ctx, "EVAL", fmt.Sprintf("redis.call('SELECT', %d) return redis.call('EXISTS', KEYS[1])", layout.CheckpointDB), 1, k).Int()
		require.NoError(t, err)
		assert.Zero(t, n, "%s is in the destination's database %d", k, layout.CheckpointDB)
	}
	assert.False(t, strings.Contains(s.SyncNote, "password"))

	// A key moved out of database 16 into one the applications use is
	// unknown to the destination: it is re-replicated, and has it.
	require.NoError(t, s16.Set(ctx, "out", "1", 0).Err())
	require.NoError(t, s16.Move(ctx, "out", 0).Err())
	eventuallyEqual(t, 2*time.Minute, dc, sc)
	a.waitInSync(dst.UID, time.Minute)
}
