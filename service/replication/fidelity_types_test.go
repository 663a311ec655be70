package replication_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// richDBs are the logical databases the rich dataset spreads over.
var richDBs = []int{0, 3, 15}

// writeRich writes, in database db of c, keys of every type at their
// encoding edges, each named with prefix: empty and binary values, small
// and big encodings, HyperLogLogs sparse and dense, geo, streams with
// consumer groups, consumers without pending entries, deleted entries,
// XSETID, and TTLs.
func writeRich(t *testing.T, c *redis.Client, prefix string) {
	t.Helper()
	ctx := redistest.Ctx(t)
	do := func(args ...any) {
		t.Helper()
		require.NoError(t, c.Do(ctx, args...).Err(), "%v", args[:min(len(args), 4)])
	}
	p := func(s string) string { return prefix + s }
	do("SET", p("empty"), "")
	do("SET", p("bin\r\n\x00key"), "v\x00\r\n\xff")
	do("SET", p("int"), "-9223372036854775808")
	do("SET", p("big"), strings.Repeat("0123456789", 40000)) // 400 KB
	do("SETRANGE", p("sparse"), 100000, "x")
	do("SETBIT", p("bits"), 70000, 1)
	do("BITFIELD", p("bitfield"), "SET", "i5", 100, 7, "INCRBY", "u8", 0, 300)
	do("RPUSH", p("list-small"), "a", "", "\x00")
	for i := 0; i < 3000; i += 500 {
		args := []any{"RPUSH", p("list-big")}
		for j := i; j < i+500; j++ {
			args = append(args, strings.Repeat("e", 100)+strconv.Itoa(j))
		}
		do(args...)
	}
	do("LPUSH", p("list-ints"), 1, 2, 3, -5, 1<<40)
	do("HSET", p("hash-small"), "", "", "f\x00", "v\r\n")
	for i := 0; i < 2000; i += 500 {
		args := []any{"HSET", p("hash-big")}
		for j := i; j < i+500; j++ {
			args = append(args, "field"+strconv.Itoa(j), j)
		}
		do(args...)
	}
	do("SADD", p("set-int"), 1, 2, 3, -1, 1<<62)
	args := []any{"SADD", p("set-int-big")}
	for j := range 600 { // past set-max-intset-entries: a hashtable of integers
		args = append(args, j)
	}
	do(args...)
	do("SADD", p("set-str"), "a", "", "\x00")
	do("ZADD", p("zset-small"), "-inf", "neg-inf", "+inf", "pos-inf", "0.1", "tenth", "1e-300", "tiny", "-0", "negzero", "3.141592653589793", "pi")
	args = []any{"ZADD", p("zset-big")}
	for j := range 1000 {
		args = append(args, float64(j)/7, "member"+strconv.Itoa(j))
	}
	do(args...)
	do("PFADD", p("hll-sparse"), "a", "b", "c")
	args = []any{"PFADD", p("hll-dense")}
	for j := range 5000 {
		args = append(args, "e"+strconv.Itoa(j))
	}
	do(args...)
	do("GEOADD", p("geo"), 13.361389, 38.115556, "Palermo", 15.087269, 37.502669, "Catania")

	// Streams.
	s := p("stream")
	for j := range 20 {
		do("XADD", s, fmt.Sprintf("%d-%d", 1000+j, j), "f", j, "g", "")
	}
	do("XGROUP", "CREATE", s, "g1", "0")
	do("XGROUP", "CREATE", s, "g2", "$", "ENTRIESREAD", 15)
	do("XREADGROUP", "GROUP", "g1", "alice", "COUNT", 5, "STREAMS", s, ">")
	do("XREADGROUP", "GROUP", "g1", "bob", "COUNT", 3, "STREAMS", s, ">")
	do("XGROUP", "CREATECONSUMER", s, "g1", "carol") // no pending entry
	do("XGROUP", "CREATECONSUMER", s, "g2", "dave")
	do("XACK", s, "g1", "1001-1")
	do("XCLAIM", s, "g1", "bob", 0, "1002-2")
	do("XDEL", s, "1003-3", "1010-10")
	do("XSETID", s, "5000-0", "ENTRIESADDED", 40, "MAXDELETEDID", "4000-0")
	// A stream emptied by a trim, with a group.
	e := p("stream-empty")
	do("XADD", e, "1-1", "f", "v")
	do("XGROUP", "CREATE", e, "g", "$")
	do("XTRIM", e, "MAXLEN", 0)
	// A stream whose every entry is deleted, its pending entries left.
	d := p("stream-deleted")
	do("XADD", d, "7-1", "f", "v")
	do("XADD", d, "7-2", "f", "v")
	do("XGROUP", "CREATE", d, "g", "0")
	do("XREADGROUP", "GROUP", "g", "c", "STREAMS", d, ">")
	do("XDEL", d, "7-1", "7-2")

	// TTLs.
	do("SET", p("ttl-ms"), "v", "PX", 3600123)
	do("HSET", p("ttl-hash"), "f", "v")
	do("PEXPIREAT", p("ttl-hash"), time.Now().Add(2*time.Hour).UnixMilli())
	do("SADD", p("ttl-set"), "m")
	do("EXPIRE", p("ttl-set"), 86400*365*20) // far
}

