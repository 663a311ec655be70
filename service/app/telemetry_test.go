package app_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
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
