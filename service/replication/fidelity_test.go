package replication_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc64"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/internal/resp"
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// TestBigTransactionsAreApplied: a script's effects (Redis 7 replicates
// them as one MULTI/EXEC) and a MULTI/EXEC, each of 100,000 commands, far
// more than the writer's queue holds, then a transaction that arrives
// slowly, split across many reads. Each must be applied, and what follows
// them too.
func TestBigTransactionsAreApplied(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	proxy := redistest.StartProxy(t, src.Addr())
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: "redis://:pw-123456@" + proxy.Addr}}})
	a.waitInSync(dst.UID, time.Minute)
	ctx := redistest.Ctx(t)
	// A script of 100,000 writes runs for seconds on a loaded machine:
	// longer than go-redis's default read timeout of 3 s.
	sc := redis.NewClient(&redis.Options{Addr: src.Addr(), Password: "pw-123456", ReadTimeout: 2 * time.Minute})
	t.Cleanup(func() { sc.Close() })
	dc := destClient(t, dst, 0)

	const n = 100000
	script := `for i = 1, tonumber(ARGV[1]) do redis.call('HSET', KEYS[1], 'f' .. i, i) end
redis.call('SET', KEYS[2], ARGV[1])
return 1`
	require.NoError(t, sc.Eval(ctx, script, []string{"script:hash", "script:done"}, n).Err())
	tx := sc.TxPipeline()
	for i := range n {
		tx.RPush(ctx, "tx:list", i)
	}
	_, err := tx.Exec(ctx)
	require.NoError(t, err)
	require.NoError(t, sc.Set(ctx, "after-big", "1", 0).Err())
	eventuallyEqual(t, 3*time.Minute, dc, sc)

	// A transaction over a slow link: many reads, with pauses between them.
	proxy.Slow(1024, time.Millisecond)
	tx = sc.TxPipeline()
	for i := range 20000 {
		tx.HSet(ctx, "slow:hash", fmt.Sprint("f", i), i)
	}
	_, err = tx.Exec(ctx)
	require.NoError(t, err)
	require.NoError(t, sc.Set(ctx, "after-slow", "1", 0).Err())
	eventuallyEqual(t, 3*time.Minute, dc, sc)
	proxy.Slow(0, 0)

	db := a.waitInSync(dst.UID, time.Minute)
	assert.Empty(t, db.ReplicaSources[0].LastError)
	assert.Equal(t, int64(n), dc.HLen(context.Background(), "script:hash").Val())
	assert.Equal(t, int64(n), dc.LLen(context.Background(), "tx:list").Val())
}

// pidOf is the process id of the redis-server that c talks to.
func pidOf(t *testing.T, c *redis.Client) int {
	t.Helper()
	info, err := c.InfoMap(context.Background(), "server").Result()
	require.NoError(t, err)
	pid, err := strconv.Atoi(info["Server"]["process_id"])
	require.NoError(t, err)
	return pid
}

// freeze stops process pid (SIGSTOP) until the returned function, or the
// end of the test, continues it.
func freeze(t *testing.T, pid int) func() {
	t.Helper()
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	var once sync.Once
	thaw := func() { once.Do(func() { _ = syscall.Kill(pid, syscall.SIGCONT) }) }
	t.Cleanup(thaw)
	return thaw
}

// TestFrozenDestinationIsOutOfSync freezes the destination's redis-server
// under load: the status must say out-of-sync, with a last_error saying
// the syncer is stuck and where, the metrics too, and once the destination
// runs again the sync resumes and catches up.
func TestFrozenDestinationIsOutOfSync(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456", "--repl-backlog-size", "256mb")
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 128 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	thaw := freeze(t, pidOf(t, dc))
	w := startIncrWriter(t, src.Client(), 20)

	var db api.Database
	redistest.Eventually(t, time.Minute, "the frozen destination's source is out of sync", func() error {
		db = a.get(dst.UID)
		if s := db.ReplicaSources[0]; s.Status != api.SourceOutOfSync || !strings.Contains(s.LastError, "stuck") {
			return fmt.Errorf("source %+v", s)
		}
		return nil
	})
	t.Logf("last_error: %s", db.ReplicaSources[0].LastError)
	assert.Contains(t, db.ReplicaSources[0].LastError, "destination")
	assert.GreaterOrEqual(t, metric(a.metrics(), "replicad_replica_stalls_total"), 1.0)

	thaw()
	w.stop()
	eventuallyEqual(t, 2*time.Minute, dc, src.Client())
	db = a.waitInSync(dst.UID, time.Minute)
	assert.Empty(t, db.ReplicaSources[0].LastError)
}

