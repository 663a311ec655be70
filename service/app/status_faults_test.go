package app_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// everywhere is one source's status as each place reports it.
type everywhere struct {
	get, listed, console api.ReplicaSourceStatus
	metricState          string
	metricLag            float64
}

// statusEverywhere reads the one source of destination uid in the API (read
// and list), the console and the metrics.
func statusEverywhere(t *testing.T, i *servicetest.Instance, uid int) everywhere {
	t.Helper()
	var out everywhere
	var db api.Database
	call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", uid), nil, &db)
	require.Len(t, db.ReplicaSources, 1)
	out.get = db.ReplicaSources[0]
	var dbs []api.Database
	call(t, i, "GET", "/v1/bdbs", nil, &dbs)
	for _, d := range dbs {
		if d.UID == uid {
			require.Len(t, d.ReplicaSources, 1)
			out.listed = d.ReplicaSources[0]
		}
	}
	code, body := i.Request(t, i.Username, i.Password, "GET", "/ui/api/overview", nil)
	require.Equal(t, 200, code)
	var ov struct {
		Databases []api.Database `json:"databases"`
	}
	require.NoError(t, json.Unmarshal(body, &ov))
	for _, d := range ov.Databases {
		if d.UID == uid {
			require.Len(t, d.ReplicaSources, 1)
			out.console = d.ReplicaSources[0]
		}
	}
	code, body = i.Request(t, i.Username, i.Password, "GET", "/metrics", nil)
	require.Equal(t, 200, code)
	dest := `destination="` + strconv.Itoa(uid) + `"`
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.Contains(line, dest) {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		switch {
		case strings.HasPrefix(line, "replicad_replica_source_status{") && v == 1:
			_, st, _ := strings.Cut(line, `state="`)
			out.metricState, _, _ = strings.Cut(st, `"`)
		case strings.HasPrefix(line, "replicad_replica_lag_seconds{"):
			out.metricLag = v
		}
	}
	return out
}

// agree says how the places disagree, "" when they do not (lags read a
// moment apart may differ by a little).
func (e everywhere) disagreement() string {
	var out []string
	for name, s := range map[string]api.ReplicaSourceStatus{"list": e.listed, "console": e.console} {
		if s.Status != e.get.Status || s.LastError != e.get.LastError || s.SyncNote != e.get.SyncNote {
			out = append(out, fmt.Sprintf("%s says %s %q, the read %s %q", name, s.Status, s.LastError, e.get.Status, e.get.LastError))
		}
		if d := s.Lag - e.get.Lag; d > 2000 || d < -2000 {
			out = append(out, fmt.Sprintf("%s says lag %d ms, the read %d", name, s.Lag, e.get.Lag))
		}
	}
	if e.metricState != e.get.Status {
		out = append(out, fmt.Sprintf("the metrics say %s, the read %s", e.metricState, e.get.Status))
	}
	if d := e.metricLag*1000 - float64(e.get.Lag); d > 2000 || d < -2000 {
		out = append(out, fmt.Sprintf("the metrics say lag %.1f s, the read %d ms", e.metricLag, e.get.Lag))
	}
	return strings.Join(out, "; ")
}

// A source whose user may not PSYNC (Redis answers NOPERM) stops the sync:
// out of sync with a last_error that names PSYNC and a lag that grows, the
// same in the API, the console and the metrics.
func TestASourceThatRefusesPSYNCIsOutOfSyncEverywhere(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	c := ctx(t)
	sc := src.Client()
	require.NoError(t, sc.Do(c, "ACL", "SETUSER", "repl", "on", ">repl-pw-1", "~*", "+@all", "-psync", "-sync").Err())
	i := servicetest.Start(t)
	uri := "redis://repl:repl-pw-1@" + src.Addr()
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: uri}}})
	eventually(t, time.Minute, "out of sync, said everywhere, with a lag that grows", func() error {
		e := statusEverywhere(t, i, dst.UID)
		if d := e.disagreement(); d != "" {
			return fmt.Errorf("%s", d)
		}
		if e.get.Status != api.SourceOutOfSync || !strings.Contains(strings.ToLower(e.get.LastError), "psync") || e.get.Lag < 2000 {
			return fmt.Errorf("status %s, lag %d ms: %s", e.get.Status, e.get.Lag, e.get.LastError)
		}
		return nil
	})
}
