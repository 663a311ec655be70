package rdb

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const testFunction = "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return args[1] end)"

// loadDataset fills a server with every type, in both small (listpack /
// intset) and big (hashtable / quicklist / skiplist) encodings, across
// several databases, with TTLs, streams with deletions and consumer groups
// with pending entries, and a function library.
func loadDataset(t *testing.T, s *testRedis) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	c0 := s.client(0)
	defer c0.Close()
	// Elements over 1000 bytes become PLAIN quicklist nodes.
	s.do(c0, "DEBUG", "QUICKLIST-PACKED-THRESHOLD", "1000")
	s.do(c0, "FUNCTION", "LOAD", testFunction)

	for _, db := range []int{0, 1, 7} {
		c := s.client(db)
		p := c.Pipeline()
		pre := fmt.Sprintf("db%d:", db)
		// strings
		p.Set(ctx, pre+"str", "hello", 0)
		p.Set(ctx, pre+"str:int", "12345", 0)
		p.Set(ctx, pre+"str:neg", "-42", 0)
		p.Set(ctx, pre+"str:bigint", "-9223372036854775808", 0)
		p.Set(ctx, pre+"str:float", "3.14", 0)
		p.Set(ctx, pre+"str:empty", "", 0)
		p.Set(ctx, pre+"str:binary", "\x00\xff\r\n\x01binary", 0)
		p.Set(ctx, pre+"str:lzf", strings.Repeat("compressible ", 10000), 0)
		p.Set(ctx, pre+"str:ttl", "expiring", 100*time.Second)
		p.Set(ctx, "\x00bin\xffkey"+pre, "binary key", 0)
		// lists
		p.RPush(ctx, pre+"list:small", "a", "b", "1", "-2", "300000", "c")
		big := make([]any, 0, 10000)
		for i := range 10000 {
			big = append(big, fmt.Sprintf("item-%d-%s", i, strings.Repeat("x", i%50)))
		}
		p.RPush(ctx, pre+"list:big", big...)
		p.RPush(ctx, pre+"list:plain", "small", strings.Repeat("P", 5000), "small2", strings.Repeat("Q", 2000))
		p.Expire(ctx, pre+"list:small", 200*time.Second)
		// sets
		p.SAdd(ctx, pre+"set:intset", 1, 2, 3, -5, 70000, 5000000000)
		ints := make([]any, 0, 5000)
		for i := range 5000 {
			ints = append(ints, i*7)
		}
		p.SAdd(ctx, pre+"set:ints", ints...)
		p.SAdd(ctx, pre+"set:small", "a", "b", "c", "42")
		strs := make([]any, 0, 20000)
		for i := range 20000 {
			strs = append(strs, fmt.Sprintf("member-%d", i))
		}
		p.SAdd(ctx, pre+"set:big", strs...)
		// zsets
		p.ZAdd(ctx, pre+"zset:small",
			redis.Z{Score: 0.1, Member: "a"}, redis.Z{Score: -1.5e-300, Member: "b"}, redis.Z{Score: 42, Member: "c"},
			redis.Z{Score: 1e300, Member: "d"})
		p.Do(ctx, "ZADD", pre+"zset:small", "inf", "pinf", "-inf", "ninf")
		for chunk := range 20 {
			zs := make([]redis.Z, 0, 1000)
			for i := chunk * 1000; i < (chunk+1)*1000; i++ {
				zs = append(zs, redis.Z{Score: rng.NormFloat64() * 1e6, Member: fmt.Sprintf("zm-%d", i)})
			}
			p.ZAdd(ctx, pre+"zset:big", zs...)
		}
		p.Do(ctx, "ZADD", pre+"zset:big", "inf", "top", "-inf", "bottom", "0.30000000000000004", "third")
		// hashes
		p.HSet(ctx, pre+"hash:small", "f1", "v1", "f2", "2", "f3", "")
		fields := make([]any, 0, 40000)
		for i := range 20000 {
			fields = append(fields, fmt.Sprintf("field-%d", i), fmt.Sprintf("value-%d", rng.IntN(1e9)))
		}
		p.HSet(ctx, pre+"hash:big", fields...)
		p.HSet(ctx, pre+"hash:longvalue", "f", strings.Repeat("long", 100))
		p.PExpire(ctx, pre+"hash:big", 300*time.Second)
		if _, err := p.Exec(ctx); err != nil {
			t.Fatalf("load db %d: %v", db, err)
		}

		// streams
		sk := pre + "stream"
		for i := range 1000 {
			args := []any{"XADD", sk, "*", "n", i, "kind", "even"}
			if i%7 == 0 {
				args = []any{"XADD", sk, "*", "other", i} // not the master fields
			}
			s.do(c, args...)
		}
		s.do(c, "XGROUP", "CREATE", sk, "g1", "0")
		s.do(c, "XGROUP", "CREATE", sk, "g2", "$")
		s.do(c, "XGROUP", "CREATECONSUMER", sk, "g2", "lonely")
		s.do(c, "XREADGROUP", "GROUP", "g1", "alice", "COUNT", "50", "STREAMS", sk, ">")
		s.do(c, "XREADGROUP", "GROUP", "g1", "bob", "COUNT", "30", "STREAMS", sk, ">")
		s.do(c, "XREADGROUP", "GROUP", "g1", "alice", "COUNT", "10", "STREAMS", sk, ">")
		entries := s.do(c, "XRANGE", sk, "-", "+").([]any)
		id := func(i int) string { return entries[i].([]any)[0].(string) }
		s.do(c, "XACK", sk, "g1", id(0), id(3), id(55))
		s.do(c, "XCLAIM", sk, "g1", "bob", "0", id(1), id(2)) // bumps delivery counts
		for _, i := range []int{100, 101, 500, 998, 999} {    // not pending
			s.do(c, "XDEL", sk, id(i))
		}
		// every entry of a node deleted, and a stream that never had any
		s.do(c, "XADD", pre+"stream:alldel", "1-1", "f", "v")
		s.do(c, "XADD", pre+"stream:alldel", "2-1", "f", "v")
		s.do(c, "XDEL", pre+"stream:alldel", "1-1", "2-1")
		s.do(c, "XGROUP", "CREATE", pre+"stream:empty", "grp", "$", "MKSTREAM")
		s.do(c, "PEXPIRE", pre+"stream:empty", "400000")
		c.Close()
	}
}

