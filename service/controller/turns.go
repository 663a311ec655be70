package controller

import (
	"context"
	"errors"
	"sync"

	"github.com/replicad/terraform-provider-redis/service/store"
)

// A change is made in two steps: it is recorded under Controller.mu (which
// checks it against the other databases: names, ports, Replica Of cycles),
// then the database's processes (its redis-server, its replication
// endpoint, its syncers) are brought to the record under the database's
// own turn, without Controller.mu. A database whose redis-server does not
// answer (stopped, swapping) then holds only its own changes, each for at
// most databases.applyWait, and never the changes, creates and deletes of
// the others.

// turns gives each database one change at a time in its processes.
type turns struct {
	mu sync.Mutex
	m  map[int]*turn
}

type turn struct {
	mu      sync.Mutex
	holders int // those holding or waiting for mu; the entry goes at 0
}

// take waits for uid's turn; release gives it back.
func (t *turns) take(uid int) (release func()) {
	t.mu.Lock()
	if t.m == nil {
		t.m = map[int]*turn{}
	}
	tu := t.m[uid]
	if tu == nil {
		tu = &turn{}
		t.m[uid] = tu
	}
	tu.holders++
	t.mu.Unlock()
	tu.mu.Lock()
	return func() {
		tu.mu.Unlock()
		t.mu.Lock()
		if tu.holders--; tu.holders == 0 {
			delete(t.m, uid)
		}
		t.mu.Unlock()
	}
}

// applyLatest brings the processes of uid to its latest record, in uid's
// turn. It applies the latest record rather than the one its caller wrote,
// so that racing changes of one database end with the last one recorded
// applied, whatever order they take their turns in. replica says that the
// caller's change touched the Replica Of settings: the syncers are then
// configured even when the database is no longer a replica (they stop).
// A database deleted meanwhile is not found.
func (c *Controller) applyLatest(ctx context.Context, uid int, replica bool) (store.Database, error) {
	release := c.turns.take(uid)
	defer release()
	d, err := c.cfg.Store.Get(uid)
	if errors.Is(err, store.ErrNotFound) {
		return d, notFound(uid)
	}
	if err != nil {
		return d, err
	}
	if d.Deleting {
		return d, errDeleting(uid) // nothing of it may run again
	}
	// The syncers follow the record even when the process has not taken
	// its settings yet (they are retried): a failed apply must not leave
	// the replication of the previous record running.
	err = c.ensure(ctx, d)
	if replica || d.IsReplica() {
		c.cfg.Replicator.Configure(ctx, d)
	}
	return d, err
}

// applyToEndpoint brings the replication endpoint of uid to its latest
// record, in uid's turn, for a change that only the endpoint sees (the
// admin password). A database deleted meanwhile is not found.
func (c *Controller) applyToEndpoint(uid int) error {
	release := c.turns.take(uid)
	defer release()
	d, err := c.cfg.Store.Get(uid)
	if errors.Is(err, store.ErrNotFound) {
		return notFound(uid)
	}
	if err != nil {
		return err
	}
	if d.Deleting {
		return errDeleting(uid)
	}
	return c.cfg.Gateway.Ensure(d)
}
