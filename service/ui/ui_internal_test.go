package ui

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRingKeepsTheLastSamplesInOrder(t *testing.T) {
	r := &ring{buf: make([]sample, 3)}
	assert.Empty(t, r.points())
	base := time.Unix(1000, 0)
	for i := range 5 {
		r.add(sample{at: base.Add(time.Duration(i) * time.Second), lag: float64(i)})
	}
	assert.Equal(t, [][2]float64{{1002, 2}, {1003, 3}, {1004, 4}}, r.points())
}

// The page works offline: nothing it loads comes from another host.
func TestConsoleHasNoExternalAssets(t *testing.T) {
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|import\s+.*from\s+["']https?:`)
	err := fs.WalkDir(static, "static", func(path string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		if d.IsDir() {
			return nil
		}
		b, err := static.ReadFile(path)
		require.NoError(t, err)
		assert.NotRegexp(t, external, string(b), "%s loads something from another host", path)
		return nil
	})
	require.NoError(t, err)

	c := &Console{}
	for path, typ := range map[string]string{"/": "text/html", "/ui/app.js": "javascript", "/ui/style.css": "text/css"} {
		rec := httptest.NewRecorder()
		c.Files().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		assert.Equal(t, http.StatusOK, rec.Code, path)
		assert.Contains(t, rec.Header().Get("Content-Type"), typ, path)
		assert.Contains(t, rec.Header().Get("Content-Security-Policy"), "default-src 'self'", path)
	}
}

// The page asks for the API's password: another site may not frame it
// (clickjacking), in browsers that know CSP's frame-ancestors or only
// X-Frame-Options, nor point its links or forms elsewhere.
func TestConsoleMayNotBeFramed(t *testing.T) {
	c := &Console{}
	for _, path := range []string{"/", "/ui/", "/ui/app.js", "/ui/missing"} {
		rec := httptest.NewRecorder()
		c.Files().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		csp := rec.Header().Get("Content-Security-Policy")
		for _, d := range []string{"frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'", "object-src 'none'"} {
			assert.Contains(t, csp, d, path)
		}
		assert.Equal(t, "DENY", rec.Header().Get("X-Frame-Options"), path)
		assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"), path)
		assert.Equal(t, "no-referrer", rec.Header().Get("Referrer-Policy"), path)
	}
}

// A clustered source is replicated shard by shard, and its syncers count
// bytes per shard (source "host:port#slots"). The console summed nothing
// of them (it looked for "host:port" only): compression of such a source
// showed "0 B saved".
func TestConsoleSumsTheBytesOfAClusteredSourcesShards(t *testing.T) {
	reg := prometheus.NewRegistry()
	plain := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "replicad_replica_bytes_received_total"}, []string{"destination", "source"})
	wire := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "replicad_replica_wire_bytes_received_total"}, []string{"destination", "source"})
	reg.MustRegister(plain, wire)
	plain.WithLabelValues("2", "10.0.0.1:7000#0-8191").Add(1000)
	plain.WithLabelValues("2", "10.0.0.1:7000#8192-16383").Add(3000)
	wire.WithLabelValues("2", "10.0.0.1:7000#0-8191").Add(100)
	wire.WithLabelValues("2", "10.0.0.1:7000#8192-16383").Add(300)
	plain.WithLabelValues("2", "10.0.0.2:6379").Add(50)
	wire.WithLabelValues("2", "10.0.0.2:6379").Add(40)
	c := &Console{history: map[sourceKey]*ring{}, cfg: Config{Gatherer: reg, Databases: func(context.Context) ([]api.Database, error) {
		return []api.Database{{UID: 2, Name: "dst", ReplicaSources: []api.ReplicaSourceStatus{
			{ReplicaSource: api.ReplicaSource{URI: "redis://admin:secret@10.0.0.1:7000", Compression: 3}, CompressionActive: true},
			{ReplicaSource: api.ReplicaSource{URI: "redis://10.0.0.2:6379", Compression: 3}, CompressionActive: true},
		}}}, nil
	}}}
	rec := httptest.NewRecorder()
	c.overview(rec, httptest.NewRequest("GET", "/ui/api/overview", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var o overview
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &o))
	require.Len(t, o.Databases, 1)
	require.Len(t, o.Databases[0].Sources, 2)
	assert.Equal(t, source{Address: "10.0.0.1:7000", BytesReceived: 4000, WireBytesReceived: 400, Lag: [][2]float64{}}, o.Databases[0].Sources[0], "the shards' bytes, summed")
	assert.Equal(t, source{Address: "10.0.0.2:6379", BytesReceived: 50, WireBytesReceived: 40, Lag: [][2]float64{}}, o.Databases[0].Sources[1])
}

// The page shows no password, the admin's no more than the viewer's (the
// source URL dialog asks the API for it when opened). Its data call gave
// the admin's browser every database's application password and every
// source URL with its password, every 3 seconds, for nothing.
func TestConsoleDataHoldsNoPasswordForTheAdminEither(t *testing.T) {
	c := &Console{history: map[sourceKey]*ring{}, cfg: Config{Databases: func(context.Context) ([]api.Database, error) {
		return []api.Database{{UID: 2, Name: "dst", AuthenticationRedisPass: "app-password-secret", ReplicaSources: []api.ReplicaSourceStatus{
			{ReplicaSource: api.ReplicaSource{URI: "redis://admin:source-password-secret@10.0.0.1:7000"}, Status: api.SourceOutOfSync,
				LastError: "the source said source-password-secret"},
		}}}, nil
	}}}
	rec := httptest.NewRecorder()
	c.overview(rec, httptest.NewRequest("GET", "/ui/api/overview", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.NotContains(t, rec.Body.String(), "secret")
	var o overview
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &o))
	require.Len(t, o.Databases, 1)
	assert.Equal(t, "10.0.0.1:7000", o.Databases[0].Sources[0].Address, "the page still has each source's address")
	assert.Equal(t, api.SourceOutOfSync, o.Databases[0].ReplicaSources[0].Status, "and its status")
}