// TestFrozenSourceIsOutOfSync: a source that sends nothing, not even the
// ping it sends every 10 s, is not in sync.
func TestFrozenSourceIsOutOfSync(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	thaw := freeze(t, pidOf(t, src.Client()))

	frozen := time.Now()
	var db api.Database
	// The source pings every 10 s; the read timeout (60 s) is far later.
	redistest.Eventually(t, 40*time.Second, "the frozen source is out of sync", func() error {
		db = a.get(dst.UID)
		if s := db.ReplicaSources[0]; s.Status != api.SourceOutOfSync {
			return fmt.Errorf("source %+v", s)
		}
		return nil
	})
	t.Logf("out of sync %s after the source froze", time.Since(frozen).Round(time.Second))
	assert.Contains(t, db.ReplicaSources[0].LastError, "the source or the link is frozen")

	thaw()
	require.NoError(t, src.Client().Set(context.Background(), "after-thaw", "1", 0).Err())
	eventuallyEqual(t, 2*time.Minute, destClient(t, dst, 0), src.Client())
	db = a.waitInSync(dst.UID, 2*time.Minute)
	assert.Empty(t, db.ReplicaSources[0].LastError)
}

// dump71 builds a DUMP payload of RDB version 11 (Redis 7.2), which a
// Redis 7.0 destination refuses: type, value, version, CRC64 (Jones).
func dump71(typ byte, value []byte) []byte {
	p := append([]byte{typ}, value...)
	p = binary.LittleEndian.AppendUint16(p, 11)
	tab := crc64.MakeTable(0x95ac9329ac4bc9b5)
	return binary.LittleEndian.AppendUint64(p, ^crc64.Update(^uint64(0), tab, p))
}

// TestRestoreOfANewerVersionIsApplied: a RESTORE from a 7.2 source (an RDB
// 11 payload) reaches a 7.0 destination, which cannot read it: the service
// decodes it into commands, TTL included.
func TestRestoreOfANewerVersionIsApplied(t *testing.T) {
	emptyRDB := append([]byte("REDIS0010\xff"), make([]byte, 8)...)
	intset := []byte{2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 2, 0, 3, 0}
	expireAt := time.Now().Add(time.Hour).UnixMilli()
	var stream []byte
	stream = resp.AppendCommandStrings(stream, "SELECT", "0")
	stream = resp.AppendCommandStrings(stream, "RESTORE", "k2", "0", string(dump71(0, append([]byte{5}, "hello"...))))
	stream = resp.AppendCommandStrings(stream, "RESTORE", "set", strconv.FormatInt(expireAt, 10), string(dump71(11, append([]byte{byte(len(intset))}, intset...))), "ABSTTL")
	stream = resp.AppendCommandStrings(stream, "SET", "after", "1")
	addr := fakeSource(t, emptyRDB, stream)

	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: "redis://" + addr}}})
	dc := destClient(t, dst, 0)
	ctx := context.Background()
	redistest.Eventually(t, time.Minute, "the stream is applied", func() error {
		if dc.Exists(ctx, "after").Val() != 1 {
			return fmt.Errorf("not yet: %+v", a.get(dst.UID).ReplicaSources[0])
		}
		return nil
	})
	assert.Equal(t, "hello", dc.Get(ctx, "k2").Val())
	assert.ElementsMatch(t, []string{"1", "2", "3"}, dc.SMembers(ctx, "set").Val())
	assert.Equal(t, expireAt, dc.PExpireTime(ctx, "set").Val().Milliseconds())
	db := a.get(dst.UID)
	assert.Empty(t, db.ReplicaSources[0].LastError)
}

// TestCommandRefusedByTheDestinationStops: two sources hold one key under
// two types; a command of one fails on the destination (WRONGTYPE) inside
// the batch's EXEC. The sync stops, naming the command and the error.
func TestCommandRefusedByTheDestinationStops(t *testing.T) {
	s1 := redistest.Start(t, "--requirepass", "pw-1")
	s2 := redistest.Start(t, "--requirepass", "pw-2")
	ctx := redistest.Ctx(t)
	require.NoError(t, s1.Client().Set(ctx, "clash", "a string", 0).Err())
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: s1.URL()}, {URI: s2.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	require.NoError(t, s2.Client().LPush(ctx, "clash", "an element").Err())

	var db api.Database
	redistest.Eventually(t, time.Minute, "the sync stops on the refused command", func() error {
		db = a.get(dst.UID)
		if db.ReplicaSync != api.SyncStopped {
			return fmt.Errorf("sync %s, sources %+v", db.ReplicaSync, db.ReplicaSources)
		}
		return nil
	})
	var le string
	for _, s := range db.ReplicaSources {
		if strings.Contains(s.ReplicaSource.URI, s2.Addr()) {
			le = s.LastError
		}
	}
	assert.Contains(t, le, `LPUSH "clash"`)
	assert.Contains(t, le, "WRONGTYPE")
}

