package replication_test

import (
	"strconv"
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

// TestNoMasterLinkReplicaOnlyForms: a one-server destination without a
// master link (it could not be made) takes the stream as a primary, from a
// client. The forms a source propagates only to its replicas must still
// apply there: an approximate stream trim with LIMIT becomes an exact one
// that keeps the LIMIT, which a primary refused as a syntax error, and the
// sync stopped. The others (XSETID ENTRIESADDED MAXDELETEDID, XCLAIM
// LASTID, XGROUP CREATECONSUMER, SET KEEPTTL, RESTORE ABSTTL, an EXPIRE in
// the past made a DEL) are accepted by a primary too.
func TestNoMasterLinkReplicaOnlyForms(t *testing.T) {
	ctx := redistest.Ctx(t)
	src := redistest.Start(t, "--stream-node-max-entries", "4")
	sc := src.Client()
	i := servicetest.StartWith(t, func(c *app.Config) { c.NoMasterLink = true })
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 96 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)

	require.NoError(t, sc.XAdd(ctx, &redis.XAddArgs{Stream: "lower", Values: []any{"n", -1}}).Err())
	for n := range 200 {
		require.NoError(t, sc.Do(ctx, "XADD", "events", "MAXLEN", "~", 10, "LIMIT", 8, "*", "n", n).Err())
		require.NoError(t, sc.Do(ctx, "XADD", "other", "MINID", "~", "0-1", "LIMIT", 4, "*", "n", n).Err())
		require.NoError(t, sc.Do(ctx, "xadd", "lower", "NOMKSTREAM", "maxlen", "~", 5, "limit", 3, "*", "n", n).Err())
	}
	require.NoError(t, sc.Do(ctx, "XTRIM", "other", "MAXLEN", "~", 20, "LIMIT", 8).Err())
	require.NoError(t, sc.Do(ctx, "XTRIM", "events", "MINID", "~", "0-1", "LIMIT", 8).Err())

	require.NoError(t, sc.Do(ctx, "XGROUP", "CREATE", "events", "g", "0").Err())
	require.NoError(t, sc.Do(ctx, "XGROUP", "CREATECONSUMER", "events", "g", "idle").Err())
	require.NoError(t, sc.Do(ctx, "XREADGROUP", "GROUP", "g", "c1", "COUNT", 3, "STREAMS", "events", ">").Err())
	require.NoError(t, sc.Do(ctx, "XAUTOCLAIM", "events", "g", "c2", 0, "0-0", "COUNT", 2).Err())
	require.NoError(t, sc.Do(ctx, "XSETID", "other", "99999999999999-0", "ENTRIESADDED", 1000, "MAXDELETEDID", "1-0").Err())
	require.NoError(t, sc.Do(ctx, "SET", "kept", "v", "EX", 3600).Err())
	require.NoError(t, sc.Do(ctx, "SET", "kept", "w", "KEEPTTL").Err())
	require.NoError(t, sc.Do(ctx, "SET", "at", "v", "PXAT", time.Now().Add(time.Hour).UnixMilli()).Err())
	require.NoError(t, sc.Do(ctx, "GETEX", "at", "EX", 7200).Err())
	dump, err := sc.Dump(ctx, "kept").Result()
	require.NoError(t, err)
	require.NoError(t, sc.Do(ctx, "RESTORE", "restored", time.Now().Add(time.Hour).UnixMilli(), dump, "ABSTTL").Err())
	require.NoError(t, sc.Set(ctx, "gone", "v", 0).Err())
	require.NoError(t, sc.Do(ctx, "EXPIRE", "gone", -1).Err())
	require.NoError(t, sc.Set(ctx, "done", "1", 0).Err())

	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)

	// Restarted, the destination is configured a read-only replica
	// again: the sync makes it a primary anew and goes on.
	killDestination(t, i, dst.UID)
	for n := range 50 {
		require.NoError(t, sc.Do(ctx, "XADD", "events", "MAXLEN", "~", 10, "LIMIT", 8, "*", "n", n).Err())
		require.NoError(t, sc.Set(ctx, "after:"+strconv.Itoa(n), n, 0).Err())
	}
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)
	db := a.get(dst.UID)
	require.Len(t, db.ReplicaSources, 1)
	assert.Equal(t, api.SourceInSync, db.ReplicaSources[0].Status)
	assert.Empty(t, db.ReplicaSources[0].LastError)
}
