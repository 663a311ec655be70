package replication

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/cluster"
	"github.com/replicad/terraform-provider-redis/internal/layout"
	"github.com/replicad/terraform-provider-redis/internal/resp"
)

func TestSlotTagsPlaceKeysInTheirSlot(t *testing.T) {
	tags := slotTags()
	require.Len(t, tags, cluster.Slots)
	for s, tag := range tags {
		require.NotEmpty(t, tag, "slot %d", s)
		require.Equal(t, s, cluster.KeySlot([]byte(slotCheckpointKey(s))), "slot %d", s)
		require.Equal(t, s, cluster.KeySlot([]byte(shardCheckpointKey(s))), "slot %d", s)
	}
}

func TestStagedKey(t *testing.T) {
	for rest, want := range map[string]string{
		"127.0.0.1:6379:k":          "k",
		"host:6379:a:b:1:c":         "a:b:1:c",
		"[::1]:6379:{tag}x":         "{tag}x",
		"redis.example.com:7000::":  ":",
		"127.0.0.1:6379:":           "",
		"10.0.0.1:6379:12:34:value": "12:34:value",
	} {
		got, ok := stagedKey([]byte(rest))
		assert.True(t, ok, rest)
		assert.Equal(t, want, string(got), rest)
	}
	_, ok := stagedKey([]byte("no-port-here"))
	assert.False(t, ok)
}

func FuzzSplitRaw(f *testing.F) {
	f.Add(resp.AppendCommandStrings(nil, "SET", "k", "v"))
	f.Add(resp.AppendCommandStrings(nil, "MSET", "a", "", "b", "2"))
	f.Add([]byte("*1\r\n$4\r\nPING\r\n"))
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$10\r\nshort\r\n"))
	f.Add([]byte("*-1\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		args, err := splitRaw(raw, nil)
		if err != nil {
			return
		}
		// What parses re-encodes to a prefix of the input.
		again := resp.AppendCommand(nil, args...)
		if !strings.HasPrefix(string(raw), string(again)) {
			t.Fatalf("%q parsed as %q, which encodes as %q", raw, args, again)
		}
	})
}

// testClusterWriter is a writer for a destination of 3 shards (slots split
// as the service splits them), with a command table for the commands the
// tests use, and no connection.
func testClusterWriter(t *testing.T) *clusterWriter {
	t.Helper()
	topo := &destTopology{owner: make([]int16, cluster.Slots)}
	bounds := [][2]int{{0, 5461}, {5462, 10922}, {10923, 16383}}
	for i, b := range bounds {
		topo.shards = append(topo.shards, destShard{addr: "node" + string(rune('0'+i)), slots: []cluster.Range{{Start: b[0], End: b[1]}}})
		for s := b[0]; s <= b[1]; s++ {
			topo.owner[s] = int16(i)
		}
	}
	cw := &clusterWriter{source: "src:1", topo: topo, groups: map[int][]byte{}, counts: map[int]int{}, gen: "3",
		cmds: map[string]*redis.CommandInfo{
			"set":    {Name: "set", FirstKeyPos: 1, LastKeyPos: 1, StepCount: 1},
			"incr":   {Name: "incr", FirstKeyPos: 1, LastKeyPos: 1, StepCount: 1},
			"rpush":  {Name: "rpush", FirstKeyPos: 1, LastKeyPos: 1, StepCount: 1},
			"del":    {Name: "del", FirstKeyPos: 1, LastKeyPos: -1, StepCount: 1},
			"mset":   {Name: "mset", FirstKeyPos: 1, LastKeyPos: -1, StepCount: 2},
			"rename": {Name: "rename", FirstKeyPos: 1, LastKeyPos: 2, StepCount: 1},
		}}
	for range topo.shards {
		cw.shards = append(cw.shards, &destWriter{})
	}
	cw.parent = &destWriter{cl: cw, replID: strings.Repeat("a", 40)}
	return cw
}

func cmdItem(offset int64, args ...string) item {
	return item{kind: kindCommand, offset: offset, raw: resp.AppendCommandStrings(nil, args...)}
}