// TestCleanSourceRestartContinues: a source shut down cleanly (SHUTDOWN
// SAVE) and started again from its RDB keeps its replication id and offset,
// and a native replica continues with a partial resync. So must the
// destination: its checkpoint counts every byte of the stream, the
// REPLCONF GETACK the source sends as it shuts down included.
func TestCleanSourceRestartContinues(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	writeDataset(t, src.Client(), "", 100)
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	ctx := redistest.Ctx(t)
	dc := destClient(t, dst, 0)
	require.NoError(t, src.Client().Set(ctx, "before-restart", "1", 0).Err())
	eventuallyEqual(t, time.Minute, dc, src.Client())

	// A write just before: the source's SHUTDOWN then waits for its
	// replicas, asking with REPLCONF GETACK.
	require.NoError(t, src.Client().Set(ctx, "just-before", "1", 0).Err())
	_ = src.Client().Do(ctx, "SHUTDOWN", "SAVE").Err() // the connection closes
	src.Restart()
	require.NoError(t, src.Client().Set(ctx, "after-restart", "2", 0).Err())
	eventuallyEqual(t, time.Minute, dc, src.Client())
	a.waitInSync(dst.UID, time.Minute)
	m := a.metrics()
	assert.Equal(t, 1.0, metric(m, "replicad_replica_full_syncs_total"), "the restart must not reload the destination\n%s", grep(m, "syncs_total"))
	assert.GreaterOrEqual(t, metric(m, "replicad_replica_partial_syncs_total"), 1.0)
}

// TestDatabaseArgumentsPast15Stop: MOVE, SWAPDB and COPY ... DB name
// logical databases too; one the destination does not offer to sources
// stops the sync as SELECT does, nothing applied to the wrong database.
func TestDatabaseArgumentsPast15Stop(t *testing.T) {
	for _, c := range []struct {
		name string
		cmd  []any
		want string
	}{
		{"move-20", []any{"MOVE", "k", "20"}, "MOVE with logical database 20"},
		{"move-16", []any{"MOVE", "k", "16"}, "MOVE with logical database 16"},
		{"swapdb", []any{"SWAPDB", "0", "16"}, "SWAPDB with logical database 16"},
		{"copy", []any{"COPY", "k", "k2", "DB", "17"}, "COPY with logical database 17"},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := redistest.Start(t, "--requirepass", "pw-123456", "--databases", "32")
			ctx := redistest.Ctx(t)
			require.NoError(t, src.Client().Set(ctx, "k", "v", 0).Err())
			a := newAPI(t, servicetest.Start(t))
			dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
			a.waitInSync(dst.UID, time.Minute)
			require.NoError(t, src.Client().Do(ctx, c.cmd...).Err())

			var db api.Database
			redistest.Eventually(t, time.Minute, "the sync stops", func() error {
				db = a.get(dst.UID)
				if db.ReplicaSync != api.SyncStopped {
					return fmt.Errorf("sync %s, source %+v", db.ReplicaSync, db.ReplicaSources[0])
				}
				return nil
			})
			assert.Contains(t, db.ReplicaSources[0].LastError, c.want)
			dc := destClient(t, dst, 0)
			assert.Equal(t, "v", dc.Get(ctx, "k").Val(), "k stays where the last applied command left it")
			for n := 1; n < 16; n++ {
				assert.Zero(t, destClient(t, dst, n).DBSize(ctx).Val(), "database %d", n)
			}
		})
	}
}

