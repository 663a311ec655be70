package redistest

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of redis-server children of the test: masters
// with the slots split evenly, each with its replicas.
type Cluster struct {
	Nodes   []*Server
	t       testing.TB
	clients map[*Server]*redis.Client
}

// c is a client of node n, one per node for the test.
func (cl *Cluster) c(n *Server) *redis.Client {
	if cl.clients[n] == nil {
		cl.clients[n] = n.Client()
	}
	return cl.clients[n]
}

// StartCluster runs masters*(1+replicas) cluster-enabled servers on
// loopback, assigns the slots evenly to the masters (CLUSTER ADDSLOTSRANGE),
// joins them (CLUSTER MEET), attaches the replicas (CLUSTER REPLICATE) and
// waits until every node says cluster_state:ok. extra are more config args.
func StartCluster(t testing.TB, masters, replicas int, extra ...string) *Cluster {
	t.Helper()
	return StartClusterWith(t, masters, replicas, func(int) []string { return extra })
}

// StartClusterWith is StartCluster with the extra config args of each node
// given by nodeArgs (node i, masters first).
func StartClusterWith(t testing.TB, masters, replicas int, nodeArgs func(i int) []string) *Cluster {
	t.Helper()
	cl := &Cluster{t: t, clients: map[*Server]*redis.Client{}}
	// Each node's cluster bus gets a port of FreePort's window too: Redis's
	// default, its port + 10000, would fall in the windows of the service's
	// tests (or past 65535).
	busPorts := map[*Server]int{}
	for i := range masters * (1 + replicas) {
		bus := FreePort(t)
		args := append([]string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(bus),
			"--cluster-node-timeout", "1500", "--cluster-replica-validity-factor", "0",
			"--appendonly", "yes"}, nodeArgs(i)...)
		n := Start(t, args...)
		busPorts[n] = bus
		cl.Nodes = append(cl.Nodes, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range masters {
		from, to := i*16384/masters, (i+1)*16384/masters-1
		if err := cl.c(cl.Nodes[i]).Do(ctx, "CLUSTER", "ADDSLOTSRANGE", from, to).Err(); err != nil {
			t.Fatalf("CLUSTER ADDSLOTSRANGE %d %d: %v", from, to, err)
		}
	}
	// With tls-cluster, a node's cluster port is its TLS port: that is
	// where it is met.
	meet := strconv.Itoa(cl.Nodes[0].Port)
	if v, _ := cl.c(cl.Nodes[0]).ConfigGet(ctx, "tls-cluster").Result(); v["tls-cluster"] == "yes" {
		p, _ := cl.c(cl.Nodes[0]).ConfigGet(ctx, "tls-port").Result()
		meet = p["tls-port"]
	}
	for _, n := range cl.Nodes[1:] {
		if err := cl.c(n).Do(ctx, "CLUSTER", "MEET", "127.0.0.1", meet, busPorts[cl.Nodes[0]]).Err(); err != nil {
			t.Fatalf("CLUSTER MEET: %v", err)
		}
	}
	// A replica can attach once it knows its master.
	for i := range masters * replicas {
		r, m := cl.Nodes[masters+i], cl.Nodes[i%masters]
		id := cl.NodeID(m)
		Eventually(t, time.Minute, "replica knows its master", func() error {
			return cl.c(r).ClusterReplicate(ctx, id).Err()
		})
	}
	cl.WaitOK()
	return cl
}

// NodeID is the cluster id of node n.
func (cl *Cluster) NodeID(n *Server) string {
	cl.t.Helper()
	id, err := cl.c(n).Do(context.Background(), "CLUSTER", "MYID").Text()
	if err != nil {
		cl.t.Fatalf("CLUSTER MYID: %v", err)
	}
	return id
}

// WaitOK waits until every running node says cluster_state:ok and agrees
// on who serves every slot.
func (cl *Cluster) WaitOK() {
	cl.t.Helper()
	Eventually(cl.t, 2*time.Minute, "cluster state ok on every node", func() error {
		var first string
		for _, n := range cl.Nodes {
			if !n.Running() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			info, err := cl.c(n).ClusterInfo(ctx).Result()
			if err != nil {
				cancel()
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				cancel()
				return fmt.Errorf("node %d: %s", n.Port, info)
			}
			slots, err := cl.c(n).ClusterSlots(ctx).Result()
			cancel()
			if err != nil {
				return err
			}
			var masters []string
			for _, s := range slots {
				masters = append(masters, fmt.Sprint(s.Start, s.End, s.Nodes[0].Addr))
			}
			desc := fmt.Sprint(masters)
			if first == "" {
				first = desc
			} else if desc != first {
				return fmt.Errorf("nodes disagree on the slot map: %s vs %s", first, desc)
			}
		}
		return nil
	})
}

// Client is a cluster client of the cluster.
func (cl *Cluster) Client() *redis.ClusterClient {
	var addrs []string
	for _, n := range cl.Nodes {
		addrs = append(addrs, n.Addr())
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Password: cl.Nodes[0].Password, MaxRedirects: 16})
	cl.t.Cleanup(func() { c.Close() })
	return c
}

