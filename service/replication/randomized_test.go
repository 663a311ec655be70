package replication_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// A seeded random workload of Redis 7.0 write commands over every type,
// several logical databases, transactions, scripts and functions, written
// before the load, during it and on the stream; the destination must then
// equal the sources key by key. A failure prints its seed:
// REDIS_REPLICAD_RANDOM_SEED=<seed> replays the same commands (their
// interleaving with the load depends on timing), and
// REDIS_REPLICAD_RANDOM_SOAK=1 runs ten times as many.

// randomDBs are the logical databases the workload writes to.
var randomDBs = []int{0, 1, 2, 15}

func randomSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("REDIS_REPLICAD_RANDOM_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "REDIS_REPLICAD_RANDOM_SEED")
		seed = v
	}
	t.Logf("seed %d", seed)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay with REDIS_REPLICAD_RANDOM_SEED=%d go test ./service/replication -run '^%s$'", seed, t.Name())
		}
	})
	return seed
}

func randomOps(n int) int {
	if os.Getenv("REDIS_REPLICAD_RANDOM_SOAK") != "" {
		return 10 * n
	}
	return n
}

// randomWorkload generates commands on keys of its own prefix, so that
// several workloads can write to several sources of one destination.
type randomWorkload struct {
	rng    *rand.Rand
	prefix string
	keys   int
	// keyspaceWide allows SWAPDB and FLUSHDB (each reloads a destination
	// of several sources: kept rare).
	keyspaceWide bool
	// dbZeroOnly keeps the workload in database 0 (a cluster has no
	// other).
	dbZeroOnly bool
	// selfExpiringDest: the destination expires keys by itself (a sharded
	// one), so no TTL is short.
	selfExpiringDest bool
	// shortTTLUntil is the latest expiry time (Unix ms) of a short TTL
	// the workload set: after it, no key of the workload expires soon.
	// Atomic: the test reads it while the workload's writer sets it.
	shortTTLUntil atomic.Int64
	db            int
	scriptSHA     string
	// steps counts the steps run in the background.
	steps atomic.Int64
}

func newRandomWorkload(seed uint64, prefix string) *randomWorkload {
	return &randomWorkload{rng: rand.New(rand.NewPCG(seed, 0x5eed)), prefix: prefix, keys: 12}
}

// anyDB is a database the workload writes to.
func (w *randomWorkload) anyDB() int {
	if w.dbZeroOnly {
		return 0
	}
	return randomDBs[w.rng.IntN(len(randomDBs))]
}

func (w *randomWorkload) key(kind string) string {
	n := w.rng.IntN(w.keys)
	if n == w.keys-1 {
		// A key name with bytes that RESP and logs must carry as they are.
		return fmt.Sprintf("%s%s:\x00\r\n*1 $%d\xff", w.prefix, kind, n)
	}
	return fmt.Sprintf("%s%s:%d", w.prefix, kind, n)
}

// spread is a string key for the commands that a sharded destination
// splits by slot (MSET, MSETNX, DEL, UNLINK, TOUCH): without the hash tag
// of the workload's other keys when it writes to one.
func (w *randomWorkload) spread() string {
	if !w.dbZeroOnly {
		return w.key("s")
	}
	return fmt.Sprintf("%s-spread:%d", strings.Trim(w.prefix, "{}:"), w.rng.IntN(3*w.keys))
}

// anyKey is a key of any kind (commands that take any type).
func (w *randomWorkload) anyKey() string {
	kinds := []string{"s", "n", "b", "p", "l", "h", "z", "g", "t", "x"}
	return w.key(kinds[w.rng.IntN(len(kinds))])
}

func (w *randomWorkload) val() string {
	switch w.rng.IntN(6) {
	case 0:
		return ""
	case 1:
		return strconv.Itoa(w.rng.IntN(1000) - 500)
	case 2:
		return strings.Repeat("v", 40+w.rng.IntN(300)) // past embstr
	case 3:
		return "\x00bin\xff\r\n" + strconv.Itoa(w.rng.IntN(10))
	}
	return fmt.Sprintf("v%d", w.rng.IntN(100))
}

// longTTL is in seconds; shortTTL in milliseconds, and remembered.
func (w *randomWorkload) longTTL() int { return 1000 + w.rng.IntN(100000) }
func (w *randomWorkload) shortTTL() int {
	ms := 50 + w.rng.IntN(2000)
	if w.selfExpiringDest {
		// A sharded destination expires keys by itself: a command on a
		// key that expired there while it lagged may fail (README,
		// "Sharded destinations expire keys by themselves").
		return ms + 1000000
	}
	w.noteShortTTL(ms)
	return ms
}

