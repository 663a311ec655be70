// Package replication runs the Replica Of syncers: for each destination, one
// syncer per source that speaks the replication protocol to it and writes
// what it receives into the destination, committing its position with the
// data so that nothing is lost or applied twice across crashes.
package replication

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/layout"
	"github.com/replicad/terraform-provider-redis/internal/redisurl"
	"github.com/replicad/terraform-provider-redis/internal/tlspin"
	"github.com/replicad/terraform-provider-redis/service/store"
)

// Config of a Manager.
type Config struct {
	// Destinations says how to reach the databases syncers write to.
	Destinations Destinations
	Registerer   prometheus.Registerer
	Logger       *slog.Logger
	// OnStopped is told that the sync of a destination, configured as
	// failed says, stopped on an error, so that the stored state says
	// stopped. It is called on a goroutine of its own. resumable says
	// that the sync stopped because a source refused its credentials:
	// nothing the destination holds is wrong, so it may continue from its
	// checkpoints once given new ones.
	OnStopped func(failed store.Database, why map[string]string, resumable bool)
	// LocalEndpointDown says why the replication endpoint of the database
	// of this instance that a source URL names does not listen (empty: it
	// listens, or the URL names no database of this instance). A wrong
	// password from its port is then someone else's answer, retried, not
	// a reason to stop the sync.
	LocalEndpointDown func(uri string) string
	// SyncerCert is the client certificate syncers present to TLS sources.
	SyncerCert tls.Certificate
	// StallTimeout (default DefaultStallTimeout) and SilenceTimeout
	// (default DefaultSilenceTimeout) are the watchdog's limits: how long
	// a syncer may apply nothing while commands are pending, and how long
	// a source may send nothing, before the source is out of sync.
	StallTimeout, SilenceTimeout time.Duration
	// MaxConcurrentLoads bounds the full loads that run at once in the
	// instance (default: the number of CPUs Go uses, at least 2).
	MaxConcurrentLoads int
	// FileLoadRawLimit: in a full load through an RDB file (fileload.go),
	// values up to this size are copied whole, bigger ones written from
	// their chunks (default 64 MiB; streams cannot be, and make the load
	// use commands instead).
	FileLoadRawLimit int
	// NoLinkLoad: one-server destinations load a source's RDB from a file
	// (DEBUG RELOAD), never as a full sync over their master link
	// (linkload.go). For tests and comparisons.
	NoLinkLoad bool
	// NoMasterLink: one-server destinations get no master link, as when
	// one cannot be made: the stream is written as a client's commands,
	// to a primary. For tests of that path.
	NoMasterLink bool
	// NoMergedLoad: several sources loaded at once go into a second
	// server with commands (shadow.go), never as one full sync
	// (mergeload.go). For tests and comparisons.
	NoMergedLoad bool
	// MergeReadyTimeout bounds the wait of a merged load for every shard's
	// FULLRESYNC (default 30 s). For tests.
	MergeReadyTimeout time.Duration
	// LinkReplTimeout is a one-server destination's repl-timeout while it
	// is a replica of its master link (default DefaultLinkReplTimeout;
	// whole seconds). Shorter in tests that check the link is kept alive.
	LinkReplTimeout time.Duration
	// InstanceID names this instance in the lineages of its databases
	// (lineage.go): stable across restarts, unique among the instances
	// that replicate from one another. Default: a random one.
	InstanceID string
}

// Manager owns every destination's syncers.
type Manager struct {
	cfg     Config
	metrics *metrics
	ctx     context.Context
	cancel  context.CancelFunc

	// loadSlots holds a token per full load in progress. A load keeps the
	// CPU busy (decoding, encoding, and the source's fork): with at most a
	// few at once, 32 sources loading together take about as long as
	// all at once, and the API and the streaming syncers still get the
	// CPU when they need it instead of queueing behind dozens of them.
	loadSlots chan struct{}
	// configMu serialises Configure, Remove and Close, which wait for
	// syncers to stop; mu guards dests only, briefly, so that a status read
	// never waits behind a reconfiguration.
	configMu sync.Mutex
	mu       sync.Mutex
	dests    map[int]*destination
	wg       sync.WaitGroup // OnStopped calls in flight

	// learned holds the lineage each source answered, by destination and
	// checkpoint key (lineage.go).
	lineageMu sync.Mutex
	learned   map[int]map[string][]string
}

