package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/cluster"
)

// A source may be a Redis Cluster: its URL names any node. Each round
// discovers the shards (cluster.Discover) and runs one syncer per shard,
// each a PSYNC replica of that shard with a checkpoint of its own, named by
// the source's address and the shard's slots. A shard's syncer finds the
// node that serves its slots at every connection, so it follows a failover
// and continues from its checkpoint. A change of the slot map (resharding)
// re-replicates the destination: keys moving between two shards arrive on
// two streams whose order relative to each other is unknown.

// clusterPollInterval is how often a round checks a clustered source's
// slot map; clusterSettle is how long the map must stay the same after a
// change before the destination is loaded again (a resharding moves slots
// one after the other).
const (
	clusterPollInterval = time.Second
	clusterSettle       = 3 * time.Second
)

// unit is one syncer of a round: a source that is one server, or one shard
// of a clustered source.
type unit struct {
	src    *sourceState
	key    string // checkpoint field
	status *sourceStatus
	// Set for a shard only.
	shard    string // its slots
	locate   func(ctx context.Context) (string, error)
	relocate chan struct{}
	avoid    func(addr string) bool // see destination.avoidReplica
}

// newShardInfo is the series that names the node each shard of a
// clustered source is read from (source is "<address>#<slots>", as in the
// shard's other series).
func newShardInfo(reg prometheus.Registerer) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "replicad", Subsystem: "replica", Name: "shard_info",
		Help: "1 for the node each shard of a clustered source is replicated from, with its role (master or replica)."},
		[]string{"destination", "source", "node", "role"})
	reg.MustRegister(g)
	return g
}

// errRelocated ends a session that moves to a better node.
var errRelocated = errors.New("moving to another node of the shard")

// watchRelocate ends the session when s.relocate says so while it streams
// (never during a load: that would reload the destination). The returned
// function, deferred by the session, turns its error into errRelocated.
func (s *syncer) watchRelocate(ctx context.Context, cancel func()) func(*error) {
	var moved atomic.Bool
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-s.relocate:
				s.status.mu.Lock()
				streaming := s.status.phase == phaseStreaming
				s.status.mu.Unlock()
				if streaming {
					s.log.Info("a better node serves the shard now (a replica online again, or a master failed over): reading from it", "source", s.url.String())
					moved.Store(true)
					cancel()
					return
				}
			}
		}
	}()
	return func(err *error) {
		close(done)
		if moved.Load() {
			*err = errRelocated
		}
	}
}

// clusterState is what a destination knows of one clustered source,
// across rounds: the statuses of its shards and the last topology seen.
type clusterState struct {
	mu sync.Mutex
	// seeds are nodes known from before this process started (the hint
	// kept in the destination, see nodesField), asked when the URL's node
	// does not answer.
	seeds  []string
	shards map[string]*sourceStatus // by slots
	roles  map[string]string        // slots -> role of the node replicated from
	// fallback: shards read from their master because no replica was
	// online; kicks: their syncers' relocate channels.
	fallback map[string]bool
	kicks    map[string]chan struct{}
	// nodes: per shard, the node its syncer was last given (locate).
	nodes map[string]string
	// avoid: per shard, a replica that could not serve its syncer (see
	// avoidReplica), read around until the time given.
	avoid    map[string]avoidance
	current  []string // the slots of this round's shards
	topology cluster.Topology
	// note says the source reshards and the destination is re-replicated
	// for it; it stays until every shard is in sync after that reload.
	// activity is when a sign of resharding was last seen (a change of the
	// slot map, a key migrating); pending is set until the reload starts.
	note     string
	activity time.Time
	pending  bool
}

// replicaAvoidFor is how long a shard is read from its master after its
// replica could not serve the syncer. The cluster may call a replica
// online for a while after it died (cluster-node-timeout), and a replica
// that restarted cannot continue a position from before its own resync;
// its master can, until its backlog moves past it.
const replicaAvoidFor = 10 * time.Second

type avoidance struct {
	addr  string
	until time.Time
}

// avoided says whether the shard's replica at addr is to be read around
// now (with mu held).
func (c *clusterState) avoided(slots, addr string) bool {
	a, ok := c.avoid[slots]
	return ok && a.addr == addr && time.Now().Before(a.until)
}