// noteShortTTL records a short TTL of ms set now.
func (w *randomWorkload) noteShortTTL(ms int) {
	until := time.Now().UnixMilli() + int64(ms) + 100
	for {
		cur := w.shortTTLUntil.Load()
		if cur >= until || w.shortTTLUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}

func (w *randomWorkload) streamID() string {
	return fmt.Sprintf("%d-%d", 1+w.rng.IntN(400), w.rng.IntN(3))
}

// command returns one random write command (or a read one that changes
// what replicates, such as XREADGROUP).
func (w *randomWorkload) command() []any {
	r := w.rng
	switch r.IntN(90) {
	// Strings.
	case 0, 1:
		a := []any{"SET", w.key("s"), w.val()}
		switch r.IntN(6) {
		case 0:
			a = append(a, "EX", w.longTTL())
		case 1:
			a = append(a, "PX", w.shortTTL())
		case 2:
			a = append(a, "KEEPTTL")
		case 3:
			a = append(a, "PXAT", time.Now().UnixMilli()+int64(w.longTTL())*1000)
		}
		switch r.IntN(4) {
		case 0:
			a = append(a, "NX")
		case 1:
			a = append(a, "XX")
		}
		if r.IntN(3) == 0 {
			a = append(a, "GET")
		}
		return a
	case 2:
		if r.IntN(2) == 0 {
			return []any{"GETEX", w.key("s"), "PERSIST"}
		}
		return []any{"GETEX", w.key("s"), "EX", w.longTTL()}
	case 3:
		return []any{"GETDEL", w.key("s")}
	case 4:
		return []any{"SETRANGE", w.key("s"), r.IntN(50), w.val()}
	case 5:
		return []any{"APPEND", w.key("s"), w.val()}
	case 6:
		return []any{"INCRBYFLOAT", w.key("n"), fmt.Sprintf("%.3f", r.Float64()*100-50)}
	case 7:
		return []any{"INCRBY", w.key("n"), r.IntN(100)}
	case 8:
		return []any{"BITFIELD", w.key("b"), "SET", "u8", fmt.Sprintf("#%d", r.IntN(20)), r.IntN(256), "INCRBY", "i5", r.IntN(100), r.IntN(10), "OVERFLOW", "SAT", "INCRBY", "u4", 3, 7}
	case 9:
		return []any{"SETBIT", w.key("b"), r.IntN(2000), r.IntN(2)}
	case 10:
		a := []any{"PFADD", w.key("p")}
		for range 1 + r.IntN(20) {
			a = append(a, fmt.Sprint("e", r.IntN(3000)))
		}
		return a
	case 11:
		return []any{"PFMERGE", w.key("p"), w.key("p"), w.key("p")}
	case 12:
		return []any{"MSET", w.spread(), w.val(), w.spread(), w.val(), w.spread(), w.val()}
	case 13:
		return []any{"SETEX", w.key("s"), w.longTTL(), w.val()}
	case 14:
		return []any{"MSETNX", w.spread(), w.val(), w.spread(), w.val()}
	// Geo.
	case 15:
		return []any{"GEOADD", w.key("g"), fmt.Sprintf("%.5f", r.Float64()*20), fmt.Sprintf("%.5f", 40+r.Float64()*10), fmt.Sprint("place", r.IntN(30))}
	case 16:
		a := []any{"GEOSEARCHSTORE", w.key("g"), w.key("g"), "FROMLONLAT", 10, 45, "BYRADIUS", 300 + r.IntN(600), "km", "ASC"}
		if r.IntN(2) == 0 {
			a = append(a, "STOREDIST")
		}
		return a
	// Lists.
	case 17, 18:
		a := []any{[]string{"LPUSH", "RPUSH", "LPUSHX", "RPUSHX"}[r.IntN(4)], w.key("l")}
		for range 1 + r.IntN(5) {
			a = append(a, w.val())
		}
		return a
	case 19:
		dirs := []string{"LEFT", "RIGHT"}
		return []any{"LMOVE", w.key("l"), w.key("l"), dirs[r.IntN(2)], dirs[r.IntN(2)]}
	case 20:
		return []any{"LREM", w.key("l"), r.IntN(5) - 2, w.val()}
	case 21:
		return []any{"LTRIM", w.key("l"), r.IntN(3), 5 + r.IntN(20)}
	case 22:
		return []any{"LSET", w.key("l"), r.IntN(6) - 3, w.val()}
	case 23:
		return []any{"LINSERT", w.key("l"), []string{"BEFORE", "AFTER"}[r.IntN(2)], w.val(), w.val()}
	case 24:
		return []any{[]string{"LPOP", "RPOP"}[r.IntN(2)], w.key("l"), 1 + r.IntN(3)}
	case 25:
		return []any{"LPOS", w.key("l"), w.val()} // a read: replicates nothing
	case 26:
		return []any{"RPOPLPUSH", w.key("l"), w.key("l")}
	// Sets.
	case 27, 28:
		a := []any{"SADD", w.key("t")}
		for range 1 + r.IntN(6) {
			a = append(a, fmt.Sprint("m", r.IntN(40)))
		}
		return a
	case 29:
		return []any{"SMOVE", w.key("t"), w.key("t"), fmt.Sprint("m", r.IntN(40))}
	case 30:
		return []any{[]string{"SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"}[r.IntN(3)], w.key("t"), w.key("t"), w.key("t")}
	case 31:
		if r.IntN(2) == 0 {
			return []any{"SPOP", w.key("t")}
		}
		return []any{"SPOP", w.key("t"), 1 + r.IntN(4)}
	case 32:
		return []any{"SREM", w.key("t"), fmt.Sprint("m", r.IntN(40)), fmt.Sprint("m", r.IntN(40))}
	// Sorted sets.
	case 33, 34:
		a := []any{"ZADD", w.key("z")}
		switch r.IntN(4) {
		case 0:
			a = append(a, "GT")
		case 1:
			a = append(a, "LT")
		}
		if r.IntN(3) == 0 {
			a = append(a, "CH")
		}
		if r.IntN(4) == 0 {
			return append(a, "INCR", fmt.Sprintf("%.2f", r.Float64()*10-5), fmt.Sprint("m", r.IntN(30)))
		}
		for range 1 + r.IntN(5) {
			a = append(a, fmt.Sprintf("%.3f", r.Float64()*100-50), fmt.Sprint("m", r.IntN(30)))
		}
		return a
	case 35:
		return []any{"ZRANGESTORE", w.key("z"), w.key("z"), 0, r.IntN(10) - 1}
	case 36:
		return []any{[]string{"ZPOPMIN", "ZPOPMAX"}[r.IntN(2)], w.key("z"), 1 + r.IntN(3)}
	case 37:
		a := []any{[]string{"ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"}[r.IntN(3)], w.key("z"), 2, w.key("z"), w.key("z")}
		if a[0] != "ZDIFFSTORE" && r.IntN(2) == 0 {
			a = append(a, "WEIGHTS", 2, 0.5, "AGGREGATE", []string{"SUM", "MIN", "MAX"}[r.IntN(3)])
		}
		return a
	case 38:
		return []any{"ZREMRANGEBYSCORE", w.key("z"), -10 + r.IntN(20), 10 + r.IntN(20)}
	case 39:
		return []any{"ZINCRBY", w.key("z"), r.IntN(10), fmt.Sprint("m", r.IntN(30))}
	// Hashes.
	case 40, 41:
		a := []any{"HSET", w.key("h")}
		for range 1 + r.IntN(5) {
			a = append(a, fmt.Sprint("f", r.IntN(30)), w.val())
		}
		return a
	case 42:
		return []any{"HINCRBYFLOAT", w.key("h"), fmt.Sprint("n", r.IntN(5)), fmt.Sprintf("%.4f", r.Float64()*10-5)}
	case 43:
		return []any{"HDEL", w.key("h"), fmt.Sprint("f", r.IntN(30)), fmt.Sprint("f", r.IntN(30))}
	case 44:
		return []any{"HINCRBY", w.key("h"), fmt.Sprint("i", r.IntN(5)), r.IntN(100) - 50}
	case 45:
		return []any{"HSETNX", w.key("h"), fmt.Sprint("f", r.IntN(30)), w.val()}
	// Streams.
	case 46, 47, 48:
		a := []any{"XADD", w.key("x")}
		switch r.IntN(5) {
		case 0:
			a = append(a, "MAXLEN", "~", 5+r.IntN(20))
		case 1:
			a = append(a, "MAXLEN", 5+r.IntN(20))
		case 2:
			a = append(a, "MINID", w.streamID())
		}
		if r.IntN(4) == 0 {
			a = append(a, w.streamID()) // often too small: an error, nothing replicated
		} else {
			a = append(a, "*")
		}
		return append(a, "f", w.val(), "g", r.IntN(10))
	case 49:
		a := []any{"XGROUP", "CREATE", w.key("x"), fmt.Sprint("g", r.IntN(3)), []string{"$", "0"}[r.IntN(2)], "MKSTREAM"}
		if r.IntN(2) == 0 {
			a = append(a, "ENTRIESREAD", r.IntN(10))
		}
		return a
	case 50:
		return []any{"XGROUP", "SETID", w.key("x"), fmt.Sprint("g", r.IntN(3)), []string{"$", "0", w.streamID()}[r.IntN(3)]}
	case 51:
		return []any{"XGROUP", "DELCONSUMER", w.key("x"), fmt.Sprint("g", r.IntN(3)), fmt.Sprint("c", r.IntN(3))}
	case 52:
		return []any{"XGROUP", "CREATECONSUMER", w.key("x"), fmt.Sprint("g", r.IntN(3)), fmt.Sprint("c", r.IntN(3))}
	case 53, 54:
		a := []any{"XREADGROUP", "GROUP", fmt.Sprint("g", r.IntN(3)), fmt.Sprint("c", r.IntN(3)), "COUNT", 1 + r.IntN(4)}
		if r.IntN(4) == 0 {
			a = append(a, "NOACK")
		}
		// Not "0": a consumer that reading its history creates is not
		// replicated by Redis 7.0, not even to its own replicas.
		return append(a, "STREAMS", w.key("x"), ">")
	case 55:
		return []any{"XACK", w.key("x"), fmt.Sprint("g", r.IntN(3)), w.streamID(), w.streamID()}
	case 56:
		a := []any{"XCLAIM", w.key("x"), fmt.Sprint("g", r.IntN(3)), fmt.Sprint("c", r.IntN(3)), 0, w.streamID(), w.streamID()}
		if r.IntN(2) == 0 {
			a = append(a, "JUSTID")
		}
		return a
	case 57:
		return []any{"XAUTOCLAIM", w.key("x"), fmt.Sprint("g", r.IntN(3)), fmt.Sprint("c", r.IntN(3)), 0, "0-0", "COUNT", 1 + r.IntN(5)}
	case 58:
		if r.IntN(2) == 0 {
			return []any{"XTRIM", w.key("x"), "MAXLEN", r.IntN(10)}
		}
		return []any{"XTRIM", w.key("x"), "MINID", w.streamID()}
	case 59:
		return []any{"XSETID", w.key("x"), fmt.Sprintf("%d-0", 500+r.IntN(100000))}
	case 60:
		return []any{"XDEL", w.key("x"), w.streamID(), w.streamID()}
	case 61:
		return []any{"XGROUP", "DESTROY", w.key("x"), fmt.Sprint("g", r.IntN(3))}
	// Expiry.
	case 62, 63:
		a := []any{"EXPIRE", w.anyKey(), w.longTTL()}
		if r.IntN(2) == 0 {
			a = append(a, []string{"NX", "XX", "GT", "LT"}[r.IntN(4)])
		}
		return a
	case 64:
		return []any{"PEXPIRE", w.anyKey(), w.shortTTL()}
	case 65:
		switch r.IntN(3) {
		case 0: // in the past: deletes the key
			return []any{"PEXPIREAT", w.anyKey(), r.IntN(1000)}
		case 1:
			return []any{"EXPIRE", w.anyKey(), -r.IntN(100)}
		}
		return []any{"PEXPIREAT", w.anyKey(), time.Now().UnixMilli() + int64(w.longTTL())*1000}
	case 66:
		return []any{"PERSIST", w.anyKey()}
	// Keyspace.
	case 67:
		k := w.anyKey()
		if r.IntN(2) == 0 {
			return []any{"RENAME", k, k[:len(w.prefix)+1] + ":" + strconv.Itoa(r.IntN(w.keys))}
		}
		return []any{"RENAMENX", k, w.anyKey()}
	case 68:
		a := []any{"COPY", w.anyKey(), w.anyKey()}
		if r.IntN(2) == 0 {
			a = append(a, "DB", w.anyDB())
		}
		if r.IntN(2) == 0 {
			a = append(a, "REPLACE")
		}
		return a
	case 69:
		return []any{"MOVE", w.anyKey(), w.anyDB()}
	case 70:
		if r.IntN(3) == 0 {
			return []any{[]string{"DEL", "UNLINK", "TOUCH"}[r.IntN(3)], w.spread(), w.spread(), w.anyKey()}
		}
		return []any{[]string{"DEL", "UNLINK"}[r.IntN(2)], w.anyKey(), w.anyKey()}
	case 71:
		if w.keyspaceWide && r.IntN(3) == 0 && !w.dbZeroOnly {
			switch r.IntN(8) {
			case 0:
				return []any{"FLUSHDB"}
			case 1:
				return []any{"FLUSHALL"}
			}
			return []any{"SWAPDB", w.anyDB(), w.anyDB()}
		}
		return []any{"TOUCH", w.anyKey()}
	case 72:
		return []any{"SORT", w.key(string("lt"[r.IntN(2)])), "ALPHA", "LIMIT", 0, 1 + r.IntN(10), "STORE", w.key("l")}
	// Scripts and functions, each writing several keys.
	case 73, 74:
		return []any{"EVAL", randomScript, 3, w.key("s"), w.key("l"), w.key("h"), w.val(), w.longTTL()}
	case 75:
		return []any{"EVALSHA", w.scriptSHA, 3, w.key("s"), w.key("l"), w.key("h"), w.val(), w.longTTL()}
	case 76:
		return []any{"FCALL", w.functionName(), 2, w.key("z"), w.key("x"), r.IntN(100)}
	case 77:
		// A script that writes to another database: its effects carry
		// their own SELECTs, and the caller's database is back after it.
		return []any{"EVAL", selectingScript, 2, w.key("n"), w.key("s"), w.anyDB(), w.val()}
	case 78:
		// A key copied by DUMP and RESTORE (run by step).
		a := []any{dumpRestore, w.anyKey(), w.anyKey(), 0}
		switch r.IntN(4) {
		case 0:
			a[3] = time.Now().UnixMilli() + int64(w.longTTL())*1000
			a = append(a, "ABSTTL")
		case 1:
			a[3] = 1 + r.IntN(1000) // expired already: no key
			a = append(a, "ABSTTL")
		case 2:
			a[3] = w.longTTL() * 1000
		}
		if r.IntN(2) == 0 {
			a = append(a, "REPLACE")
		}
		if r.IntN(3) == 0 {
			a = append(a, "IDLETIME", r.IntN(1000))
		}
		return a
	case 79:
		// Redis 7.0 commands, propagated as others (LPOP, ZPOPMIN, ...).
		switch r.IntN(3) {
		case 0:
			return []any{"LMPOP", 2, w.key("l"), w.key("l"), []string{"LEFT", "RIGHT"}[r.IntN(2)], "COUNT", 1 + r.IntN(3)}
		case 1:
			return []any{"ZMPOP", 2, w.key("z"), w.key("z"), []string{"MIN", "MAX"}[r.IntN(2)], "COUNT", 1 + r.IntN(3)}
		}
		return []any{"BLMPOP", 0.01, 1, w.key("l"), "LEFT"}
	case 80:
		// Integer members: an intset until a string joins.
		return []any{"SADD", w.key("t"), r.IntN(100), r.IntN(100000)}
	case 81:
		a := []any{"XCLAIM", w.key("x"), fmt.Sprint("g", r.IntN(3)), fmt.Sprint("c", r.IntN(3)), 0, w.streamID()}
		switch r.IntN(3) {
		case 0:
			a = append(a, "FORCE", "RETRYCOUNT", r.IntN(5))
		case 1:
			a = append(a, "IDLE", r.IntN(100000))
		default:
			a = append(a, "TIME", time.Now().UnixMilli()-int64(r.IntN(100000)), "LASTID", w.streamID())
		}
		return a
	case 82:
		return []any{"XSETID", w.key("x"), fmt.Sprintf("%d-5", 500+r.IntN(100000)), "ENTRIESADDED", 1000 + r.IntN(1000), "MAXDELETEDID", w.streamID()}
	case 83:
		return []any{"XADD", w.key("x"), "NOMKSTREAM", "MAXLEN", "~", 10, "LIMIT", 5, "*", "f", w.val()}
	case 84:
		return []any{"BITOP", []string{"AND", "OR", "XOR"}[r.IntN(3)], w.key("b"), w.key("b"), w.key("b")}
	case 85:
		return []any{"GEOADD", w.key("g"), []string{"NX", "XX", "CH"}[r.IntN(3)], fmt.Sprintf("%.5f", r.Float64()*20), fmt.Sprintf("%.5f", 40+r.Float64()*10), fmt.Sprint("place", r.IntN(30))}
	case 86:
		return []any{[]string{"GETSET", "SETNX"}[r.IntN(2)], w.key("s"), w.val()}
	case 87:
		return []any{"BLMOVE", w.key("l"), w.key("l"), "RIGHT", "LEFT", 0.01}
	case 88:
		return []any{"BZPOPMIN", w.key("z"), 0.01}
	default:
		return []any{"OBJECT", "FREQ", w.anyKey()} // a read: refused without LFU, replicates nothing
	}
}

// randomScript writes a string (with a TTL), a list and a hash.
const randomScript = `redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'calls', 1)
if redis.call('LLEN', KEYS[2]) > 8 then redis.call('LPOP', KEYS[2]) end
return 1`

// selectingScript increments a counter in the caller's database, sets a
// string in another one, and increments the counter again.
const selectingScript = `redis.call('INCR', KEYS[1])
redis.call('SELECT', ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('INCR', KEYS[1])
return 1`

func (w *randomWorkload) library() string {
	return "lib_" + strings.Trim(w.prefix, "{}:")
}
func (w *randomWorkload) functionName() string { return w.library() + "_f" }

// functionLibrary adds to a sorted set and a stream in one call.
func (w *randomWorkload) functionLibrary() string {
	return fmt.Sprintf(`#!lua name=%s
redis.register_function('%s', function(keys, args)
  redis.call('ZINCRBY', keys[1], args[1], 'fn')
  redis.call('XADD', keys[2], 'MAXLEN', 20, '*', 'fn', args[1])
  return 1
end)`, w.library(), w.functionName())
}

// step runs one command, or a transaction of a few, on conn, sometimes
// selecting another database first.
func (w *randomWorkload) step(ctx context.Context, conn *redis.Conn) error {
	if w.rng.IntN(10) == 0 {
		db := w.anyDB()
		if err := conn.Do(ctx, "SELECT", db).Err(); err != nil {
			return fmt.Errorf("select %d: %w", db, err)
		}
		w.db = db
	}
	if w.rng.IntN(12) == 0 {
		_, err := conn.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for range 2 + w.rng.IntN(5) {
				if w.rng.IntN(6) == 0 {
					// A SELECT inside the transaction changes the
					// connection's database after it too.
					w.db = w.anyDB()
					p.Do(ctx, "SELECT", w.db)
				}
				cmd := w.command()
				if cmd[0] == dumpRestore {
					cmd = []any{"DEL", cmd[2]}
				}
				p.Do(ctx, cmd...)
			}
			return nil
		})
		if err := transportError(err); err != nil {
			return err
		}
		// The database the connection is in, whatever became of the
		// transaction.
		return conn.Do(ctx, "SELECT", w.db).Err()
	}
	return transportError(w.do(ctx, conn, w.command()))
}