// strictDiff compares every logical database of dst with src: each key's
// type, value, expiry time (exactly: a replica keeps the absolute time),
// and for streams everything XINFO STREAM FULL tells but times.
func strictDiff(ctx context.Context, dst, src *redis.Client, dbs ...int) error {
	var problems []string
	for _, n := range dbs {
		s := redis.NewClient(&redis.Options{Addr: src.Options().Addr, Password: src.Options().Password, DB: n})
		d := redis.NewClient(&redis.Options{Addr: dst.Options().Addr, Password: dst.Options().Password, DB: n})
		err := func() error {
			defer s.Close()
			defer d.Close()
			keys, err := redistest.Keys(ctx, s)
			if err != nil {
				return err
			}
			slices.Sort(keys)
			diffs, err := diffKeys(ctx, n, keys, d, func(string) *redis.Client { return s }, streamFull)
			if err != nil {
				return err
			}
			problems = append(problems, diffs...)
			extra, err := keysAtNoSource(ctx, n, d, func(k string) bool { _, ok := slices.BinarySearch(keys, k); return ok })
			if err != nil {
				return err
			}
			problems = append(problems, extra...)
			return nil
		}()
		if err != nil {
			return err
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d differences:\n%s", len(problems), strings.Join(problems, "\n"))
	}
	return nil
}

func eventuallyStrictEqual(t *testing.T, timeout time.Duration, dst, src *redis.Client, dbs ...int) {
	t.Helper()
	redistest.Eventually(t, timeout, "the destination equals the source, strictly", func() error {
		return strictDiff(context.Background(), dst, src, dbs...)
	})
}

func selectDB(c *redis.Client, n int) *redis.Client {
	o := *c.Options()
	o.DB = n
	return redis.NewClient(&o)
}

// writeRichEverywhere writes the rich dataset in every database of richDBs.
func writeRichEverywhere(t *testing.T, c *redis.Client, prefix string) {
	for _, n := range richDBs {
		cn := selectDB(c, n)
		writeRich(t, cn, prefix)
		cn.Close()
	}
}

// TestRichDatasetOneSource: every type at its encoding edges, in several
// logical databases, loaded (one source: over the master link), then
// written again on the stream, then after a kill -9 of the destination.
func TestRichDatasetOneSource(t *testing.T) {
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	sc := src.Client()
	writeRichEverywhere(t, sc, "load:")
	i, a, dst, dc := startReplicaOf(t, src.URL(), 256<<20)
	eventuallyStrictEqual(t, time.Minute, dc, sc, richDBs...)
	writeRichEverywhere(t, sc, "stream:")
	eventuallyStrictEqual(t, time.Minute, dc, sc, richDBs...)
	a.waitInSync(dst.UID, time.Minute)
	killDestination(t, i, dst.UID)
	a.waitInSync(dst.UID, time.Minute)
	eventuallyStrictEqual(t, time.Minute, dc, sc, richDBs...)
}

// TestRichDatasetTwoSources: the same loaded with commands (two sources).
func TestRichDatasetTwoSources(t *testing.T) {
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	other := redistest.Start(t)
	sc := src.Client()
	writeRichEverywhere(t, sc, "load:")
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}, {URI: other.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	eventuallyStrictEqual(t, time.Minute, dc, sc, richDBs...)
	writeRichEverywhere(t, sc, "stream:")
	eventuallyStrictEqual(t, time.Minute, dc, sc, richDBs...)
}

// dbWriter INCRs counter:0..9 in database db of c, one command at a time
// (so that the source's stream selects db once), until stopped.
func dbWriter(t *testing.T, c *redis.Client, db int) *incrWriter {
	cn := selectDB(c, db)
	cn.Options().PoolSize = 1
	t.Cleanup(func() { cn.Close() })
	return startIncrWriter(t, cn, 1)
}

// TestStreamInOtherDatabasesAcrossDestinationRestarts: two sources writing
// in two databases other than 0 each; the destination's redis-server is
// killed twice while they write: every counter ends equal, in its database.
func TestStreamInOtherDatabasesAcrossDestinationRestarts(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprint(n, " sources"), func(t *testing.T) {
			srcs := []*redistest.Server{redistest.Start(t, "--repl-backlog-size", "64mb"), redistest.Start(t, "--repl-backlog-size", "64mb")}[:n]
			var rs []api.ReplicaSource
			for _, s := range srcs {
				rs = append(rs, api.ReplicaSource{URI: s.URL()})
			}
			i := servicetest.Start(t)
			a := newAPI(t, i)
			dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20, ReplicaSources: rs})
			logDestOnFailure(t, i, dst.UID)
			a.waitInSync(dst.UID, time.Minute)
			dc := destClient(t, dst, 0)
			var ws []*incrWriter
			for k, s := range srcs {
				ws = append(ws, dbWriter(t, s.Client(), 3+2*k))
			}
			for round := range 2 {
				redistest.Eventually(t, time.Minute, "writes flow", func() error {
					if ws[0].written.Load() < int64(2000*(round+1)) {
						return fmt.Errorf("%d", ws[0].written.Load())
					}
					return nil
				})
				killDestination(t, i, dst.UID)
			}
			redistest.Eventually(t, time.Minute, "more writes after the restarts", func() error {
				if ws[0].written.Load() < 6000 {
					return fmt.Errorf("%d", ws[0].written.Load())
				}
				return nil
			})
			for _, w := range ws {
				w.stop()
			}
			a.waitInSync(dst.UID, time.Minute)
			for k, s := range srcs {
				eventuallyStrictEqual(t, time.Minute, dc, s.Client(), 3+2*k)
			}
			redistest.Eventually(t, time.Minute, "database 0 stays empty", func() error {
				if n := dc.DBSize(context.Background()).Val(); n != 0 {
					keys, _ := redistest.Keys(context.Background(), dc)
					return fmt.Errorf("%d keys: %.10q", n, keys)
				}
				return nil
			})
		})
	}
}

// mixedTxWriter runs, until stopped, transactions that INCR a counter in
// databases 2 and 7 (SELECT inside MULTI), and a script that does the same
// in databases 4 and 9, on one connection of c.
func mixedTxWriter(t *testing.T, c *redis.Client) *incrWriter {
	o := *c.Options()
	o.PoolSize = 1
	cn := redis.NewClient(&o)
	ctx, cancel := context.WithCancel(context.Background())
	w := &incrWriter{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		script := `redis.call('SELECT', 4) redis.call('INCR', KEYS[1]) redis.call('SELECT', 9) redis.call('INCR', KEYS[1]) return 1`
		for n := 0; ctx.Err() == nil; n++ {
			k := fmt.Sprint("mixed:", n%13)
			var err error
			if n%2 == 0 {
				_, err = cn.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.Select(ctx, 2)
					p.Incr(ctx, k)
					p.Select(ctx, 7)
					p.Incr(ctx, k)
					p.Select(ctx, 0)
					return nil
				})
			} else {
				err = cn.Eval(ctx, script, []string{k}).Err()
			}
			if err == nil {
				w.written.Add(1)
			}
		}
	}()
	w.stop = func() { cancel(); <-done; cn.Close() }
	t.Cleanup(func() { w.stop = func() {}; cancel(); <-done })
	return w
}