// compareServers checks that dst holds exactly what src holds.
func compareServers(t *testing.T, src, dst *testRedis) {
	ctx := context.Background()
	for db := range 16 {
		sc, dc := src.client(db), dst.client(db)
		ssize, dsize := sc.DBSize(ctx).Val(), dc.DBSize(ctx).Val()
		if ssize != dsize {
			t.Errorf("db %d: %d keys in source, %d in destination", db, ssize, dsize)
		}
		if ssize > 0 {
			keys, err := sc.Keys(ctx, "*").Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				compareKey(t, db, k, sc, dc)
			}
		}
		sc.Close()
		dc.Close()
	}
	sc, dc := src.client(0), dst.client(0)
	defer sc.Close()
	defer dc.Close()
	sf := fmt.Sprint(src.do(sc, "FUNCTION", "LIST", "WITHCODE"))
	df := fmt.Sprint(dst.do(dc, "FUNCTION", "LIST", "WITHCODE"))
	if sf != df || !strings.Contains(sf, "mylib") {
		t.Errorf("functions differ:\n src %s\n dst %s", sf, df)
	}
	if got := dst.do(dc, "FCALL", "myfunc", "0", "works"); got != "works" {
		t.Errorf("FCALL on destination: %v", got)
	}
}

func compareKey(t *testing.T, db int, key string, sc, dc *redis.Client) {
	ctx := context.Background()
	where := fmt.Sprintf("db %d key %q", db, key)
	typ := sc.Type(ctx, key).Val()
	if dt := dc.Type(ctx, key).Val(); dt != typ {
		t.Errorf("%s: type %s in source, %s in destination", where, typ, dt)
		return
	}
	same := func(what string, a, b any) {
		if fmt.Sprint(a) != fmt.Sprint(b) {
			sa, sb := fmt.Sprint(a), fmt.Sprint(b)
			t.Errorf("%s: %s differ:\n src %s\n dst %s", where, what, tail(sa, 500), tail(sb, 500))
		}
	}
	do := func(c *redis.Client, args ...any) any {
		v, err := c.Do(ctx, args...).Result()
		if err != nil {
			t.Fatalf("%s: %v: %v", where, args, err)
		}
		return v
	}
	sorted := func(v []string) []string { slices.Sort(v); return v }
	switch typ {
	case "string":
		same("value", sc.Get(ctx, key).Val(), dc.Get(ctx, key).Val())
	case "list":
		same("elements", sc.LRange(ctx, key, 0, -1).Val(), dc.LRange(ctx, key, 0, -1).Val())
	case "set":
		same("members", sorted(sc.SMembers(ctx, key).Val()), sorted(dc.SMembers(ctx, key).Val()))
	case "zset":
		same("members", do(sc, "ZRANGE", key, 0, -1, "WITHSCORES"), do(dc, "ZRANGE", key, 0, -1, "WITHSCORES"))
	case "hash":
		same("fields", sc.HGetAll(ctx, key).Val(), dc.HGetAll(ctx, key).Val())
	case "stream":
		same("entries", do(sc, "XRANGE", key, "-", "+"), do(dc, "XRANGE", key, "-", "+"))
		si, di := kv(t, do(sc, "XINFO", "STREAM", key)), kv(t, do(dc, "XINFO", "STREAM", key))
		for _, f := range []string{"length", "last-generated-id", "max-deleted-entry-id", "entries-added", "recorded-first-entry-id", "groups"} {
			same("XINFO STREAM "+f, si[f], di[f])
		}
		sg, dg := do(sc, "XINFO", "GROUPS", key).([]any), do(dc, "XINFO", "GROUPS", key).([]any)
		if len(sg) != len(dg) {
			t.Errorf("%s: %d groups in source, %d in destination", where, len(sg), len(dg))
			return
		}
		for i := range sg {
			sm, dm := kv(t, sg[i]), kv(t, dg[i])
			name := fmt.Sprint(sm["name"])
			for _, f := range []string{"name", "consumers", "pending", "last-delivered-id", "entries-read", "lag"} {
				same("group "+name+" "+f, sm[f], dm[f])
			}
			consumers := func(c *redis.Client) []string {
				var out []string
				for _, x := range do(c, "XINFO", "CONSUMERS", key, name).([]any) {
					m := kv(t, x)
					out = append(out, fmt.Sprint(m["name"], "/", m["pending"]))
				}
				return out
			}
			same("group "+name+" consumers", consumers(sc), consumers(dc))
			sp := do(sc, "XPENDING", key, name, "-", "+", 1000000).([]any)
			dp := do(dc, "XPENDING", key, name, "-", "+", 1000000).([]any)
			if len(sp) != len(dp) {
				t.Errorf("%s: group %s: %d pending in source, %d in destination", where, name, len(sp), len(dp))
				return
			}
			for j := range sp {
				s, d := sp[j].([]any), dp[j].([]any)
				same("pending entry", []any{s[0], s[1], s[3]}, []any{d[0], d[1], d[3]})
				if idle := s[2].(int64) - d[2].(int64); idle > 1000 || idle < -1000 {
					t.Errorf("%s: pending %v idle %d vs %d", where, s[0], s[2], d[2])
				}
			}
		}
	default:
		t.Errorf("%s: unexpected type %s", where, typ)
	}
	sp, dp := sc.PTTL(ctx, key).Val(), dc.PTTL(ctx, key).Val()
	if (sp < 0) != (dp < 0) || (sp-dp) > time.Second || (dp-sp) > time.Second {
		t.Errorf("%s: PTTL %v in source, %v in destination", where, sp, dp)
	}
}

