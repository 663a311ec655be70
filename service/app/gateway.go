package app

import (
	"context"
	"crypto/tls"
	"github.com/replicad/terraform-provider-redis/service/replication"
	"net"
	"net/url"
	"os"
	"strconv"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/tlspin"
	"github.com/replicad/terraform-provider-redis/service/certs"
	"github.com/replicad/terraform-provider-redis/service/databases"
	"github.com/replicad/terraform-provider-redis/service/gateway"
	"github.com/replicad/terraform-provider-redis/service/store"
)

// gatewayAdapter turns stored databases into gateway endpoints.
type gatewayAdapter struct {
	gw        *gateway.Gateway
	dbs       *databases.Manager
	bindHost  string
	proxyCert tls.Certificate
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
	if d.Clustered() {
		// Its node 0 holds only a part of the data: a destination must not
		// take it for the whole.
		ep.Refuse = "this database is sharded (a Redis Cluster): replicating from a sharded database is not supported yet"
	}
	if d.TLSMode == api.TLSEnabled || d.TLSMode == api.TLSReplicaSSL {
		cfg, err := replicationTLS(g.proxyCert, d.ClientCertificates)
		if err != nil {
			return err
		}
		ep.TLS = cfg
	}
	return g.gw.Ensure(ep)
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
	a := replication.Access{Network: "unix", Addr: x.dbs.Socket(d.UID), Username: databases.InternalUser, Password: d.InternalPassword}
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
	return replication.Access{Network: "unix", Addr: s.s.Socket(), Username: databases.InternalUser, Password: s.d.InternalPassword}
}
func (s shadow) SwapIn(ctx context.Context) error { return s.s.SwapIn(ctx) }
func (s shadow) Close()                           { s.s.Close() }
