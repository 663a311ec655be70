package replication

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func args(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, a := range s {
		out[i] = []byte(a)
	}
	return out
}

func TestShardCommand(t *testing.T) {
	migrations := 0
	s := &syncer{key: "10.0.0.1:7000#0-5460", onMigrating: func() { migrations++ }}

	got, err := s.shardCommand(args("SET", "k", "v"))
	require.NoError(t, err)
	assert.Equal(t, args("SET", "k", "v"), got, "other commands pass unchanged")

	// A key migrating in replaces what the destination holds.
	got, err = s.shardCommand(args("RESTORE-ASKING", "k", "0", "payload"))
	require.NoError(t, err)
	assert.Equal(t, args("RESTORE", "k", "0", "payload", "REPLACE"), got)
	got, err = s.shardCommand(args("restore-asking", "k", "0", "payload", "replace", "ABSTTL"))
	require.NoError(t, err)
	assert.Equal(t, args("RESTORE", "k", "0", "payload", "replace", "ABSTTL"), got, "REPLACE is not given twice")
	assert.Equal(t, 2, migrations, "each migration is reported")

	// A flush of one shard reloads the destination.
	for _, cmd := range []string{"FLUSHALL", "flushdb"} {
		_, err = s.shardCommand(args(cmd, "ASYNC"))
		require.Error(t, err)
		assert.True(t, errors.Is(err, errNeedFullSync), "%v", err)
		assert.Contains(t, err.Error(), "0-5460")
	}
}

// clusterSource is a clustered source with shards in the given states.
func clusterSource(shards map[string]func(*sourceStatus)) *sourceState {
	s := &sourceState{src: api.ReplicaSource{URI: "redis://10.0.0.1:7000"}, status: &sourceStatus{}}
	cl := &clusterState{shards: map[string]*sourceStatus{}, roles: map[string]string{}}
	for slots, set := range shards {
		cl.current = append(cl.current, slots)
		set(cl.shard(slots))
	}
	s.cluster.Store(cl)
	return s
}

func inSync(st *sourceStatus) {
	st.phase, st.connected, st.rdbSize, st.rdbDone = phaseStreaming, true, 100, 100
}

func TestClusterSourceView(t *testing.T) {
	s := clusterSource(map[string]func(*sourceStatus){"0-8191": inSync, "8192-16383": inSync})
	v := s.view()
	assert.Equal(t, api.SourceInSync, v.Status)
	assert.Equal(t, int64(200), v.RDBSize, "the loads add up")
	require.Len(t, v.Shards, 2)

	// One shard failing: the source is as bad as its worst shard, and says
	// which shard.
	s = clusterSource(map[string]func(*sourceStatus){"0-8191": inSync, "8192-16383": func(st *sourceStatus) {
		st.phase, st.lastError = phaseConnecting, "connection refused"
	}})
	v = s.view()
	assert.Equal(t, api.SourceOutOfSync, v.Status)
	assert.Equal(t, "shard 8192-16383: connection refused", v.LastError)

	// A resharding note holds the source out of sync, and stays until the
	// reload it announced has run and every shard is in sync again.
	s = clusterSource(map[string]func(*sourceStatus){"0-16383": inSync})
	cl := s.cluster.Load()
	cl.resharding(discardLogger(), "redis://10.0.0.1:7000", "keys migrate")
	v = s.view()
	assert.Equal(t, api.SourceOutOfSync, v.Status)
	assert.True(t, strings.HasPrefix(v.LastError, "the clustered source is resharding"), v.LastError)
	cl.pending = false // the reload started
	v = s.view()
	assert.Equal(t, api.SourceInSync, v.Status)
	assert.Empty(t, v.LastError)

	// A paused sync is out of sync, shards included.
	s = clusterSource(map[string]func(*sourceStatus){"0-16383": inSync})
	s.status.phase = phasePaused
	v = s.view()
	assert.Equal(t, api.SourceOutOfSync, v.Status)
	assert.Equal(t, api.SourceOutOfSync, v.Shards[0].Status)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestSharedFunctionCommand(t *testing.T) {
	args := func(s ...string) [][]byte {
		out := make([][]byte, len(s))
		for i, a := range s {
			out[i] = []byte(a)
		}
		return out
	}
	str := func(a [][]byte) string {
		var parts []string
		for _, x := range a {
			parts = append(parts, string(x))
		}
		return strings.Join(parts, " ")
	}
	for in, want := range map[string]string{
		"FUNCTION LOAD code":         "FUNCTION LOAD REPLACE code",
		"function load code":         "function load REPLACE code",
		"FUNCTION LOAD REPLACE code": "",
		"FUNCTION RESTORE p":         "FUNCTION RESTORE p REPLACE",
		"FUNCTION RESTORE p APPEND":  "FUNCTION RESTORE p REPLACE",
		"FUNCTION RESTORE p REPLACE": "",
		"FCALL f 0":                  "",
		"SET k v":                    "",
	} {
		got, err := sharedFunctionCommand(args(strings.Fields(in)...))
		require.NoError(t, err, in)
		assert.Equal(t, want, str(got), in)
	}
	for _, in := range []string{"FUNCTION FLUSH", "FUNCTION FLUSH ASYNC", "FUNCTION RESTORE p FLUSH", "FUNCTION DELETE lib"} {
		_, err := sharedFunctionCommand(args(strings.Fields(in)...))
		assert.ErrorIs(t, err, errNeedFullSync, in)
	}
}

func TestParseOpenSlots(t *testing.T) {
	nodes := "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 [5461->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1] [93-<-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]\n" +
		"67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922 [7-<-e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca]\n"
	assert.Equal(t, []openSlot{
		{slot: 5461, node: "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1"},
		{slot: 93, importing: true, node: "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f"},
	}, parseOpenSlots(nodes), "the node's own line only")
	assert.Empty(t, parseOpenSlots("e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460\n"))
}
