package replication_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// TestBigTransactionsAreApplied: a script's effects (Redis 7 replicates
// them as one MULTI/EXEC) and a MULTI/EXEC, each of 100,000 commands, far
// more than the writer's queue holds, then a transaction that arrives
// slowly, split across many reads. Each must be applied, and what follows
// them too.
func TestBigTransactionsAreApplied(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	proxy := redistest.StartProxy(t, src.Addr())
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: "redis://:pw-123456@" + proxy.Addr}}})
	a.waitInSync(dst.UID, time.Minute)
	ctx := redistest.Ctx(t)
	sc, dc := src.Client(), destClient(t, dst, 0)

	const n = 100000
	script := `for i = 1, tonumber(ARGV[1]) do redis.call('HSET', KEYS[1], 'f' .. i, i) end
redis.call('SET', KEYS[2], ARGV[1])
return 1`
	require.NoError(t, sc.Eval(ctx, script, []string{"script:hash", "script:done"}, n).Err())
	tx := sc.TxPipeline()
	for i := range n {
		tx.RPush(ctx, "tx:list", i)
	}
	_, err := tx.Exec(ctx)
	require.NoError(t, err)
	require.NoError(t, sc.Set(ctx, "after-big", "1", 0).Err())
	eventuallyEqual(t, 3*time.Minute, dc, sc)

	// A transaction over a slow link: many reads, with pauses between them.
	proxy.Slow(1024, time.Millisecond)
	tx = sc.TxPipeline()
	for i := range 20000 {
		tx.HSet(ctx, "slow:hash", fmt.Sprint("f", i), i)
	}
	_, err = tx.Exec(ctx)
	require.NoError(t, err)
	require.NoError(t, sc.Set(ctx, "after-slow", "1", 0).Err())
	eventuallyEqual(t, 3*time.Minute, dc, sc)
	proxy.Slow(0, 0)

	db := a.waitInSync(dst.UID, time.Minute)
	assert.Empty(t, db.ReplicaSources[0].LastError)
	assert.Equal(t, int64(n), dc.HLen(context.Background(), "script:hash").Val())
	assert.Equal(t, int64(n), dc.LLen(context.Background(), "tx:list").Val())
}
