// Package deploy holds what operators deploy beside redis-replicad: a Grafana
// dashboard and Prometheus alert rules. Its tests check them against the
// metrics of a running service, so that a renamed metric cannot leave a
// panel or an alert silently empty.
package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

const viewer, viewerPassword = "grafana", "grafana-password-1"

// scrape runs a service with a source, a compressed Replica Of of it in sync
// and one refused replication session (so every series exists), and returns
// its metrics as the viewer user reads them.
func scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	if testing.Short() {
		t.Skip("starts redis-replicad")
	}
	i := servicetest.StartWith(t, func(c *app.Config) { c.ViewerUser, c.ViewerPassword = viewer, viewerPassword })
	var src, dst api.Database
	call(t, i, i.Username, i.Password, "POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "orders", MemorySize: 64 << 20}, &src)
	var su api.SourceURL
	call(t, i, i.Username, i.Password, "GET", fmt.Sprintf("/v1/bdbs/%d/source_url", src.UID), nil, &su)
	call(t, i, i.Username, i.Password, "POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "orders_replica", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: su.URI, Compression: 1}}}, &dst)
	redistest.Eventually(t, 2*time.Minute, "the replica is in sync", func() error {
		var d api.Database
		call(t, i, i.Username, i.Password, "GET", fmt.Sprintf("/v1/bdbs/%d", dst.UID), nil, &d)
		if d.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("replica_sync_status %s", d.ReplicaSyncStatus)
		}
		return nil
	})
	wrong := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", src.ReplicationPort), Username: "admin", Password: "wrong", MaxRetries: -1})
	defer wrong.Close()
	require.Error(t, wrong.Ping(context.Background()).Err(), "a wrong password is refused by the replication endpoint")

	var text string
	redistest.Eventually(t, time.Minute, "the refused session is counted", func() error {
		text = string(call(t, i, viewer, viewerPassword, "GET", "/metrics", nil, nil))
		if !strings.Contains(text, "replicad_gateway_refused_sessions_total{") {
			return fmt.Errorf("no replicad_gateway_refused_sessions_total series yet")
		}
		return nil
	})
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	require.NoError(t, err, "parse /metrics")
	return mfs
}