// TestMixedDatabaseTransactionsAcrossServiceKills: transactions and
// scripts that write in two databases each, streamed while the service is
// killed (SIGKILL) twice: nothing lost, nothing applied twice, each write
// in its database.
func TestMixedDatabaseTransactionsAcrossServiceKills(t *testing.T) {
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	sc := src.Client()
	p := servicetest.StartProcess(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service log:\n%s", p.Log())
		}
	})
	a := newAPI(t, &servicetest.Instance{URL: p.URL, Username: "admin", Password: p.Password(t), CACert: p.CACert(t)})
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	w := mixedTxWriter(t, sc)
	w5 := dbWriter(t, sc, 5)
	for round := range 2 {
		redistest.Eventually(t, time.Minute, "writes flow", func() error {
			if w.written.Load() < int64(1000*(round+1)) {
				return fmt.Errorf("%d", w.written.Load())
			}
			return nil
		})
		p.Kill(t)
		p.Start(t)
	}
	redistest.Eventually(t, time.Minute, "more writes after the restarts", func() error {
		if w.written.Load() < 3000 {
			return fmt.Errorf("%d", w.written.Load())
		}
		return nil
	})
	w.stop()
	w5.stop()
	a.waitInSync(dst.UID, 2*time.Minute)
	eventuallyStrictEqual(t, time.Minute, dc, sc, 0, 2, 4, 5, 7, 9)
	var sum int64
	for _, db := range []int{2, 4, 7, 9} {
		c := selectDB(sc, db)
		for k := range 13 {
			v, _ := c.Get(context.Background(), fmt.Sprint("mixed:", k)).Int64()
			sum += v
		}
		c.Close()
	}
	require.Equal(t, 2*w.written.Load(), sum, "every transaction counted once at the source")
}

// TestHundredMegabyteValues: a 100 MB string, a list of 100 MB and a hash
// of 1,000,000 fields (three tenths of that at CI scale) in the full load, then a 100 MB SET and an APPEND
// on the stream, into a one-source destination, then two.
func TestHundredMegabyteValues(t *testing.T) {
	// 30 MB values at CI scale, 100 MB with REDIS_REPLICAD_MATRIX_SCALE=full.
	bigScale := 3
	if os.Getenv("REDIS_REPLICAD_MATRIX_SCALE") == "full" {
		bigScale = 10
	}
	src := redistest.Start(t, "--repl-backlog-size", "256mb", "--client-output-buffer-limit", "replica 0 0 0", "--proto-max-bulk-len", "1gb", "--enable-debug-command", "yes")
	sc := src.Client()
	ctx := redistest.Ctx(t)
	big := strings.Repeat("abcdefghij", bigScale<<20) // bigScale*10 MiB
	require.NoError(t, sc.Set(ctx, "big:string", big, 0).Err())
	require.NoError(t, sc.Do(ctx, "DEBUG", "POPULATE", bigScale*100000, "pop:", 8).Err())
	chunk := strings.Repeat("x", 1<<20)
	for range 10 * bigScale {
		require.NoError(t, sc.RPush(ctx, "big:list", chunk).Err())
	}
	for k := 0; k < bigScale*100000; k += 10000 {
		args := []any{"HSET", "big:hash"}
		for j := k; j < k+10000; j++ {
			args = append(args, j, j)
		}
		require.NoError(t, sc.Do(ctx, args...).Err())
	}
	i := servicetest.Start(t)
	a := newAPI(t, i)
	other := redistest.Start(t)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 2 << 30, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, 5*time.Minute)
	dc := i.App.Databases().Client(dst.UID)
	t.Cleanup(func() { dc.Close() })
	check := func() {
		t.Helper()
		redistest.Eventually(t, 3*time.Minute, "equal", func() error {
			for _, k := range []string{"big:string", "big:list", "big:hash", "big:after"} {
				w, err := sc.Do(ctx, "DEBUG", "DIGEST-VALUE", k).Result()
				if err != nil {
					return err
				}
				g, err := dc.Do(ctx, "DEBUG", "DIGEST-VALUE", k).Result()
				if err != nil {
					return err
				}
				if fmt.Sprint(g) != fmt.Sprint(w) {
					return fmt.Errorf("%s differs", k)
				}
			}
			if sl, dl := sc.StrLen(ctx, "big:after").Val(), dc.StrLen(ctx, "big:after").Val(); sl != dl {
				return fmt.Errorf("big:after %d vs %d bytes", dl, sl)
			}
			if sn, dn := sc.DBSize(ctx).Val(), dc.DBSize(ctx).Val(); sn != dn {
				return fmt.Errorf("%d keys, want %d", dn, sn)
			}
			return nil
		})
	}
	require.NoError(t, sc.Set(ctx, "big:after", big, 0).Err())
	require.NoError(t, sc.Append(ctx, "big:after", "tail").Err())
	check()
	a.waitInSync(dst.UID, time.Minute)
	require.Equal(t, "tail", dc.GetRange(ctx, "big:after", int64(len(big)), -1).Val())
	require.Equal(t, big[:1000], dc.GetRange(ctx, "big:string", 0, 999).Val())

	// Two sources: loaded with commands.
	srcs := []api.ReplicaSource{{URI: src.URL()}, {URI: other.URL()}}
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &srcs})
	redistest.Eventually(t, time.Minute, "the reload starts", func() error {
		if db := a.get(dst.UID); len(db.ReplicaSources) != 2 {
			return fmt.Errorf("%d sources", len(db.ReplicaSources))
		}
		return nil
	})
	a.waitInSync(dst.UID, 10*time.Minute)
	require.NoError(t, sc.Set(ctx, "big:after", big+"2", 0).Err())
	check()
}

