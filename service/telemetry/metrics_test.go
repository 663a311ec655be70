package telemetry

import (
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
