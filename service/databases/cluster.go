package databases

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/cluster"
	"github.com/replicad/terraform-provider-redis/service/certs"
	"github.com/replicad/terraform-provider-redis/service/store"
)

// A clustered database (store.Database.Clustered) is a Redis Cluster of
// cluster-enabled redis-servers, each one a process of the Manager like a
// plain database's: node 0 under the database's own uid (so Client, Socket
// and PID of the uid reach it), node i > 0 under nodeKey(uid, i). Each node
// gets the database's ACL users, TLS and persistence, and its share of the
// memory; the cluster itself (who knows whom, which slots, which replica
// follows which master) lives in each node's nodes.conf, which the node
// keeps up to date and reads back when it restarts.

// maxNodes bounds the nodes of one database (masters and replicas), so
// that nodeKey is one to one.
const maxNodes = 256

// nodeKey is the Manager's key of node i of database uid.
func nodeKey(uid, i int) int {
	if i == 0 {
		return uid
	}
	return -(uid*maxNodes + i)
}

// splitKey is the inverse of nodeKey.
func splitKey(key int) (uid, node int) {
	if key >= 0 {
		return key, 0
	}
	return -key / maxNodes, -key % maxNodes
}

// nodeDir is where node i > 0 of a database keeps its files: inside the
// database's own directory, so that removing the database removes them.
func (m *Manager) nodeDir(key int) string {
	uid, i := splitKey(key)
	return filepath.Join(m.Dir(uid), "node-"+strconv.Itoa(i))
}

// nodeDatabase is what node i of d runs as: d with its port, bus port and
// share of the memory (each shard holds a part of the data; a replica as
// much as its master).
func nodeDatabase(d store.Database, i int) store.Database {
	n := d
	n.UID = nodeKey(d.UID, i)
	n.Port = d.Nodes[i].Port
	n.Nodes = []store.Node{d.Nodes[i]}
	n.MemorySize = ShardMemory(d)
	return n
}

// ShardMemory is the memory limit of each node of d: memory_size split
// evenly across its shards.
func ShardMemory(d store.Database) int64 { return d.MemorySize / int64(d.Shards()) }

// NodeCount is how many redis-servers a clustered database with shards
// masters runs.
func NodeCount(shards int, replication bool) int {
	if replication {
		return 2 * shards
	}
	return shards
}

// clusterConfig is what renderConfig adds for a cluster node.
func clusterConfig(d store.Database, bindHost, advertise string, tlsFiles TLSFiles, line func(string, ...any)) {
	line("cluster-enabled yes")
	// Nodes tell clients (MOVED, CLUSTER SHARDS) where to find them: the
	// host the instance advertises. A name is announced as such (the
	// nodes still reach each other at the address they met at); an
	// address is announced as the nodes' own, the cluster bus included.
	// Without either, Redis learns a node's address from its peers.
	switch ip := net.ParseIP(advertise); {
	case advertise != "" && ip == nil:
		line("cluster-announce-hostname %s", advertise)
		line("cluster-preferred-endpoint-type hostname")
	case ip != nil && !ip.IsUnspecified():
		line("cluster-announce-ip %s", ip)
	default:
		if ip := net.ParseIP(bindHost); ip != nil && !ip.IsUnspecified() {
			line("cluster-announce-ip %s", ip)
		}
	}
	line("cluster-config-file nodes.conf")
	line("cluster-port %d", d.Nodes[0].BusPort)
	// A failed master is replaced by its replica within seconds.
	line("cluster-node-timeout 3000")
	// Each replica stays with the master it was given: the layout the
	// service made is the layout the API shows.
	line("cluster-allow-replica-migration no")
	if d.TLSMode == api.TLSEnabled {
		// Its port speaks only TLS: so do the bus and the replica links,
		// each node presenting the instance's certificate to the others.
		line("tls-cluster yes")
		line("tls-replication yes")
		if tlsFiles.NodeCertFile != "" {
			line("tls-client-cert-file %s", quote(tlsFiles.NodeCertFile))
			line("tls-client-key-file %s", quote(tlsFiles.NodeKeyFile))
		}
	} else if tlsFiles.NodeCertFile != "" && tlsFiles.CAFile != "" && !tlsFiles.NoTLS {
		// Its port speaks plain TCP, but the bus does not: Redis trusts
		// whatever a bus connection says (a MEET from anyone joins the
		// cluster, a higher epoch takes slots), so it speaks TLS, and
		// Redis requires a client certificate on the bus, here of the
		// instance's CA, whose only client certificate is the nodes'
		// own (its key never leaves the instance). tls-port stays 0:
		// replicas still reach their masters on the plain port, with
		// the internal password.
		// With tls-cluster, Redis gives its peers its TLS port as the one
		// replicas connect to: 0 here, so each node announces its plain
		// port as both (CLUSTER SHARDS then shows it as tls-port too).
		line("tls-cluster yes")
		line("cluster-announce-port %d", d.Port)
		line("cluster-announce-tls-port %d", d.Port)
		line("tls-cert-file %s", quote(tlsFiles.NodeCertFile))
		line("tls-key-file %s", quote(tlsFiles.NodeKeyFile))
		line("tls-ca-cert-file %s", quote(tlsFiles.CAFile))
		line("tls-auth-clients yes")
		line("tls-protocols %s", quote("TLSv1.2 TLSv1.3"))
		line("tls-ciphers %s", quote(certs.OpenSSLCiphers))
	}
}

