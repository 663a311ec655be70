package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/cluster"
	"github.com/replicad/terraform-provider-redis/internal/tlspin"
	"github.com/replicad/terraform-provider-redis/service/certs"
	"github.com/replicad/terraform-provider-redis/service/databases"
	"github.com/replicad/terraform-provider-redis/service/gateway"
	"github.com/replicad/terraform-provider-redis/service/replication"
	"github.com/replicad/terraform-provider-redis/service/store"
)

// gatewayAdapter turns stored databases into gateway endpoints.
type gatewayAdapter struct {
	gw        *gateway.Gateway
	dbs       *databases.Manager
	bindHost  string
	proxyCert tls.Certificate
	// advertiseHost is the host of the node addresses a sharded
	// database's endpoints give in CLUSTER SHARDS.
	advertiseHost string
	// lineage answers the lineage question of a database's endpoints.
	lineage func(uid int) []string
}

func (g *gatewayAdapter) Ensure(d store.Database) error {
	host := g.bindHost
	if host == "0.0.0.0" {
		host = ""
	}
	ep := gateway.Endpoint{
		UID: d.UID, Listen: net.JoinHostPort(host, strconv.Itoa(d.ReplicationPort)),
		AdminUser: databases.AdminUser, AdminPassword: d.AdminPassword,
		PreviousAdminPassword: d.PreviousAdminPassword, PreviousAdminPasswordUntil: d.PreviousAdminPasswordUntil,
		UpstreamNetwork: "unix", UpstreamAddr: g.dbs.Socket(d.UID),
		UpstreamUser: databases.AdminUser, UpstreamPassword: databases.AdminSecret(d),
	}
	if g.lineage != nil {
		uid := d.UID
		ep.Lineage = func() []string { return g.lineage(uid) }
	}
	if d.TLSMode == api.TLSEnabled || d.TLSMode == api.TLSReplicaSSL {
		cfg, err := replicationTLS(g.proxyCert, d.ClientCertificates)
		if err != nil {
			return err
		}
		ep.TLS = cfg
	}
	if !d.Clustered() {
		return g.gw.Ensure(ep)
	}
	// A sharded database is served as a Redis Cluster whose nodes are
	// replication endpoints, one per node (see package gateway): its own
	// endpoint answers the destination's questions (INFO cluster, CLUSTER
	// SHARDS) but streams nothing, since its node 0 holds only a part of
	// the data.
	for _, n := range d.Nodes {
		if n.ReplicationPort == 0 {
			ep.Refuse = "this sharded database was created by a version that gave its nodes no replication endpoints: it cannot be a source; create a new sharded database and move its data there"
			return g.gw.Ensure(ep)
		}
	}
	ep.Refuse = "this database is sharded (a Redis Cluster): its shards stream from the node endpoints that CLUSTER SHARDS names; replicate it with a destination that knows Redis Cluster sources"
	ep.Cluster = g.clusterView(d)
	if err := g.gw.Ensure(ep); err != nil {
		return err
	}
	for i, n := range d.Nodes {
		nep := ep
		nep.Node, nep.Refuse = i+1, ""
		nep.Listen = net.JoinHostPort(host, strconv.Itoa(n.ReplicationPort))
		nep.UpstreamAddr = g.dbs.NodeSocket(d.UID, i)
		if err := g.gw.Ensure(nep); err != nil {
			return fmt.Errorf("replication endpoint of node %d: %w", i, err)
		}
	}
	return nil
}