// dumpRestore, as a command name, asks step for a DUMP of the first key
// and a RESTORE of it as the second, with the arguments that follow.
const dumpRestore = "dump+restore"

// do runs one command of the workload.
func (w *randomWorkload) do(ctx context.Context, c *redis.Conn, cmd []any) error {
	if cmd[0] != dumpRestore {
		return c.Do(ctx, cmd...).Err()
	}
	payload, err := c.Dump(ctx, cmd[1].(string)).Result()
	if err != nil {
		return err
	}
	return c.Do(ctx, append([]any{"RESTORE", cmd[2], cmd[3], payload}, cmd[4:]...)...).Err()
}

// transportError keeps the errors that are not Redis's answer to a
// command (a WRONGTYPE, say, which is part of the workload).
func transportError(err error) error {
	var re redis.Error
	if err == nil || errors.Is(err, redis.Nil) || errors.As(err, &re) {
		return nil
	}
	return err
}

// prepare loads the workload's script and function library at the source.
func (w *randomWorkload) prepare(ctx context.Context, c *redis.Client) error {
	sha, err := c.ScriptLoad(ctx, randomScript).Result()
	if err != nil {
		return fmt.Errorf("script load: %w", err)
	}
	w.scriptSHA = sha
	if err := c.FunctionLoadReplace(ctx, w.functionLibrary()).Err(); err != nil {
		return fmt.Errorf("function load: %w", err)
	}
	return nil
}