// relocate kicks the syncers of shards read from their master for want
// of an online replica, when top shows one; and those of shards read from
// a master that is no longer theirs: a master that froze or whose host was
// cut off was failed over by the cluster, and its syncer's link to it
// would only end at the read timeout (a minute), by when the promoted
// node's backlog may no longer hold the checkpoint (a full reload of the
// destination instead of a partial resync).
func (c *clusterState) relocate(top cluster.Topology) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for slots, role := range c.roles {
		if role != cluster.RoleMaster || c.nodes[slots] == "" {
			continue
		}
		sh, ok := top.Shard(slots)
		if !ok {
			continue // a resharding: watch handles it
		}
		var master cluster.Node
		for _, n := range sh.Nodes {
			if n.Role == cluster.RoleMaster && n.Online() {
				master = n
				break
			}
		}
		if master.Addr == "" || master.Addr == c.nodes[slots] {
			continue
		}
		select {
		case c.kicks[slots] <- struct{}{}:
		default:
		}
	}
	for slots, fb := range c.fallback {
		if !fb {
			continue
		}
		sh, ok := top.Shard(slots)
		if r := sh.Replicas(); !ok || len(r) == 0 || !r[0].Online() || c.avoided(slots, r[0].Addr) {
			continue
		}
		select {
		case c.kicks[slots] <- struct{}{}:
		default: // one kick pending is enough
		}
	}
}

// resharding records a sign that slots move between the shards.
func (c *clusterState) resharding(log *slog.Logger, url, why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.pending {
		log.Warn("a clustered source is resharding; the destination will be re-replicated from every shard once it settles", "source", url, "sign", why)
	}
	c.activity, c.pending = time.Now(), true
	c.note = "the clustered source is resharding (" + why + "): the destination will be flushed and re-replicated from every shard once its slot map settles"
}

func (c *clusterState) shard(slots string) *sourceStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shards[slots] == nil {
		c.shards[slots] = newSourceStatus()
	}
	return c.shards[slots]
}

// reconnecting marks every shard as not in sync: a new session starts.
func (c *clusterState) reconnecting() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.shards {
		st.set(func(st *sourceStatus) {
			st.connected, st.phase = false, phaseConnecting
			st.compressionOK, st.compressionNote = false, ""
		})
	}
}

func shardKey(addr, slots string) string { return addr + "#" + slots }

// nodesField is the field of the checkpoint hash that keeps the nodes of
// the clustered source at addr, so that a restarted service finds the
// cluster when the node of its URL is down. It is a hint, not a checkpoint
// (it does not parse as one: readCheckpoints skips it).
func nodesField(addr string) string { return addr + "#nodes" }

// saveNodes keeps the nodes of every clustered source in the destination
// (see nodesField).
func (d *destination) saveNodes(ctx context.Context, ckc *redis.Client) error {
	for field, nodes := range d.nodeFields() {
		if err := ckc.HSet(ctx, checkpointKey, field, nodes).Err(); err != nil {
			return fmt.Errorf("keep the nodes of a clustered source in the destination: %w", err)
		}
	}
	return nil
}

// nodeFields are the fields of the checkpoint hash that keep the nodes of
// each clustered source (saveNodes).
func (d *destination) nodeFields() map[string]string {
	out := map[string]string{}
	for _, s := range d.sources {
		cl := s.cluster.Load()
		if cl == nil {
			continue
		}
		cl.mu.Lock()
		nodes := cl.topology.Addrs()
		cl.mu.Unlock()
		if len(nodes) > 0 {
			out[nodesField(s.url.Addr())] = strings.Join(nodes, " ")
		}
	}
	return out
}

// isFlush says whether a command empties a database: on the stream of one
// shard it empties that shard only, so it cannot be applied to a
// destination that holds every shard's keys.
func isFlush(args [][]byte) bool {
	return len(args) > 0 && (equalFold(args[0], "FLUSHALL") || equalFold(args[0], "FLUSHDB"))
}

