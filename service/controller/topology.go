package controller

import (
	"context"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/cluster"
	"github.com/replicad/terraform-provider-redis/service/store"
)

// How the reads of the API see the clusters of sharded databases. Asking
// the nodes at each read made every read wait up to a second or two per
// sharded database whose nodes did not answer (stopped, stalled on a
// disk), one after the other: a list of five such databases took ten
// seconds. Reads answer instead from what the nodes said a moment ago,
// refreshed in the background, and wait for that refresh only briefly.
const (
	// topologyFresh: a topology read this recently is used as it is.
	topologyFresh = 500 * time.Millisecond
	// topologyReadWait: how long a read waits, at most, for a refresh
	// under way (nodes that answer take milliseconds), before it answers
	// with what was read last.
	topologyReadWait = 50 * time.Millisecond
	// topologyFirstWait: the same, when the nodes have not been read yet
	// (after a start): every role would be unknown otherwise.
	topologyFirstWait = time.Second
	// topologyTimeout bounds one read of a cluster's nodes.
	topologyTimeout = 2 * time.Second
)

// topologies holds what the nodes of each sharded database last said of
// their cluster.
type topologies struct {
	mu      sync.Mutex
	entries map[int]*topology
	closed  bool           // Close was called: no refresh starts any more
	running sync.WaitGroup // the refreshes under way
}

type topology struct {
	byPort map[int]api.NodeEndpoint // empty when the nodes did not answer
	read   bool                     // byPort holds a read (failed or not)
	at     time.Time                // when the read of byPort began
	since  time.Time                // when the first read began
	// done is closed when the refresh under way ends; nil when none runs.
	done chan struct{}
	// refreshing is when the refresh under way began.
	refreshing time.Time
}

// record keeps byPort, read from a time began, unless a read that began
// later is in already. Called under topologies.mu.
func (e *topology) record(byPort map[int]api.NodeEndpoint, began time.Time) {
	if e.read && e.at.After(began) {
		return
	}
	e.byPort, e.read, e.at = byPort, true, began
}

// closedChan is a refresh that has nothing to wait for.
var closedChan = func() chan struct{} { ch := make(chan struct{}); close(ch); return ch }()

// refreshTopology starts reading the cluster of d in the background unless
// what was read is fresh or a read is under way, and returns what is closed
// once the cluster's latest read is in, and when that read began.
func (c *Controller) refreshTopology(d store.Database) (<-chan struct{}, time.Time) {
	if !d.Clustered() {
		return closedChan, time.Now()
	}
	t := &c.topo
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.entries == nil {
		t.entries = map[int]*topology{}
	}
	e := t.entries[d.UID]
	if e == nil {
		e = &topology{since: time.Now()}
		t.entries[d.UID] = e
	}
	switch {
	case e.done != nil:
		return e.done, e.refreshing
	case t.closed, e.read && time.Since(e.at) < topologyFresh:
		return closedChan, e.at
	}
	done, began := make(chan struct{}), time.Now()
	e.done, e.refreshing = done, began
	t.running.Add(1)
	go func() {
		defer t.running.Done()
		defer close(done)
		ctx, cancel := context.WithTimeout(c.retryCtx, topologyTimeout)
		byPort := c.readTopology(ctx, d.UID)
		cancel()
		t.mu.Lock()
		defer t.mu.Unlock()
		e.done = nil
		e.record(byPort, began)
	}()
	return done, began
}

// cachedTopology is what the nodes of uid said last: ok is false when they
// have not been read yet, since says when their first read began.
func (c *Controller) cachedTopology(uid int) (byPort map[int]api.NodeEndpoint, since time.Time, ok bool) {
	c.topo.mu.Lock()
	defer c.topo.mu.Unlock()
	e := c.topo.entries[uid]
	if e == nil {
		return nil, time.Now(), false
	}
	return e.byPort, e.since, e.read
}

// topologyFor is the cluster of d for a read of the API that answers by
// deadline at the latest: the latest read of its nodes, refreshed when it
// is not fresh, and waited for until deadline (or until a second after
// the first read began, when its nodes were never read). A zero deadline reads the
// nodes now and waits for them (after a create or change, whose caller
// expects the cluster as it is now).
func (c *Controller) topologyFor(ctx context.Context, d store.Database, deadline time.Time) map[int]api.NodeEndpoint {
	if deadline.IsZero() {
		began := time.Now()
		rctx, cancel := context.WithTimeout(ctx, topologyTimeout)
		defer cancel()
		byPort := c.readTopology(rctx, d.UID)
		c.topo.mu.Lock()
		if c.topo.entries == nil {
			c.topo.entries = map[int]*topology{}
		}
		e := c.topo.entries[d.UID]
		if e == nil {
			e = &topology{since: time.Now()}
			c.topo.entries[d.UID] = e
		}
		e.record(byPort, began)
		c.topo.mu.Unlock()
		return byPort
	}
	done, began := c.refreshTopology(d)
	if byPort, since, ok := c.cachedTopology(d.UID); !ok {
		// From when the first read began, so that the databases of a list
		// read side by side wait that long together, not one after the
		// other.
		deadline = since.Add(topologyFirstWait)
	} else if len(byPort) == 0 {
		// No node answered the last read: the next one, if it answers at
		// all, is not waited for (unknown roles are the truth until then).
		deadline = time.Now()
	} else if until := began.Add(topologyReadWait); until.Before(deadline) {
		// A refresh that has not answered within topologyReadWait of its
		// start waits for nodes that do not answer: the reads that come
		// meanwhile do not wait for it again.
		deadline = until
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
	case <-ctx.Done():
	}
	byPort, _, _ := c.cachedTopology(d.UID)
	return byPort
}

// forgetTopology drops what was read of the cluster of uid (deleted).
func (c *Controller) forgetTopology(uid int) {
	c.topo.mu.Lock()
	defer c.topo.mu.Unlock()
	delete(c.topo.entries, uid)
}

// closeTopologies ends the refreshes and waits for those under way.
func (c *Controller) closeTopologies() {
	c.topo.mu.Lock()
	c.topo.closed = true
	c.topo.mu.Unlock()
	c.topo.running.Wait()
}

// readTopology asks the nodes of uid how their cluster stands now, as
// endpoints by port (empty when none answers).
func (c *Controller) readTopology(ctx context.Context, uid int) map[int]api.NodeEndpoint {
	host := c.cfg.AdvertiseHost
	byPort := map[int]api.NodeEndpoint{}
	t, err := c.cfg.Databases.Topology(ctx, uid)
	if err != nil {
		return byPort
	}
	for _, sh := range t.Shards {
		var master string
		if m, ok := sh.Master(); ok {
			master = m.Addr
		}
		for _, n := range sh.Nodes {
			_, p, _ := net.SplitHostPort(n.Addr)
			port, _ := strconv.Atoi(p)
			ep := api.NodeEndpoint{Host: host, Port: port, Role: n.Role}
			if n.Role == cluster.RoleMaster {
				ep.Slots = sh.Key()
			} else if _, mp, err := net.SplitHostPort(master); err == nil {
				ep.Master = net.JoinHostPort(host, mp)
			}
			byPort[port] = ep
		}
	}
	return byPort
}
