package replication_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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

// pidOf is the process id of the redis-server that c talks to.
func pidOf(t *testing.T, c *redis.Client) int {
	t.Helper()
	info, err := c.InfoMap(context.Background(), "server").Result()
	require.NoError(t, err)
	pid, err := strconv.Atoi(info["Server"]["process_id"])
	require.NoError(t, err)
	return pid
}

// freeze stops process pid (SIGSTOP) until the returned function, or the
// end of the test, continues it.
func freeze(t *testing.T, pid int) func() {
	t.Helper()
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	var once sync.Once
	thaw := func() { once.Do(func() { _ = syscall.Kill(pid, syscall.SIGCONT) }) }
	t.Cleanup(thaw)
	return thaw
}

// TestFrozenDestinationIsOutOfSync freezes the destination's redis-server
// under load: the status must say out-of-sync, with a last_error saying
// the syncer is stuck and where, the metrics too, and once the destination
// runs again the sync resumes and catches up.
func TestFrozenDestinationIsOutOfSync(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456", "--repl-backlog-size", "256mb")
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 128 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	thaw := freeze(t, pidOf(t, dc))
	w := startIncrWriter(t, src.Client(), 20)

	var db api.Database
	redistest.Eventually(t, time.Minute, "the frozen destination's source is out of sync", func() error {
		db = a.get(dst.UID)
		if s := db.ReplicaSources[0]; s.Status != api.SourceOutOfSync || !strings.Contains(s.LastError, "stuck") {
			return fmt.Errorf("source %+v", s)
		}
		return nil
	})
	t.Logf("last_error: %s", db.ReplicaSources[0].LastError)
	assert.Contains(t, db.ReplicaSources[0].LastError, "destination")
	assert.GreaterOrEqual(t, metric(a.metrics(), "replicad_replica_stalls_total"), 1.0)

	thaw()
	w.stop()
	eventuallyEqual(t, 2*time.Minute, dc, src.Client())
	db = a.waitInSync(dst.UID, time.Minute)
	assert.Empty(t, db.ReplicaSources[0].LastError)
}

// TestFrozenSourceIsOutOfSync: a source that sends nothing, not even the
// ping it sends every 10 s, is not in sync.
func TestFrozenSourceIsOutOfSync(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	thaw := freeze(t, pidOf(t, src.Client()))

	frozen := time.Now()
	var db api.Database
	// The source pings every 10 s; the read timeout (60 s) is far later.
	redistest.Eventually(t, 40*time.Second, "the frozen source is out of sync", func() error {
		db = a.get(dst.UID)
		if s := db.ReplicaSources[0]; s.Status != api.SourceOutOfSync {
			return fmt.Errorf("source %+v", s)
		}
		return nil
	})
	t.Logf("out of sync %s after the source froze", time.Since(frozen).Round(time.Second))
	assert.Contains(t, db.ReplicaSources[0].LastError, "nothing received from the source")

	thaw()
	require.NoError(t, src.Client().Set(context.Background(), "after-thaw", "1", 0).Err())
	eventuallyEqual(t, 2*time.Minute, destClient(t, dst, 0), src.Client())
	db = a.waitInSync(dst.UID, 2*time.Minute)
	assert.Empty(t, db.ReplicaSources[0].LastError)
}