// isKeyspaceWide says whether a command acts on whole databases (a flush,
// SWAPDB): from one of several sources of a destination, it would also act
// on what the others wrote there.
func isKeyspaceWide(args [][]byte) bool {
	return isFlush(args) || len(args) > 0 && equalFold(args[0], "SWAPDB")
}

var (
	cmdRestore = []byte("RESTORE")
	argReplace = []byte("REPLACE")
)

// sharedFunctionCommand adapts a function library command for a destination
// that several streams write: several sources, or the shards of a
// clustered source. Each may load the same library (every master of a
// cluster needs it; the same application in several regions loads its
// own), which a second FUNCTION LOAD refuses, and the sync would stop. So a
// library load replaces the one of that name (FUNCTION LOAD gets REPLACE,
// FUNCTION RESTORE's APPEND policy becomes REPLACE): the last one loaded
// is in force, as on a source loaded twice with REPLACE. A FUNCTION FLUSH,
// or a RESTORE with FLUSH, would also delete the other streams' libraries,
// and a FUNCTION DELETE may delete one another stream still has (or fail
// on one another stream deleted first): the destination is loaded again,
// as for a flush. It returns nil when the
// command stays as it is.
func sharedFunctionCommand(args [][]byte) ([][]byte, error) {
	if len(args) < 2 || !equalFold(args[0], "FUNCTION") {
		return nil, nil
	}
	switch {
	case equalFold(args[1], "FLUSH"), equalFold(args[1], "RESTORE") && len(args) >= 4 && equalFold(args[3], "FLUSH"):
		return nil, fmt.Errorf("the source ran FUNCTION %s, which would also delete the function libraries of the destination's other sources or shards: the destination is re-replicated from every one: %w",
			strings.ToUpper(string(args[1])), errNeedFullSync)
	case equalFold(args[1], "DELETE"):
		// Another source (or shard) may still hold the library, or may
		// have deleted it already (the destination would refuse a second
		// DELETE, and the sync would stop).
		return nil, fmt.Errorf("the source ran FUNCTION DELETE, and the destination's other sources or shards may hold the same library: the destination is re-replicated from every one: %w", errNeedFullSync)
	case equalFold(args[1], "LOAD") && len(args) == 3:
		return [][]byte{args[0], args[1], argReplace, args[2]}, nil
	case equalFold(args[1], "RESTORE") && len(args) == 3:
		return append(slices.Clip(args), argReplace), nil
	case equalFold(args[1], "RESTORE") && len(args) == 4 && equalFold(args[3], "APPEND"):
		return [][]byte{args[0], args[1], args[2], argReplace}, nil
	}
	return nil, nil
}

// shardCommand checks a command of a shard's stream. A flush empties that
// shard only, and cannot be applied to a destination that holds every
// shard's keys: the destination is loaded again. A RESTORE-ASKING is a key
// migrating into the shard (resharding): it is applied as a RESTORE that
// replaces what the destination holds (the DEL from the shard it leaves
// comes on another stream, in no known order), and the source is reported
// as resharding until its destination is loaded again.
func (s *syncer) shardCommand(args [][]byte) ([][]byte, error) {
	switch {
	case isFlush(args):
		return nil, fmt.Errorf("shard %s of the clustered source ran %s, which empties that shard only: the destination is re-replicated from every shard: %w",
			s.key, strings.ToUpper(string(args[0])), errNeedFullSync)
	case len(args) >= 4 && equalFold(args[0], "RESTORE-ASKING"):
		if s.onMigrating != nil {
			s.onMigrating()
		}
		out := append([][]byte{cmdRestore}, args[1:]...)
		if !slices.ContainsFunc(args[4:], func(a []byte) bool { return equalFold(a, "REPLACE") }) {
			out = append(out, argReplace)
		}
		return out, nil
	}
	return args, nil
}

// sourceClient is a plain client of one node of source s.
func (d *destination) sourceClient(s *sourceState, addr string) (*redis.Client, error) {
	tlsCfg, err := d.m.sourceTLS(s.src)
	if err != nil {
		return nil, err
	}
	return redis.NewClient(&redis.Options{Addr: addr, Username: s.url.Username, Password: s.url.Password, TLSConfig: tlsCfg,
		DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, MaxRetries: -1, PoolSize: 1,
		// The source's own protocol version: RESP3 is not needed here.
		Protocol: 2, DisableIdentity: true}), nil
}

