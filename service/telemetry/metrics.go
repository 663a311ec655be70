package telemetry

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redisurl"
	"google.golang.org/protobuf/proto"
)

// Source is what the status collector reads at each scrape.
type Source struct {
	Version string
	// Databases lists the databases with their live status (the API's view).
	Databases func(ctx context.Context) ([]api.Database, error)
	// MemoryUsed is the memory a database's redis-server uses, when it answers.
	MemoryUsed func(ctx context.Context, uid int) (int64, bool)
	// Certificates are the instance's certificates by role (api, ca, proxy,
	// syncer), as PEM.
	Certificates map[string][]byte
}

// statusCollector turns the live status into gauges at scrape time, so a
// series is never staler than the API's answer.
type statusCollector struct {
	src                                           Source
	buildInfo, dbUp, memUsed, memLimit, replSync  *prometheus.Desc
	srcStatus, lag, loadBytes, loadTotal, certExp *prometheus.Desc
	compression, dbProblem, incomplete            *prometheus.Desc
}

// States of the enum gauges, one series each.
var (
	syncStates   = []string{api.SyncEnabled, api.SyncPaused, api.SyncStopped}
	sourceStates = []string{api.SourceSyncing, api.SourceInSync, api.SourceOutOfSync}
)

// NewStatusCollector returns the collector of the status series:
// replicad_build_info, replicad_database_*, replicad_replica_sync,
// replicad_replica_source_status, replicad_replica_lag_seconds,
// replicad_replica_load_bytes, replicad_replica_load_total_bytes,
// replicad_replica_source_incomplete, replicad_database_problem and
// replicad_certificate_expiry_timestamp_seconds.
func NewStatusCollector(src Source) prometheus.Collector {
	db := []string{"database", "name"}
	source := []string{"destination", "name", "source"}
	return &statusCollector{
		src: src,
		buildInfo: prometheus.NewDesc("replicad_build_info", "Version of redis-replicad and of the Go it was built with; always 1.",
			[]string{"version", "go_version"}, nil),
		dbUp:     prometheus.NewDesc("replicad_database_up", "1 when the database's redis-server runs and answers (status active, or loading: replaying its AOF, or reloaded from its Replica Of sources), 0 when it is starting, unresponsive or failed.", db, nil),
		memUsed:  prometheus.NewDesc("replicad_database_memory_used_bytes", "Memory the database's redis-server uses (used_memory; summed over the masters of a sharded database).", db, nil),
		memLimit: prometheus.NewDesc("replicad_database_memory_limit_bytes", "The database's memory limit (memory_size).", db, nil),
		replSync: prometheus.NewDesc("replicad_replica_sync", "Replica Of sync state of a destination (replica_sync): 1 for its state, 0 for the others.",
			[]string{"destination", "name", "state"}, nil),
		srcStatus: prometheus.NewDesc("replicad_replica_source_status", "Status of each source of a destination: 1 for its state (syncing, in-sync, out-of-sync), 0 for the others.",
			append(source, "state"), nil),
		lag:         prometheus.NewDesc("replicad_replica_lag_seconds", "How long the oldest command received from the source and not yet applied has waited (the status's lag).", source, nil),
		loadBytes:   prometheus.NewDesc("replicad_replica_load_bytes", "Bytes of the source's RDB loaded so far by the current or last full load.", source, nil),
		loadTotal:   prometheus.NewDesc("replicad_replica_load_total_bytes", "Size of the source's RDB of the current or last full load; 0 while unknown (diskless).", source, nil),
		compression: prometheus.NewDesc("replicad_replica_compression_active", "1 when the source compresses what it sends to this destination.", source, nil),
		dbProblem:   prometheus.NewDesc("replicad_database_problem", "1 while the database's last_error says something is wrong with it (down, not answering, unable to write its AOF, settings or files not applied yet, its replication endpoint not listening), 0 otherwise.", db, nil),
		incomplete:  prometheus.NewDesc("replicad_replica_source_incomplete", "1 while the source's sync_note says the destination could not reproduce part of it (keys missing, writes not replicated), 0 otherwise.", source, nil),
		certExp: prometheus.NewDesc("replicad_certificate_expiry_timestamp_seconds", "When each of the instance's certificates expires (Unix time).",
			[]string{"certificate"}, nil),
	}
}

