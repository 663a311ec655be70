package controller

import (
	"context"
	"slices"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/cluster"
	"github.com/replicad/terraform-provider-redis/service/databases"
	"github.com/replicad/terraform-provider-redis/service/store"
)

// validateSharding checks the sharding fields of a create.
func validateSharding(req api.CreateDatabaseRequest) error {
	if req.ShardsCount < 0 || req.ShardsCount > api.MaxShards {
		return invalid("shards_count %d is out of range 1-%d", req.ShardsCount, api.MaxShards)
	}
	clustered := req.ShardsCount > 1 || req.OSSCluster
	if req.Replication && !clustered {
		return invalid("replication (a replica per shard) needs a Redis Cluster for now: set shards_count above 1 or oss_cluster = true")
	}
	if !clustered {
		return nil
	}
	if per := req.MemorySize / int64(max(req.ShardsCount, 1)); per < api.MinMemorySize {
		return invalid("memory_size %d split across %d shards leaves %d bytes per shard, less than the %d (4 MiB) each needs", req.MemorySize, req.ShardsCount, per, int64(api.MinMemorySize))
	}
	return nil
}

// checkShardingChange refuses what would reshard d: changing the number of
// shards, their replicas or cluster mode moves data between servers, which
// the service does not do yet.
func checkShardingChange(d store.Database, req api.UpdateDatabaseRequest) error {
	if n := req.ShardsCount; n != nil && (*n < 0 || *n > api.MaxShards) {
		// Out of range as in a create, not taken for 1.
		return invalid("shards_count %d is out of range 1-%d", *n, api.MaxShards)
	}
	if req.ShardsCount != nil && max(*req.ShardsCount, 1) != d.Shards() {
		return invalid("shards_count cannot change (from %d to %d): resharding a database is not supported yet; create a new database with the shards wanted instead", d.Shards(), *req.ShardsCount)
	}
	if req.Replication != nil && *req.Replication != d.Replication {
		return invalid("replication cannot change (from %t to %t) on an existing database yet; create a new database instead", d.Replication, *req.Replication)
	}
	if req.OSSCluster != nil && *req.OSSCluster != d.OSSCluster {
		return invalid("oss_cluster cannot change (from %t to %t) on an existing database yet; create a new database instead", d.OSSCluster, *req.OSSCluster)
	}
	if !d.Clustered() {
		return nil
	}
	if req.TLSMode != nil && (*req.TLSMode == api.TLSEnabled) != (d.TLSMode == api.TLSEnabled) {
		// Every node's port, bus and replica links change protocol at
		// once: the cluster would have to be taken down and formed again.
		return invalid("tls_mode cannot change to or from enabled on a sharded database yet (its nodes' links would all change protocol); create a new database instead")
	}
	if req.MemorySize != nil {
		if per := *req.MemorySize / int64(d.Shards()); per < api.MinMemorySize {
			return invalid("memory_size %d split across %d shards leaves %d bytes per shard, less than the %d (4 MiB) each needs", *req.MemorySize, d.Shards(), per, int64(api.MinMemorySize))
		}
	}
	return nil
}

// nodePorts gives the nodes of a clustered database their ports: node 0
// listens on the database's port, every other port comes from the range.
func (c *Controller) nodePorts(d *store.Database, existing []store.Database) error {
	return c.nodePortsAvoiding(d, existing, map[int]bool{d.Port: true, d.ReplicationPort: true})
}

func (c *Controller) nodePortsAvoiding(d *store.Database, existing []store.Database, avoid map[int]bool) error {
	d.Nodes = nil
	if !d.Clustered() {
		return nil
	}
	next := func() (int, error) {
		p, err := c.freePort(existing, avoid)
		if err == nil {
			avoid[p] = true
		}
		return p, err
	}
	for i := range databases.NodeCount(d.Shards(), d.Replication) {
		n := store.Node{Port: d.Port}
		var err error
		if i > 0 {
			if n.Port, err = next(); err != nil {
				return err
			}
		}
		if n.BusPort, err = next(); err != nil {
			return err
		}
		if n.ReplicationPort, err = next(); err != nil {
			return err
		}
		d.Nodes = append(d.Nodes, n)
	}
	return nil
}

// endpoints lists where applications reach d: its one server, or every
// node of its cluster with the role and slots the cluster gives it (as its
// nodes said a moment ago: see topologyFor, whose deadline it passes on).
// A node no answering node knows of has role "unknown".
func (c *Controller) endpoints(ctx context.Context, d store.Database, deadline time.Time) []api.NodeEndpoint {
	host := c.cfg.AdvertiseHost
	if !d.Clustered() {
		return []api.NodeEndpoint{{Host: host, Port: d.Port, Role: cluster.RoleMaster}}
	}
	byPort := c.topologyFor(ctx, d, deadline)
	out := make([]api.NodeEndpoint, 0, len(d.Nodes))
	for _, n := range d.Nodes {
		ep, ok := byPort[n.Port]
		if !ok {
			ep = api.NodeEndpoint{Host: host, Port: n.Port, Role: "unknown"}
		}
		ep.ReplicationPort = n.ReplicationPort
		out = append(out, ep)
	}
	return out
}

// giveNodesReplicationPorts gives the nodes of a sharded database recorded
// before sharded databases could be sources a replication endpoint each,
// so that it can be one. On failure (no free port) d stays as it was: its
// replication endpoint then says why it cannot be a source.
func (c *Controller) giveNodesReplicationPorts(d store.Database) store.Database {
	if !d.Clustered() || !slices.ContainsFunc(d.Nodes, func(n store.Node) bool { return n.ReplicationPort == 0 }) {
		return d
	}
	next, err := c.cfg.Store.Update(d.UID, func(n *store.Database, others []store.Database) error {
		avoid := map[int]bool{}
		for _, p := range n.Ports() {
			avoid[p] = true
		}
		for i := range n.Nodes {
			if n.Nodes[i].ReplicationPort != 0 {
				continue
			}
			p, err := c.freePort(others, avoid)
			if err != nil {
				return err
			}
			avoid[p] = true
			n.Nodes[i].ReplicationPort = p
		}
		return nil
	})
	if err != nil {
		c.cfg.Logger.Error("cannot give the nodes of a sharded database their replication endpoints; it cannot be a source until then", "uid", d.UID, "name", d.Name, "err", err)
		return d
	}
	c.cfg.Logger.Info("the nodes of a sharded database got their replication endpoints", "uid", d.UID, "name", d.Name)
	return next
}