// topology asks the nodes of s, the known ones first then the URL's, for
// the cluster's shards.
func (d *destination) topology(ctx context.Context, s *sourceState) (cluster.Topology, error) {
	seeds := []string{}
	cl := s.cluster.Load()
	if cl != nil {
		cl.mu.Lock()
		seeds = append(seeds, cl.topology.Addrs()...)
		cl.mu.Unlock()
	}
	if !slices.Contains(seeds, s.url.Addr()) {
		seeds = append(seeds, s.url.Addr())
	}
	if cl != nil {
		for _, a := range cl.seeds {
			if !slices.Contains(seeds, a) {
				seeds = append(seeds, a)
			}
		}
	}
	var errs []error
	for _, addr := range seeds {
		c, err := d.sourceClient(s, addr)
		if err != nil {
			return cluster.Topology{}, err
		}
		t, err := cluster.Discover(ctx, c, s.src.Encryption)
		c.Close()
		if err == nil && len(t.Shards) > 0 {
			if cl != nil {
				cl.mu.Lock()
				cl.topology = t
				cl.mu.Unlock()
			}
			return t, nil
		}
		if err == nil {
			err = errors.New("no shard holds slots")
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return cluster.Topology{}, fmt.Errorf("discover the shards of %s: %w", s.url, errors.Join(errs...))
}

// plan returns the syncers of a round: one per source, or one per shard of
// a clustered source. cps are the checkpoints the destination holds: when a
// source cannot be reached, they say whether it was a cluster and of which
// shards (its syncers then retry until it answers).
func (d *destination) plan(ctx context.Context, ckc *redis.Client, cps map[string]checkpoint) ([]unit, error) {
	var units []unit
	for _, s := range d.sources {
		isCluster, err := d.probe(ctx, s)
		var known []string // shards of s that have a checkpoint
		for k := range cps {
			if slots, ok := strings.CutPrefix(k, s.url.Addr()+"#"); ok {
				known = append(known, slots)
			}
		}
		// The nodes of a clustered source, kept in the destination.
		hint, _ := ckc.HGet(ctx, checkpointKey, nodesField(s.url.Addr())).Result()
		if err != nil {
			_, single := cps[s.url.Addr()]
			switch {
			case len(known) > 0 || hint != "":
				isCluster = true
			case single:
				isCluster = false
			default:
				// Nothing says what it is: its syncer asks again before
				// each connection, and meanwhile says why it cannot
				// connect in its own words (TLS refused, wrong password).
				d.log.Warn("cannot tell whether the source is a Redis Cluster yet", "destination", d.db.UID, "source", s.url.String(), "err", err)
				s.cluster.Store(nil)
				units = append(units, unit{src: s, key: s.url.Addr(), status: s.status, locate: func(ctx context.Context) (string, error) {
					return d.reprobe(ctx, s)
				}})
				continue
			}
			d.log.Warn("source unreachable; resuming it as it was replicated last", "destination", d.db.UID, "source", s.url.String(), "cluster", isCluster, "err", err)
		}
		if !isCluster {
			s.cluster.Store(nil)
			units = append(units, unit{src: s, key: s.url.Addr(), status: s.status})
			continue
		}
		cl := s.cluster.Load()
		if cl == nil {
			cl = &clusterState{shards: map[string]*sourceStatus{}, roles: map[string]string{}, seeds: strings.Fields(hint),
				fallback: map[string]bool{}, kicks: map[string]chan struct{}{}, avoid: map[string]avoidance{}, nodes: map[string]string{}}
			s.cluster.Store(cl)
		}
		var shards []string
		if t, err := d.topology(ctx, s); err == nil {
			for _, sh := range t.Shards {
				shards = append(shards, sh.Key())
			}
		} else if len(known) > 0 {
			slices.Sort(known)
			shards = known
		} else {
			s.status.set(func(st *sourceStatus) { st.lastError = err.Error() })
			if errors.Is(err, cluster.ErrUnsupported) {
				return nil, &fatalError{err} // retrying will not teach it
			}
			return nil, err
		}
		s.status.set(func(st *sourceStatus) { st.lastError = "" })
		cl.mu.Lock()
		cl.current = shards
		// A reload for a resharding starts now; the note stays until
		// it is done.
		cl.activity, cl.pending = time.Time{}, false
		for _, slots := range shards {
			if cl.kicks[slots] == nil {
				cl.kicks[slots] = make(chan struct{}, 1)
			}
		}
		cl.mu.Unlock()
		for _, slots := range shards {
			units = append(units, unit{src: s, key: shardKey(s.url.Addr(), slots), status: cl.shard(slots), shard: slots, relocate: cl.kicks[slots],
				locate: func(ctx context.Context) (string, error) { return d.locate(ctx, s, slots) },
				avoid:  func(addr string) bool { return d.avoidReplica(s, slots, addr) }})
		}
	}
	keys := map[string]bool{}
	for _, u := range units {
		keys[u.key] = true
	}
	d.m.metrics.keepUnits(d.db.UID, keys)
	return units, nil
}

// reprobe is the address to replicate s from when the round could not
// tell whether it is a Redis Cluster: its own, unless it now says it is a
// cluster, which ends the round to replicate it shard by shard.
func (d *destination) reprobe(ctx context.Context, s *sourceState) (string, error) {
	isCluster, err := d.probe(ctx, s)
	if err == nil && isCluster {
		return "", fmt.Errorf("source %s is a Redis Cluster: replicating it shard by shard: %w", s.url, errNeedFullSync)
	}
	return s.url.Addr(), nil
}

// probe says whether source s is a Redis Cluster.
func (d *destination) probe(ctx context.Context, s *sourceState) (bool, error) {
	c, err := d.sourceClient(s, s.url.Addr())
	if err != nil {
		return false, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	on, err := cluster.Enabled(ctx, c)
	if err != nil {
		return false, fmt.Errorf("ask %s whether it is a Redis Cluster: %w", s.url, err)
	}
	return on, nil
}

// locate finds the node to replicate the shard of s holding slots from:
// its master, or an online replica when the source says read_from replica
// (the master when no replica is online).
func (d *destination) locate(ctx context.Context, s *sourceState, slots string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	t, err := d.topology(ctx, s)
	if err != nil {
		return "", err
	}
	sh, ok := t.Shard(slots)
	if !ok {
		note := fmt.Sprintf("the slot map of source %s changed (resharding): no shard holds exactly slots %s now; the destination is re-replicated from every shard", s.url, slots)
		d.log.Warn(note, "destination", d.db.UID, "partition", t.Partition())
		return "", fmt.Errorf("%s: %w", note, errNeedFullSync)
	}
	var node cluster.Node
	fallback := false
	cl := s.cluster.Load()
	if s.src.ReadFrom == api.ReadFromReplica {
		r := sh.Replicas()
		avoided := false
		if len(r) > 0 && cl != nil {
			cl.mu.Lock()
			avoided = cl.avoided(slots, r[0].Addr)
			cl.mu.Unlock()
		}
		if len(r) > 0 && r[0].Online() && !avoided {
			node = r[0]
		} else if avoided {
			fallback = true
			d.log.Info("the shard's replica could not serve its syncer just now: reading from its master for a while", "destination", d.db.UID, "source", s.url.String(), "shard", slots, "replica", r[0].Addr, "for", replicaAvoidFor)
		} else {
			fallback = true
			health := make([]string, len(r))
			for i, n := range r {
				health[i] = n.Addr + " " + n.Health
			}
			d.log.Info("no replica of the shard is online: reading from its master until one is", "destination", d.db.UID, "source", s.url.String(), "shard", slots, "replicas", health)
		}
	}
	if node.Addr == "" {
		m, ok := sh.Master()
		if !ok || !m.Online() {
			if ok && len(sh.Replicas()) == 0 {
				// No failover will come: say so, and who is missing.
				return "", fmt.Errorf("shard %s of source %s has no master online: its master %s is %s and the shard has no replica to promote; its slots are unavailable until that master is back", slots, s.url, m.Addr, m.Health)
			}
			return "", fmt.Errorf("shard %s of source %s has no master online (a failover may be in progress)", slots, s.url)
		}
		node = m
	}
	if cl != nil {
		cl.mu.Lock()
		cl.roles[slots] = node.Role
		cl.fallback[slots] = fallback
		if cl.nodes == nil {
			cl.nodes = map[string]string{}
		}
		cl.nodes[slots] = node.Addr
		cl.mu.Unlock()
	}
	l := prometheus.Labels{"destination": strconv.Itoa(d.db.UID), "source": shardKey(s.url.Addr(), slots)}
	d.m.metrics.shardInfo.DeletePartialMatch(l)
	l["node"], l["role"] = node.Addr, node.Role
	d.m.metrics.shardInfo.With(l).Set(1)
	return node.Addr, nil
}

// avoidReplica has the shard of s holding slots read from its master for
// replicaAvoidFor when addr is the replica it is read from now: the syncer
// could not connect to it, or it cannot continue from the checkpoint. It
// says whether it did (false: addr is the master, or reading from
// replicas is not asked).
func (d *destination) avoidReplica(s *sourceState, slots, addr string) bool {
	cl := s.cluster.Load()
	if cl == nil || s.src.ReadFrom != api.ReadFromReplica {
		return false
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.roles[slots] != "replica" {
		return false
	}
	cl.avoid[slots] = avoidance{addr: addr, until: time.Now().Add(replicaAvoidFor)}
	return true
}

// watch polls the slot map of clustered source s during a round. When it
// changes, or keys migrate between shards, the source is out of sync until
// the resharding settles (no sign of it for clusterSettle); then the round
// ends with errNeedFullSync: the destination is loaded again. keep stores
// the nodes of the clustered sources in the destination (saveNodes) when
// the cluster's nodes change: a round lasts as long as nothing goes wrong,
// and a cluster whose hosts were all replaced meanwhile (each failover
// followed with a partial resync) was not found by a restarted service
// whose URL node had gone, from the nodes the round began with.
func (d *destination) watch(ctx context.Context, s *sourceState, log *slog.Logger, keep func(context.Context) error) error {
	cl := s.cluster.Load()
	cl.mu.Lock()
	seen := strings.Join(cl.current, " ")
	cl.mu.Unlock()
	t := time.NewTicker(clusterPollInterval)
	defer t.Stop()
	uncounted := map[string]bool{} // masters without slots whose keys could not be counted (logged once)
	unasked := false               // the masters refuse CLUSTER NODES (logged once, not asked again)
	kept, keepFailed := "", false  // the nodes last kept in the destination
	clients := map[string]*redis.Client{}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
			}
		}
		if top, err := d.topology(ctx, s); err == nil {
			// (An unreachable node is the shards' syncers' to report.)
			if p := top.Partition(); p != seen {
				cl.resharding(log, s.url.String(), fmt.Sprintf("its slot map is now %q, was %q", p, seen))
				seen = p
			}
			// A slot open on a master (MIGRATING, IMPORTING) moves keys
			// between two shards whose forks for a load, and whose
			// streams, are not in step: a key that moved between the
			// forks is in both RDBs, and the shard it left streams its
			// DEL, with no RESTORE-ASKING anywhere and the same slot map.
			// A resharding that stopped midway (redis-cli --cluster
			// reshard on an error) leaves slots open for good. (Asked
			// first: the more precise sign below is the one the note
			// keeps.)
			if !unasked {
				unasked = d.checkOpenSlots(ctx, s, log, top, clients)
			}
			// The round has no syncer for a master without slots: keys
			// migrating into it would be missed (the shard they leave
			// sends their DEL) while the status said in sync.
			for _, m := range top.Slotless {
				if !m.Online() {
					continue // a failed master (failed over) stays listed until forgotten
				}
				n, err := d.keysOf(ctx, s, m.Addr)
				if err != nil && !uncounted[m.Addr] {
					uncounted[m.Addr] = true
					log.Warn("cannot count the keys of a master without slots: keys migrating into it are not seen until it owns their slot", "source", s.url.String(), "node", m.Addr, "err", err)
				}
				if n > 0 {
					cl.resharding(log, s.url.String(), fmt.Sprintf("master %s serves no slot yet holds %d keys: a slot migrates into it", m.Addr, n))
				}
			}
			cl.relocate(top)
			if nodes := strings.Join(top.Addrs(), " "); nodes != kept {
				if err := keep(ctx); err == nil {
					kept = nodes
				} else if !keepFailed && ctx.Err() == nil {
					keepFailed = true
					log.Warn("cannot keep the nodes of a clustered source in the destination; a restarted service finds the cluster through its URL and the nodes kept before", "source", s.url.String(), "err", err)
				}
			}
		}
		cl.mu.Lock()
		last := cl.activity
		cl.mu.Unlock()
		if !last.IsZero() && time.Since(last) >= clusterSettle {
			log.Warn("re-replicating the destination: a clustered source resharded", "source", s.url.String(), "slot_map", seen)
			return fmt.Errorf("the clustered source %s resharded: %w", s.url, errNeedFullSync)
		}
	}
}

// checkOpenSlots asks every online master of top whether it has slots
// open (see openSlots), and records a resharding while any has. It says
// whether a master refused the question (a restricted user: the masters
// of a cluster share their users), which is logged, and not asked again
// this round; a master that does not answer is its shard's syncer's to
// report.
func (d *destination) checkOpenSlots(ctx context.Context, s *sourceState, log *slog.Logger, top cluster.Topology, clients map[string]*redis.Client) (refused bool) {
	masters := slices.Clone(top.Slotless)
	ids := map[string]string{}
	for _, sh := range top.Shards {
		for _, n := range sh.Nodes {
			ids[n.ID] = n.Addr
		}
		if m, ok := sh.Master(); ok {
			masters = append(masters, m)
		}
	}
	for _, m := range top.Slotless {
		ids[m.ID] = m.Addr
	}
	cl := s.cluster.Load()
	for _, m := range masters {
		if !m.Online() {
			continue
		}
		c := clients[m.Addr]
		if c == nil {
			var err error
			if c, err = d.sourceClient(s, m.Addr); err != nil {
				return false
			}
			clients[m.Addr] = c
		}
		open, err := openSlots(ctx, c)
		var rerr redis.Error
		if errors.As(err, &rerr) {
			// (A sharded database of this service, read through its
			// gateway, refuses it; it cannot be resharded.)
			log.Info("the clustered source refuses CLUSTER NODES: a slot left open by a resharding is not seen", "source", s.url.String(), "node", m.Addr, "err", err)
			return true
		}
		for _, o := range open {
			other := ids[o.node]
			if other == "" {
				other = "node " + o.node
			}
			how := "migrating to"
			if o.importing {
				how = "importing from"
			}
			cl.resharding(log, s.url.String(), fmt.Sprintf("slot %d is open on %s, %s %s", o.slot, m.Addr, how, other))
		}
	}
	return false
}

// openSlot is a slot that a master moves: out (MIGRATING) or in
// (IMPORTING), from or to node.
type openSlot struct {
	slot      int
	importing bool
	node      string
}

// openSlots reads the slots a master has open from its own line of
// CLUSTER NODES: "[<slot>->-<node>]" migrating, "[<slot>-<-<node>]"
// importing (CLUSTER SHARDS does not tell).
func openSlots(ctx context.Context, c *redis.Client) ([]openSlot, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	nodes, err := c.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, err
	}
	return parseOpenSlots(nodes), nil
}