// sentCommands decodes what the writer queued for each shard.
func sentCommands(t *testing.T, cw *clusterWriter) [][]string {
	out := make([][]string, len(cw.shards))
	for i, w := range cw.shards {
		rest := w.buf
		for len(rest) > 0 {
			args, err := splitRaw(rest, nil)
			require.NoError(t, err)
			var s []string
			for _, a := range args {
				s = append(s, string(a))
			}
			out[i] = append(out[i], strings.Join(s, " "))
			rest = rest[len(resp.AppendCommand(nil, args...)):]
		}
		require.Equal(t, len(out[i]), w.queued, "shard %d: replies expected", i)
	}
	return out
}

func shardOf(cw *clusterWriter, key string) int {
	return int(cw.topo.owner[cluster.KeySlot([]byte(key))])
}

func TestClusterWriterRoutesBySlot(t *testing.T) {
	cw := testClusterWriter(t)
	// Keys of different shards: "a" is in slot 15495, "b" 3300, "c" 7365.
	require.Equal(t, 2, shardOf(cw, "a"))
	require.Equal(t, 0, shardOf(cw, "b"))
	require.Equal(t, 1, shardOf(cw, "c"))
	sb, err := cw.encodeBatch(context.Background(), []item{
		cmdItem(10, "SET", "a", "1"),
		{kind: kindTxBegin, offset: 20},
		cmdItem(30, "INCR", "b"),
		cmdItem(40, "INCR", "c"),
		{kind: kindTxEnd, offset: 50},
		cmdItem(60, "MSET", "a", "2", "b", "3", "{a}x", "4"),
		cmdItem(70, "DEL", "b", "c"),
	}, false)
	require.NoError(t, err)
	assert.True(t, sb.commit)
	assert.Equal(t, int64(70), sb.cp.Offset)
	cp := strings.Repeat("a", 40) + " 70 0"
	sa, sB, sc := cluster.KeySlot([]byte("a")), cluster.KeySlot([]byte("b")), cluster.KeySlot([]byte("c"))
	got := sentCommands(t, cw)
	assert.Equal(t, []string{
		"MULTI", "INCR b", "MSET b 3", "DEL b", "HSET " + slotCheckpointKey(sB) + " src:1 " + cp, "EXEC",
		"HSET " + shardCheckpointKey(0) + " src:1 " + cp,
	}, got[0])
	assert.Equal(t, []string{
		"MULTI", "INCR c", "DEL c", "HSET " + slotCheckpointKey(sc) + " src:1 " + cp, "EXEC",
		"HSET " + shardCheckpointKey(5462) + " src:1 " + cp,
	}, got[1])
	assert.Equal(t, []string{
		"MULTI", "SET a 1", "MSET a 2 {a}x 4", "HSET " + slotCheckpointKey(sa) + " src:1 " + cp, "EXEC",
		"HSET " + shardCheckpointKey(10923) + " src:1 " + cp,
	}, got[2])
	// The transaction over two slots, the MSET and the DEL were split.
	assert.Equal(t, 3, cw.splits)
	assert.Contains(t, cw.splitSample, "MULTI/EXEC")
}

func TestClusterWriterSkipsWhatASlotHolds(t *testing.T) {
	cw := testClusterWriter(t)
	// Resuming: slot of "a" holds up to 100, the others up to 50.
	cw.applied = make([]int64, cluster.Slots)
	for s := range cw.applied {
		cw.applied[s] = 50
	}
	cw.applied[cluster.KeySlot([]byte("a"))] = 100
	_, err := cw.encodeBatch(context.Background(), []item{
		cmdItem(60, "INCR", "a"), // applied already
		cmdItem(60, "INCR", "b"),
		cmdItem(110, "INCR", "a"),
	}, false)
	require.NoError(t, err)
	got := sentCommands(t, cw)
	assert.Contains(t, got[0], "INCR b")
	assert.Equal(t, 1, strings.Count(strings.Join(got[2], "\n"), "INCR a"), "%q", got[2])
}

