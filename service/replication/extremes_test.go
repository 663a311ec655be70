package replication_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// TestACommandOfMoreThanAMillionArgumentsOnTheStream: a client may send
// one HSET, SADD or RPUSH of any number of arguments (Redis refuses a
// multibulk only past 2^31), and the source propagates it whole to its
// replicas. One of 1.2 million arguments must be applied like any other
// command, the sync going on after it.
func TestACommandOfMoreThanAMillionArgumentsOnTheStream(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	src := redistest.Start(t, "--repl-backlog-size", "128mb")
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 512 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, time.Minute)
	ctx := redistest.Ctx(t)
	// One command of this size takes the source seconds to run.
	o := *src.Client().Options()
	o.ReadTimeout = time.Minute
	sc := redis.NewClient(&o)
	t.Cleanup(func() { sc.Close() })

	const pairs = 530_000
	args := make([]any, 0, 2+2*pairs)
	args = append(args, "HSET", "wide-hash")
	for n := range pairs {
		args = append(args, fmt.Sprint("f", n), n)
	}
	require.NoError(t, sc.Do(ctx, args...).Err())
	members := make([]any, 0, 2+2*pairs)
	members = append(members, "SADD", "wide-set")
	for n := range 2*pairs - 10_000 {
		members = append(members, n)
	}
	require.NoError(t, sc.Do(ctx, members...).Err())
	require.NoError(t, sc.Incr(ctx, "after").Err())

	dc := destClient(t, dst, 0)
	eventuallyEqual(t, 2*time.Minute, dc, sc)
	db := a.waitInSync(dst.UID, time.Minute)
	require.Empty(t, db.ReplicaSources[0].LastError)
	require.Equal(t, api.SyncEnabled, db.ReplicaSync)
}

// TestASessionAfterAStallHasItsOwnStallClock: the destination froze with
// a command pending, and the watchdog restarted the syncer from its
// checkpoint, as it should. The next session asks the source for the
// same commands again, over a link slow enough that they take longer
// than the stall limit to arrive: the new session's writer waits for the
// source, not for the destination, and is not stuck. It was taken for
// stuck at once, with the last session's clock and offsets ("applied
// nothing for 27s ... received N"), and restarted again and again.
func TestASessionAfterAStallHasItsOwnStallClock(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, time.Minute)
	ctx := redistest.Ctx(t)
	sc, dc := src.Client(), destClient(t, dst, 0)

	thaw := freeze(t, pidOf(t, dc))
	require.NoError(t, sc.Set(ctx, "big", noise(2<<20), 0).Err())
	require.NoError(t, sc.Incr(ctx, "after-big").Err())
	redistest.Eventually(t, time.Minute, "the frozen destination's syncer restarted", func() error {
		if s := a.get(dst.UID).ReplicaSources[0]; !strings.Contains(s.LastError, "stuck") {
			return fmt.Errorf("source %+v", s)
		}
		return nil
	})
	thaw()
	eventuallyEqual(t, 90*time.Second, dc, sc)
	db := a.waitInSync(dst.UID, time.Minute)
	require.Empty(t, db.ReplicaSources[0].LastError)
	// One stall, the frozen destination's; under load, one more at most.
	require.LessOrEqual(t, metric(a.metrics(), "replicad_replica_stalls_total"), 2.0,
		"the syncer was restarted again and again after the destination thawed")
}