// ttlWrites changes TTLs every way Redis 7.0 has, on keys of prefix, in
// databases 0, 4 and 6 of c.
func ttlWrites(t *testing.T, c *redis.Client, prefix string, swap bool) {
	t.Helper()
	ctx := redistest.Ctx(t)
	c4 := selectDB(c, 4)
	defer c4.Close()
	do := func(c *redis.Client, args ...any) {
		t.Helper()
		require.NoError(t, c.Do(ctx, args...).Err(), "%v", args)
	}
	p := func(s string) string { return prefix + s }
	far := time.Now().Add(3 * time.Hour).UnixMilli()
	do(c, "SET", p("keepttl"), "a", "PX", 7200000)
	do(c, "SET", p("keepttl"), "b", "KEEPTTL")
	do(c, "SET", p("nx"), "v")
	do(c, "EXPIRE", p("nx"), 1000, "NX")
	do(c, "EXPIRE", p("nx"), 5000, "NX")
	do(c, "EXPIRE", p("nx"), 100, "GT")
	do(c, "EXPIRE", p("nx"), 9000, "GT")
	do(c, "EXPIRE", p("nx"), 8000, "LT")
	do(c, "EXPIRE", p("nx"), 1, "XX")
	do(c, "PEXPIREAT", p("nx"), far)
	do(c, "SET", p("past"), "v")
	do(c, "EXPIRE", p("past"), -10)
	do(c, "SET", p("pastat"), "v")
	do(c, "PEXPIREAT", p("pastat"), 1)
	do(c, "SET", p("renamed-from"), "v", "PXAT", far+1)
	do(c, "RENAME", p("renamed-from"), p("renamed"))
	do(c, "HSET", p("copied-from"), "f", "v")
	do(c, "PEXPIREAT", p("copied-from"), far+2)
	do(c, "COPY", p("copied-from"), p("copied"))
	do(c, "COPY", p("copied-from"), p("copied"), "DB", 4, "REPLACE")
	do(c, "SET", p("moved"), "v", "PXAT", far+3)
	do(c, "MOVE", p("moved"), 4)
	do(c, "SET", p("getex"), "v")
	do(c, "GETEX", p("getex"), "PXAT", far+4)
	do(c, "SET", p("getex-persist"), "v", "EX", 100)
	do(c, "GETEX", p("getex-persist"), "PERSIST")
	do(c, "SET", p("persist"), "v", "EX", 100)
	do(c, "PERSIST", p("persist"))
	do(c, "SET", p("restore-from"), "payload", "PXAT", far+5)
	dump, err := c.Dump(ctx, p("restore-from")).Result()
	require.NoError(t, err)
	do(c, "RESTORE", p("restored-abs"), far+6, dump, "ABSTTL", "IDLETIME", 1000)
	do(c, "RESTORE", p("restored-rel"), 3600000, dump)
	do(c4, "SET", p("db4-ttl"), "v", "PX", 3600000)
	do(c4, "EXPIRETIME", p("db4-ttl"))
	if swap {
		do(c, "SWAPDB", 4, 6)
	}
}

// TestTTLCommandsFollowTheSource: every TTL command of Redis 7.0 on the
// stream, then a kill -9 of the destination, into a destination of one
// source and of two: each key with the source's exact expiry time.
func TestTTLCommandsFollowTheSource(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprint(n, " sources"), func(t *testing.T) {
			src := redistest.Start(t, "--repl-backlog-size", "64mb")
			other := redistest.Start(t)
			sc := src.Client()
			ttlWrites(t, sc, "load:", false)
			rs := []api.ReplicaSource{{URI: src.URL()}, {URI: other.URL()}}[:n]
			i := servicetest.Start(t)
			a := newAPI(t, i)
			dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20, ReplicaSources: rs})
			logDestOnFailure(t, i, dst.UID)
			a.waitInSync(dst.UID, time.Minute)
			dc := destClient(t, dst, 0)
			eventuallyStrictEqual(t, time.Minute, dc, sc, 0, 4, 6)
			ttlWrites(t, sc, "stream:", true)
			eventuallyStrictEqual(t, time.Minute, dc, sc, 0, 4, 6)
			a.waitInSync(dst.UID, time.Minute)
			killDestination(t, i, dst.UID)
			ttlWrites(t, sc, "after:", true)
			a.waitInSync(dst.UID, time.Minute)
			eventuallyStrictEqual(t, time.Minute, dc, sc, 0, 4, 6)
		})
	}
}

// bigIncrTx runs one transaction of n INCRs of tx:counter and one INCR of
// tx:done after it.
func bigIncrTx(t *testing.T, c *redis.Client, n int) {
	t.Helper()
	ctx := redistest.Ctx(t)
	_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for range n {
			p.Incr(ctx, "tx:counter")
		}
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, c.Incr(ctx, "tx:done").Err())
}