// NewManager returns a Manager with no syncers.
func NewManager(cfg Config) *Manager {
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	if cfg.SilenceTimeout <= 0 {
		cfg.SilenceTimeout = DefaultSilenceTimeout
	}
	if cfg.MaxConcurrentLoads <= 0 {
		cfg.MaxConcurrentLoads = max(2, runtime.GOMAXPROCS(0))
	}
	if cfg.InstanceID == "" {
		cfg.InstanceID = newInstanceID()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{cfg: cfg, metrics: newMetrics(cfg.Registerer), ctx: ctx, cancel: cancel, dests: map[int]*destination{},
		loadSlots: make(chan struct{}, cfg.MaxConcurrentLoads)}
}

// Configure makes the syncers of d match its settings: it leaves them alone
// when nothing about replication changed, and restarts them otherwise.
func (m *Manager) Configure(_ context.Context, d store.Database) {
	m.configMu.Lock()
	defer m.configMu.Unlock()
	m.mu.Lock()
	old := m.dests[d.UID]
	m.mu.Unlock()
	if old != nil && d.IsReplica() && old.sameSetup(d) {
		return
	}
	if old != nil {
		// Until the new syncers replace them, status reads see the old
		// ones stopping.
		old.stop()
	}
	m.forgetLineage(d.UID) // the new syncers learn it again
	if !d.IsReplica() {
		m.mu.Lock()
		delete(m.dests, d.UID)
		m.mu.Unlock()
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
		st := newSourceStatus()
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
						st.compressionOK, st.compressionNote, st.codec = false, "", ""
					})
				}
			}
		}
		if d.ReplicaSync == api.SyncStopped {
			// Why it stopped, as recorded (after a restart of the
			// service, nothing else remembers it).
			st.set(func(st *sourceStatus) {
				if why := d.ReplicaStopErrors[u.Addr()]; st.lastError == "" && why != "" {
					st.lastError = why
				}
			})
		}
		ss := &sourceState{src: src, url: u, status: st}
		if cl != nil {
			cl.reconnecting()
			ss.cluster.Store(cl)
		}
		dest.sources = append(dest.sources, ss)
	}
	if d.ReplicaSync == api.SyncPaused || d.ReplicaSync == api.SyncStopped {
		// Out of sync once the update that paused or stopped it has
		// answered, not once the destination's goroutine runs: a read
		// in between said syncing (a session starting).
		ph := phasePaused
		if d.ReplicaSync == api.SyncStopped {
			ph = phaseStopped
		}
		for _, s := range dest.sources {
			s.status.set(func(st *sourceStatus) { st.phase, st.connected = ph, false })
		}
	}
	m.mu.Lock()
	m.dests[d.UID] = dest
	m.mu.Unlock()
	addrs := map[string]bool{}
	for _, s := range dest.sources {
		addrs[s.url.Addr()] = true
	}
	m.metrics.keepSources(d.UID, addrs)
	m.cfg.Logger.Info("replica of configured", "destination", d.UID, "sources", len(dest.sources), "sync", d.ReplicaSync, "generation", d.ReplicaGeneration)
	dest.start(m.ctx)
}

// DestinationRestarted is told that a redis-server of database uid (one
// of its nodes) started again after it had exited. A sharded destination's
// idle writers then resume from the checkpoints its nodes hold: a node may
// be back with less than it had applied. (A single-server destination's
// writers learn it from their master link.)
func (m *Manager) DestinationRestarted(uid int) {
	m.mu.Lock()
	d := m.dests[uid]
	m.mu.Unlock()
	if d != nil && d.db.Clustered() {
		d.restarted()
	}
}

