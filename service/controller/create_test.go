package controller_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/controller"
	"github.com/replicad/terraform-provider-redis/service/databases"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
	"github.com/replicad/terraform-provider-redis/service/store"
)

// racedDatabases is the real process manager, except that it calls some
// taken ports free: what a second instance on the same host does when it
// binds a port between this one's check and its redis-server's start.
type racedDatabases struct {
	*databases.Manager
	raced map[int]bool
}

func (r racedDatabases) PortFree(port int) bool {
	return r.raced[port] || r.Manager.PortFree(port)
}

// listeningGateway holds each database's replication port with a real
// listener, as the service's gateway does.
type listeningGateway struct {
	mu  sync.Mutex
	lns map[int]net.Listener
}

func (g *listeningGateway) Ensure(d store.Database) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(d.ReplicationPort))
	if ln := g.lns[d.UID]; ln != nil {
		if ln.Addr().String() == addr {
			return nil
		}
		ln.Close()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for replication: %w", err)
	}
	g.lns[d.UID] = ln
	return nil
}

func (g *listeningGateway) Remove(uid int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ln := g.lns[uid]; ln != nil {
		ln.Close()
		delete(g.lns, uid)
	}
}

type noReplicas struct{}

func (noReplicas) Configure(context.Context, store.Database)                 {}
func (noReplicas) Remove(int)                                                {}
func (noReplicas) Loading(int) (bool, float64)                               { return false, 0 }
func (noReplicas) Status(store.Database) []api.ReplicaSourceStatus           { return nil }
func (noReplicas) ProbeCompression(context.Context, api.ReplicaSource) error { return nil }

type fixture struct {
	ctrl    *controller.Controller
	store   *store.Store
	dbs     *databases.Manager // the real process manager
	dataDir string
	base    int // first port of the range (10 ports)
}

// newFixture is a controller over the real process manager, in a port
// range of 10 from base, whose ports at base+raced are called free when
// taken (racedDatabases).
func newFixture(t *testing.T, raced ...int) *fixture {
	t.Helper()
	return newFixtureWith(t, func(dbs *databases.Manager, base int) controller.Databases {
		r := racedDatabases{Manager: dbs, raced: map[int]bool{}}
		for _, p := range raced {
			r.raced[base+p] = true
		}
		return r
	})
}

// newFixtureWith is newFixture with the process manager the controller
// is given made by wrap, from the real one and the range's first port.
func newFixtureWith(t *testing.T, wrap func(dbs *databases.Manager, base int) controller.Databases) *fixture {
	t.Helper()
	redisServer := servicetest.RequireRedisServer(t)
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dbs, err := databases.NewManager(databases.Config{RedisServer: redisServer, DataDir: dir, BindHost: "127.0.0.1", Logger: log})
	require.NoError(t, err)
	t.Cleanup(dbs.Close)
	// Below the kernel's ephemeral range (32768 and up), where outgoing
	// connections of this and other tests would take ports at random; in
	// the service's windows when the test's ports are confined.
	base := 11000 + 10*rand.IntN(300)
	if wb, n, sz, ok := redistest.ServiceWindows(); ok {
		base = wb + sz*rand.IntN(n)
	}
	gw := &listeningGateway{lns: map[int]net.Listener{}}
	t.Cleanup(func() {
		for uid := range gw.lns {
			gw.Remove(uid)
		}
	})
	ctrl := controller.New(controller.Config{
		Store: st, Databases: wrap(dbs, base), Replicator: noReplicas{}, Gateway: gw,
		AdvertiseHost: "127.0.0.1", PortMin: base, PortMax: base + 9, Logger: log,
	})
	return &fixture{ctrl: ctrl, store: st, dbs: dbs, dataDir: dir, base: base}
}

// squat holds a port as another program (or instance) would.
func squat(t *testing.T, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	require.NoError(t, err, "the test needs port %d free", port)
	t.Cleanup(func() { ln.Close() })
}

// dirs lists the database directories on disk.
func (f *fixture) dirs(t *testing.T) []string {
	entries, err := os.ReadDir(filepath.Join(f.dataDir, "dbs"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestAutoPortTakenAtStartIsReplaced(t *testing.T) {
	f := newFixture(t, 0)
	// The first port of the range looks free, but another instance's
	// redis-server got it first.
	squat(t, f.base)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	db, err := f.ctrl.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "raced", MemorySize: 16 << 20, AuthenticationRedisPass: "raced password"})
	require.NoError(t, err, "an automatically chosen port that turns out taken is replaced by another")
	assert.NotEqual(t, f.base, db.Port)
	assert.NotEqual(t, db.Port, db.ReplicationPort)
	assert.Equal(t, api.StatusActive, db.Status)

	c := redis.NewClient(&redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(db.Port)), Password: "raced password"})
	defer c.Close()
	assert.NoError(t, c.Set(ctx, "k", "v", 0).Err(), "the database serves on the port it reports")

	all, err := f.store.List()
	require.NoError(t, err)
	require.Len(t, all, 1)
	assert.Equal(t, db.Port, all[0].Port, "the state file holds the port really used")
}