// TestDestinationAsSource: A -> B -> C (a chain), then B promoted (Replica
// Of removed) and still the source of C (failback). B's checkpoints never
// reach C, and removing B's Replica Of deletes them.
func TestDestinationAsSource(t *testing.T) {
	srcA := redistest.Start(t, "--requirepass", "pw-123456")
	writeDataset(t, srcA.Client(), "", 100)
	a := newAPI(t, servicetest.Start(t))
	b := a.create(api.CreateDatabaseRequest{Name: "b", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{URI: srcA.URL()}}})
	a.waitInSync(b.UID, time.Minute)
	c := a.create(api.CreateDatabaseRequest{Name: "c", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{URI: a.sourceURL(b.UID)}}})
	a.waitInSync(c.UID, time.Minute)
	ctx := redistest.Ctx(t)
	bc, cc := destClient(t, b, 0), destClient(t, c, 0)

	// The chain: writes on A reach C through B.
	require.NoError(t, srcA.Client().Set(ctx, "chained", "1", 0).Err())
	require.NoError(t, srcA.Client().Incr(ctx, "counter").Err())
	eventuallyEqual(t, time.Minute, cc, srcA.Client())
	db := a.waitInSync(c.UID, time.Minute)
	assert.Empty(t, db.ReplicaSources[0].LastError)
	for n := 1; n < 16; n++ {
		assert.Zero(t, destClient(t, c, n).DBSize(ctx).Val(), "database %d of C", n)
	}

	// Failback: B promoted, written by applications, still the source of C.
	checkpointsOfB := func() int64 {
		n, err := destClient(t, b, 16).Exists(ctx, "replicad:checkpoints", "replicad:generation").Result()
		require.NoError(t, err)
		return n
	}
	require.Equal(t, int64(2), checkpointsOfB(), "B holds its checkpoints while it is a destination")
	empty := []api.ReplicaSource{}
	a.update(b.UID, api.UpdateDatabaseRequest{ReplicaSources: &empty})
	require.NoError(t, bc.Set(ctx, "written-on-b", "2", 0).Err())
	eventuallyEqual(t, time.Minute, cc, bc)
	db = a.waitInSync(c.UID, time.Minute)
	assert.Empty(t, db.ReplicaSources[0].LastError)
	assert.Zero(t, checkpointsOfB(), "B's checkpoints are gone")

	// A new destination of the promoted B loads it in full: no checkpoint
	// of B reaches it either.
	d := a.create(api.CreateDatabaseRequest{Name: "d", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{URI: a.sourceURL(b.UID)}}})
	a.waitInSync(d.UID, time.Minute)
	eventuallyEqual(t, time.Minute, destClient(t, d, 0), bc)
}

// TestSameBigKeyInTwoSourcesIsOneValue: two sources hold big lists under
// the same names, loaded in chunks at the same time. Each list of the
// destination must be one source's, whole, never a mix.
func TestSameBigKeyInTwoSourcesIsOneValue(t *testing.T) {
	const keys, elems = 4, 200000
	var srcs []*redistest.Server
	var sources []api.ReplicaSource
	ctx := redistest.Ctx(t)
	for n := range 2 {
		s := redistest.Start(t, "--requirepass", fmt.Sprint("pw-", n))
		for k := range keys {
			for start := 0; start < elems; start += 10000 {
				var vals []any
				for i := start; i < start+10000; i++ {
					vals = append(vals, fmt.Sprintf("s%d-%d", n, i))
				}
				require.NoError(t, s.Client().RPush(ctx, fmt.Sprint("biglist:", k), vals...).Err())
			}
		}
		srcs = append(srcs, s)
		sources = append(sources, api.ReplicaSource{URI: s.URL()})
	}
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 512 << 20, ReplicaSources: sources})
	a.waitInSync(dst.UID, 3*time.Minute)
	dc := destClient(t, dst, 0)
	for k := range keys {
		key := fmt.Sprint("biglist:", k)
		got, err := redistest.Read(ctx, dc, key)
		require.NoError(t, err)
		var match bool
		for _, s := range srcs {
			want, err := redistest.Read(ctx, s.Client(), key)
			require.NoError(t, err)
			match = match || got == want
		}
		n := dc.LLen(ctx, key).Val()
		assert.True(t, match, "%s: %d elements at the destination, a value neither source has", key, n)
	}
	staged, err := dc.Keys(ctx, "replicad:load:*").Result()
	require.NoError(t, err)
	assert.Empty(t, staged, "keys under their temporary names remain")
}