// TestKillsInsideABigTransaction: a transaction of 200,000 INCRs arrives
// slowly; the service is killed (SIGKILL) while the destination holds part
// of it in its MULTI: once back, the counter is exactly what the source
// has, neither short nor doubled.
func TestKillsInsideABigTransaction(t *testing.T) {
	src := redistest.Start(t, "--repl-backlog-size", "256mb")
	sc := src.Client()
	proxy := redistest.StartProxy(t, src.Addr())
	p := servicetest.StartProcess(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service log:\n%s", p.Log())
		}
	})
	a := newAPI(t, &servicetest.Instance{URL: p.URL, Username: "admin", Password: p.Password(t), CACert: p.CACert(t)})
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20, ReplicaSources: []api.ReplicaSource{{URI: "redis://" + proxy.Addr}}})
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	ctx := redistest.Ctx(t)
	for round := range 2 {
		proxy.Slow(16<<10, 5*time.Millisecond) // ~3 MB/s: the transaction (~6 MB) takes seconds
		mark := proxy.Forwarded()
		bigIncrTx(t, sc, 200000)
		// The transaction is about 6 MB on the stream: the kill comes
		// once 1 MB (first round) or 3 MB (second) of it went through.
		part := int64(1+2*round) << 20
		redistest.Eventually(t, time.Minute, "part of the transaction has arrived", func() error {
			if n := proxy.Forwarded() - mark; n < part {
				return fmt.Errorf("%d bytes forwarded", n)
			}
			return nil
		})
		require.NotEqual(t, sc.Get(ctx, "tx:done").Val(), dc.Get(ctx, "tx:done").Val(), "the kill comes before the transaction is applied")
		p.Kill(t)
		proxy.Slow(0, 0)
		p.Start(t)
		redistest.Eventually(t, 2*time.Minute, "the destination has the transactions", func() error {
			want := sc.Get(ctx, "tx:done").Val()
			if got := dc.Get(ctx, "tx:done").Val(); got != want {
				return fmt.Errorf("tx:done %q, want %q", got, want)
			}
			return nil
		})
		require.Equal(t, sc.Get(ctx, "tx:counter").Val(), dc.Get(ctx, "tx:counter").Val(), "round %d", round)
	}
	eventuallyStrictEqual(t, time.Minute, dc, sc, 0)
}

// writeBigStream writes a stream of over 256 KiB (loaded as commands by a
// destination of several sources) with everything a stream keeps besides
// its entries: groups, consumers with and without pending entries,
// delivery counts, deleted entries, XSETID's counters.
func writeBigStream(t *testing.T, c *redis.Client, s string) {
	t.Helper()
	ctx := redistest.Ctx(t)
	do := func(args ...any) {
		t.Helper()
		require.NoError(t, c.Do(ctx, args...).Err(), "%v", args[:min(len(args), 4)])
	}
	for j := range 3000 {
		do("XADD", s, fmt.Sprintf("%d-%d", 1000+j, j%3), "f", noise(200), "n", j)
	}
	do("XGROUP", "CREATE", s, "g1", "0")
	do("XGROUP", "CREATE", s, "g2", "1500-0")
	do("XREADGROUP", "GROUP", "g1", "alice", "COUNT", 50, "STREAMS", s, ">")
	do("XREADGROUP", "GROUP", "g1", "bob", "COUNT", 30, "STREAMS", s, ">")
	do("XREADGROUP", "GROUP", "g2", "erin", "COUNT", 10, "STREAMS", s, ">")
	do("XGROUP", "CREATECONSUMER", s, "g1", "carol")
	do("XGROUP", "CREATECONSUMER", s, "g2", "dave")
	do("XACK", s, "g1", "1001-1", "1002-2")
	do("XCLAIM", s, "g1", "bob", 0, "1003-0", "1004-1")
	do("XCLAIM", s, "g1", "carol", 0, "1005-2", "RETRYCOUNT", 7)
	do("XDEL", s, "1006-0", "2500-1")
	do("XSETID", s, "9000-0", "ENTRIESADDED", 5000, "MAXDELETEDID", "8000-0")
}

// TestBigStreamLoadedWithCommands: a stream over 256 KiB into a
// destination of two sources, loaded with commands: the same stream,
// groups, consumers, pending entries and counters as at the source.
func TestBigStreamLoadedWithCommands(t *testing.T) {
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	other := redistest.Start(t)
	sc := src.Client()
	writeBigStream(t, sc, "big-stream")
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}, {URI: other.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	eventuallyStrictEqual(t, 30*time.Second, dc, sc, 0)
	db := a.get(dst.UID)
	for _, s := range db.ReplicaSources {
		require.Empty(t, s.SyncNote, s.URI)
	}
}

// TestEvictionAndExpiryDuringLoadAndStream: a source whose maxmemory makes
// it evict (allkeys-lru) and whose keys expire within seconds, written
// during the full load of a destination of two sources and after it: the
// source's evictions and expiries are DELs at the destination, which ends
// equal to it.
func TestEvictionAndExpiryDuringLoadAndStream(t *testing.T) {
	src := redistest.Start(t, "--repl-backlog-size", "1mb", "--maxmemory", "40mb", "--maxmemory-policy", "allkeys-lru")
	other := redistest.Start(t)
	sc := src.Client()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var written atomic.Int64
	var lastErr atomic.Value
	go func() {
		defer close(done)
		val := strings.Repeat("x", 10<<10)
		for n := 0; ctx.Err() == nil; n++ {
			p := sc.Pipeline()
			for j := range 50 {
				k := fmt.Sprint("k:", n*50+j)
				if j%2 == 0 {
					p.Set(ctx, k, val, time.Duration(200+(n*50+j)%3000)*time.Millisecond)
				} else {
					p.Set(ctx, k, val, 0)
				}
				p.Incr(ctx, "counter")
			}
			if _, err := p.Exec(ctx); err == nil {
				written.Add(50)
			} else if ctx.Err() == nil {
				lastErr.Store(err.Error())
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	redistest.Eventually(t, time.Minute, "the source evicts", func() error {
		info := sc.Info(context.Background(), "stats").Val()
		if strings.Contains(info, "evicted_keys:0\r") {
			return fmt.Errorf("no eviction yet")
		}
		return nil
	})
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}, {URI: other.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, 2*time.Minute)
	base := written.Load()
	redistest.Eventually(t, time.Minute, "the stream goes on a while", func() error {
		if written.Load() < base+20000 {
			return fmt.Errorf("%d written, last error %v", written.Load()-base, lastErr.Load())
		}
		return nil
	})
	cancel()
	<-done
	dc := destClient(t, dst, 0)
	eventuallyStrictEqual(t, time.Minute, dc, sc, 0)
	t.Logf("%d keys written", written.Load())
}

// TestSourceKilledAndRestarted: a source killed (SIGKILL) under writes and
// restarted from its disk (everything, part of it, or nothing: a new
// replication history each time) into destinations of one and two
// sources: each ends equal to what the source holds now, counters
// included, an empty source too.
func TestSourceKilledAndRestarted(t *testing.T) {
	for _, persist := range [][]string{{"--appendonly", "yes", "--appendfsync", "always"}, {"--appendonly", "no", "--save", ""}} {
		for _, n := range []int{1, 2} {
			t.Run(fmt.Sprint(persist[1], " ", n), func(t *testing.T) {
				src := redistest.Start(t, append([]string{"--repl-backlog-size", "64mb"}, persist...)...)
				other := redistest.Start(t)
				i := servicetest.Start(t)
				a := newAPI(t, i)
				rs := []api.ReplicaSource{{URI: src.URL()}, {URI: other.URL()}}[:n]
				dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20, ReplicaSources: rs})
				logDestOnFailure(t, i, dst.UID)
				a.waitInSync(dst.UID, time.Minute)
				dc := destClient(t, dst, 0)
				w := startIncrWriter(t, src.Client(), 20)
				redistest.Eventually(t, time.Minute, "writes flow", func() error {
					if w.written.Load() < 5000 {
						return fmt.Errorf("%d", w.written.Load())
					}
					return nil
				})
				src.Restart()
				w.stop()
				sc := src.Client()
				require.NoError(t, sc.Incr(context.Background(), "after-restart").Err())
				eventuallyStrictEqual(t, time.Minute, dc, sc, 0)
				a.waitInSync(dst.UID, time.Minute)
				eventuallyStrictEqual(t, time.Minute, dc, sc, 0)
			})
		}
	}
}