// createCluster starts the nodes of a new clustered database, joins them
// into one cluster, assigns the slots evenly to the masters, attaches each
// replica to its master, and waits until every node says the cluster is ok.
// On error the caller (Create) removes everything.
func (m *Manager) createCluster(ctx context.Context, d store.Database) error {
	if len(d.Nodes) != NodeCount(d.Shards(), d.Replication) {
		return fmt.Errorf("database %d has %d nodes recorded for %d shards", d.UID, len(d.Nodes), d.Shards())
	}
	for _, n := range d.Nodes {
		if !m.PortFree(n.Port) {
			return &PortInUseError{Port: n.Port}
		}
		if !m.PortFree(n.BusPort) {
			return &PortInUseError{Port: n.BusPort}
		}
	}
	var procs []*process
	for i := range d.Nodes {
		p, err := m.launch(nodeDatabase(d, i), true)
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for i, p := range procs {
		nd := nodeDatabase(d, i)
		applied := make(chan error, 1)
		go func() { applied <- m.applyLive(ctx, nd) }()
		select {
		case err := <-applied:
			if err != nil {
				return err
			}
		case exit := <-p.exited:
			cancel()
			<-applied
			tail := startLog(m.Dir(nd.UID))
			if strings.Contains(tail, "Address already in use") {
				return &PortInUseError{Port: nd.Port}
			}
			return fmt.Errorf("start node %d of database %d: %w; redis-server said: %s", i, d.UID, exit, lastLines(tail, 3))
		}
	}
	if err := m.formCluster(ctx, d); err != nil {
		return fmt.Errorf("form the Redis Cluster of database %d: %w", d.UID, err)
	}
	return nil
}

// formCluster does what `redis-cli --cluster create` does, with the
// service's own connections.
func (m *Manager) formCluster(ctx context.Context, d store.Database) error {
	c0 := m.Client(nodeKey(d.UID, 0))
	host := m.announceHost()
	for i := 1; i < len(d.Nodes); i++ {
		n := d.Nodes[i]
		if err := c0.Do(ctx, "CLUSTER", "MEET", host, n.Port, n.BusPort).Err(); err != nil {
			return fmt.Errorf("CLUSTER MEET node %d: %w", i, err)
		}
	}
	shards := d.Shards()
	for s := 0; s < shards; s++ {
		lo, hi := SlotRange(s, shards)
		if err := m.Client(nodeKey(d.UID, s)).Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			return fmt.Errorf("CLUSTER ADDSLOTSRANGE %d %d on shard %d: %w", lo, hi, s, err)
		}
	}
	// A replica can follow its master only once it knows it.
	ids := make([]string, shards)
	for s := range ids {
		id, err := m.Client(nodeKey(d.UID, s)).Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			return fmt.Errorf("CLUSTER MYID of shard %d: %w", s, err)
		}
		ids[s] = id
	}
	if d.Replication {
		for s := 0; s < shards; s++ {
			c := m.Client(nodeKey(d.UID, shards+s))
			if err := poll(ctx, func() error {
				return c.Do(ctx, "CLUSTER", "REPLICATE", ids[s]).Err()
			}); err != nil {
				return fmt.Errorf("make node %d the replica of shard %d: %w", shards+s, s, err)
			}
		}
	}
	for i := range d.Nodes {
		c := m.Client(nodeKey(d.UID, i))
		if err := poll(ctx, func() error {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return errors.New("cluster not formed yet")
			}
			// And it knows every node in its place: each replica with
			// its master (gossip spreads that a little later).
			t, err := cluster.Discover(ctx, c, d.TLSMode == api.TLSEnabled)
			if err != nil {
				return err
			}
			if n := len(t.Addrs()); len(t.Shards) != shards || n != len(d.Nodes) {
				return fmt.Errorf("node %d sees %d shards of %d nodes, not %d of %d yet", i, len(t.Shards), n, shards, len(d.Nodes))
			}
			return nil
		}); err != nil {
			return fmt.Errorf("wait for node %d to see the cluster ok: %w", i, err)
		}
	}
	return nil
}