// TestSameSourceUnderTwoNamesIsRefused: 127.0.0.1:P and localhost:P are one
// server; as two sources, every write would be applied twice.
func TestSameSourceUnderTwoNamesIsRefused(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	ctx := redistest.Ctx(t)
	for range 100 {
		require.NoError(t, src.Client().Incr(ctx, "counter").Err())
	}
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{
		{URI: "redis://:pw-123456@127.0.0.1:" + strconv.Itoa(src.Port)},
		{URI: "redis://:pw-123456@localhost:" + strconv.Itoa(src.Port)},
	}})
	var db api.Database
	redistest.Eventually(t, time.Minute, "the sync stops", func() error {
		db = a.get(dst.UID)
		if db.ReplicaSync != api.SyncStopped {
			return fmt.Errorf("sync %s, sources %+v", db.ReplicaSync, db.ReplicaSources)
		}
		return nil
	})
	var said bool
	for _, s := range db.ReplicaSources {
		said = said || strings.Contains(s.LastError, "the same server")
	}
	assert.True(t, said, "no source says it is the same server as another: %+v", db.ReplicaSources)
	for range 100 {
		require.NoError(t, src.Client().Incr(ctx, "counter").Err())
	}
	// Stopped: nothing more is applied, so never more than the source has.
	n, _ := destClient(t, dst, 0).Get(ctx, "counter").Int()
	assert.LessOrEqual(t, n, 100)
}

// noise is n bytes that do not compress, so that a value's size in the
// RDB is its size.
func noise(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return string(b)
}

// TestPendingEntriesOfDeletedMessages: a full load through an RDB file
// carries streams whole, every pending entry included. Streams loaded as
// commands (here: over the file load's raw limit, so the load falls back
// to commands) keep the pending entries of messages deleted at the source
// (XDEL); those of trimmed messages, which Redis cannot recreate, are
// reported in the source's sync_note.
func TestPendingEntriesOfDeletedMessages(t *testing.T) {
	t.Run("file", func(t *testing.T) { testPendingEntries(t, 0) })
	t.Run("commands", func(t *testing.T) { testPendingEntries(t, 64<<10) })
}

func testPendingEntries(t *testing.T, fileRawLimit int) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	ctx := redistest.Ctx(t)
	sc := src.Client()
	for _, key := range []string{"deleted", "trimmed"} {
		for i := range 1000 {
			require.NoError(t, sc.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []string{"payload", noise(400), "n", strconv.Itoa(i)}}).Err())
		}
		require.NoError(t, sc.XGroupCreate(ctx, key, "g", "0").Err())
		require.NoError(t, sc.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{key, ">"}, Count: 1000}).Err())
	}
	msgs, err := sc.XRange(ctx, "deleted", "-", "+").Result()
	require.NoError(t, err)
	for i, m := range msgs {
		if i%2 == 0 {
			require.NoError(t, sc.XDel(ctx, "deleted", m.ID).Err())
		}
	}
	// The messages read are trimmed; as many unread ones keep the stream
	// too big for RESTORE.
	for i := range 1000 {
		require.NoError(t, sc.XAdd(ctx, &redis.XAddArgs{Stream: "trimmed", Values: []string{"payload", noise(400), "n", strconv.Itoa(i)}}).Err())
	}
	require.NoError(t, sc.XTrimMaxLen(ctx, "trimmed", 1000).Err())
	require.Equal(t, int64(1000), sc.XPending(ctx, "trimmed", "g").Val().Count)

	a := newAPI(t, servicetest.StartWith(t, func(c *app.Config) { c.FileLoadRawLimit = fileRawLimit }))
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	db := a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	want, err := redistest.Read(ctx, sc, "deleted")
	require.NoError(t, err)
	got, err := redistest.Read(ctx, dc, "deleted")
	require.NoError(t, err)
	assert.Equal(t, want, got, "the stream with deleted messages, its pending entries included")
	assert.Equal(t, int64(1000), dc.XPending(ctx, "deleted", "g").Val().Count)

	note := db.ReplicaSources[0].SyncNote
	if fileRawLimit == 0 {
		want, err := redistest.Read(ctx, sc, "trimmed")
		require.NoError(t, err)
		got, err := redistest.Read(ctx, dc, "trimmed")
		require.NoError(t, err)
		assert.Equal(t, want, got, "the trimmed stream, whole")
		assert.Equal(t, int64(1000), dc.XPending(ctx, "trimmed", "g").Val().Count)
		assert.Empty(t, note)
		return
	}
	kept := dc.XPending(ctx, "trimmed", "g").Val().Count
	assert.Less(t, kept, int64(1000))
	assert.Contains(t, note, fmt.Sprintf(`"trimmed" group "g": %d of 1000`, kept))
	assert.NotContains(t, note, `"deleted"`)
}