// run runs n steps on one connection of c.
func (w *randomWorkload) run(ctx context.Context, c *redis.Client, n int) error {
	sc := slowReader(c, w.db)
	defer sc.Close()
	conn := sc.Conn()
	defer conn.Close()
	if err := conn.Do(ctx, "SELECT", w.db).Err(); err != nil {
		return err
	}
	for i := range n {
		if err := w.step(ctx, conn); err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
	}
	return nil
}

// background runs steps until stopped, and returns how many it ran.
func (w *randomWorkload) background(t *testing.T, c *redis.Client) (stop func() int) {
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg   sync.WaitGroup
		ferr error
	)
	base := w.steps.Load()
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Patient: a loaded machine may stall the source for seconds
		// (a fork for the load of a big dataset, say).
		sc := slowReader(c, w.db)
		defer sc.Close()
		conn := sc.Conn()
		defer conn.Close()
		if err := conn.Do(ctx, "SELECT", w.db).Err(); err != nil {
			ferr = err
			return
		}
		for ctx.Err() == nil {
			if err := w.step(ctx, conn); err != nil {
				if ctx.Err() == nil {
					ferr = err
				}
				return
			}
			w.steps.Add(1)
		}
	}()
	var once sync.Once
	stop = func() int {
		once.Do(func() { cancel(); wg.Wait() })
		require.NoError(t, ferr, "random writer")
		return int(w.steps.Load() - base)
	}
	t.Cleanup(func() { once.Do(func() { cancel(); wg.Wait() }) })
	return stop
}

