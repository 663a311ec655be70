package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/replicad/terraform-provider-redis/service/store"
)

// endpointsDown tracks replication endpoints that could not listen when the
// service started (their port taken by another program): each is retried
// in the background until it listens, and until then its database says so.
// A squatter on that port would otherwise be where the database's
// destinations connect, while the database looked healthy.
type endpointsDown struct {
	down map[int]string // uid -> why its endpoint does not listen
	// notStarted: uid -> why its process could not be started when the
	// service started (its files could not be written: a full disk).
	notStarted map[int]string
}

// retryEndpoint retries the replication endpoint of database uid until it
// listens, the database is deleted, or the controller closes. Each attempt
// reads the database's latest record under c.mu, so that it never brings
// back an endpoint that a delete or an update has just changed.
func (c *Controller) retryEndpoint(ctx context.Context, uid int) {
	defer c.retries.Done()
	wait := 200 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
		c.mu.Lock()
		d, err := c.cfg.Store.Get(uid)
		if errors.Is(err, store.ErrNotFound) || err == nil && d.Deleting {
			c.setEndpointDown(uid, nil)
			c.mu.Unlock()
			return
		}
		if err == nil {
			err = c.cfg.Gateway.Ensure(c.giveNodesReplicationPorts(d))
		}
		c.setEndpointDown(uid, err)
		c.mu.Unlock()
		if err == nil {
			c.cfg.Logger.Info("replication endpoint started", "uid", uid, "name", d.Name, "port", d.ReplicationPort)
			return
		}
	}
}

// retryStart retries the start of the process of database uid, which
// could not start when the service did (its files could not be written:
// its disk full, say), until it starts, the database is deleted, or the
// controller closes. Each attempt takes the database's turn and its
// latest record, so that it never races a change or a delete of it.
func (c *Controller) retryStart(ctx context.Context, uid int) {
	defer c.retries.Done()
	wait := 200 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
		release := c.turns.take(uid)
		d, err := c.cfg.Store.Get(uid)
		if errors.Is(err, store.ErrNotFound) || err == nil && d.Deleting {
			release()
			c.setNotStarted(uid, nil)
			return
		}
		if err == nil {
			err = c.cfg.Databases.Start(d)
		}
		release()
		c.setNotStarted(uid, err)
		if err == nil {
			c.cfg.Logger.Info("database starting after all", "uid", uid, "name", d.Name, "port", d.Port)
			return
		}
	}
}

// setNotStarted records why the process of uid could not be started (nil:
// it could).
func (c *Controller) setNotStarted(uid int, err error) {
	c.setDown(&c.epDown.notStarted, uid, err, "its redis-server could not be started (retrying)")
}

// setEndpointDown records why the endpoint of uid does not listen (nil: it
// does).
func (c *Controller) setEndpointDown(uid int, err error) {
	c.setDown(&c.epDown.down, uid, err, "its replication endpoint does not listen, so destinations cannot replicate from it (retrying)")
}

// setDown records in *m why uid does not serve (what, then err), or
// forgets it when err is nil.
func (c *Controller) setDown(m *map[int]string, uid int, err error, what string) {
	c.downMu.Lock()
	defer c.downMu.Unlock()
	if err == nil {
		delete(*m, uid)
		return
	}
	if *m == nil {
		*m = map[int]string{}
	}
	(*m)[uid] = fmt.Sprintf("%s: %v", what, err)
}

// endpointProblem says why the replication endpoint of uid does not listen.
func (c *Controller) endpointProblem(uid int) string {
	c.downMu.Lock()
	defer c.downMu.Unlock()
	return c.epDown.down[uid]
}

// startProblem says why the process of uid could not be started.
func (c *Controller) startProblem(uid int) string {
	c.downMu.Lock()
	defer c.downMu.Unlock()
	return c.epDown.notStarted[uid]
}

// Close stops what the controller runs in the background and waits for it.
func (c *Controller) Close() {
	c.stopRetries()
	c.retries.Wait()
	c.closeTopologies()
}

// EndpointDownAt says why the replication endpoint of the database of this
// instance that the source URL uri names does not listen; empty when it
// listens, or when uri names no database of this instance.
func (c *Controller) EndpointDownAt(uri string) string {
	all, err := c.cfg.Store.List()
	if err != nil {
		return ""
	}
	uid := c.localSource(uri, all)
	if uid == 0 {
		return ""
	}
	return c.endpointProblem(uid)
}