// TestTransactionFollowedByGetAckIsApplied: a source that asks for an ack
// right after a transaction (WAIT, a shutdown, or a destination's own
// master link when the source is a destination in a chain) and then sends
// nothing for a while: the transaction is applied at once, not held until
// the next command.
func TestTransactionFollowedByGetAckIsApplied(t *testing.T) {
	emptyRDB := append([]byte("REDIS0010\xff"), make([]byte, 8)...)
	var stream []byte
	for _, c := range [][]string{{"MULTI"}, {"SELECT", "0"}, {"SET", "chained", "1"}, {"EXEC"}, {"REPLCONF", "GETACK", "*"}} {
		stream = resp.AppendCommandStrings(stream, c...)
	}
	addr := fakeSource(t, emptyRDB, stream)
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: "redis://" + addr}}})
	dc := destClient(t, dst, 0)
	// Well within the silence timeout: nothing else arrives.
	redistest.Eventually(t, 5*time.Second, "the transaction is applied", func() error {
		if dc.Exists(context.Background(), "chained").Val() != 1 {
			return fmt.Errorf("not yet: %+v", a.get(dst.UID).ReplicaSources[0])
		}
		return nil
	})
}

// While a database is not a destination its application user may write in
// the checkpoint database. A generation and a checkpoint of the source's
// live history (its INFO gives both) planted there made a new Replica Of
// skip its load and stream on top of the planted data, in-sync. The
// service trusts only the generation it marked itself.
func TestPlantedCheckpointsAreNotTrusted(t *testing.T) {
	src := redistest.Start(t)
	writeDataset(t, src.Client(), "real:", 100)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	// A first replica gives the source a backlog, and so a history a
	// planted checkpoint can name.
	first := a.create(api.CreateDatabaseRequest{Name: "first", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(first.UID, time.Minute)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20})
	logDestOnFailure(t, i, dst.UID)
	ctx := redistest.Ctx(t)
	replID := infoField(t, src.Client(), "replication", "master_replid")
	offset := infoField(t, src.Client(), "replication", "master_repl_offset")
	require.NotEmpty(t, replID)

	// As the application user of dst, a plain database for now.
	app := destClient(t, dst, 16)
	require.NoError(t, app.Set(ctx, "replicad:generation", "1", 0).Err())
	require.NoError(t, app.HSet(ctx, "replicad:checkpoints", src.Addr(), replID+" "+offset+" 0").Err())
	require.NoError(t, destClient(t, dst, 0).Set(ctx, "planted", "yes", 0).Err())

	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	eventuallyEqual(t, 30*time.Second, destClient(t, dst, 0), src.Client())
	assert.Equal(t, 1.0, metric(a.metrics(), "replicad_replica_full_syncs_total", `destination="2"`), "dst was loaded")
}

// In a destination of several sources, a command of one source on whole
// databases (FLUSHALL, FLUSHDB, SWAPDB) would also empty or move what the
// others wrote there: the destination is re-replicated from every source
// instead, and ends as the union of what they hold, database by database.
func TestKeyspaceWideCommandOfOneSourceKeepsTheOthers(t *testing.T) {
	ctx := redistest.Ctx(t)
	a, b := redistest.Start(t), redistest.Start(t)
	fillStrings(t, a.Client(), "a:", 50, 10)
	fillStrings(t, b.Client(), "b:", 50, 10)
	require.NoError(t, b.ClientDB(1).Set(ctx, "b-in-1", "v", 0).Err())
	i := servicetest.Start(t)
	ac := newAPI(t, i)
	dst := ac.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: a.URL()}, {URI: b.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	ac.waitInSync(dst.UID, time.Minute)
	d0, d1 := destClient(t, dst, 0), destClient(t, dst, 1)
	equalDBs := func(what string) {
		t.Helper()
		redistest.Eventually(t, 2*time.Minute, what, func() error {
			if err := redistest.Diff(ctx, d0, a.Client(), b.Client()); err != nil {
				return fmt.Errorf("db 0: %w", err)
			}
			if err := redistest.Diff(ctx, d1, a.ClientDB(1), b.ClientDB(1)); err != nil {
				return fmt.Errorf("db 1: %w", err)
			}
			return nil
		})
		ac.waitInSync(dst.UID, time.Minute)
	}
	equalDBs("the destination holds both sources")

	for _, cmd := range [][]any{{"swapdb", "0", "1"}, {"flushdb"}, {"flushall"}} {
		require.NoError(t, a.Client().Do(ctx, cmd...).Err(), "%v", cmd)
		require.NoError(t, a.Client().Set(ctx, fmt.Sprint("after-", cmd[0]), "v", 0).Err())
		equalDBs(fmt.Sprintf("after %v at one source, the other's keys are still there", cmd))
		assert.Equal(t, int64(1), d1.Exists(ctx, "b-in-1").Val())
	}
	// A write of the other source still lands on its own value.
	require.NoError(t, b.Client().Append(ctx, "b:1", "+").Err())
	equalDBs("the other source's later writes apply to its keys")
}