// Masters are the nodes that are masters now.
func (cl *Cluster) Masters() []*Server {
	var out []*Server
	for _, n := range cl.Nodes {
		if !n.Running() {
			continue
		}
		role, err := cl.c(n).Do(context.Background(), "ROLE").Slice()
		if err == nil && len(role) > 0 && role[0] == "master" {
			out = append(out, n)
		}
	}
	return out
}

// ReplicaOf returns a running replica of master m.
func (cl *Cluster) ReplicaOf(m *Server) *Server {
	cl.t.Helper()
	id := cl.NodeID(m)
	for _, n := range cl.Nodes {
		if n == m || !n.Running() {
			continue
		}
		info, err := cl.c(n).Info(context.Background(), "replication").Result()
		if err == nil && strings.Contains(info, "master_port:"+strconv.Itoa(m.Port)+"\r") {
			return n
		}
	}
	cl.t.Fatalf("no replica of master %s (%s)", m.Addr(), id)
	return nil
}

// MasterClients is a client per master, for comparing a destination with the
// cluster: every key lives on exactly one master.
func (cl *Cluster) MasterClients() []*redis.Client {
	var out []*redis.Client
	for _, m := range cl.Masters() {
		out = append(out, m.Client())
	}
	return out
}

// Log is the log of node n, for failure messages.
func (n *Server) Log() string { return filepath.Join(n.Dir, "redis.log") }

// Running says whether the server process is alive (not stopped by the test).
func (s *Server) Running() bool { return s.cmd != nil && s.cmd.ProcessState == nil }

