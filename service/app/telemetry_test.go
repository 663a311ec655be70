package app_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines(t *testing.T) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "a JSON log line: %s", sc.Text())
		out = append(out, m)
	}
	return out
}

// TestLogLinesNameTheirDatabase runs an instance with JSON logs through the
// life of a Replica Of and checks that every line about a database carries
// its name, and that API requests are logged at debug.
func TestLogLinesNameTheirDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-replicad")
	}
	logs := &lockedBuffer{}
	i := servicetest.StartWith(t, func(c *app.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	src := mustCreate(t, i, api.CreateDatabaseRequest{Name: "orders", MemorySize: 64 << 20})
	var su api.SourceURL
	call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d/source_url", src.UID), nil, &su)
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "orders_replica", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{URI: su.URI}}})
	inSync := func() error {
		var d api.Database
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", dst.UID), nil, &d)
		if d.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("replica_sync_status %q", d.ReplicaSyncStatus)
		}
		return nil
	}
	eventually(t, 2*time.Minute, "the replica is in sync", inSync)
	renamed := "orders_copy"
	paused := api.SyncPaused
	call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", dst.UID), api.UpdateDatabaseRequest{Name: &renamed, ReplicaSync: &paused}, nil)
	enabled := api.SyncEnabled
	call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", dst.UID), api.UpdateDatabaseRequest{ReplicaSync: &enabled}, nil)
	eventually(t, 2*time.Minute, "the replica is in sync again", inSync)

	names := map[float64][]string{float64(src.UID): {"orders"}, float64(dst.UID): {"orders_replica", "orders_copy"}}
	about, requests := 0, 0
	for _, line := range logs.lines(t) {
		if line["msg"] == "api request" {
			requests++
			assert.Equal(t, "DEBUG", line["level"], "API requests are logged at debug")
		}
		for _, key := range []string{"uid", "destination", "database"} {
			uid, ok := line[key].(float64)
			if !ok {
				continue
			}
			about++
			nameKey := key + "_name"
			if _, has := line[nameKey]; !has {
				nameKey = "name"
			}
			assert.Contains(t, names[uid], line[nameKey], "line %v names database %v", line, uid)
		}
	}
	assert.Positive(t, about, "lines about databases were logged")
	assert.Positive(t, requests, "requests were logged at debug")
}

// A scrape of /metrics and the console's overview read each database's
// memory. They asked every redis-server at the time of the read, a second
// (or more, behind the pool's other users) per frozen one, one after the
// other: with a few databases frozen, a scrape outlasted Prometheus's
// timeout (10 s), and every series was lost, replicad_database_up == 0
// included, just when it should alert. They now read what the databases'
// watchers last saw.
func TestMetricsAndConsoleDoNotWaitForFrozenDatabases(t *testing.T) {
	i := servicetest.Start(t)
	awake := mustCreate(t, i, api.CreateDatabaseRequest{Name: "awake", MemorySize: 16 << 20})
	const n = 6
	var pids []int
	for k := range n {
		db := mustCreate(t, i, api.CreateDatabaseRequest{Name: fmt.Sprintf("frozen-%d", k), MemorySize: 16 << 20})
		pid := i.App.Databases().PID(ctx(t), db.UID)
		require.NotZero(t, pid)
		pids = append(pids, pid)
	}
	memorySeries := fmt.Sprintf(`replicad_database_memory_used_bytes{database="%d",name="awake"}`, awake.UID)
	eventually(t, time.Minute, "the memory of the databases is known", func() error {
		code, body, err := request(i, "GET", "/metrics", nil)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("GET /metrics: %d %v", code, err)
		}
		if !strings.Contains(string(body), memorySeries) {
			return fmt.Errorf("no %s", memorySeries)
		}
		return nil
	})
	for _, pid := range pids {
		require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	}
	// The bound is far above what a read takes, far below what waiting
	// for the frozen databases costs.
	const bound = 2 * time.Second
	for range 3 {
		began := time.Now()
		code, body, err := request(i, "GET", "/metrics", nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, "%s", body)
		assert.Less(t, time.Since(began), bound, "GET /metrics with %d frozen databases", n)
		assert.Contains(t, string(body), memorySeries, "the memory of the database that answers is still there")

		began = time.Now()
		var o struct {
			Databases []struct {
				UID        int   `json:"uid"`
				MemoryUsed int64 `json:"memory_used"`
			} `json:"databases"`
		}
		code, body, err = request(i, "GET", "/ui/api/overview", nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, "%s", body)
		assert.Less(t, time.Since(began), bound, "GET /ui/api/overview with %d frozen databases", n)
		require.NoError(t, json.Unmarshal(body, &o))
		require.Len(t, o.Databases, n+1)
		for _, d := range o.Databases {
			if d.UID == awake.UID {
				assert.Positive(t, d.MemoryUsed, "the console shows the memory of the database that answers")
			}
		}
	}
}