// settle waits until every short TTL the workloads set has passed, and has
// each source delete its expired keys (a read of each key does), so that
// no key expires while the comparison reads it.
func settle(t *testing.T, sources []*redis.Client, ws ...*randomWorkload) {
	t.Helper()
	var until int64
	for _, w := range ws {
		until = max(until, w.shortTTLUntil.Load())
	}
	redistest.Eventually(t, time.Minute, "the short TTLs have passed", func() error {
		if now := time.Now().UnixMilli(); now < until {
			return fmt.Errorf("%d ms to go", until-now)
		}
		return nil
	})
	ctx := redistest.Ctx(t)
	for _, s := range sources {
		dbs := randomDBs
		if ws[0].dbZeroOnly {
			dbs = []int{0}
		}
		for _, n := range dbs {
			c := selectDB(s, n)
			keys, err := redistest.Keys(ctx, c)
			require.NoError(t, err)
			for _, k := range keys {
				require.NoError(t, c.Exists(ctx, k).Err())
			}
			c.Close()
		}
	}
}

// slowReader is a client of database n of c's server that waits for a
// big value (a million-field hash) to be read whole, on a busy machine.
func slowReader(c *redis.Client, n int) *redis.Client {
	o := *c.Options()
	o.DB, o.ReadTimeout = n, 30*time.Second
	return redis.NewClient(&o)
}

// unionDiff compares every application database of dst with the union of
// the sources' (disjoint keys): type, value, exact expiry time, streams by
// XINFO STREAM FULL, and the function libraries.
func unionDiff(ctx context.Context, dst *redis.Client, sources ...*redis.Client) error {
	return unionDiffDBs(ctx, 16, dst, sources...)
}