// TestRichDatasetThroughAChain: source -> A -> B, A a destination of the
// source and B of A (and of another source, so loaded with commands): B
// holds exactly the source's data, every database, TTL and stream
// detail, after the load, on the stream, and after A's redis-server is
// killed.
func TestRichDatasetThroughAChain(t *testing.T) {
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	other := redistest.Start(t)
	sc := src.Client()
	writeRichEverywhere(t, sc, "load:")
	ttlWrites(t, sc, "ttl-load:", false)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	mid := a.create(api.CreateDatabaseRequest{Name: "mid", MemorySize: 128 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(mid.UID, time.Minute)
	for _, n := range []int{1, 2} {
		rs := []api.ReplicaSource{{URI: a.sourceURL(mid.UID)}, {URI: other.URL()}}[:n]
		end := a.create(api.CreateDatabaseRequest{Name: fmt.Sprint("end", n), MemorySize: 128 << 20, ReplicaSources: rs})
		logDestOnFailure(t, i, end.UID)
		a.waitInSync(end.UID, time.Minute)
		ec := destClient(t, end, 0)
		eventuallyStrictEqual(t, time.Minute, ec, sc, 0, 3, 4, 6, 15)
		writeRichEverywhere(t, sc, fmt.Sprint("stream", n, ":"))
		ttlWrites(t, sc, fmt.Sprint("ttl-stream", n, ":"), true)
		eventuallyStrictEqual(t, time.Minute, ec, sc, 0, 3, 4, 6, 15)
		killDestination(t, i, mid.UID)
		a.waitInSync(mid.UID, time.Minute)
		writeRichEverywhere(t, sc, fmt.Sprint("after", n, ":"))
		a.waitInSync(end.UID, time.Minute)
		eventuallyStrictEqual(t, time.Minute, ec, sc, 0, 3, 4, 6, 15)
	}
}

// TestScriptsFunctionsAndBlockedClients: a script of 20,000 writes over two
// databases, a function that writes, a failed WATCH, and blocking commands
// served at the source (BLMOVE, BZPOPMIN, XREADGROUP BLOCK), into
// destinations of one and two sources.
func TestScriptsFunctionsAndBlockedClients(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprint(n, " sources"), func(t *testing.T) {
			src := redistest.Start(t, "--repl-backlog-size", "64mb")
			other := redistest.Start(t)
			sc := src.Client()
			ctx := redistest.Ctx(t)
			i := servicetest.Start(t)
			a := newAPI(t, i)
			rs := []api.ReplicaSource{{URI: src.URL()}, {URI: other.URL()}}[:n]
			dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 128 << 20, ReplicaSources: rs})
			logDestOnFailure(t, i, dst.UID)
			a.waitInSync(dst.UID, time.Minute)
			dc := destClient(t, dst, 0)

			script := `for i = 1, 10000 do redis.call('SELECT', 0) redis.call('HSET', 'sh', i, i) redis.call('SELECT', 5) redis.call('SET', 'sk' .. i, i, 'PX', 3600000 + i) end
redis.call('SELECT', 0) redis.call('DEL', 'sh') redis.call('HSET', 'sh', 'last', 1) return 1`
			require.NoError(t, sc.Eval(ctx, script, nil).Err())
			require.NoError(t, sc.FunctionLoad(ctx, "#!lua name=h2lib\nredis.register_function('h2f', function(keys, args) redis.call('INCR', keys[1]) redis.call('PEXPIRE', keys[1], 5000000) return redis.call('LPUSH', keys[2], args[1]) end)").Err())
			for j := range 100 {
				require.NoError(t, sc.FCall(ctx, "h2f", []string{"fc:{x}", "fl:{x}"}, j).Err())
			}
			// A WATCH that fails: nothing of its transaction happens.
			require.NoError(t, sc.Set(ctx, "watched", "1", 0).Err())
			c1 := redis.NewClient(&redis.Options{Addr: src.Addr()})
			defer c1.Close()
			err := c1.Watch(ctx, func(tx *redis.Tx) error {
				require.NoError(t, sc.Set(ctx, "watched", "2", 0).Err())
				_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.Set(ctx, "watched", "3", 0)
					p.Set(ctx, "watch-side", "x", 0)
					return nil
				})
				return err
			}, "watched")
			require.ErrorIs(t, err, redis.TxFailedErr)
			// Blocked clients served by later writes.
			blocked := make(chan error, 3)
			go func() { blocked <- c1.BLMove(ctx, "bl-src", "bl-dst", "LEFT", "RIGHT", 0).Err() }()
			c2 := redis.NewClient(&redis.Options{Addr: src.Addr()})
			defer c2.Close()
			go func() { blocked <- c2.BZPopMin(ctx, 0, "bz").Err() }()
			require.NoError(t, sc.XGroupCreateMkStream(ctx, "xs", "g", "$").Err())
			c3 := redis.NewClient(&redis.Options{Addr: src.Addr()})
			defer c3.Close()
			go func() {
				blocked <- c3.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "blocked", Streams: []string{"xs", ">"}, Block: 0}).Err()
			}()
			redistest.Eventually(t, time.Minute, "three clients blocked", func() error {
				if !strings.Contains(sc.Info(ctx, "clients").Val(), "blocked_clients:3\r") {
					return fmt.Errorf("not yet")
				}
				return nil
			})
			require.NoError(t, sc.RPush(ctx, "bl-src", "a", "b").Err())
			require.NoError(t, sc.ZAdd(ctx, "bz", redis.Z{Score: 1, Member: "m1"}, redis.Z{Score: 2, Member: "m2"}).Err())
			require.NoError(t, sc.XAdd(ctx, &redis.XAddArgs{Stream: "xs", Values: []any{"f", "v"}}).Err())
			for range 3 {
				require.NoError(t, <-blocked)
			}
			eventuallyStrictEqual(t, time.Minute, dc, sc, 0, 5)
			a.waitInSync(dst.UID, time.Minute)
			killDestination(t, i, dst.UID)
			require.NoError(t, sc.FCall(ctx, "h2f", []string{"fc:{x}", "fl:{x}"}, "after").Err())
			a.waitInSync(dst.UID, time.Minute)
			eventuallyStrictEqual(t, time.Minute, dc, sc, 0, 5)
			fs, err := dc.FunctionList(ctx, redis.FunctionListQuery{}).Result()
			require.NoError(t, err)
			require.Len(t, fs, 1)
		})
	}
}

