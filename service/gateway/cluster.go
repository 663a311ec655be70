package gateway

import (
	"net"
	"strconv"

	"github.com/replicad/terraform-provider-redis/internal/cluster"
)

// A sharded database (a Redis Cluster of several redis-servers) is served
// to destinations as a Redis Cluster whose nodes are replication endpoints:
// each node has its own endpoint, which streams that node, and every
// endpoint of the database answers INFO cluster (cluster_enabled:1) and
// CLUSTER SHARDS itself, from the real cluster's view, with each node's
// address replaced by its endpoint's. A destination that replicates
// clustered sources (one PSYNC per shard, following failovers) thus needs
// nothing else; the database's own endpoint refuses PSYNC, since its first
// node holds only a part of the data.

// clusterInfo is the answer to INFO cluster on a sharded database's
// endpoint.
const clusterInfo = "# Cluster\r\ncluster_enabled:1\r\n"

// appendShards writes t as Redis 7 answers CLUSTER SHARDS in RESP2: an
// array of shards, each a flat map of its slot ranges and nodes. With tls,
// each node gives its endpoint's port as tls-port too (an endpoint of a
// database with TLS speaks only TLS, on one port).
func appendShards(dst []byte, t cluster.Topology, tls bool) []byte {
	bulk := func(s string) {
		dst = strconv.AppendInt(append(dst, '$'), int64(len(s)), 10)
		dst = append(append(append(dst, "\r\n"...), s...), "\r\n"...)
	}
	integer := func(n int64) { dst = append(strconv.AppendInt(append(dst, ':'), n, 10), "\r\n"...) }
	array := func(n int) { dst = append(strconv.AppendInt(append(dst, '*'), int64(n), 10), "\r\n"...) }

	array(len(t.Shards))
	for _, sh := range t.Shards {
		array(4)
		bulk("slots")
		array(2 * len(sh.Slots))
		for _, r := range sh.Slots {
			integer(int64(r.Start))
			integer(int64(r.End))
		}
		bulk("nodes")
		type node struct {
			n    cluster.Node
			host string
			port int64
		}
		var nodes []node
		for _, n := range sh.Nodes {
			host, p, err := net.SplitHostPort(n.Addr)
			port, perr := strconv.ParseInt(p, 10, 32)
			if err != nil || perr != nil {
				continue // not an address: the caller gives only good ones
			}
			nodes = append(nodes, node{n, host, port})
		}
		array(len(nodes))
		for _, n := range nodes {
			fields := 7
			if tls {
				fields++
			}
			array(2 * fields)
			bulk("id")
			bulk(n.n.ID)
			bulk("port")
			integer(n.port)
			if tls {
				bulk("tls-port")
				integer(n.port)
			}
			if net.ParseIP(n.host) != nil {
				bulk("ip")
			} else {
				bulk("hostname")
			}
			bulk(n.host)
			bulk("endpoint")
			bulk(n.host)
			bulk("role")
			bulk(n.n.Role)
			bulk("replication-offset")
			integer(n.n.Offset)
			bulk("health")
			bulk(n.n.Health)
		}
	}
	return dst
}