// parseOpenSlots reads the open slots of the "myself" line of CLUSTER
// NODES.
func parseOpenSlots(nodes string) []openSlot {
	var out []openSlot
	for _, line := range strings.Split(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !slices.Contains(strings.Split(f[2], ","), "myself") {
			continue
		}
		for _, x := range f[8:] {
			x, ok := strings.CutPrefix(x, "[")
			if !ok {
				continue
			}
			x = strings.TrimSuffix(x, "]")
			o := openSlot{}
			var slot string
			if a, b, ok := strings.Cut(x, "->-"); ok {
				slot, o.node = a, b
			} else if a, b, ok := strings.Cut(x, "-<-"); ok {
				slot, o.node, o.importing = a, b, true
			} else {
				continue
			}
			n, err := strconv.Atoi(slot)
			if err != nil {
				continue
			}
			o.slot = n
			out = append(out, o)
		}
	}
	return out
}

// keysOf counts the keys of node addr of clustered source s, a master
// without slots. A node's view of the cluster may list a replica that way
// for a moment (one that was just made a replica): its keys are its
// master's, so a node that is not a master counts none.
func (d *destination) keysOf(ctx context.Context, s *sourceState, addr string) (int64, error) {
	c, err := d.sourceClient(s, addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return 0, err
	}
	if !strings.Contains(info, "role:master") {
		return 0, nil
	}
	return c.DBSize(ctx).Result()
}