// SlotRange is the slots of shard s of n: 16384 split evenly, the first
// shards one slot larger when it does not divide.
func SlotRange(s, n int) (lo, hi int) {
	size, extra := cluster.Slots/n, cluster.Slots%n
	lo = s*size + min(s, extra)
	hi = lo + size - 1
	if s < extra {
		hi++
	}
	return lo, hi
}

// poll retries f every 100 ms until it succeeds or ctx ends.
func poll(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// announceHost is the address nodes meet each other at.
func (m *Manager) announceHost() string {
	host, _, _ := net.SplitHostPort(m.Addr(1))
	return host
}

// keys is every Manager key of database d's processes.
func keys(d store.Database) []int {
	if !d.Clustered() {
		return []int{d.UID}
	}
	out := make([]int, len(d.Nodes))
	for i := range d.Nodes {
		out[i] = nodeKey(d.UID, i)
	}
	return out
}

// Topology reads the cluster of database uid as its nodes see it now
// (CLUSTER SHARDS from the first node that answers), for the endpoints the
// API shows.
func (m *Manager) Topology(ctx context.Context, uid int) (cluster.Topology, error) {
	m.mu.Lock()
	d, ok := m.clusters[uid]
	m.mu.Unlock()
	if !ok {
		return cluster.Topology{}, fmt.Errorf("database %d is not a running cluster", uid)
	}
	// Every node is asked at once: a node that hangs (stopped, or busy)
	// must not keep the others from answering in time.
	ks := keys(d)
	type answer struct {
		t   cluster.Topology
		err error
	}
	answers := make([]chan answer, len(ks))
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	for i, k := range ks {
		answers[i] = make(chan answer, 1)
		c := m.Client(k)
		if c == nil {
			answers[i] <- answer{err: errors.New("not running")}
			continue
		}
		go func() {
			t, err := cluster.Discover(qctx, c, d.TLSMode == api.TLSEnabled)
			answers[i] <- answer{t, err}
		}()
	}
	// The first node, in the database's order, that answers in time.
	var last error = qctx.Err()
	for _, ch := range answers {
		var a answer
		select {
		case a = <-ch:
		default:
			select {
			case a = <-ch:
			case <-qctx.Done():
				continue // this one hangs; the next may have answered
			}
		}
		if a.err == nil {
			return a.t, nil
		}
		last = a.err
	}
	return cluster.Topology{}, fmt.Errorf("no node of database %d answered CLUSTER SHARDS: %v", uid, last)
}

// nodesStatus combines the statuses of a clustered database's nodes: the
// worst of them (failed, then pending, then loading), active only when
// every node is.
func nodesStatus(statuses []string, progress []float64) (string, float64) {
	rank := map[string]int{api.StatusActive: 0, api.StatusLoading: 1, api.StatusPending: 2, api.StatusFailed: 3}
	worst, perc := api.StatusActive, 100.0
	for i, s := range statuses {
		if rank[s] > rank[worst] {
			worst = s
		}
		if s == api.StatusLoading {
			perc = min(perc, progress[i])
		}
	}
	if worst != api.StatusLoading {
		perc = 0
	}
	return worst, perc
}

// masterAuth lets a cluster replica log in to its master as the user that
// may only replicate (adminRules): the link crosses the network, in plain
// text on a database without TLS, and the service's own user would give
// whoever saw it every right over every node. It is set live, never
// written to the config file: the password would be there in clear.
func masterAuth(ctx context.Context, c *redis.Client, d store.Database) error {
	if err := c.ConfigSet(ctx, "masteruser", AdminUser).Err(); err != nil {
		return fmt.Errorf("set masteruser: %w", err)
	}
	if err := c.ConfigSet(ctx, "masterauth", AdminSecret(d)).Err(); err != nil {
		return fmt.Errorf("set masterauth: %w", err)
	}
	return nil
}

// NodeClients are the service's connections to every redis-server of
// database uid: its one server, or each node of a sharded database.
func (m *Manager) NodeClients(uid int) []*redis.Client {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, clustered := m.clusters[uid]
	if !clustered {
		if c := m.clients[uid]; c != nil {
			return []*redis.Client{c}
		}
		return nil
	}
	var out []*redis.Client
	for _, k := range keys(d) {
		if c := m.clients[k]; c != nil {
			out = append(out, c)
		}
	}
	return out
}

// NodeSocket is the service's own socket into node i of database uid.
func (m *Manager) NodeSocket(uid, i int) string { return m.Socket(nodeKey(uid, i)) }