func TestRequestedPortTakenAtStartIsAConflictAndLeavesNothing(t *testing.T) {
	f := newFixture(t, 5)
	squat(t, f.base+5)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	began := time.Now()
	_, err := f.ctrl.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "wanted", MemorySize: 16 << 20, Port: f.base + 5})
	var apiErr *api.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, api.CodeConflict, apiErr.Code)
	assert.Contains(t, apiErr.Description, strconv.Itoa(f.base+5), "the error names the port")
	assert.Less(t, time.Since(began), 20*time.Second, "a taken port is an error at once, not after redis-server retries")

	all, err := f.store.List()
	require.NoError(t, err)
	assert.Empty(t, all, "a failed create leaves no record")
	assert.Empty(t, f.dirs(t), "a failed create leaves no files")

	// Nothing trips a later call: the name is free again.
	db, err := f.ctrl.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "wanted", MemorySize: 16 << 20})
	require.NoError(t, err)
	assert.Equal(t, api.StatusActive, db.Status)
}

func (g *listeningGateway) SourceURL(d store.Database, host string) string {
	return "redis://admin:" + d.AdminPassword + "@" + net.JoinHostPort(host, strconv.Itoa(d.ReplicationPort))
}

func TestUnfinishedCreateIsRemovedAtStart(t *testing.T) {
	f := newFixture(t)
	// What a service killed in the middle of a create leaves: a record
	// still marked creating, and the database's directory.
	d, err := f.store.Create(store.Database{Name: "half-made", Port: f.base, ReplicationPort: f.base + 1, MemorySize: 16 << 20,
		InternalPassword: "internal", AdminPassword: "admin", RedisPassword: "application", Creating: true},
		func(*store.Database, []store.Database) error { return nil })
	require.NoError(t, err)
	dir := filepath.Join(f.dataDir, "dbs", strconv.Itoa(d.UID))
	require.NoError(t, os.MkdirAll(dir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "redis.conf"), []byte("port 1\n"), 0o600))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, f.ctrl.Start(ctx))
	all, err := f.store.List()
	require.NoError(t, err)
	assert.Empty(t, all, "the record of a create that never answered is gone")
	assert.Empty(t, f.dirs(t), "and so are its files")

	// Its name and ports are free for the next create.
	db, err := f.ctrl.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "half-made", MemorySize: 16 << 20})
	require.NoError(t, err)
	assert.Equal(t, api.StatusActive, db.Status)
	got, err := f.store.Get(db.UID)
	require.NoError(t, err)
	assert.False(t, got.Creating, "a database whose create answered is no longer marked creating")
}

// A sharded database recorded before sharded databases could be sources
// has nodes without replication endpoints: at start they get ports of
// their own, free and distinct from every other port of the database.
func TestNodesGetReplicationPortsAtStart(t *testing.T) {
	f := newFixture(t)
	b := f.base
	d, err := f.store.Create(store.Database{Name: "old-sharded", Port: b, ReplicationPort: b + 1, MemorySize: 32 << 20, ShardsCount: 2,
		Nodes:            []store.Node{{Port: b, BusPort: b + 2}, {Port: b + 3, BusPort: b + 4}},
		InternalPassword: "internal", AdminPassword: "admin", RedisPassword: "application"},
		func(*store.Database, []store.Database) error { return nil })
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, f.ctrl.Start(ctx))
	got, err := f.store.Get(d.UID)
	require.NoError(t, err)
	seen := map[int]bool{}
	for _, p := range got.Ports() {
		// (Node 0 listens on the database's port: listed twice.)
		assert.False(t, seen[p] && p != got.Port, "port %d is used twice: %+v", p, got)
		seen[p] = true
	}
	for i, n := range got.Nodes {
		assert.NotZero(t, n.ReplicationPort, "node %d", i)
		assert.True(t, n.ReplicationPort >= b && n.ReplicationPort <= b+9, "node %d: port %d out of the range", i, n.ReplicationPort)
	}
}