// A source value bigger than the destination's memory_size stops the sync
// (out of memory); once the value is gone at the source, enabling the sync
// again reloads the destination, although it is still over its limit: the
// attach to its master link must not be refused as a transaction queued
// over maxmemory.
func TestEnablingADestinationOverItsMemoryLimitReloadsIt(t *testing.T) {
	ctx := redistest.Ctx(t)
	src := redistest.Start(t)
	sc := src.Client()
	fillStrings(t, sc, "k:", 100, 10)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, time.Minute)

	require.NoError(t, sc.SetRange(ctx, "big", 128<<20, "x").Err())
	redistest.Eventually(t, time.Minute, "the sync stops: out of memory", func() error {
		db := a.get(dst.UID)
		if db.ReplicaSync != api.SyncStopped {
			return fmt.Errorf("sync %s: %+v", db.ReplicaSync, db.ReplicaSources)
		}
		return nil
	})
	assert.Contains(t, a.get(dst.UID).ReplicaSources[0].LastError, "out of memory")

	require.NoError(t, sc.Del(ctx, "big").Err())
	enabled := api.SyncEnabled
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSync: &enabled})
	a.waitInSync(dst.UID, time.Minute)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)
}

// The application user of a destination may run read-only scripts; one
// that loops keeps the destination busy, and a busy server applies nothing
// of its master's stream. The service kills it (after 5 s), and
// replication goes on.
func TestALoopingScriptOnADestinationIsKilled(t *testing.T) {
	ctx := redistest.Ctx(t)
	src := redistest.Start(t)
	sc := src.Client()
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, time.Minute)

	app := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("%s:%d", dst.Endpoint.Host, dst.Endpoint.Port), Password: dst.AuthenticationRedisPass,
		MaxRetries: -1, ReadTimeout: -1})
	t.Cleanup(func() { app.Close() })
	looped := make(chan error, 1)
	began := time.Now()
	go func() { looped <- app.Do(ctx, "EVAL_RO", "while true do end", 0).Err() }()
	// Redis answers BUSY 5 s in, and the service kills the script at the
	// first BUSY it sees: a PING may miss that moment, and find the script
	// already killed.
	var killed error
	redistest.Eventually(t, 10*time.Second, "the script runs", func() error {
		select {
		case killed = <-looped:
			return nil
		default:
		}
		if err := destClient(t, dst, 0).Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "BUSY") {
			return fmt.Errorf("PING: %v", err)
		}
		return nil
	})
	require.NoError(t, sc.Set(ctx, "written-while-busy", "v", 0).Err())
	if killed != nil {
		looped <- killed
	}
	select {
	case err := <-looped:
		require.Error(t, err)
		assert.Contains(t, err.Error(), "killed")
		// Redis answers BUSY 5 s in; the service kills the script at the
		// first BUSY it sees (it used to wait 5 s more).
		assert.Less(t, time.Since(began), 8*time.Second, "the script ran for %s", time.Since(began))
	case <-time.After(time.Minute):
		t.Fatal("the looping script still runs after a minute")
	}
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)
	a.waitInSync(dst.UID, time.Minute)
}