// unionDiffDBs is unionDiff over databases 0 to dbs-1.
func unionDiffDBs(ctx context.Context, dbs int, dst *redis.Client, sources ...*redis.Client) error {
	var problems []string
	// Every application database, those the workload never selects too:
	// a database must land where it was, nowhere else.
	for n := range dbs {
		d := slowReader(dst, n)
		want := map[string]*redis.Client{}
		var ss []*redis.Client
		for _, src := range sources {
			s := slowReader(src, n)
			ss = append(ss, s)
			keys, err := redistest.Keys(ctx, s)
			if err != nil {
				return err
			}
			for _, k := range keys {
				want[k] = s
			}
		}
		err := func() error {
			defer d.Close()
			for _, s := range ss {
				defer s.Close()
			}
			keys := slices.Sorted(func(yield func(string) bool) {
				for k := range want {
					if !yield(k) {
						return
					}
				}
			})
			diffs, err := diffKeys(ctx, n, keys, d, func(k string) *redis.Client { return want[k] }, streamLogical)
			if err != nil {
				return err
			}
			problems = append(problems, diffs...)
			extra, err := keysAtNoSource(ctx, n, d, func(k string) bool { _, ok := want[k]; return ok })
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
	libs, err := dst.FunctionList(ctx, redis.FunctionListQuery{}).Result()
	if err != nil {
		return fmt.Errorf("function list: %w", err)
	}
	var got []string
	for _, l := range libs {
		got = append(got, l.Name)
	}
	var want []string
	for _, src := range sources {
		libs, err := src.FunctionList(ctx, redis.FunctionListQuery{}).Result()
		if err != nil {
			return fmt.Errorf("function list: %w", err)
		}
		for _, l := range libs {
			want = append(want, l.Name)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		problems = append(problems, fmt.Sprintf("function libraries %v, want %v", got, want))
	}
	if len(problems) > 0 {
		if len(problems) > 15 {
			problems = append(problems[:15], fmt.Sprintf("... %d more", len(problems)-15))
		}
		return fmt.Errorf("%d differences:\n%s", len(problems), strings.Join(problems, "\n"))
	}
	return nil
}

func eventuallyUnionEqual(t *testing.T, timeout time.Duration, dst *redis.Client, sources ...*redis.Client) {
	t.Helper()
	redistest.Eventually(t, timeout, "the destination equals the sources, key by key", func() error {
		return unionDiff(context.Background(), dst, sources...)
	})
}

// randomFault is what happens to a syncer while the stream goes on.
type randomFault int

const (
	noFault randomFault = iota
	killService
	cutLink
	restartSource
	// restartSourceEmpty restarts a source without persistence: it comes
	// back empty, with a new replication id.
	restartSourceEmpty
	// killDuringLoad kills the service while it loads the sources.
	killDuringLoad
	// killDestination kills the destination's redis-server on the stream.
	killDestinationRedis
	// freezeDestination stops the destination's redis-server while short
	// TTLs expire at the sources, then lets it go on.
	freezeDestination
	// managedSources: the sources are databases of the service, replicated
	// through their gateway with compression.
	managedSources
	// keyspaceWide: SWAPDB, FLUSHDB and FLUSHALL at several sources,
	// each a reload of the destination from every source.
	keyspaceWide
	// pauseResume pauses the sync while the sources are written, then
	// enables it; stopResume stops it (a reload when enabled again).
	pauseResume
	stopResume
	// otherEncodings: sources that store every collection in its big
	// encoding (hashtable, skiplist, quicklist of one-entry nodes, streams
	// of two-entry nodes), so that their RDB has those.
	otherEncodings
	// chain: a second destination replicates the first one.
	chain
	// shardedDest: the destination is a database of 3 shards; each
	// source's keys share a hash tag (commands over several keys stay in
	// one slot), and database 0 only.
	shardedDest
)

// randomRun is one run of the workload: sources written before the load,
// during it and on the stream, with a fault on the stream.
func randomRun(t *testing.T, sourceCount int, fault randomFault) {
	seed := randomSeed(t)
	ctx := redistest.Ctx(t)
	// Killed during the load: a load long enough to be killed in, with a
	// million-field hash and a 100 MB string.
	huge := fault == killDuringLoad
	var (
		a    *apiClient
		dst  api.Database
		proc *servicetest.Process
		inst *servicetest.Instance
	)
	if fault == killService || fault == killDuringLoad {
		proc = servicetest.StartProcess(t)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("service log:\n%s", proc.Log())
			}
		})
		a = newAPI(t, &servicetest.Instance{URL: proc.URL, Username: "admin", Password: proc.Password(t), CACert: proc.CACert(t)})
	} else {
		inst = servicetest.Start(t)
		a = newAPI(t, inst)
	}

	var (
		servers []*redistest.Server
		sources []*redis.Client
		uris    []api.ReplicaSource
		proxies []*redistest.Proxy
		works   []*randomWorkload
	)
	for n := range sourceCount {
		args := []string{"--repl-backlog-size", "64mb"}
		if fault == restartSource {
			args = append(args, "--appendonly", "yes", "--appendfsync", "always")
		}
		if fault == otherEncodings {
			args = append(args, "--hash-max-listpack-entries", "0", "--zset-max-listpack-entries", "0",
				"--list-max-listpack-size", "1", "--set-max-intset-entries", "0", "--stream-node-max-entries", "2",
				"--list-compress-depth", "1")
		}
		w := newRandomWorkload(seed+uint64(n), fmt.Sprintf("%c:", 'a'+n))
		w.keyspaceWide = sourceCount == 1 || fault == keyspaceWide
		if fault == shardedDest {
			w.prefix = fmt.Sprintf("{%c}:", 'a'+n)
			w.dbZeroOnly, w.selfExpiringDest = true, true
		}
		works = append(works, w)
		if fault == managedSources {
			// A database of the service, through its replication
			// gateway, compressed.
			db := a.create(api.CreateDatabaseRequest{Name: fmt.Sprint("src", n), MemorySize: 256 << 20})
			sources = append(sources, destClient(t, db, 0))
			uris = append(uris, api.ReplicaSource{URI: a.sourceURL(db.UID), Compression: 3})
			require.NoError(t, w.prepare(ctx, sources[n]))
			continue
		}
		s := redistest.Start(t, args...)
		servers = append(servers, s)
		sources = append(sources, s.Client())
		uri := s.URL()
		if fault == cutLink {
			p := redistest.StartProxy(t, s.Addr())
			proxies = append(proxies, p)
			uri = "redis://" + p.Addr
		}
		uris = append(uris, api.ReplicaSource{URI: uri})
		require.NoError(t, w.prepare(ctx, s.Client()))
	}
	// Phase 1: before the load. A bigger hash makes the load last long
	// enough for writes to land during it.
	errs := make([]error, len(works))
	var wg sync.WaitGroup
	for n := range works {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fields := 100000
			if huge && n == 0 {
				fields = 1000000
			}
			w, sc := works[n], sources[n]
			if errs[n] = w.run(ctx, sc, randomOps(1500)); errs[n] == nil {
				errs[n] = bulkHash(ctx, sc, w.prefix+"bulk", fields)
			}
			if errs[n] == nil {
				// Big keys with TTLs that change during the load.
				errs[n] = errors.Join(
					bulkHash(ctx, sc, w.prefix+"bulk-persisted", fields/2),
					sc.Expire(ctx, w.prefix+"bulk-persisted", time.Hour).Err(),
					bulkHash(ctx, sc, w.prefix+"bulk-expiring", fields/2),
					sc.Expire(ctx, w.prefix+"bulk-expiring", time.Hour).Err())
			}
			if errs[n] == nil && huge && n == 0 {
				// A 100 MB string with a TTL among the random keys.
				big := works[n].prefix + "huge"
				errs[n] = sources[n].Set(ctx, big, strings.Repeat("0123456789abcdef", 100<<20/16), 5*time.Hour).Err()
			}
		}()
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...), "writes before the load")

	// Phase 2: during the load. The TTL set during it is drawn now: the
	// workload's rng is its writer's alone once that runs.
	expiring := make([]int, len(works))
	for n, w := range works {
		if w.selfExpiringDest {
			expiring[n] = w.shortTTL()
		} else {
			expiring[n] = 50 + w.rng.IntN(2000)
		}
	}
	var stops []func() int
	for n := range works {
		stops = append(stops, works[n].background(t, sources[n]))
	}
	shards := 0
	if fault == shardedDest {
		shards = 3
	}
	memory := int64(512 << 20)
	if huge {
		memory = 1 << 30
	}
	dst = a.create(api.CreateDatabaseRequest{Name: "random", MemorySize: memory, ShardsCount: shards, ReplicaSources: uris})
	for n, sc := range sources {
		// A TTL removed during the load, and one that expires during it
		// (or soon after).
		require.NoError(t, sc.Persist(ctx, works[n].prefix+"bulk-persisted").Err())
		require.NoError(t, sc.PExpire(ctx, works[n].prefix+"bulk-expiring", time.Duration(expiring[n])*time.Millisecond).Err())
		if !works[n].selfExpiringDest {
			works[n].noteShortTTL(expiring[n])
		}
	}
	if inst != nil {
		logDestOnFailure(t, inst, dst.UID)
	}
	var chained api.Database
	if fault == chain {
		// A Replica Of the destination, made while it loads.
		chained = a.create(api.CreateDatabaseRequest{Name: "chained", MemorySize: memory,
			ReplicaSources: []api.ReplicaSource{{URI: a.sourceURL(dst.UID)}}})
	}
	if fault == killDuringLoad {
		redistest.Eventually(t, time.Minute, "the full load is under way", func() error {
			db := a.get(dst.UID)
			if db.Status != api.StatusLoading {
				return fmt.Errorf("status %s", db.Status)
			}
			return nil
		})
		t.Log("killing the service during the load")
		proc.Kill(t)
		proc.Start(t)
	}
	a.waitInSync(dst.UID, 2*time.Minute)
	during := 0
	for _, stop := range stops {
		during += stop()
	}
	t.Logf("%d steps during the load", during)
	dc := destClient(t, dst, 0)

	// Phase 3: on the stream, with the fault in the middle.
	stops = stops[:0]
	for n := range works {
		stops = append(stops, works[n].background(t, sources[n]))
	}
	waitSteps := func(what string) {
		base := works[0].stepsDone()
		redistest.Eventually(t, time.Minute, what, func() error {
			if works[0].stepsDone() < base+randomOps(500) {
				return fmt.Errorf("%d steps", works[0].stepsDone()-base)
			}
			return nil
		})
	}
	waitSteps("writes on the stream")
	switch fault {
	case killService:
		t.Log("killing the service")
		proc.Kill(t)
		waitSteps("writes while the service is down")
		proc.Start(t)
	case cutLink:
		for _, p := range proxies {
			// The syncer's link goes through it: a cut of none would
			// leave the fault untested.
			n := p.Cut()
			t.Logf("cut %d connections", n)
			require.Positive(t, n, "the proxy carried the source's replication link")
		}
	case pauseResume, stopResume:
		state, enabled := api.SyncPaused, api.SyncEnabled
		if fault == stopResume {
			state = api.SyncStopped
		}
		a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSync: &state})
		waitSteps("writes while the sync is " + state)
		a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSync: &enabled})
	case killDestinationRedis:
		killDestination(t, inst, dst.UID)
	case freezeDestination:
		thaw := freeze(t, pidOf(t, dc))
		t.Log("destination frozen")
		// Short TTLs set while it is frozen expire before it goes on.
		for _, w := range works {
			w.shortTTLUntil.Store(0)
		}
		waitSteps("writes while the destination is frozen")
		var until int64
		for _, w := range works {
			until = max(until, w.shortTTLUntil.Load())
		}
		redistest.Eventually(t, time.Minute, "the short TTLs set meanwhile have passed", func() error {
			if now := time.Now().UnixMilli(); now < until {
				return fmt.Errorf("%d ms to go", until-now)
			}
			return nil
		})
		thaw()
	case restartSource, restartSourceEmpty:
		t.Log("restarting the first source")
		stops[0]()
		servers[0].Restart()
		stops[0] = works[0].background(t, sources[0])
	}
	waitSteps("writes after the fault")
	after := 0
	for _, stop := range stops {
		after += stop()
	}
	t.Logf("%d steps on the stream", after)
	settle(t, sources, works...)
	a.waitInSync(dst.UID, 2*time.Minute)
	if fault == shardedDest {
		eventuallyEqualSharded(t, a, dst.UID, time.Minute, sources...)
		// Applied slot by slot, not atomically across slots: the
		// status says so (README, "Commands over several slots").
		for _, st := range a.get(dst.UID).ReplicaSources {
			assert.Contains(t, st.SyncNote, "several hash slots", "source %s", st.URI)
		}
		return
	}
	eventuallyUnionEqual(t, time.Minute, dc, sources...)
	if fault == chain {
		a.waitInSync(chained.UID, 2*time.Minute)
		eventuallyUnionEqual(t, time.Minute, destClient(t, chained, 0), sources...)
	}
}