// TestRealRedisRoundTrip decodes a dump written by the installed
// redis-server and replays it as commands into a second server.
func TestRealRedisRoundTrip(t *testing.T) {
	src := startRedis(t)
	loadDataset(t, src)
	dump := src.save()

	dst := startRedis(t)
	a := newApplier(t, dst)
	start := time.Now()
	d := NewDecoder(bytes.NewReader(dump))
	if err := d.Decode(context.Background(), NewCommandWriter(a.emit)); err != nil {
		t.Fatal(err)
	}
	if err := a.flush(); err != nil {
		t.Fatal(err)
	}
	t.Logf("RDB v%d, %d bytes, %d commands replayed in %v", d.Version(), len(dump), a.total, time.Since(start))
	compareServers(t, src, dst)

	// Chunks from a real dump respect the limit too.
	r := record(t, dump, WithChunkLimits(1000, 0))
	if r.maxChunk > 1000 {
		t.Errorf("chunk of %d elements", r.maxChunk)
	}
	encodings := map[byte]bool{}
	for _, k := range r.keys {
		encodings[k.meta.Encoding] = true
	}
	for _, e := range []byte{rdbTypeString, rdbTypeSet, rdbTypeZSet2, rdbTypeHash, rdbTypeSetIntset,
		rdbTypeHashListpack, rdbTypeZSetListpack, rdbTypeListQuicklist2, rdbTypeStreamListpacks2} {
		if !encodings[e] {
			t.Errorf("the dump has no key of rdb type %d; the dataset no longer covers it", e)
		}
	}

	// The same data saved without compression and without checksum (by a
	// server that loaded the dump) gives exactly the same commands.
	plainSrv := startRedisWithDump(t, dump, "--rdbcompression", "no", "--rdbchecksum", "no")
	plain := plainSrv.save()
	if bytes.Equal(plain, dump) || !bytes.Equal(plain[len(plain)-8:], make([]byte, 8)) {
		t.Fatal("rdbcompression/rdbchecksum no had no effect")
	}
	// Key order, and element order inside hashtables, may differ after a
	// reload: compare the decoded content, not the command sequence.
	ca, cb := canonical(record(t, dump)), canonical(record(t, plain))
	if !slices.Equal(ca, cb) {
		t.Errorf("compressed and uncompressed dumps decode to different content (%d vs %d lines)", len(ca), len(cb))
	}
}

