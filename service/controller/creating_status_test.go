package controller_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/controller"
	"github.com/replicad/terraform-provider-redis/service/databases"
	"github.com/replicad/terraform-provider-redis/service/store"
)

// heldDatabases is the real process manager, except that a create, once
// its redis-server serves, waits for release: the moment when a create is
// still under way (its settings applied, its record not final yet).
type heldDatabases struct {
	*databases.Manager
	started chan struct{}
	release chan struct{}
}

func (h heldDatabases) Create(ctx context.Context, d store.Database) error {
	if err := h.Manager.Create(ctx, d); err != nil {
		return err
	}
	close(h.started)
	<-h.release
	return nil
}

// A database whose create is under way is listed, and read, as pending
// (Redis Enterprise's status of a database being created), whatever its
// redis-server says: its create may still fail and take it away. It was
// active as soon as its redis-server answered.
func TestADatabaseBeingCreatedIsPending(t *testing.T) {
	held := heldDatabases{started: make(chan struct{}), release: make(chan struct{})}
	f := newFixtureWith(t, func(dbs *databases.Manager, _ int) controller.Databases {
		held.Manager = dbs
		return held
	})
	ctrl, dbs := f.ctrl, f.dbs
	type result struct {
		db  api.Database
		err error
	}
	done := make(chan result, 1)
	go func() {
		db, err := ctrl.CreateDatabase(context.Background(), api.CreateDatabaseRequest{Name: "slow", MemorySize: 16 << 20})
		done <- result{db, err}
	}()
	released := false
	t.Cleanup(func() {
		if !released {
			close(held.release)
		}
	})
	select {
	case <-held.started:
	case r := <-done:
		t.Fatalf("the create ended before its redis-server served: %v", r.err)
	case <-time.After(time.Minute):
		t.Fatal("the create's redis-server did not serve within a minute")
	}
	// Its redis-server serves: the process manager says active once its
	// watcher saw it answer.
	redistest.Eventually(t, 30*time.Second, "the redis-server answers", func() error {
		if s, _ := dbs.Status(1); s != api.StatusActive {
			return assert.AnError
		}
		return nil
	})
	list, err := ctrl.ListDatabases(context.Background())
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, api.StatusPending, list[0].Status, "listed while its create is under way")
	got, err := ctrl.GetDatabase(context.Background(), list[0].UID)
	require.NoError(t, err)
	assert.Equal(t, api.StatusPending, got.Status, "read while its create is under way")

	close(held.release)
	released = true
	r := <-done
	require.NoError(t, r.err)
	assert.Equal(t, api.StatusActive, r.db.Status)
	got, err = ctrl.GetDatabase(context.Background(), r.db.UID)
	require.NoError(t, err)
	assert.Equal(t, api.StatusActive, got.Status, "active once created")
}