// Describe sends nothing: the collector is unchecked, its series come and go
// with the databases.
func (c *statusCollector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(c.buildInfo, 1, c.src.Version, runtime.Version())
	for role, p := range c.src.Certificates {
		if exp, ok := expiry(p); ok {
			gauge(c.certExp, float64(exp.Unix()), role)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dbs, err := c.src.Databases(ctx)
	if err != nil {
		// The scrape fails (Prometheus's up is 0, its error says this):
		// a scrape without the databases' series would leave every alert
		// on them (replicad_database_up == 0 first) silent.
		ch <- prometheus.NewInvalidMetric(c.dbUp, fmt.Errorf("list the databases: %w", err))
		return
	}
	for _, d := range dbs {
		uid := strconv.Itoa(d.UID)
		// A destination loading from its sources serves its previous data
		// (or its load) all along: it is up, and its sources' series say
		// how the load goes.
		gauge(c.dbUp, bool01(d.Status == api.StatusActive || d.Status == api.StatusLoading), uid, d.Name)
		gauge(c.memLimit, float64(d.MemorySize), uid, d.Name)
		gauge(c.dbProblem, bool01(d.LastError != ""), uid, d.Name)
		if c.src.MemoryUsed != nil {
			if used, ok := c.src.MemoryUsed(ctx, d.UID); ok {
				gauge(c.memUsed, float64(used), uid, d.Name)
			}
		}
		if len(d.ReplicaSources) == 0 {
			continue
		}
		for _, st := range syncStates {
			gauge(c.replSync, bool01(d.ReplicaSync == st), uid, d.Name, st)
		}
		for _, s := range d.ReplicaSources {
			addr := s.URI
			if u, err := redisurl.Parse(s.URI); err == nil {
				addr = u.Addr() // never the URL: it may hold a password
			} else {
				addr = redisurl.Redact(s.URI)
			}
			for _, st := range sourceStates {
				gauge(c.srcStatus, bool01(s.Status == st), uid, d.Name, addr, st)
			}
			gauge(c.lag, float64(s.Lag)/1000, uid, d.Name, addr)
			gauge(c.loadBytes, float64(s.RDBTransferred), uid, d.Name, addr)
			gauge(c.loadTotal, float64(max(s.RDBSize, 0)), uid, d.Name, addr) // -1: not known (diskless)
			gauge(c.compression, bool01(s.CompressionActive), uid, d.Name, addr)
			gauge(c.incomplete, bool01(s.SyncNote != ""), uid, d.Name, addr)
		}
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func expiry(p []byte) (time.Time, bool) {
	block, _ := pem.Decode(p)
	if block == nil {
		return time.Time{}, false
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return time.Time{}, false
	}
	return c.NotAfter, true
}

// NamedGatherer adds a "name" label, the database's current name, to every
// series that names a database by uid (a "destination" or "database" label)
// and has no name yet: the packages that count know uids only, and a
// database can be renamed.
type NamedGatherer struct {
	Gatherer prometheus.Gatherer
	Names    *Names
}

// Gather implements prometheus.Gatherer.
func (g NamedGatherer) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := g.Gatherer.Gather()
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			g.name(m)
		}
	}
	return mfs, err
}

func (g NamedGatherer) name(m *dto.Metric) {
	var uid string
	for _, lp := range m.Label {
		switch lp.GetName() {
		case "name":
			return
		case "destination", "database":
			if uid == "" {
				uid = lp.GetValue()
			}
		}
	}
	name, ok := g.Names.lookup(uid)
	if !ok {
		return
	}
	m.Label = append(m.Label, &dto.LabelPair{Name: proto.String("name"), Value: proto.String(name)})
	slices.SortFunc(m.Label, func(a, b *dto.LabelPair) int {
		switch {
		case a.GetName() < b.GetName():
			return -1
		case a.GetName() > b.GetName():
			return 1
		}
		return 0
	})
}
