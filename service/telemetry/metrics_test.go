package telemetry

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
)

// series gathers g as "name{k=v,...}" strings.
func series(t *testing.T, g prometheus.Gatherer) []string {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			var labels []string
			for _, lp := range m.Label {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			assert.True(t, sort.StringsAreSorted(labels), "labels of %s are sorted: %v", mf.GetName(), labels)
			out = append(out, mf.GetName()+"{"+strings.Join(labels, ",")+"}")
		}
	}
	sort.Strings(out)
	return out
}

func TestNamedGathererAddsTheCurrentName(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "replicad_replica_full_syncs_total", Help: "h"}, []string{"destination", "source"})
	g := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "replicad_gateway_sent_bytes_total", Help: "h"}, []string{"database"})
	other := prometheus.NewGauge(prometheus.GaugeOpts{Name: "replicad_other", Help: "h"})
	reg.MustRegister(c, g, other)
	c.WithLabelValues("2", "10.0.0.1:12001").Inc()
	g.WithLabelValues("1").Add(5)
	g.WithLabelValues("9").Add(1) // unknown: left as it is

	names := NewNames(nil)
	names.Set(1, "orders")
	names.Set(2, "orders_replica")
	named := NamedGatherer{Gatherer: reg, Names: names}
	assert.Equal(t, []string{
		"replicad_gateway_sent_bytes_total{database=1,name=orders}",
		"replicad_gateway_sent_bytes_total{database=9}",
		"replicad_other{}",
		"replicad_replica_full_syncs_total{destination=2,name=orders_replica,source=10.0.0.1:12001}",
	}, series(t, named))

	// A rename shows at the next scrape.
	names.Set(1, "orders_v2")
	assert.Contains(t, series(t, named), "replicad_gateway_sent_bytes_total{database=1,name=orders_v2}")
}

// A destination loading from its sources (or replaying its AOF) answers:
// it is up, so that "database down" does not page for every long load; a
// diskless load's unknown size is 0, as documented, not -1.
func TestLoadingDatabasesAreUp(t *testing.T) {
	dbs := []api.Database{
		{UID: 1, Name: "active", Status: api.StatusActive},
		{UID: 2, Name: "loading", Status: api.StatusLoading, ReplicaSync: api.SyncEnabled,
			ReplicaSources: []api.ReplicaSourceStatus{{ReplicaSource: api.ReplicaSource{URI: "redis://10.0.0.1:6379"}, Status: api.SourceSyncing, RDBSize: -1, RDBTransferred: 4096}}},
		{UID: 3, Name: "pending", Status: api.StatusPending},
		{UID: 4, Name: "failed", Status: api.StatusFailed},
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewStatusCollector(Source{Version: "test", Databases: func(context.Context) ([]api.Database, error) { return dbs, nil }}))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	values := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			key := mf.GetName()
			for _, lp := range m.Label {
				if lp.GetName() == "name" {
					key += "/" + lp.GetValue()
				}
			}
			values[key] = m.GetGauge().GetValue()
		}
	}
	assert.Equal(t, 1.0, values["replicad_database_up/active"])
	assert.Equal(t, 1.0, values["replicad_database_up/loading"])
	assert.Equal(t, 0.0, values["replicad_database_up/pending"])
	assert.Equal(t, 0.0, values["replicad_database_up/failed"])
	assert.Equal(t, 0.0, values["replicad_replica_load_total_bytes/loading"])
	assert.Equal(t, 4096.0, values["replicad_replica_load_bytes/loading"])
}

// An operator can alert on what the status says in words: a database's
// last_error, a source's sync_note (what of it the destination could not
// reproduce), as 0 or 1, never with the text as a label.
func TestProblemsAndSyncNotesAreGauges(t *testing.T) {
	dbs := []api.Database{
		{UID: 1, Name: "fine", Status: api.StatusActive, ReplicaSync: api.SyncEnabled,
			ReplicaSources: []api.ReplicaSourceStatus{{ReplicaSource: api.ReplicaSource{URI: "redis://10.0.0.1:6379"}, Status: api.SourceInSync}}},
		{UID: 2, Name: "diskfull", Status: api.StatusActive, LastError: "its redis-server cannot write its AOF", ReplicaSync: api.SyncEnabled,
			ReplicaSources: []api.ReplicaSourceStatus{{ReplicaSource: api.ReplicaSource{URI: "redis://:pw@10.0.0.2:6379"}, Status: api.SourceInSync,
				SyncNote: "3 keys of the source are not at the destination"}}},
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewStatusCollector(Source{Version: "test", Databases: func(context.Context) ([]api.Database, error) { return dbs, nil }}))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	values := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			key := mf.GetName()
			for _, lp := range m.Label {
				assert.NotContains(t, lp.GetValue(), "AOF", "no status text in a label")
				assert.NotContains(t, lp.GetValue(), "pw", "no password in a label")
				if lp.GetName() == "name" {
					key += "/" + lp.GetValue()
				}
			}
			values[key] = m.GetGauge().GetValue()
		}
	}
	assert.Equal(t, map[string]float64{"fine": 0, "diskfull": 1}, map[string]float64{
		"fine": values["replicad_database_problem/fine"], "diskfull": values["replicad_database_problem/diskfull"]})
	require.Contains(t, values, "replicad_replica_source_incomplete/fine")
	assert.Equal(t, 0.0, values["replicad_replica_source_incomplete/fine"])
	assert.Equal(t, 1.0, values["replicad_replica_source_incomplete/diskfull"])
}

// A scrape while the databases cannot be listed fails, with why: it
// answered with build_info alone, and alerts on the databases' series
// (replicad_database_up == 0) had nothing to fire on.
func TestScrapeFailsWhenTheDatabasesCannotBeListed(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewStatusCollector(Source{Version: "v1", Databases: func(context.Context) ([]api.Database, error) {
		return nil, errors.New("state file: input/output error")
	}}))
	_, err := reg.Gather()
	require.Error(t, err, "the scrape fails")
	assert.Contains(t, err.Error(), "list the databases: state file: input/output error")
}
