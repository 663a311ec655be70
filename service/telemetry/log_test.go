package telemetry

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLogLinesCarryTheDatabaseName(t *testing.T) {
	names := NewNames(nil)
	names.Set(1, "orders")
	names.Set(2, "orders_replica")
	var buf bytes.Buffer
	log := slog.New(NewLogHandler(slog.NewJSONHandler(&buf, nil), names))
	line := func() map[string]any {
		t.Helper()
		var m map[string]any
		require.NoError(t, json.Unmarshal(buf.Bytes(), &m), buf.String())
		buf.Reset()
		return m
	}

	log.Info("database started", "uid", 1, "port", 12000)
	m := line()
	assert.EqualValues(t, 1, m["uid"])
	assert.Equal(t, "orders", m["name"])

	log.Info("full sync", "destination", 2, "source", "127.0.0.1:12001")
	assert.Equal(t, "orders_replica", line()["name"])

	log.With("database", 1, "peer", "127.0.0.1:5555").Info("replication session opened")
	m = line()
	assert.Equal(t, "orders", m["name"])
	assert.EqualValues(t, 1, m["database"])

	// A second database on the line gets a name of its own.
	log.Warn("deleting a database that is a Replica Of source", "uid", 1, "destination", 2)
	m = line()
	assert.Equal(t, "orders", m["name"])
	assert.Equal(t, "orders_replica", m["destination_name"])

	// A line that has its name keeps it, and gets no second one.
	log.Info("database updated", "uid", 2, "name", "orders_replica")
	m = line()
	assert.Equal(t, "orders_replica", m["name"])
	assert.NotContains(t, m, "uid_name")

	// An unknown uid is left as it is.
	log.Info("gone", "uid", 9)
	assert.NotContains(t, line(), "name")

	// Renames show at once.
	names.Set(1, "orders_v2")
	log.Info("database updated", "uid", 1)
	assert.Equal(t, "orders_v2", line()["name"])
}

// A database being created is logged about before the app learns its name:
// the name is loaded from the store.
func TestLogNamesLoadsWhatItDoesNotKnow(t *testing.T) {
	loads := 0
	names := NewNames(func(uid int) (string, bool) {
		loads++
		return "fresh", uid == 5
	})
	var buf bytes.Buffer
	log := slog.New(NewLogHandler(slog.NewJSONHandler(&buf, nil), names))
	log.Info("replica of configured", "destination", 5)
	log.Info("replica of configured", "destination", 5)
	assert.Equal(t, 2, bytes.Count(buf.Bytes(), []byte(`"name":"fresh"`)))
	assert.Equal(t, 1, loads, "a loaded name is kept")
}