// canonical renders what a recorder saw as sorted lines, independent of
// key order and of the order of set and hash elements.
func canonical(r *recorder) []string {
	var out []string
	for _, k := range r.keys {
		p := fmt.Sprintf("%d|%q|%s|%d|", k.meta.DB, k.meta.Key, k.meta.Type, k.meta.ExpireAtMs)
		out = append(out, p+"string="+string(k.str))
		for i, e := range k.elems {
			if k.meta.Type == TypeList {
				out = append(out, fmt.Sprintf("%s%d=%q", p, i, e))
			} else {
				out = append(out, fmt.Sprintf("%s%q", p, e))
			}
		}
		for _, z := range k.zset {
			out = append(out, fmt.Sprintf("%s%q=%v", p, z.Member, z.Score))
		}
		for _, h := range k.hash {
			out = append(out, fmt.Sprintf("%s%q=%q@%d", p, h.Field, h.Value, h.ExpireAtMs))
		}
		for i, e := range k.entries {
			out = append(out, fmt.Sprintf("%s%d=%v", p, i, e))
		}
		out = append(out, fmt.Sprintf("%s%+v %+v %v %v", p, k.smeta, k.groups, k.cons, k.pending))
	}
	slices.Sort(out)
	return out
}

// TestPSYNCStream decodes the payload a master sends to a new replica and
// checks the decoder stops exactly at its end: the diskless EOF mark and
// then the live command stream must follow on the same reader.
func TestPSYNCStream(t *testing.T) {
	src := startRedis(t, "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")
	c := src.client(0)
	defer c.Close()
	src.do(c, "SET", "k", "v")
	src.do(c, "RPUSH", "l", "a", "b")

	conn, br := rawReplica(t, src.addr)
	writeCmd(t, conn, "REPLCONF", "capa", "eof", "capa", "psync2")
	if l := readLine(t, br); l != "+OK" {
		t.Fatalf("REPLCONF: %q", l)
	}
	writeCmd(t, conn, "PSYNC", "?", "-1")
	if l := readLine(t, br); !strings.HasPrefix(l, "+FULLRESYNC") {
		t.Fatalf("PSYNC: %q", l)
	}
	var bulk string
	for bulk == "" { // the master sends bare newlines while it prepares
		bulk = readLine(t, br)
	}
	mark, ok := strings.CutPrefix(bulk, "$EOF:")
	if !ok || len(mark) != 40 {
		t.Fatalf("expected a diskless transfer, got %q", bulk)
	}
	got := []string{}
	w := NewCommandWriter(func(cmd [][]byte) error {
		got = append(got, string(bytes.Join(cmd, []byte(" "))))
		return nil
	})
	if err := NewDecoder(br).Decode(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	wantCmds(t, got, "RPUSH l a b", "SELECT 0", "SET k v")
	trailer := make([]byte, 40)
	if _, err := ioReadFull(br, trailer); err != nil || string(trailer) != mark {
		t.Fatalf("after the payload: %q (%v), want the EOF mark", trailer, err)
	}
	// The replication stream continues on the same reader. After a
	// diskless transfer the master streams only once the replica ACKs, and
	// ignores ACKs until it has noticed the transfer ended: ACK like a
	// real replica does, periodically.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				if _, err := conn.Write([]byte("*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$1\r\n0\r\n")); err != nil {
					return
				}
			}
		}
	}()
	src.do(c, "SET", "after", "sync")
	deadline := time.Now().Add(10 * time.Second)
	var seen strings.Builder
	for time.Now().Before(deadline) && !strings.Contains(seen.String(), "sync") {
		seen.WriteString(readLine(t, br) + " ")
	}
	if !strings.Contains(seen.String(), "$5 after $4 sync") {
		t.Fatalf("replication stream after the payload: %q", seen.String())
	}
}