// Promote makes replica r the master of its shard with CLUSTER FAILOVER
// (or, after its master was killed, waits for the cluster to promote it),
// then waits until every node agrees.
func (cl *Cluster) Promote(r *Server, failover bool) {
	cl.t.Helper()
	ctx := context.Background()
	if failover {
		if err := cl.c(r).Do(ctx, "CLUSTER", "FAILOVER").Err(); err != nil {
			cl.t.Fatalf("CLUSTER FAILOVER on %s: %v", r.Addr(), err)
		}
	}
	isMaster := func() error {
		role, err := cl.c(r).Do(ctx, "ROLE").Slice()
		if err != nil {
			return err
		}
		if len(role) == 0 || role[0] != "master" {
			return fmt.Errorf("role %v", role)
		}
		return nil
	}
	if failover {
		// A manual failover that does not end within Redis's own 5 s
		// (the master pauses its clients, the replica catches up, then
		// wins the votes) is given up in silence: on a loaded machine it
		// is asked again, and at last taken over, as an operator would.
		deadline := time.Now().Add(30 * time.Second)
		again := time.Now().Add(10 * time.Second)
		for isMaster() != nil && time.Now().Before(deadline) {
			if time.Now().After(again) {
				cl.t.Logf("CLUSTER FAILOVER on %s did not end: asked again", r.Addr())
				_ = cl.c(r).Do(ctx, "CLUSTER", "FAILOVER").Err()
				again = time.Now().Add(10 * time.Second)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if isMaster() != nil {
			cl.t.Logf("CLUSTER FAILOVER on %s did not end within 30 s: CLUSTER FAILOVER TAKEOVER", r.Addr())
			if err := cl.c(r).Do(ctx, "CLUSTER", "FAILOVER", "TAKEOVER").Err(); err != nil {
				cl.t.Fatalf("CLUSTER FAILOVER TAKEOVER on %s: %v", r.Addr(), err)
			}
		}
	}
	if !failover {
		// The cluster's own election may not happen on a loaded machine
		// (the replica finds its data too old to stand, or misses the
		// votes): after a while the replica takes the slots by itself,
		// as an operator would.
		deadline := time.Now().Add(30 * time.Second)
		for isMaster() != nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if isMaster() != nil {
			cl.t.Logf("the cluster did not promote %s within 30 s: CLUSTER FAILOVER TAKEOVER", r.Addr())
			if err := cl.c(r).Do(ctx, "CLUSTER", "FAILOVER", "TAKEOVER").Err(); err != nil {
				cl.t.Fatalf("CLUSTER FAILOVER TAKEOVER on %s: %v", r.Addr(), err)
			}
		}
	}
	Eventually(cl.t, 2*time.Minute, "replica "+r.Addr()+" promoted", isMaster)
	cl.WaitOK()
}

// MoveSlots moves slots from master from to master to as redis-cli
// --cluster reshard does: IMPORTING and MIGRATING, MIGRATE of every key,
// then SETSLOT NODE on every master.
func (cl *Cluster) MoveSlots(from, to *Server, slots ...int) {
	cl.t.Helper()
	ctx := context.Background()
	fromID, toID := cl.NodeID(from), cl.NodeID(to)
	for _, slot := range slots {
		if err := cl.c(to).Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", fromID).Err(); err != nil {
			cl.t.Fatalf("SETSLOT IMPORTING: %v", err)
		}
		if err := cl.c(from).Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", toID).Err(); err != nil {
			cl.t.Fatalf("SETSLOT MIGRATING: %v", err)
		}
		for {
			keys, err := cl.c(from).ClusterGetKeysInSlot(ctx, slot, 100).Result()
			if err != nil {
				cl.t.Fatalf("GETKEYSINSLOT: %v", err)
			}
			if len(keys) == 0 {
				break
			}
			args := []any{"MIGRATE", "127.0.0.1", to.Port, "", 0, 10000}
			if to.Password != "" {
				args = append(args, "AUTH", to.Password)
			}
			args = append(args, "KEYS")
			for _, k := range keys {
				args = append(args, k)
			}
			if err := cl.c(from).Do(ctx, args...).Err(); err != nil {
				cl.t.Fatalf("MIGRATE: %v", err)
			}
		}
		for _, n := range []*Server{to, from} {
			if err := cl.c(n).Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", toID).Err(); err != nil {
				cl.t.Fatalf("SETSLOT NODE: %v", err)
			}
		}
	}
	for _, m := range cl.Masters() {
		for _, slot := range slots {
			_ = cl.c(m).Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", toID).Err()
		}
	}
	cl.WaitOK()
}

// WaitReplicasOnline waits until every running node's CLUSTER SHARDS lists
// every replica as online: right after a start, a replica that is still
// loading is "loading", and a syncer told to read from replicas would read
// from the master instead.
func (cl *Cluster) WaitReplicasOnline() {
	cl.t.Helper()
	Eventually(cl.t, 2*time.Minute, "every replica online", func() error {
		for _, n := range cl.Nodes {
			if !n.Running() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			shards, err := cl.c(n).ClusterShards(ctx).Result()
			cancel()
			if err != nil {
				return err
			}
			for _, s := range shards {
				for _, node := range s.Nodes {
					if node.Role == "replica" && node.Health != "online" {
						return fmt.Errorf("node %d sees replica %s:%d %s", n.Port, node.IP, node.Port, node.Health)
					}
				}
			}
		}
		return nil
	})
}
