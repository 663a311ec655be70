// Package cluster discovers the shards of a Redis Cluster: whether a server
// runs in cluster mode (INFO cluster), and which nodes serve which slots
// (CLUSTER SHARDS, never the text of CLUSTER NODES). It also computes the
// slot of a key, hash tags included.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/redisurl"
)

// Slots is the number of hash slots of a Redis Cluster.
const Slots = 16384

// Node roles and health, as CLUSTER SHARDS names them.
const (
	RoleMaster  = "master"
	RoleReplica = "replica"
	HealthOK    = "online"
)

// Node is one server of a shard.
type Node struct {
	ID     string
	Addr   string // host:port to reach it (the TLS port when asked for TLS)
	Role   string // RoleMaster or RoleReplica
	Health string // online, failed or loading
	Offset int64  // its replication offset
}

// Online says whether the cluster considers the node healthy.
func (n Node) Online() bool { return n.Health == HealthOK }

// Range is an inclusive range of slots.
type Range struct{ Start, End int }

// Shard is a set of slots and the nodes (a master and its replicas) that
// hold them.
type Shard struct {
	Slots []Range // sorted
	Nodes []Node
}

// Key names the shard by its slots ("0-5460" or "0-99,200-300"): what stays
// true of a shard when its master fails over, and changes when slots move.
func (s Shard) Key() string {
	parts := make([]string, len(s.Slots))
	for i, r := range s.Slots {
		if r.Start == r.End {
			parts[i] = strconv.Itoa(r.Start)
		} else {
			parts[i] = strconv.Itoa(r.Start) + "-" + strconv.Itoa(r.End)
		}
	}
	return strings.Join(parts, ",")
}

// Master returns the shard's master, if the cluster names one.
func (s Shard) Master() (Node, bool) {
	for _, n := range s.Nodes {
		if n.Role == RoleMaster {
			return n, true
		}
	}
	return Node{}, false
}

// Replicas returns the shard's replicas, online ones first.
func (s Shard) Replicas() []Node {
	var out []Node
	for _, n := range s.Nodes {
		if n.Role == RoleReplica {
			out = append(out, n)
		}
	}
	slices.SortStableFunc(out, func(a, b Node) int {
		switch {
		case a.Online() == b.Online():
			return 0
		case a.Online():
			return -1
		}
		return 1
	})
	return out
}

// Topology is the shards of a cluster that hold slots, sorted by their
// first slot.
type Topology struct {
	Shards []Shard
	// Slotless are the masters that serve no slot. They hold no data,
	// except while slots migrate into them: the keys of a slot being
	// imported are there before the slot is (redis-cli --cluster reshard
	// to a new master).
	Slotless []Node
}

// Partition describes how the slots are split between shards, whichever
// node serves each: it changes when slots move (resharding), not when a
// master fails over.
func (t Topology) Partition() string {
	keys := make([]string, len(t.Shards))
	for i, s := range t.Shards {
		keys[i] = s.Key()
	}
	return strings.Join(keys, " ")
}

// Shard returns the shard named key (see Shard.Key).
func (t Topology) Shard(key string) (Shard, bool) {
	for _, s := range t.Shards {
		if s.Key() == key {
			return s, true
		}
	}
	return Shard{}, false
}

// Addrs is the address of every node.
func (t Topology) Addrs() []string {
	var out []string
	for _, s := range t.Shards {
		for _, n := range s.Nodes {
			out = append(out, n.Addr)
		}
	}
	return out
}

// Enabled says whether the server c reaches runs in cluster mode. A server
// that refuses INFO cluster (a restricted user, a replication endpoint that
// only answers INFO replication) is not taken for a cluster: it is then
// replicated as one server, as before.
func Enabled(ctx context.Context, c *redis.Client) (bool, error) {
	info, err := c.Info(ctx, "cluster").Result()
	if err != nil {
		var rerr redis.Error
		if errors.As(err, &rerr) {
			return false, nil
		}
		return false, fmt.Errorf("INFO cluster: %w", err)
	}
	return ParseEnabled(info), nil
}

// ParseEnabled reads cluster_enabled from the text of INFO.
func ParseEnabled(info string) bool {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "cluster_enabled:"); ok {
			return v == "1"
		}
	}
	return false
}

// ErrUnsupported says that a cluster does not answer CLUSTER SHARDS: it
// runs a Redis older than 7.0.
var ErrUnsupported = errors.New("the cluster does not know CLUSTER SHARDS: replicating a Redis Cluster needs Redis 7.0 or later on its nodes")

// Discover reads the shards of the cluster c belongs to. With tls, nodes are
// reached on their TLS port.
func Discover(ctx context.Context, c *redis.Client, tls bool) (Topology, error) {
	shards, err := c.ClusterShards(ctx).Result()
	if err != nil {
		var rerr redis.Error
		if errors.As(err, &rerr) && strings.Contains(strings.ToLower(rerr.Error()), "unknown") {
			return Topology{}, fmt.Errorf("%w (%v)", ErrUnsupported, err)
		}
		return Topology{}, fmt.Errorf("CLUSTER SHARDS: %w", err)
	}
	var t Topology
	for _, s := range shards {
		sh := Shard{}
		for _, r := range s.Slots {
			if r.Start < 0 || r.End >= Slots || r.Start > r.End {
				return Topology{}, fmt.Errorf("CLUSTER SHARDS: slot range %d-%d is not a range of 0-%d", r.Start, r.End, Slots-1)
			}
			sh.Slots = append(sh.Slots, Range{int(r.Start), int(r.End)})
		}
		slices.SortFunc(sh.Slots, func(a, b Range) int { return a.Start - b.Start })
		for _, n := range s.Nodes {
			host := n.Endpoint
			if host == "" || host == "?" {
				host = n.IP
			}
			port := n.Port
			if tls && n.TLSPort > 0 {
				port = n.TLSPort
			}
			if host == "" || port <= 0 {
				continue // a node with no address to reach yet
			}
			if !redisurl.ValidHost(host) || (n.Role != RoleMaster && n.Role != RoleReplica) {
				// What the source says goes into metric labels (which
				// panic on bytes that are not UTF-8), logs and the
				// status: a host that is no name, or a role Redis does
				// not have, is no node to replicate from.
				continue
			}
			sh.Nodes = append(sh.Nodes, Node{ID: n.ID, Addr: net.JoinHostPort(host, strconv.FormatInt(port, 10)),
				Role: n.Role, Health: n.Health, Offset: n.ReplicationOffset})
		}
		if len(sh.Slots) == 0 {
			if m, ok := sh.Master(); ok {
				t.Slotless = append(t.Slotless, m)
			}
			continue
		}
		t.Shards = append(t.Shards, sh)
	}
	slices.SortFunc(t.Shards, func(a, b Shard) int { return a.Slots[0].Start - b.Slots[0].Start })
	return t, nil
}

// KeySlot is the hash slot of key: CRC16 of the key, or of its hash tag
// (the part between the first "{" and the next "}", when not empty), modulo
// 16384.
func KeySlot(key []byte) int {
	if i := slices.Index(key, '{'); i >= 0 {
		if j := slices.Index(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % Slots)
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021), the one Redis Cluster uses.
func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