// clusterView reads the shards of sharded database d from its nodes, each
// node's address replaced by its replication endpoint's: what its
// endpoints answer to CLUSTER SHARDS. Roles, health and offsets are the
// real cluster's, so a destination follows a failover as it would on any
// Redis Cluster.
func (g *gatewayAdapter) clusterView(d store.Database) func(ctx context.Context) (cluster.Topology, error) {
	repl := map[int]int{} // the port a node is announced at -> its endpoint's
	for _, n := range d.Nodes {
		repl[n.Port] = n.ReplicationPort
	}
	uid, host := d.UID, g.advertiseHost
	return func(ctx context.Context) (cluster.Topology, error) {
		t, err := g.dbs.Topology(ctx, uid)
		if err != nil {
			return cluster.Topology{}, err
		}
		out := cluster.Topology{Shards: make([]cluster.Shard, 0, len(t.Shards))}
		for _, sh := range t.Shards {
			nodes := make([]cluster.Node, 0, len(sh.Nodes))
			for _, n := range sh.Nodes {
				_, p, err := net.SplitHostPort(n.Addr)
				port, perr := strconv.Atoi(p)
				rp, ok := repl[port]
				if err != nil || perr != nil || !ok {
					continue // not a node of this database's record
				}
				n.Addr = net.JoinHostPort(host, strconv.Itoa(rp))
				nodes = append(nodes, n)
			}
			sh.Nodes = nodes
			out.Shards = append(out.Shards, sh)
		}
		return out, nil
	}
}

func (g *gatewayAdapter) Remove(uid int) { g.gw.Remove(uid) }

// replicationTLS is the server side of a TLS replication endpoint: the
// instance's proxy certificate, and, when client certificates are listed,
// only those (compared byte for byte: pinned, whoever issued them).
func replicationTLS(cert tls.Certificate, clientPEMs []string) (*tls.Config, error) {
	cfg := certs.ServerTLS(cert)
	if len(clientPEMs) == 0 {
		return cfg, nil
	}
	if err := tlspin.RequireClientCerts(cfg, clientPEMs); err != nil {
		return nil, err
	}
	return cfg, nil
}

// destinations gives the syncers the service's own way into its databases.
type destinations struct{ dbs *databases.Manager }

func (x destinations) Access(d store.Database) replication.Access {
	a := replication.Access{Network: "unix", Addr: x.dbs.Socket(d.UID), Username: databases.InternalUser, Password: d.InternalPassword,
		LogFile: filepath.Join(x.dbs.Dir(d.UID), "redis.log")}
	if d.Clustered() {
		// Each node by the port the cluster announces it at.
		a.Nodes = map[int]replication.Access{}
		for i, n := range d.Nodes {
			a.Nodes[n.Port] = replication.Access{Network: "unix", Addr: x.dbs.NodeSocket(d.UID, i), Username: databases.InternalUser, Password: d.InternalPassword}
		}
	}
	return a
}

func (g *gatewayAdapter) SourceURL(d store.Database, host string) string {
	u := url.URL{Scheme: "redis", User: url.UserPassword(databases.AdminUser, d.AdminPassword),
		Host: net.JoinHostPort(host, strconv.Itoa(d.ReplicationPort))}
	return u.String()
}

func (x destinations) Shadow(ctx context.Context, d store.Database) (replication.Shadow, error) {
	s, err := x.dbs.StartShadow(ctx, d)
	if errors.Is(err, databases.ErrNoRoomForShadow) {
		return nil, fmt.Errorf("%w: %w", replication.ErrNoRoomForShadow, err)
	}
	if err != nil {
		return nil, err
	}
	return shadow{s: s, d: d}, nil
}

func (x destinations) CreateRDB(d store.Database) (*os.File, error) { return x.dbs.CreateRDB(d) }
func (x destinations) LoadRDB(ctx context.Context, d store.Database, path string) error {
	return x.dbs.LoadRDB(ctx, d, path)
}

type shadow struct {
	s *databases.Shadow
	d store.Database
}

func (s shadow) Access() replication.Access {
	return replication.Access{Network: "unix", Addr: s.s.Socket(), Username: databases.InternalUser, Password: s.d.InternalPassword,
		LogFile: s.s.LogFile()}
}
func (s shadow) SwapIn(ctx context.Context) error { return s.s.SwapIn(ctx) }
func (s shadow) Close()                           { s.s.Close() }
