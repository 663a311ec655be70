// Package replication runs the Replica Of syncers: for each destination, one
// syncer per source that speaks the replication protocol to it and writes
// what it receives into the destination, committing its position with the
// data so that nothing is lost or applied twice across crashes.
package replication

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redisurl"
	"github.com/replicad/terraform-provider-redis/service/databases"
	"github.com/replicad/terraform-provider-redis/service/store"
)

// Config of a Manager.
type Config struct {
	Databases  *databases.Manager
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// OnStopped is told that the sync of a destination, configured as
	// failed says, stopped on an error, so that the stored state says
	// stopped. It is called on a goroutine of its own.
	OnStopped func(failed store.Database)
	// SyncerCert is the client certificate syncers present to TLS sources.
	SyncerCert tls.Certificate
	// StallTimeout (default DefaultStallTimeout) and SilenceTimeout
	// (default DefaultSilenceTimeout) are the watchdog's limits: how long
	// a syncer may apply nothing while commands are pending, and how long
	// a source may send nothing, before the source is out of sync.
	StallTimeout, SilenceTimeout time.Duration
}

// Manager owns every destination's syncers.
type Manager struct {
	cfg     Config
	metrics *metrics
	ctx     context.Context
	cancel  context.CancelFunc

	mu    sync.Mutex
	dests map[int]*destination
	wg    sync.WaitGroup // OnStopped calls in flight
}

// NewManager returns a Manager with no syncers.
func NewManager(cfg Config) *Manager {
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	if cfg.SilenceTimeout <= 0 {
		cfg.SilenceTimeout = DefaultSilenceTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{cfg: cfg, metrics: newMetrics(cfg.Registerer), ctx: ctx, cancel: cancel, dests: map[int]*destination{}}
}

// Configure makes the syncers of d match its settings: it leaves them alone
// when nothing about replication changed, and restarts them otherwise.
func (m *Manager) Configure(_ context.Context, d store.Database) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.dests[d.UID]
	if old != nil && d.IsReplica() && old.sameSetup(d) {
		return
	}
	if old != nil {
		old.stop()
		delete(m.dests, d.UID)
	}
	if !d.IsReplica() {
		m.metrics.removeDestination(d.UID)
		m.cfg.Logger.Info("replica of removed; the data stays", "destination", d.UID)
		if old != nil {
			// The checkpoints go with the Replica Of: the database may now
			// be a source itself (failback), and they must not leave it.
			m.clearCheckpoints(d)
		}
		return
	}
	dest := &destination{m: m, db: d, log: m.cfg.Logger}
	for _, src := range d.ReplicaSources {
		u, err := redisurl.Parse(src.URI)
		if err != nil {
			continue // validated by the controller before it was stored
		}
		st := &sourceStatus{}
		var cl *clusterState
		// Keep the status (last error above all) across a pause or a stop
		// of the same generation.
		if old != nil && old.db.ReplicaGeneration == d.ReplicaGeneration {
			for _, o := range old.sources {
				if o.url.Addr() == u.Addr() {
					st, cl = o.status, o.cluster.Load()
					// A new session starts: nothing is in sync until it
					// streams with the new settings.
					st.set(func(st *sourceStatus) {
						st.connected, st.phase = false, phaseConnecting
						st.compressionOK, st.compressionNote = false, ""
					})
				}
			}
		}
		ss := &sourceState{src: src, url: u, status: st}
		if cl != nil {
			cl.reconnecting()
			ss.cluster.Store(cl)
		}
		dest.sources = append(dest.sources, ss)
	}
	m.dests[d.UID] = dest
	m.cfg.Logger.Info("replica of configured", "destination", d.UID, "sources", len(dest.sources), "sync", d.ReplicaSync, "generation", d.ReplicaGeneration)
	dest.start(m.ctx)
}

// Remove stops the syncers of destination uid.
func (m *Manager) Remove(uid int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.dests[uid]; old != nil {
		old.stop()
		delete(m.dests, uid)
	}
	m.metrics.removeDestination(uid)
}

// Status returns the status of each source of d, in d's order.
func (m *Manager) Status(d store.Database) []api.ReplicaSourceStatus {
	m.mu.Lock()
	dest := m.dests[d.UID]
	m.mu.Unlock()
	out := make([]api.ReplicaSourceStatus, len(d.ReplicaSources))
	for i, src := range d.ReplicaSources {
		out[i] = api.ReplicaSourceStatus{ReplicaSource: src, Status: api.SourceSyncing}
		if dest == nil {
			continue
		}
		for _, s := range dest.sources {
			if s.src == src {
				out[i] = s.view()
			}
		}
	}
	return out
}

// stopped reports a sync stopped by an error.
func (m *Manager) stopped(failed store.Database) {
	if m.cfg.OnStopped == nil {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.cfg.OnStopped(failed)
	}()
}

// Close stops every syncer.
func (m *Manager) Close() {
	m.mu.Lock()
	for uid, d := range m.dests {
		d.stop()
		delete(m.dests, uid)
	}
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
}

// sourceTLS is the client side of an encrypted source: it presents the
// syncer certificate and trusts the source's server_cert: a CA certificate
// is used as a trust root (an open-source Redis with its own CA), any other
// certificate must be exactly what the source presents (pinned).
func (m *Manager) sourceTLS(src api.ReplicaSource) (*tls.Config, error) {
	if !src.Encryption {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{m.cfg.SyncerCert}}
	block, _ := pem.Decode([]byte(src.ServerCert))
	if block == nil {
		return nil, errors.New("server_cert is not a PEM certificate")
	}
	want, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("server_cert: %w", err)
	}
	// Verification is ours: by pinning or by a chain to the given CA, not
	// by host name (sources are often reached by IP address or through
	// tunnels whose names are not in their certificates).
	cfg.InsecureSkipVerify = true
	cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("the source presented no certificate")
		}
		leaf, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return err
		}
		if bytes.Equal(leaf.Raw, want.Raw) {
			return nil
		}
		if want.IsCA {
			pool := x509.NewCertPool()
			pool.AddCert(want)
			inter := x509.NewCertPool()
			for _, r := range raw[1:] {
				if c, err := x509.ParseCertificate(r); err == nil {
					inter.AddCert(c)
				}
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter}); err == nil {
				return nil
			}
		}
		return errors.New("the source's certificate is not trusted: it is not the server_cert given for this source, nor signed by it")
	}
	return cfg, nil
}

// clearCheckpoints deletes the replication checkpoints of a database that
// is no longer a destination. It is best effort: a source's syncers drop
// checkpoints they receive anyway (see isCheckpointCommand).
func (m *Manager) clearCheckpoints(d store.Database) {
	ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: m.cfg.Databases.Socket(d.UID), Username: databases.InternalUser,
		Password: d.InternalPassword, DB: databases.CheckpointDB, MaxRetries: -1})
	defer c.Close()
	if err := c.Del(ctx, checkpointKey, generationKey).Err(); err != nil {
		m.cfg.Logger.Warn("could not delete the replication checkpoints of a former destination", "destination", d.UID, "err", err)
	}
}