func (w *randomWorkload) stepsDone() int { return int(w.steps.Load()) }

// bulkHash writes a hash of n fields to key.
func bulkHash(ctx context.Context, c *redis.Client, key string, n int) error {
	for start := 0; start < n; start += 10000 {
		fields := make([]any, 0, 20000)
		for i := start; i < min(n, start+10000); i++ {
			fields = append(fields, "f"+strconv.Itoa(i), i)
		}
		if err := c.HSet(ctx, key, fields...).Err(); err != nil {
			return fmt.Errorf("hset %s: %w", key, err)
		}
	}
	return nil
}

func TestRandomWorkloadOneSource(t *testing.T)      { randomRun(t, 1, noFault) }
func TestRandomWorkloadThreeSources(t *testing.T)   { randomRun(t, 3, noFault) }
func TestRandomWorkloadServiceKilled(t *testing.T)  { randomRun(t, 1, killService) }
func TestRandomWorkloadTwoSourcesCut(t *testing.T)  { randomRun(t, 2, cutLink) }
func TestRandomWorkloadSourceRestart(t *testing.T)  { randomRun(t, 1, restartSource) }
func TestRandomWorkloadTwoSourcesKill(t *testing.T) { randomRun(t, 2, killService) }
func TestRandomWorkloadKillDuringLoad(t *testing.T) { randomRun(t, 1, killDuringLoad) }
func TestRandomWorkloadThreeSourcesKillDuringLoad(t *testing.T) {
	randomRun(t, 3, killDuringLoad)
}
func TestRandomWorkloadDestinationKilled(t *testing.T) { randomRun(t, 2, killDestinationRedis) }
func TestRandomWorkloadFrozenDestination(t *testing.T) { randomRun(t, 1, freezeDestination) }
func TestRandomWorkloadManagedSources(t *testing.T)    { randomRun(t, 2, managedSources) }
func TestRandomWorkloadSourceRestartsEmpty(t *testing.T) {
	randomRun(t, 2, restartSourceEmpty)
}
func TestRandomWorkloadShardedDestination(t *testing.T)     { randomRun(t, 2, shardedDest) }
func TestRandomWorkloadTwoSourcesKeyspaceWide(t *testing.T) { randomRun(t, 2, keyspaceWide) }
func TestRandomWorkloadPausedAndResumed(t *testing.T)       { randomRun(t, 2, pauseResume) }
func TestRandomWorkloadStoppedAndResumed(t *testing.T)      { randomRun(t, 1, stopResume) }

