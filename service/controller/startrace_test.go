package controller_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/controller"
	"github.com/replicad/terraform-provider-redis/service/databases"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
	"github.com/replicad/terraform-provider-redis/service/store"
)

// heldCreates is the real process manager whose creates wait until the
// test lets them go on.
type heldCreates struct {
	*databases.Manager
	entered chan struct{}
	proceed chan struct{}
}

func (h heldCreates) Create(ctx context.Context, d store.Database) error {
	h.entered <- struct{}{}
	<-h.proceed
	return h.Manager.Create(ctx, d)
}

// The API serves while Start brings the databases back: a create under way
// then has a record that says creating, which Start must not take for one
// that a previous life of the service never finished (and remove, with
// its files, under the create's feet).
func TestStartLeavesACreateUnderWayAlone(t *testing.T) {
	redisServer := servicetest.RequireRedisServer(t)
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dbs, err := databases.NewManager(databases.Config{RedisServer: redisServer, DataDir: dir, BindHost: "127.0.0.1", Logger: log})
	require.NoError(t, err)
	t.Cleanup(dbs.Close)
	held := heldCreates{Manager: dbs, entered: make(chan struct{}, 1), proceed: make(chan struct{})}
	gw := &listeningGateway{lns: map[int]net.Listener{}}
	t.Cleanup(func() {
		for uid := range gw.lns {
			gw.Remove(uid)
		}
	})
	base := 24960 + 10*int(time.Now().UnixNano()%3)
	ctrl := controller.New(controller.Config{Store: st, Databases: held, Replicator: noReplicas{}, Gateway: gw,
		AdvertiseHost: "127.0.0.1", PortMin: base, PortMax: base + 9, Logger: log})
	t.Cleanup(ctrl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	type result struct {
		db  api.Database
		err error
	}
	created := make(chan result, 1)
	go func() {
		db, err := ctrl.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "early", MemorySize: 16 << 20})
		created <- result{db, err}
	}()
	<-held.entered
	require.NoError(t, ctrl.Start(ctx))
	close(held.proceed)
	r := <-created
	require.NoError(t, r.err)
	assert.Equal(t, api.StatusActive, r.db.Status)
	got, err := st.Get(r.db.UID)
	require.NoError(t, err, "the record of the create is kept")
	assert.False(t, got.Creating)
	_, err = os.Stat(filepath.Join(dir, "dbs", strconv.Itoa(r.db.UID), "redis.conf"))
	require.NoError(t, err, "and so are its files")
}