// TestStreamCommandsOnTheStream: the stream commands that change groups
// and pending entries (XAUTOCLAIM, XCLAIM JUSTID, XTRIM MINID, XSETID,
// XGROUP DELCONSUMER/DESTROY/SETID, XACK) on the replication stream, then
// a kill -9 of the destination, into destinations of one and two sources.
func TestStreamCommandsOnTheStream(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprint(n, " sources"), func(t *testing.T) {
			src := redistest.Start(t, "--repl-backlog-size", "64mb")
			other := redistest.Start(t)
			sc := src.Client()
			ctx := redistest.Ctx(t)
			writeBigStream(t, sc, "s")
			i := servicetest.Start(t)
			a := newAPI(t, i)
			rs := []api.ReplicaSource{{URI: src.URL()}, {URI: other.URL()}}[:n]
			dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 128 << 20, ReplicaSources: rs})
			logDestOnFailure(t, i, dst.UID)
			a.waitInSync(dst.UID, time.Minute)
			dc := destClient(t, dst, 0)
			do := func(args ...any) {
				t.Helper()
				require.NoError(t, sc.Do(ctx, args...).Err(), "%v", args)
			}
			for round := range 2 {
				do("XAUTOCLAIM", "s", "g1", "zed", 0, "0-0", "COUNT", 5)
				do("XAUTOCLAIM", "s", "g1", "zed2", 0, "0-0", "COUNT", 3, "JUSTID")
				do("XCLAIM", "s", "g1", "carol", 0, "1010-1", "1011-2", "JUSTID")
				do("XCLAIM", "s", "g1", "carol", 0, "1012-0", "IDLE", 5000, "RETRYCOUNT", 3, "FORCE")
				do("XADD", "s", "MAXLEN", "~", 2500, "*", "f", round)
				do("XTRIM", "s", "MINID", "1100-0")
				do("XREADGROUP", "GROUP", "g2", "new", "COUNT", 20, "STREAMS", "s", ">")
				do("XACK", "s", "g2", "1500-0", "1501-1")
				do("XGROUP", "DELCONSUMER", "s", "g1", "alice")
				do("XGROUP", "CREATE", "s", fmt.Sprint("tmp", round), "0")
				do("XGROUP", "SETID", "s", fmt.Sprint("tmp", round), "2000-0", "ENTRIESREAD", 1000)
				do("XGROUP", "CREATE", "s", "gone", "0", "MKSTREAM")
				do("XGROUP", "DESTROY", "s", "gone")
				do("XADD", "s", "NOMKSTREAM", "*", "f", "v")
				do("XADD", "empty-tail", fmt.Sprint(1+100*round, "-1"), "f", "v")
				do("XDEL", "empty-tail", fmt.Sprint(1+100*round, "-1"))
				do("XSETID", "empty-tail", fmt.Sprint(10+100*round, "-0"), "ENTRIESADDED", 5+round, "MAXDELETEDID", fmt.Sprint(3+100*round, "-0"))
				eventuallyStrictEqual(t, time.Minute, dc, sc, 0)
				a.waitInSync(dst.UID, time.Minute)
				// Killed before its AOF holds the load (the rewrite that
				// follows it), the destination comes back without it and
				// is loaded again, with commands (two sources), which
				// cannot recreate the pending entries of messages trimmed
				// since (its sync_note says so): this test is of the
				// resume.
				waitPersisted(t, dc)
				killDestination(t, i, dst.UID)
				a.waitInSync(dst.UID, time.Minute)
				eventuallyStrictEqual(t, time.Minute, dc, sc, 0)
			}
		})
	}
}