// TestMetricsFollowPrometheusConventions checks the names, units and labels
// of every replicad_ series of a running service.
func TestMetricsFollowPrometheusConventions(t *testing.T) {
	mfs := scrape(t)
	snake := regexp.MustCompile(`^replicad_[a-z0-9]+(_[a-z0-9]+)*$`)
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "replicad_") {
			continue
		}
		assert.Regexp(t, snake, name)
		assert.NotEmpty(t, mf.GetHelp(), "%s has a help text", name)
		for _, bad := range []string{"millisecond", "_ms", "_msec", "kilobytes", "_kb", "_mb", "minutes", "hours"} {
			assert.NotContains(t, name, bad, "%s: base units only (seconds, bytes)", name)
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			assert.True(t, strings.HasSuffix(name, "_total"), "counter %s ends in _total", name)
		default:
			assert.False(t, strings.HasSuffix(name, "_total"), "%s is not a counter and must not end in _total", name)
		}
		for _, m := range mf.Metric {
			labels := labelsOf(m)
			if labels["destination"] != "" || labels["database"] != "" {
				assert.NotEmpty(t, labels["name"], "%s%v carries the database's name", name, labels)
			}
			if labels["source"] != "" {
				assert.NotContains(t, labels["source"], "@", "%s: a source label is an address, never a URL", name)
			}
		}
	}

	// The names operators look for.
	for _, name := range []string{"replicad_build_info", "replicad_replica_lag_seconds", "replicad_replica_source_status", "replicad_replica_sync",
		"replicad_replica_load_bytes", "replicad_replica_load_total_bytes", "replicad_database_up", "replicad_certificate_expiry_timestamp_seconds",
		"replicad_replica_full_syncs_total", "replicad_gateway_sent_wire_bytes_total", "replicad_gateway_sent_bytes_total"} {
		require.Contains(t, mfs, name)
	}
	info := mfs["replicad_build_info"].Metric
	require.Len(t, info, 1)
	assert.Equal(t, app.Version, labelsOf(info[0])["version"])
	assert.True(t, strings.HasPrefix(labelsOf(info[0])["go_version"], "go"))
	assert.Equal(t, 1.0, info[0].GetGauge().GetValue())

	// Enum gauges: one series per state, exactly one of them 1.
	assertEnum(t, mfs["replicad_replica_source_status"], []string{"syncing", "in-sync", "out-of-sync"}, "in-sync", "destination", "source")
	assertEnum(t, mfs["replicad_replica_sync"], []string{"enabled", "paused", "stopped"}, "enabled", "destination")
	for _, m := range mfs["replicad_replica_sync"].Metric {
		assert.Equal(t, "orders_replica", labelsOf(m)["name"])
	}

	// The load is done: its bytes are its size.
	load, total := mfs["replicad_replica_load_bytes"].Metric, mfs["replicad_replica_load_total_bytes"].Metric
	require.Len(t, load, 1)
	require.Len(t, total, 1)
	assert.Positive(t, load[0].GetGauge().GetValue())
	assert.Equal(t, total[0].GetGauge().GetValue(), load[0].GetGauge().GetValue())
	for _, m := range mfs["replicad_database_up"].Metric {
		assert.Equal(t, 1.0, m.GetGauge().GetValue(), "database %v is up", labelsOf(m))
	}
	for _, m := range mfs["replicad_certificate_expiry_timestamp_seconds"].Metric {
		assert.Greater(t, m.GetGauge().GetValue(), float64(time.Now().Unix()), "certificate %v expires in the future", labelsOf(m))
	}
}

func assertEnum(t *testing.T, mf *dto.MetricFamily, states []string, want string, keys ...string) {
	t.Helper()
	require.NotNil(t, mf)
	type group struct {
		states []string
		on     []string
	}
	groups := map[string]*group{}
	for _, m := range mf.Metric {
		l := labelsOf(m)
		var id []string
		for _, k := range keys {
			id = append(id, l[k])
		}
		g := groups[strings.Join(id, "|")]
		if g == nil {
			g = &group{}
			groups[strings.Join(id, "|")] = g
		}
		g.states = append(g.states, l["state"])
		if m.GetGauge().GetValue() == 1 {
			g.on = append(g.on, l["state"])
		} else {
			assert.Equal(t, 0.0, m.GetGauge().GetValue(), "%s%v is 0 or 1", mf.GetName(), l)
		}
	}
	require.NotEmpty(t, groups, mf.GetName())
	for id, g := range groups {
		sort.Strings(g.states)
		sorted := slices.Clone(states)
		sort.Strings(sorted)
		assert.Equal(t, sorted, g.states, "%s{%s}: one series per state", mf.GetName(), id)
		assert.Equal(t, []string{want}, g.on, "%s{%s}: exactly one state is 1", mf.GetName(), id)
	}
}

var metricName = regexp.MustCompile(`\breplicad_[a-z0-9_]+`)