// tell sets the last error of source s: of each of its shards too, for a
// clustered source, since its view shows a shard's error first.
func (s *sourceState) tell(msg string) {
	s.status.set(func(st *sourceStatus) { st.lastError = msg })
	c := s.cluster.Load()
	if c == nil {
		return
	}
	c.mu.Lock()
	current := slices.Clone(c.current)
	c.mu.Unlock()
	for _, slots := range current {
		c.shard(slots).set(func(st *sourceStatus) { st.lastError = msg })
	}
}

// view is the status of a source: for a clustered one, its shards' with
// their sum.
func (s *sourceState) view() api.ReplicaSourceStatus {
	out := s.status.view(s.src)
	c := s.cluster.Load()
	if c == nil {
		return out
	}
	c.mu.Lock()
	current := slices.Clone(c.current)
	c.mu.Unlock()
	if len(current) == 0 {
		return out
	}
	s.status.mu.Lock()
	halted := s.status.phase == phaseStopped || s.status.phase == phasePaused
	s.status.mu.Unlock()
	srcErr := out.LastError
	sum := out
	sum.Status, sum.Lag, sum.LastError, sum.RDBSize, sum.RDBTransferred = api.SourceInSync, 0, "", 0, 0
	sum.CompressionActive = true
	rank := map[string]int{api.SourceInSync: 0, api.SourceSyncing: 1, api.SourceOutOfSync: 2}
	for _, slots := range current {
		st := c.shard(slots)
		v := st.view(s.src)
		st.mu.Lock()
		sh := api.ReplicaShardStatus{Slots: slots, Node: st.node, Status: v.Status, Lag: v.Lag, LastError: v.LastError,
			LastUpdate: v.LastUpdate, RDBSize: v.RDBSize, RDBTransferred: v.RDBTransferred, FullSyncs: st.fullSyncs, PartialSyncs: st.partialSyncs}
		st.mu.Unlock()
		c.mu.Lock()
		sh.Role = c.roles[slots]
		c.mu.Unlock()
		if halted {
			sh.Status = api.SourceOutOfSync
		}
		if rank[sh.Status] > rank[sum.Status] {
			sum.Status = sh.Status
		}
		sum.Lag = max(sum.Lag, sh.Lag)
		if sum.LastError == "" && sh.LastError != "" {
			sum.LastError = "shard " + slots + ": " + sh.LastError
		}
		sum.RDBSize += sh.RDBSize
		sum.RDBTransferred += sh.RDBTransferred
		sum.CompressionActive = sum.CompressionActive && v.CompressionActive
		if sum.CompressionNote == "" {
			sum.CompressionNote = v.CompressionNote
		}
		if v.SyncNote != "" {
			sum.SyncNote = strings.TrimPrefix(sum.SyncNote+"; ", "; ") + "shard " + slots + ": " + v.SyncNote
		}
		if sh.LastUpdate.After(sum.LastUpdate) {
			sum.LastUpdate = sh.LastUpdate
		}
		sum.Shards = append(sum.Shards, sh)
	}
	c.mu.Lock()
	if sum.Status == api.SourceInSync && !halted && !c.pending {
		c.note = "" // the re-replication it announced is done
	}
	note := c.note
	c.mu.Unlock()
	switch {
	case note != "":
		sum.LastError = note
		sum.Status = api.SourceOutOfSync
	case sum.LastError == "" && srcErr != "":
		sum.LastError = srcErr
		if sum.Status == api.SourceInSync {
			sum.Status = api.SourceOutOfSync
		}
	}
	if halted {
		sum.Status = api.SourceOutOfSync
	}
	return sum
}