// FLUSHALL keeps function libraries: a destination flushed to load its new
// sources in place must not keep the library of a source it no longer has.
func TestAReloadInPlaceKeepsNoLibraryOfAFormerSource(t *testing.T) {
	ctx := redistest.Ctx(t)
	a, b, c := redistest.Start(t), redistest.Start(t), redistest.Start(t)
	require.NoError(t, a.Client().FunctionLoad(ctx, "#!lua name=former\nredis.register_function('f', function() return 'a' end)").Err())
	require.NoError(t, b.Client().Set(ctx, "b", "1", 0).Err())
	require.NoError(t, c.Client().Set(ctx, "c", "1", 0).Err())
	i := servicetest.Start(t)
	ac := newAPI(t, i)
	// a holds no key: its destination holds no data, so the next reload
	// flushes it in place (no second server).
	dst := ac.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: a.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	ac.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	redistest.Eventually(t, time.Minute, "the destination has the library", func() error {
		if libs := dc.FunctionList(ctx, redis.FunctionListQuery{}).Val(); len(libs) != 1 {
			return fmt.Errorf("%d libraries", len(libs))
		}
		return nil
	})

	ac.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: b.URL()}, {URI: c.URL()}}})
	ac.waitInSync(dst.UID, time.Minute)
	eventuallyEqual(t, time.Minute, dc, b.Client(), c.Client())
	libs, err := dc.FunctionList(ctx, redis.FunctionListQuery{}).Result()
	require.NoError(t, err)
	assert.Empty(t, libs, "the former source's library is gone")
}

// crashingDump is a DUMP payload that a server without deep checks
// (sanitize-dump-payload no, Redis's default) accepts with RESTORE, and
// that crashes it when the value is read: a hash of one field whose
// listpack's first entry claims to be 63 bytes long.
func crashingDump(t *testing.T, c *redis.Client) string {
	t.Helper()
	ctx := redistest.Ctx(t)
	require.NoError(t, c.HSet(ctx, "model", "a", "1").Err())
	dump, err := c.Dump(ctx, "model").Result()
	require.NoError(t, err)
	require.NoError(t, c.Del(ctx, "model").Err())
	p := []byte(dump)
	// type 16 (hash as listpack), the listpack's string length (1 byte),
	// its total bytes (4) and element count (2), then the first entry:
	// 0x81, a string of 1 byte ("a").
	require.Equal(t, byte(16), p[0])
	require.Equal(t, byte(0x81), p[8], "the first entry of the listpack")
	p[8] = 0xbf
	p = p[:len(p)-8]
	tab := crc64.MakeTable(0x95ac9329ac4bc9b5)
	return string(binary.LittleEndian.AppendUint64(p, ^crc64.Update(^uint64(0), tab, p)))
}

// A source that holds a crafted value (it does not check RESTORE payloads
// deeply, as Redis does not by default) must not pass it on: the
// destination trusts its master's RESTOREs, and would crash when an
// application reads it. The sync stops, saying why, and the destination
// keeps serving without it.
func TestACraftedRestorePayloadNeverReachesTheDestination(t *testing.T) {
	src := redistest.Start(t)
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: "redis://" + src.Addr()}}})
	a.waitInSync(dst.UID, time.Minute)
	ctx := redistest.Ctx(t)
	sc, dc := src.Client(), destClient(t, dst, 0)
	require.NoError(t, sc.Set(ctx, "before", "1", 0).Err())
	crafted := crashingDump(t, sc)
	require.NoError(t, sc.Do(ctx, "RESTORE", "poison", "0", crafted).Err(), "the source accepts it")

	redistest.Eventually(t, time.Minute, "the sync stops, saying why", func() error {
		s := a.get(dst.UID).ReplicaSources[0]
		if s.Status != api.SourceOutOfSync || !strings.Contains(s.LastError, "does not decode") {
			return fmt.Errorf("source %s: %s", s.Status, s.LastError)
		}
		return nil
	})
	n, err := dc.Exists(ctx, "poison").Result()
	require.NoError(t, err)
	assert.Zero(t, n, "the crafted value reached the destination")
	assert.Equal(t, "1", dc.Get(ctx, "before").Val(), "what came before it is applied")
	require.NoError(t, dc.Ping(ctx).Err(), "the destination serves")

	// RESTORE-ASKING, which Redis runs outside a cluster too, is checked
	// the same way.
	src2 := redistest.Start(t)
	dst2 := a.create(api.CreateDatabaseRequest{Name: "dst2", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: "redis://" + src2.Addr()}}})
	a.waitInSync(dst2.UID, time.Minute)
	require.NoError(t, src2.Client().Do(ctx, "RESTORE-ASKING", "poison", "0", crafted).Err())
	redistest.Eventually(t, time.Minute, "the sync stops, saying why", func() error {
		s := a.get(dst2.UID).ReplicaSources[0]
		if s.Status != api.SourceOutOfSync || !strings.Contains(s.LastError, "does not decode") {
			return fmt.Errorf("source %s: %s", s.Status, s.LastError)
		}
		return nil
	})
	assert.Zero(t, destClient(t, dst2, 0).Exists(ctx, "poison").Val())
}