// TestAlertRules checks deploy/prometheus/alerts.yml with promtool (syntax,
// and the unit tests of alerts_test.yml) and checks that every metric its
// rules name exists on a running service.
func TestAlertRules(t *testing.T) {
	if testing.Short() {
		t.Skip("needs promtool and starts redis-replicad")
	}
	promtool, err := exec.LookPath("promtool")
	require.NoError(t, err, "promtool is needed to check the alert rules: install Debian's prometheus package (apt-get install -y --no-install-recommends prometheus); scripts/ensure-deps.sh does it")
	out, err := exec.Command(promtool, "check", "rules", "prometheus/alerts.yml").CombinedOutput()
	require.NoError(t, err, "promtool check rules:\n%s", out)
	// Each alert fires when it should and stays quiet when it should not.
	out, err = exec.Command(promtool, "test", "rules", "prometheus/alerts_test.yml").CombinedOutput()
	require.NoError(t, err, "promtool test rules:\n%s", out)

	raw, err := os.ReadFile("prometheus/alerts.yml")
	require.NoError(t, err)
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&file))
	mfs := scrape(t)
	alerts := map[string]bool{}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			assert.NotEmpty(t, r.Alert)
			assert.Contains(t, []string{"warning", "critical"}, r.Labels["severity"], "%s has a severity", r.Alert)
			assert.NotEmpty(t, r.Annotations["summary"], "%s has a summary", r.Alert)
			names := metricName.FindAllString(r.Expr, -1)
			assert.NotEmpty(t, names, "%s names a metric of redis-replicad", r.Alert)
			for _, n := range names {
				assert.Contains(t, mfs, n, "alert %s uses %s, which a running service does not export", r.Alert, n)
			}
		}
	}
	// What the issue asks operators be told about.
	for _, a := range []string{"ReplicadSourceOutOfSync", "ReplicadReplicaLagHigh", "ReplicadSyncStopped", "ReplicadDatabaseDown", "ReplicadCertificateExpiresSoon"} {
		assert.True(t, alerts[a], "alert %s exists", a)
	}
}

// TestDashboard checks that deploy/grafana/replicad.json is a dashboard whose
// every query names metrics a running service exports.
func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile("grafana/replicad.json")
	require.NoError(t, err)
	var dash map[string]any
	require.NoError(t, json.Unmarshal(raw, &dash), "the dashboard is JSON")
	assert.Equal(t, "redis-replicad", dash["title"])
	assert.NotEmpty(t, dash["uid"])
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if e, ok := v["expr"].(string); ok {
				exprs = append(exprs, e)
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(dash["panels"])
	require.NotEmpty(t, exprs, "the dashboard has queries")
	// The data source is a variable: the dashboard imports and provisions
	// as it is, on any Prometheus data source.
	var vars []string
	for _, v := range dash["templating"].(map[string]any)["list"].([]any) {
		v := v.(map[string]any)
		vars = append(vars, v["name"].(string)+":"+v["type"].(string))
	}
	assert.Contains(t, vars, "datasource:datasource")
	for _, p := range dash["panels"].([]any) {
		p := p.(map[string]any)
		if p["type"] == "row" {
			continue
		}
		ds, _ := p["datasource"].(map[string]any)
		assert.Equal(t, "${datasource}", ds["uid"], "panel %q uses the data source variable", p["title"])
	}
	mfs := scrape(t)
	used := map[string]bool{}
	for _, e := range exprs {
		names := metricName.FindAllString(e, -1)
		assert.NotEmpty(t, names, "query %q names a metric of redis-replicad", e)
		for _, n := range names {
			used[n] = true
			assert.Contains(t, mfs, n, "query %q uses %s, which a running service does not export", e, n)
		}
	}
	// What the issue asks the dashboard to show.
	for _, n := range []string{"replicad_replica_lag_seconds", "replicad_replica_source_status", "replicad_replica_commands_applied_total",
		"replicad_gateway_sent_wire_bytes_total", "replicad_gateway_sent_bytes_total", "replicad_replica_load_bytes",
		"replicad_replica_full_syncs_total", "replicad_replica_errors_total"} {
		assert.True(t, used[n], "the dashboard shows %s", n)
	}
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.Label {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

// call makes one API request as user; a 2xx answer is decoded into out when
// it is not nil, and returned.
func call(t *testing.T, i *servicetest.Instance, user, password, method, path string, body, out any) []byte {
	t.Helper()
	status, data := i.Request(t, user, password, method, path, body)
	require.Less(t, status, 300, "%s %s as %s: %s", method, path, user, data)
	if out != nil {
		require.NoError(t, json.Unmarshal(data, out), "%s %s: %s", method, path, data)
	}
	return data
}
