package replication

import (
	"hash/maphash"
	"strconv"
)

// A batch of the stream is applied in one MULTI/EXEC, so only its end state
// is ever visible. That lets the writer gather the batch's plain SETs into
// one MSET, which costs the destination far less than as many SETs (one
// command to look up, check, queue and answer instead of hundreds). A SET
// moves later, to where the MSET is written, past commands that cannot see
// its key: commands whose only key is another one. Anything else (a command
// on the same key, one whose keys are not known, a SELECT, a FLUSHALL) is a
// barrier: the gathered SETs are written before it. MSET k v is exactly SET
// k v (it drops the TTL and any other type), and repeated keys keep the last
// value, as the SETs in order would.

// keyInfo says what is known of a command's keys.
type keyInfo uint8

const (
	keysUnknown  keyInfo = iota // any number of keys, or keys elsewhere than the first argument
	keysFirst                   // the first argument is its only key
	keysPlainSet                // SET key value, without options
)

// singleKey lists common write commands whose only key is their first
// argument (and that touch no other key), by upper-case name.
var singleKey = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range []string{
		"SET", "SETEX", "PSETEX", "SETNX", "GETSET", "GETDEL", "GETEX", "APPEND", "SETRANGE", "SETBIT",
		"INCR", "DECR", "INCRBY", "DECRBY", "INCRBYFLOAT",
		"HSET", "HSETNX", "HMSET", "HDEL", "HINCRBY", "HINCRBYFLOAT",
		"SADD", "SREM",
		"ZADD", "ZREM", "ZINCRBY", "ZREMRANGEBYSCORE", "ZREMRANGEBYRANK", "ZREMRANGEBYLEX",
		"LPUSH", "RPUSH", "LPUSHX", "RPUSHX", "LPOP", "RPOP", "LSET", "LTRIM", "LREM", "LINSERT",
		"EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT", "PERSIST",
		"XADD", "XTRIM", "XDEL", "PFADD",
	} {
		m[c] = true
	}
	return m
}()

// keysOf classifies a command of the stream.
func keysOf(args [][]byte) keyInfo {
	if len(args) < 2 || len(args[0]) > 16 {
		return keysUnknown
	}
	var up [16]byte
	name := up[:len(args[0])]
	for i, c := range args[0] {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		name[i] = c
	}
	if !singleKey[string(name)] {
		return keysUnknown
	}
	if len(args) == 3 && string(name) == "SET" {
		return keysPlainSet
	}
	return keysFirst
}

// locateKey finds, in raw (args encoded by resp.AppendCommand), the first
// argument and, for a plain SET, where its arguments start. It runs for
// most commands of the stream, so it counts digits rather than format them.
func locateKey(raw []byte, args [][]byte, keys keyInfo) (key []byte, setArgs int) {
	// *<n>\r\n $<len>\r\n <name>\r\n, then $<len>\r\n <key>\r\n
	at := 1 + digits(len(args)) + 2
	at += 1 + digits(len(args[0])) + 2 + len(args[0]) + 2
	argsAt := at
	at += 1 + digits(len(args[1])) + 2
	key = raw[at : at+len(args[1]) : at+len(args[1])]
	if keys == keysPlainSet && len(raw) <= maxMSETSet {
		setArgs = argsAt
	}
	return key, setArgs
}

// maxMSETSet bounds the SETs gathered into an MSET: a bigger one goes as it
// came, since gathering copies it twice more (into the MSET's arguments,
// then into the batch), and a value of hundreds of megabytes would cost
// the service that many times its size.
const maxMSETSet = 64 << 10

// digits is the length of n in decimal (n ≥ 0).
func digits(n int) int {
	d := 1
	for ; n >= 10; n /= 10 {
		d++
	}
	return d
}

// msetBuilder gathers the plain SETs of a batch.
type msetBuilder struct {
	args  []byte // the key and value arguments, RESP-encoded
	pairs int
	// keys holds a hash of each gathered key, not the key: a string key
	// would cost an allocation per SET, half the stream. Two keys with one
	// hash only make a command wait for the MSET it need not wait for,
	// which is always correct.
	keys map[uint64]struct{}
	seed maphash.Seed
}

func (m *msetBuilder) add(it item) {
	if m.keys == nil {
		m.keys, m.seed = map[uint64]struct{}{}, maphash.MakeSeed()
	}
	m.args = append(m.args, it.raw[it.setArgs:]...)
	m.pairs++
	m.keys[maphash.Bytes(m.seed, it.key)] = struct{}{}
}

// holds says whether an item must wait for the gathered SETs to be written
// first.
func (m *msetBuilder) holds(it item) bool {
	if m.pairs == 0 {
		return false
	}
	if it.key == nil {
		return true
	}
	_, ok := m.keys[maphash.Bytes(m.seed, it.key)]
	return ok
}

// flush appends the gathered SETs to buf as one command and returns buf and
// whether it wrote one.
func (m *msetBuilder) flush(buf []byte) ([]byte, bool) {
	if m.pairs == 0 {
		return buf, false
	}
	buf = append(buf, '*')
	buf = strconv.AppendInt(buf, int64(2*m.pairs+1), 10)
	if m.pairs == 1 {
		buf = append(buf, "\r\n$3\r\nSET\r\n"...)
	} else {
		buf = append(buf, "\r\n$4\r\nMSET\r\n"...)
	}
	buf = append(buf, m.args...)
	m.args, m.pairs = m.args[:0], 0
	clear(m.keys)
	return buf, true
}