func TestClusterWriterRefuses(t *testing.T) {
	for name, items := range map[string][]item{
		"RENAME across slots":        {cmdItem(10, "RENAME", "a", "b")},
		"another database":           {{kind: kindSelect, db: 3, offset: 10}, cmdItem(20, "SET", "a", "1")},
		"FLUSHDB in 2, then a write": {{kind: kindSelect, db: 2, offset: 10}, cmdItem(20, "FLUSHDB"), cmdItem(30, "SET", "a", "1")},
		"bad db argument":            {{kind: kindBadDB, db: 16, raw: []byte("MOVE"), offset: 10}},
		"MOVE to database 1":         {cmdItem(10, "MOVE", "a", "1")},
		"SWAPDB":                     {cmdItem(10, "SWAPDB", "0", "1")},
		"COPY to database 2":         {cmdItem(10, "COPY", "a", "b", "DB", "2")},
		"a checkpoint's name":        {cmdItem(10, "SET", "replicad:{x}:cp", "1")},
	} {
		cw := testClusterWriter(t)
		_, err := cw.encodeBatch(context.Background(), items, false)
		require.Error(t, err, name)
		assert.True(t, errors.Is(err, errFatal), "%s: %v", name, err)
		switch name {
		case "RENAME across slots":
			assert.Contains(t, err.Error(), `RENAME "a"`)
		case "a checkpoint's name":
			assert.Contains(t, err.Error(), `"replicad:{x}:cp"`)
		default:
			assert.Contains(t, err.Error(), "database 0 only")
		}
	}
}

func TestClusterWriterFlushKeepsItsCheckpoint(t *testing.T) {
	cw := testClusterWriter(t)
	_, err := cw.encodeBatch(context.Background(), []item{
		cmdItem(10, "SET", "a", "1"),
		{kind: kindFlushAll, offset: 20},
		cmdItem(30, "SET", "a", "2"),
	}, false)
	require.NoError(t, err)
	got := sentCommands(t, cw)
	rid := strings.Repeat("a", 40)
	sa := cluster.KeySlot([]byte("a"))
	assert.Equal(t, []string{
		"MULTI", "SET a 1", "HSET " + slotCheckpointKey(sa) + " src:1 " + rid + " 10 0", "EXEC",
		"MULTI", "FLUSHALL", "HSET " + shardCheckpointKey(10923) + " src:1 " + rid + " 20 0 generation 3", "EXEC",
		"MULTI", "SET a 2", "HSET " + slotCheckpointKey(sa) + " src:1 " + rid + " 30 0", "EXEC",
		"HSET " + shardCheckpointKey(10923) + " src:1 " + rid + " 30 0",
	}, got[2])
	assert.Equal(t, []string{
		"MULTI", "FLUSHALL", "HSET " + shardCheckpointKey(0) + " src:1 " + rid + " 20 0 generation 3", "EXEC",
		"HSET " + shardCheckpointKey(0) + " src:1 " + rid + " 30 0",
	}, got[0])
}

func TestClusterWriterLoadStagesInTheKeysSlot(t *testing.T) {
	cw := testClusterWriter(t)
	staged := string(stagingPrefix) + "127.0.0.1:6379:a"
	_, err := cw.encodeBatch(context.Background(), []item{
		{kind: kindCommand, raw: resp.AppendCommandStrings(nil, "SELECT", "0")},
		{kind: kindCommand, raw: resp.AppendCommandStrings(nil, "RPUSH", staged, "x")},
		{kind: kindCommand, raw: resp.AppendCommandStrings(nil, "RENAME", staged, "a")},
	}, true)
	require.NoError(t, err)
	got := sentCommands(t, cw)
	tagged := string(stagingPrefix) + "{" + slotTags()[cluster.KeySlot([]byte("a"))] + "}:127.0.0.1:6379:a"
	assert.Equal(t, []string{"RPUSH " + tagged + " x", "RENAME " + tagged + " a"}, got[2])
	assert.Empty(t, got[0])

	cw = testClusterWriter(t)
	_, err = cw.encodeBatch(context.Background(), []item{{kind: kindCommand, raw: resp.AppendCommandStrings(nil, "SELECT", "2")}}, true)
	assert.ErrorContains(t, err, "logical database 2")
}

