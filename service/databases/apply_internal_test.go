package databases

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/store"
)

// startManager is a Manager of real redis-servers until the test ends.
func startManager(t *testing.T) *Manager {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs redis-server, not run with -short")
	}
	bin, err := FindRedisServer("")
	require.NoError(t, err)
	m, err := NewManager(Config{RedisServer: bin, DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(m.Close)
	return m
}

// A database created, then at once made a Replica Of (as Terraform does):
// the apply of settings its start scheduled may finish after the update's.
// It must not bring back the application user's write rights: every apply
// pushes the latest settings.
func TestALateApplyKeepsTheLatestSettings(t *testing.T) {
	m := startManager(t)
	ctx := redistest.Ctx(t)
	plain := store.Database{UID: 1, Port: redistest.FreePort(t), MemorySize: 32 << 20, RedisPassword: "app", AdminPassword: "admin", InternalPassword: "internal"}
	require.NoError(t, m.Create(ctx, plain))
	replica := plain
	replica.ReplicaSources = []api.ReplicaSource{{URI: "redis://127.0.0.1:1"}}
	replica.ReplicaSync = api.SyncEnabled
	require.True(t, replica.IsReplica())
	require.NoError(t, m.Ensure(ctx, replica))

	// The start's apply, late, with the settings it was scheduled with.
	require.NoError(t, m.applyLive(ctx, plain))
	app := redis.NewClient(&redis.Options{Addr: m.Addr(plain.Port), Password: "app"})
	t.Cleanup(func() { app.Close() })
	err := app.Set(ctx, "k", "v", 0).Err()
	require.Error(t, err, "the application user of a destination cannot write")
	assert.Contains(t, err.Error(), "NOPERM")
}

// The API's update of a database (a regenerated password, say) comes while
// the apply its start scheduled still waits for the server: that apply's
// connections must stay usable. Closing them made it wait for ever, with
// its turn taken, and every later apply and API call behind it.
func TestAnEnsureKeepsTheConnectionsInUse(t *testing.T) {
	m := startManager(t)
	ctx := redistest.Ctx(t)
	d := store.Database{UID: 1, Port: redistest.FreePort(t), MemorySize: 32 << 20, RedisPassword: "app", AdminPassword: "admin", InternalPassword: "internal"}
	require.NoError(t, m.Create(ctx, d))
	inUse := m.Client(d.UID)

	d.AdminPassword = "regenerated"
	require.NoError(t, m.Ensure(ctx, d))
	require.NoError(t, inUse.Ping(ctx).Err(), "the connections held before the update still work")
	assert.Same(t, inUse, m.Client(d.UID))

	// While an apply has the turn, another gives up with its context
	// instead of waiting for ever.
	p := m.procs[d.UID]
	p.applyTurn <- struct{}{}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err := m.applyLive(short, d)
	<-p.applyTurn
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, m.applyLive(ctx, d), "the turn is free again")
}

// A closed pool never answers again: waiting for it ends at once.
func TestWaitReadyEndsOnAClosedPool(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	require.NoError(t, c.Close())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := WaitReady(ctx, c)
	require.ErrorIs(t, err, redis.ErrClosed)
}