// TestRandomWorkloadClusterSource: the random workload on each master of a
// Redis Cluster source (a hash tag per master), replicated into a
// one-server destination: before, during and after its load, and across a
// kill of a source master's replication link (CLIENT KILL TYPE replica).
func TestRandomWorkloadClusterSource(t *testing.T) { clusterSourceRun(t, 0) }

// TestRandomWorkloadClusterSourceShardedDestination: the same into a
// sharded destination of 2 shards (the source has 3).
func TestRandomWorkloadClusterSourceShardedDestination(t *testing.T) { clusterSourceRun(t, 2) }

func clusterSourceRun(t *testing.T, shards int) {
	seed := randomSeed(t)
	ctx := redistest.Ctx(t)
	cl := redistest.StartCluster(t, 3, 0, "--repl-backlog-size", "64mb")
	cc := cl.Client()
	var (
		works   []*randomWorkload
		masters []*redis.Client
	)
	for n, tag := range []string{"a", "b", "c"} {
		w := newRandomWorkload(seed+uint64(n), "{"+tag+"}:")
		w.dbZeroOnly, w.selfExpiringDest = true, shards > 0
		m, err := cc.MasterForKey(ctx, "{"+tag+"}")
		require.NoError(t, err)
		require.NoError(t, w.prepare(ctx, m))
		require.NoError(t, w.run(ctx, m, randomOps(1000)))
		works, masters = append(works, w), append(masters, m)
	}
	i := servicetest.Start(t)
	a := newAPI(t, i)
	var stops []func() int
	for n, w := range works {
		stops = append(stops, w.background(t, masters[n]))
	}
	dst := a.create(api.CreateDatabaseRequest{Name: "random", MemorySize: 256 << 20, ShardsCount: shards,
		ReplicaSources: []api.ReplicaSource{{URI: cl.Nodes[0].URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, 2*time.Minute)
	during := 0
	for _, stop := range stops {
		during += stop()
	}
	t.Logf("%d steps during the load", during)
	stops = stops[:0]
	for n, w := range works {
		stops = append(stops, w.background(t, masters[n]))
	}
	base := works[0].stepsDone()
	redistest.Eventually(t, time.Minute, "writes on the stream", func() error {
		if works[0].stepsDone() < base+randomOps(500) {
			return fmt.Errorf("%d steps", works[0].stepsDone()-base)
		}
		return nil
	})
	for _, m := range masters {
		require.NoError(t, m.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err())
	}
	base = works[0].stepsDone()
	redistest.Eventually(t, time.Minute, "writes after the links were cut", func() error {
		if works[0].stepsDone() < base+randomOps(500) {
			return fmt.Errorf("%d steps", works[0].stepsDone()-base)
		}
		return nil
	})
	after := 0
	for _, stop := range stops {
		after += stop()
	}
	t.Logf("%d steps on the stream", after)
	settle(t, masters, works...)
	a.waitInSync(dst.UID, 2*time.Minute)
	if shards > 0 {
		eventuallyEqualSharded(t, a, dst.UID, time.Minute, masters...)
		return
	}
	dc := destClient(t, dst, 0)
	redistest.Eventually(t, time.Minute, "the destination equals the source's masters, key by key", func() error {
		return unionDiffDBs(context.Background(), 1, dc, masters...)
	})
}

func TestRandomWorkloadOtherEncodings(t *testing.T) { randomRun(t, 2, otherEncodings) }
func TestRandomWorkloadOtherEncodingsOneSource(t *testing.T) {
	randomRun(t, 1, otherEncodings)
}

func TestRandomWorkloadThroughAChain(t *testing.T)           { randomRun(t, 1, chain) }
func TestRandomWorkloadTwoSourcesThroughAChain(t *testing.T) { randomRun(t, 2, chain) }