// TestBigKeysWithTTLsInOtherDatabases: keys too big for one RESTORE (built
// under a staging name, then renamed) with TTLs, in databases 0, 5 and 15,
// loaded with commands (two sources), then again after a reload: same
// values, same expiry times, no staging key left.
func TestBigKeysWithTTLsInOtherDatabases(t *testing.T) {
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	other := redistest.Start(t)
	sc := src.Client()
	ctx := redistest.Ctx(t)
	far := time.Now().Add(5 * time.Hour).UnixMilli()
	for k, db := range []int{0, 5, 15} {
		c := selectDB(sc, db)
		for j := range 2000 {
			require.NoError(t, c.HSet(ctx, "big-hash", fmt.Sprint("f", j), noise(200)).Err())
			require.NoError(t, c.RPush(ctx, "big-list", noise(200)).Err())
			require.NoError(t, c.ZAdd(ctx, "big-zset", redis.Z{Score: float64(j) / 3, Member: noise(200)}).Err())
			require.NoError(t, c.SAdd(ctx, "big-set", noise(200)).Err())
		}
		require.NoError(t, c.Set(ctx, "big-string", noise(600<<10), 0).Err())
		for j, key := range []string{"big-hash", "big-list", "big-zset", "big-set", "big-string"} {
			require.NoError(t, c.Do(ctx, "PEXPIREAT", key, far+int64(100*k+j)).Err())
		}
		writeBigStream(t, c, "big-stream")
		require.NoError(t, c.Do(ctx, "PEXPIREAT", "big-stream", far+int64(100*k+9)).Err())
		c.Close()
	}
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}, {URI: other.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	eventuallyStrictEqual(t, time.Minute, dc, sc, 0, 5, 15)
	// A reload (a FLUSHDB of the other source): through the second server.
	require.NoError(t, other.Client().FlushDB(ctx).Err())
	redistest.Eventually(t, time.Minute, "the reload", func() error {
		if !strings.Contains(a.metrics(), "replicad_replica_full_syncs_total") {
			return fmt.Errorf("no metric")
		}
		return nil
	})
	a.waitInSync(dst.UID, time.Minute)
	eventuallyStrictEqual(t, time.Minute, dc, sc, 0, 5, 15)
}

// TestSourceKeysNamedLikeStagingKeys: a source holds keys whose names are
// those a load with commands builds its big keys under
// (replicad:load:<source address>:<key>) beside those big keys: after the
// load, the destination holds both, as the source does.
func TestSourceKeysNamedLikeStagingKeys(t *testing.T) {
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	other := redistest.Start(t)
	sc := src.Client()
	ctx := redistest.Ctx(t)
	for j := range 10 {
		for range 2000 {
			require.NoError(t, sc.RPush(ctx, fmt.Sprint("big", j), noise(200)).Err())
		}
		require.NoError(t, sc.Set(ctx, fmt.Sprintf("replicad:load:%s:big%d", src.Addr(), j), "an application's own key", 0).Err())
	}
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}, {URI: other.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	redistest.Eventually(t, time.Minute, "the load is over", func() error {
		db := a.get(dst.UID)
		if db.ReplicaSyncStatus == api.SourceInSync || db.ReplicaSync == api.SyncStopped {
			return nil
		}
		return fmt.Errorf("%s", db.ReplicaSyncStatus)
	})
	dc := destClient(t, dst, 0)
	eventuallyStrictEqual(t, 30*time.Second, dc, sc, 0)
	db := a.get(dst.UID)
	require.Empty(t, db.ReplicaSources[0].LastError)
}

// TestSourceKeysNamedLikeStagingKeysShardedDestination: the same into a
// sharded destination, whose load gave such keys a hash tag (renamed
// them).
func TestSourceKeysNamedLikeStagingKeysShardedDestination(t *testing.T) {
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	sc := src.Client()
	ctx := redistest.Ctx(t)
	var names []string
	for j := range 4 {
		for range 2000 {
			require.NoError(t, sc.RPush(ctx, fmt.Sprint("big", j), noise(200)).Err())
		}
		name := fmt.Sprintf("replicad:load:%s:big%d", src.Addr(), j)
		names = append(names, name)
		require.NoError(t, sc.Set(ctx, name, "an application's own key", 0).Err())
	}
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20, ShardsCount: 2,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, 2*time.Minute)
	redistest.Eventually(t, 30*time.Second, "the destination holds the source's keys under their names", func() error {
		masters, done, err := shardedMasters(a, dst.UID)
		if err != nil {
			return err
		}
		defer done()
		for _, name := range append(names, "big0", "big1", "big2", "big3") {
			found := 0
			for _, m := range masters {
				found += int(m.Exists(ctx, name).Val())
			}
			if found != 1 {
				var all []string
				for _, m := range masters {
					k, _ := m.Keys(ctx, "replicad:load:*").Result()
					all = append(all, k...)
				}
				return fmt.Errorf("%q found on %d masters; staging-like keys there: %q", name, found, all)
			}
		}
		return nil
	})
}

// TestEmptyKeyName: the key "" (a big list with a TTL in database 0, a
// string in database 1), loaded with commands and written on the stream
// (plain SETs, gathered into an MSET).
func TestEmptyKeyName(t *testing.T) {
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	other := redistest.Start(t)
	sc := src.Client()
	ctx := redistest.Ctx(t)
	for range 2000 {
		require.NoError(t, sc.RPush(ctx, "", noise(200)).Err())
	}
	require.NoError(t, sc.PExpire(ctx, "", time.Hour).Err())
	c1 := selectDB(sc, 1)
	defer c1.Close()
	require.NoError(t, c1.Set(ctx, "", "", 0).Err())
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 128 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}, {URI: other.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	eventuallyStrictEqual(t, 30*time.Second, dc, sc, 0, 1)
	p := c1.Pipeline()
	p.Set(ctx, "", "x", 0)
	p.Set(ctx, "a", "y", 0)
	p.Set(ctx, "", "z", 0)
	_, err := p.Exec(ctx)
	require.NoError(t, err)
	require.NoError(t, sc.Del(ctx, "").Err())
	eventuallyStrictEqual(t, 30*time.Second, dc, sc, 0, 1)
}