// Remove stops the syncers of destination uid.
func (m *Manager) Remove(uid int) {
	m.configMu.Lock()
	defer m.configMu.Unlock()
	m.mu.Lock()
	old := m.dests[uid]
	delete(m.dests, uid)
	m.mu.Unlock()
	if old != nil {
		old.stop()
	}
	m.forgetLineage(uid)
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
		found := false
		for _, s := range dest.sources {
			if s.src == src {
				out[i], found = s.view(), true
			}
		}
		if !found {
			if _, err := redisurl.Parse(src.URI); err != nil {
				// Stored by a version that took it (the URL rules grew
				// stricter since): no syncer runs for it, which must not
				// read as a sync in progress.
				out[i].Status = api.SourceOutOfSync
				out[i].LastError = fmt.Sprintf("this source's URL, stored by an earlier version, is no longer valid and is not replicated: replace it in the Replica Of's sources: %v", err)
			}
		}
		// A source loaded into a reload's second server is not in sync
		// with what readers see until the reload is swapped in.
		if out[i].Status == api.SourceInSync && dest.reloading.Load() {
			out[i].Status = api.SourceSyncing
		}
	}
	return out
}

// Loading says whether destination uid is being reloaded (flushed, and not
// every source loaded yet), and how far in percent when every source's
// dataset size is known (-1 otherwise).
func (m *Manager) Loading(uid int) (bool, float64) {
	m.mu.Lock()
	dest := m.dests[uid]
	m.mu.Unlock()
	if dest == nil || !dest.reloading.Load() {
		return false, 0
	}
	var size, done int64
	for _, s := range dest.sources {
		st := s.status
		st.mu.Lock()
		n, k := st.rdbSize, st.rdbDone
		if st.phase == phaseLoading && st.rdbLive != nil {
			n, k = st.rdbLive()
		} else if st.phase != phaseStreaming {
			n, k = -1, 0 // not started, or started over: unknown
		}
		st.mu.Unlock()
		if n < 0 {
			return true, -1
		}
		size, done = size+n, done+k
	}
	if size == 0 {
		return true, -1
	}
	return true, 100 * float64(done) / float64(size)
}

// stopped reports a sync stopped by an error.
// why is each source's last error, by address.
func (m *Manager) stopped(failed store.Database, why map[string]string, resumable bool) {
	if m.cfg.OnStopped == nil {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.cfg.OnStopped(failed, why, resumable)
	}()
}

// Close stops every syncer.
func (m *Manager) Close() {
	m.configMu.Lock()
	m.mu.Lock()
	dests := m.dests
	m.dests = map[int]*destination{}
	m.mu.Unlock()
	for _, d := range dests {
		d.stop()
	}
	m.configMu.Unlock()
	m.cancel()
	m.wg.Wait()
}

// sourceTLS is the client side of an encrypted source: it presents the
// syncer certificate and trusts the source's server_cert: a CA certificate
// is used as a trust root (an open-source Redis with its own CA), any other
// certificate must be exactly what the source presents (pinned).
//
// A rediss:// source without encryption, which the API now refuses but a
// record made before may hold, is not dialed in plain text: that would send
// its password in the clear to whatever answers.
func (m *Manager) sourceTLS(src api.ReplicaSource) (*tls.Config, error) {
	if !src.Encryption {
		if u, err := redisurl.Parse(src.URI); err == nil && u.TLS {
			return nil, fmt.Errorf("the source URL %s is rediss:// (TLS) but encryption is off, and the password is not sent in plain text: set encryption and server_cert", u)
		}
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{m.cfg.SyncerCert}}
	if err := tlspin.TrustServer(cfg, src.ServerCert); err != nil {
		return nil, err
	}
	return cfg, nil
}

// clearCheckpoints deletes the replication checkpoints of a database that
// is no longer a destination. It is best effort: a source's syncers drop
// checkpoints they receive anyway (see isCheckpointCommand).
func (m *Manager) clearCheckpoints(d store.Database) {
	ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
	defer cancel()
	acc := m.cfg.Destinations.Access(d)
	if acc.clustered() {
		if err := clearClusterCheckpoints(ctx, acc); err != nil {
			m.cfg.Logger.Warn("could not delete the replication checkpoints of a former destination", "destination", d.UID, "err", err)
		}
		return
	}
	if err := detachDestination(ctx, acc); err != nil {
		m.cfg.Logger.Warn("could not make a former destination a primary again", "destination", d.UID, "err", err)
	}
	c := acc.client(layout.CheckpointDB)
	defer c.Close()
	if err := c.Del(ctx, checkpointKey, generationKey).Err(); err != nil {
		m.cfg.Logger.Warn("could not delete the replication checkpoints of a former destination", "destination", d.UID, "err", err)
	}
}