func TestClusterWriterKeylessCommands(t *testing.T) {
	cw := testClusterWriter(t)
	_, err := cw.encodeBatch(context.Background(), []item{
		cmdItem(10, "FUNCTION", "LOAD", "#!lua name=lib\nredis.register_function('f', function() return 1 end)"),
		cmdItem(20, "PUBLISH", "news", "hello"),
		cmdItem(30, "SPUBLISH", "a", "hello"), // the shard channel "a" is in the slot of key "a"
	}, false)
	require.NoError(t, err)
	got := sentCommands(t, cw)
	for i, first := range []int{0, 5462, 10923} {
		assert.Contains(t, got[i], "FUNCTION LOAD #!lua name=lib\nredis.register_function('f', function() return 1 end)", "shard %d", i)
		assert.Contains(t, got[i], "HSET "+slotCheckpointKey(first)+" src:1 "+strings.Repeat("a", 40)+" 30 0", "shard %d: with its slot's checkpoint", i)
	}
	assert.Contains(t, got[0], "PUBLISH news hello")
	assert.NotContains(t, got[1], "PUBLISH news hello", "published once")
	assert.Contains(t, got[2], "SPUBLISH a hello")

	// Replayed after a crash, what a slot holds is not applied again.
	cw = testClusterWriter(t)
	cw.applied = make([]int64, cluster.Slots)
	cw.applied[0] = 25
	_, err = cw.encodeBatch(context.Background(), []item{cmdItem(10, "FUNCTION", "DELETE", "lib"), cmdItem(20, "PUBLISH", "news", "again")}, false)
	require.NoError(t, err)
	got = sentCommands(t, cw)
	assert.NotContains(t, strings.Join(got[0], "\n"), "FUNCTION DELETE")
	assert.NotContains(t, strings.Join(got[0], "\n"), "PUBLISH")
	assert.Contains(t, got[1], "FUNCTION DELETE lib")
}

func TestClusterWriterChainedSourceCheckpoints(t *testing.T) {
	// A source that is a destination too selects its checkpoint database
	// for its own checkpoints (the reader turns them into offsets): no
	// error, and nothing of it applied.
	cw := testClusterWriter(t)
	_, err := cw.encodeBatch(context.Background(), []item{
		{kind: kindSelect, db: layout.CheckpointDB, offset: 10},
		{kind: kindOffset, offset: 20},
		{kind: kindSelect, db: 0, offset: 30},
		cmdItem(40, "SET", "a", "1"),
	}, false)
	require.NoError(t, err)
	assert.Contains(t, sentCommands(t, cw)[2], "SET a 1")
	// Anything else in that database stops the sync.
	cw = testClusterWriter(t)
	_, err = cw.encodeBatch(context.Background(), []item{{kind: kindSelect, db: layout.CheckpointDB, offset: 10}, cmdItem(20, "SET", "a", "1")}, false)
	assert.ErrorContains(t, err, "database 16")

	// Its FLUSHALL reaches the stream as a FLUSHDB of each database: the
	// one of 0 empties the masters, the others have nothing to empty.
	cw = testClusterWriter(t)
	items := []item{}
	for db := range 16 {
		items = append(items, item{kind: kindSelect, db: db, offset: int64(10 + 2*db)}, cmdItem(int64(11+2*db), "FLUSHDB"))
	}
	items = append(items, item{kind: kindSelect, db: 0, offset: 50}, cmdItem(60, "SET", "a", "1"))
	_, err = cw.encodeBatch(context.Background(), items, false)
	require.NoError(t, err)
	got := strings.Join(sentCommands(t, cw)[2], "\n")
	assert.Equal(t, 1, strings.Count(got, "FLUSHALL"), got)
	assert.Contains(t, got, "SET a 1")
}

// TestWithoutExactTrimLimit: the LIMIT of an exact trim (a source's
// rewrite of an approximate one) goes; anything else stays as it is.
func TestWithoutExactTrimLimit(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"XADD s MAXLEN = 12 LIMIT 5 * f v", "XADD s MAXLEN = 12 * f v"},
		{"xadd s nomkstream minid = 5-0 limit 100 7-1 f v", "xadd s nomkstream minid = 5-0 7-1 f v"},
		{"XTRIM s MAXLEN = 3 LIMIT 10", "XTRIM s MAXLEN = 3"},
		{"XTRIM s MINID 9-0 LIMIT 10", "XTRIM s MINID 9-0"},
		{"XADD s MAXLEN ~ 12 LIMIT 5 * f v", ""},
		{"XADD s * LIMIT 5", ""}, // a field named LIMIT
		{"XADD s MAXLEN = 12 * f v", ""},
		{"SET LIMIT 5", ""},
	} {
		got, ok := withoutExactTrimLimit(bytesArgs(strings.Fields(c.in)))
		if c.want == "" {
			assert.False(t, ok, c.in)
			continue
		}
		require.True(t, ok, c.in)
		var s []string
		for _, a := range got {
			s = append(s, string(a))
		}
		assert.Equal(t, c.want, strings.Join(s, " "), c.in)
	}
}

func bytesArgs(s []string) [][]byte {
	out := make([][]byte, len(s))
	for i, a := range s {
		out[i] = []byte(a)
	}
	return out
}
