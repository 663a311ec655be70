package replication_test

import (
	"fmt"
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
