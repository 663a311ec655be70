package rdb

import (
	"fmt"
	"math"
	"strconv"
)

// CommandWriter is a Handler that turns decoded content into Redis commands
// and hands them, in order, to its emit function. Each command is a
// [][]byte (name first) whose slices are only valid during the emit call.
//
// Mapping:
//
//	string  SET key <first part>, APPEND key <part> for further parts
//	list    RPUSH key e...            (one per chunk)
//	set     SADD key m...             (one per chunk)
//	zset    ZADD key score m...       (one per chunk; shortest exact scores, inf/-inf)
//	hash    HSET key f v...           (one per chunk), then for fields with an
//	        expiry HPEXPIREAT key ms FIELDS n f... (needs a Redis 7.4+ destination)
//	stream  XADD key <id> f v... per entry, deleted ones included (XDEL'd once
//	        the pending entries are claimed, so a pending entry of a deleted
//	        message is kept);
//	        an empty stream is created with XGROUP CREATE ... MKSTREAM (+ DESTROY);
//	        XSETID key <last-id> [ENTRIESADDED n MAXDELETEDID id] (the extras when
//	        the RDB has them, RDB 10+); per group XGROUP CREATE key g <id>
//	        [ENTRIESREAD n], per consumer XGROUP CREATECONSUMER key g c, and its
//	        pending entries XCLAIM key g c 0 id... TIME ms RETRYCOUNT n FORCE JUSTID
//	expiry  PEXPIREAT key ms once the key is complete
//	db      SELECT n before the first key of a database that differs from the
//	        current one (the first key always gets one)
//	function FUNCTION LOAD REPLACE <code>
//	aux lua  SCRIPT LOAD <body> (scripts that Redis < 7 kept in the RDB)
//	raw      RESTORE key <expiry ms or 0> <DUMP payload> [REPLACE] [ABSTTL] for a
//	         key the decoder hands over whole (WithRawValues)
//
// Commands use Redis 7.0 syntax (XSETID, ENTRIESREAD); field expiries need
// 7.4. Limitations: pending entries whose message is no longer in the RDB
// (trimmed, or deleted with all the entries of its listpack) cannot be
// recreated (XCLAIM ignores IDs not in the stream), and
// consumers' seen/active times are those of the replay, not the source's.
type CommandWriter struct {
	emit    func(cmd [][]byte) error
	replace bool
	scripts bool

	db    int // database of the destination connection, -1 unknown
	wrote bool
	added uint64 // stream entries written for the current key

	args [][]byte
	num  []byte // holds formatted numbers of the command being built

	// staging: a key is built under staging+key and renamed at its end
	// (WithStaging); staged is that name for the current key.
	staging []byte
	staged  []byte
	// deleted: the entries of the current stream deleted at the source,
	// written to be claimed, and deleted again at its end.
	deleted []StreamID
}

// WithStaging makes the writer build each key under the name prefix+key and
// RENAME it to its own name once complete, so that it appears at once and
// whole: a key written in chunks is never seen half built, and two writers
// loading the same key name concurrently (two sources) end with one's
// value, never a mix of both.
func WithStaging(prefix []byte) WriterOption {
	return func(w *CommandWriter) { w.staging = prefix }
}

// key is the name the current key is written under.
func (w *CommandWriter) key(k *KeyMeta) []byte {
	if w.staging == nil {
		return k.Key
	}
	return w.staged
}

// WriterOption configures a CommandWriter.
type WriterOption func(*CommandWriter)

// WithReplaceKeys makes the writer emit DEL key before each key, so a key
// that already exists in the destination is replaced rather than merged
// into (RPUSH/SADD/... would add to it).
func WithReplaceKeys() WriterOption {
	return func(w *CommandWriter) { w.replace = true }
}

// WithLuaScripts controls whether "lua" AUX fields become SCRIPT LOAD
// (default true).
func WithLuaScripts(on bool) WriterOption {
	return func(w *CommandWriter) { w.scripts = on }
}

// NewCommandWriter returns a Handler that emits commands through emit.
func NewCommandWriter(emit func(cmd [][]byte) error, opts ...WriterOption) *CommandWriter {
	w := &CommandWriter{emit: emit, db: -1, scripts: true}
	for _, o := range opts {
		o(w)
	}
	return w
}

var _ Handler = (*CommandWriter)(nil)

// Literal command words, shared so building a command allocates nothing.
var (
	wSET         = []byte("SET")
	wAPPEND      = []byte("APPEND")
	wSELECT      = []byte("SELECT")
	wDEL         = []byte("DEL")
	wRPUSH       = []byte("RPUSH")
	wSADD        = []byte("SADD")
	wZADD        = []byte("ZADD")
	wHSET        = []byte("HSET")
	wHPEXPIREAT  = []byte("HPEXPIREAT")
	wFIELDS      = []byte("FIELDS")
	wXADD        = []byte("XADD")
	wXSETID      = []byte("XSETID")
	wENTRIESADD  = []byte("ENTRIESADDED")
	wMAXDELID    = []byte("MAXDELETEDID")
	wXGROUP      = []byte("XGROUP")
	wCREATE      = []byte("CREATE")
	wDESTROY     = []byte("DESTROY")
	wMKSTREAM    = []byte("MKSTREAM")
	wENTRIESREAD = []byte("ENTRIESREAD")
	wCREATECONS  = []byte("CREATECONSUMER")
	wXCLAIM      = []byte("XCLAIM")
	wTIME        = []byte("TIME")
	wRETRYCOUNT  = []byte("RETRYCOUNT")
	wFORCE       = []byte("FORCE")
	wJUSTID      = []byte("JUSTID")
	wPEXPIREAT   = []byte("PEXPIREAT")
	wFUNCTION    = []byte("FUNCTION")
	wLOAD        = []byte("LOAD")
	wREPLACE     = []byte("REPLACE")
	wSCRIPT      = []byte("SCRIPT")
	wRESTORE     = []byte("RESTORE")
	wRENAME      = []byte("RENAME")
	wXDEL        = []byte("XDEL")
	wABSTTL      = []byte("ABSTTL")
	wZero        = []byte("0")
	wTmpGroup    = []byte("__rdb_replay_tmp_group__")
)

// start begins a new command; numbers formatted for the previous one are
// no longer referenced once it has been emitted.
func (w *CommandWriter) start(words ...[]byte) {
	w.args = append(w.args[:0], words...)
	w.num = w.num[:0]
}

// Numbers are appended to w.num and referenced by sub-slices. If append has
// to reallocate, the earlier sub-slices keep pointing at the old array,
// which is never written again, so they stay valid.
func (w *CommandWriter) int(v int64) []byte {
	s := len(w.num)
	w.num = strconv.AppendInt(w.num, v, 10)
	return w.num[s:len(w.num):len(w.num)]
}

func (w *CommandWriter) uint(v uint64) []byte {
	s := len(w.num)
	w.num = strconv.AppendUint(w.num, v, 10)
	return w.num[s:len(w.num):len(w.num)]
}

func (w *CommandWriter) id(id StreamID) []byte {
	s := len(w.num)
	w.num = id.appendTo(w.num)
	return w.num[s:len(w.num):len(w.num)]
}

func (w *CommandWriter) score(f float64) []byte {
	s := len(w.num)
	w.num = appendScore(w.num, f)
	return w.num[s:len(w.num):len(w.num)]
}

// appendScore formats a score so that Redis parses back the exact same
// double: the shortest representation that round-trips, and Redis's
// spelling of infinities.
func appendScore(b []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(b, "inf"...)
	case math.IsInf(f, -1):
		return append(b, "-inf"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

func (w *CommandWriter) send() error {
	return w.emit(w.args)
}

func (w *CommandWriter) Aux(key, value []byte) error {
	if w.scripts && string(key) == "lua" {
		w.start(wSCRIPT, wLOAD, value)
		return w.send()
	}
	return nil
}

func (w *CommandWriter) SelectDB(db int) error                         { return nil }
func (w *CommandWriter) ResizeDB(dbSize, expiresSize uint64) error     { return nil }
func (w *CommandWriter) SlotInfo(slot, size, expiresSize uint64) error { return nil }

func (w *CommandWriter) Function(code []byte) error {
	w.start(wFUNCTION, wLOAD, wREPLACE, code)
	return w.send()
}

func (w *CommandWriter) BeginKey(k *KeyMeta) error {
	w.wrote, w.added = false, 0
	if k.DB != w.db {
		w.start(wSELECT)
		w.args = append(w.args, w.int(int64(k.DB)))
		if err := w.send(); err != nil {
			return err
		}
		w.db = k.DB
	}
	if w.staging != nil {
		w.staged = append(append(w.staged[:0], w.staging...), k.Key...)
	}
	w.deleted = w.deleted[:0]
	if w.replace {
		w.start(wDEL, w.key(k))
		return w.send()
	}
	return nil
}

func (w *CommandWriter) StringPart(k *KeyMeta, part []byte, last bool) error {
	if w.wrote {
		w.start(wAPPEND, w.key(k), part)
	} else {
		w.start(wSET, w.key(k), part)
	}
	w.wrote = true
	return w.send()
}

func (w *CommandWriter) ListChunk(k *KeyMeta, elems [][]byte) error {
	return w.multi(wRPUSH, k, elems)
}

func (w *CommandWriter) SetChunk(k *KeyMeta, members [][]byte) error {
	return w.multi(wSADD, k, members)
}

func (w *CommandWriter) multi(cmd []byte, k *KeyMeta, elems [][]byte) error {
	if len(elems) == 0 {
		return nil
	}
	w.start(cmd, w.key(k))
	w.args = append(w.args, elems...)
	w.wrote = true
	return w.send()
}

func (w *CommandWriter) ZSetChunk(k *KeyMeta, members []ZMember) error {
	if len(members) == 0 {
		return nil
	}
	w.start(wZADD, w.key(k))
	for _, m := range members {
		if math.IsNaN(m.Score) {
			return fmt.Errorf("zset %s member %q: score is NaN, which Redis does not accept", quoteKey(k.Key), m.Member)
		}
		w.args = append(w.args, w.score(m.Score), m.Member)
	}
	w.wrote = true
	return w.send()
}

func (w *CommandWriter) HashChunk(k *KeyMeta, fields []HashField) error {
	if len(fields) == 0 {
		return nil
	}
	w.start(wHSET, w.key(k))
	for _, f := range fields {
		w.args = append(w.args, f.Field, f.Value)
	}
	w.wrote = true
	if err := w.send(); err != nil {
		return err
	}
	// Field expiries, one HPEXPIREAT per run of equal expiry times (Redis
	// keeps listpack fields sorted by expiry, so runs are common).
	for i := 0; i < len(fields); {
		ms := fields[i].ExpireAtMs
		j := i + 1
		for j < len(fields) && fields[j].ExpireAtMs == ms {
			j++
		}
		if ms != 0 {
			w.start(wHPEXPIREAT, w.key(k))
			w.args = append(w.args, w.int(ms), wFIELDS, w.int(int64(j-i)))
			for _, f := range fields[i:j] {
				w.args = append(w.args, f.Field)
			}
			if err := w.send(); err != nil {
				return err
			}
		}
		i = j
	}
	return nil
}

func (w *CommandWriter) StreamEntries(k *KeyMeta, entries []StreamEntry) error {
	for _, e := range entries {
		if e.Deleted {
			// Written too, and deleted once the pending entries are
			// claimed (EndKey): XCLAIM only takes an ID the stream holds,
			// and a consumer group may still have this one pending.
			if len(e.Fields) == 0 || len(e.Fields)%2 != 0 {
				continue
			}
			w.deleted = append(w.deleted, e.ID)
		}
		if len(e.Fields) == 0 || len(e.Fields)%2 != 0 {
			return fmt.Errorf("stream %s entry %s: %d field names and values cannot be written with XADD", quoteKey(k.Key), e.ID, len(e.Fields))
		}
		w.start(wXADD, w.key(k))
		w.args = append(w.args, w.id(e.ID))
		w.args = append(w.args, e.Fields...)
		if err := w.send(); err != nil {
			return err
		}
		w.added++
	}
	w.wrote = true
	return nil
}

func (w *CommandWriter) StreamMeta(k *KeyMeta, m *StreamMeta) error {
	w.wrote = true
	if w.added == 0 {
		// Every entry was deleted (or there never was one): make the key
		// exist with a throwaway group, as XSETID needs an existing stream.
		w.start(wXGROUP, wCREATE, w.key(k), wTmpGroup, wZero, wMKSTREAM)
		if err := w.send(); err != nil {
			return err
		}
		w.start(wXGROUP, wDESTROY, w.key(k), wTmpGroup)
		if err := w.send(); err != nil {
			return err
		}
	}
	w.start(wXSETID, w.key(k))
	w.args = append(w.args, w.id(m.LastID))
	if m.HasV2Fields {
		w.args = append(w.args, wENTRIESADD, w.uint(m.EntriesAdded), wMAXDELID, w.id(m.MaxDeletedID))
	}
	return w.send()
}

func (w *CommandWriter) StreamGroup(k *KeyMeta, g *StreamGroup) error {
	w.start(wXGROUP, wCREATE, w.key(k), g.Name)
	w.args = append(w.args, w.id(g.LastID))
	if g.EntriesRead >= 0 {
		w.args = append(w.args, wENTRIESREAD, w.int(g.EntriesRead))
	}
	return w.send()
}

func (w *CommandWriter) StreamConsumer(k *KeyMeta, group []byte, c *StreamConsumer) error {
	w.start(wXGROUP, wCREATECONS, w.key(k), group, c.Name)
	return w.send()
}

func (w *CommandWriter) StreamPending(k *KeyMeta, group, consumer []byte, pel []PendingEntry) error {
	// One XCLAIM per run of entries sharing delivery time and count.
	for i := 0; i < len(pel); {
		j := i + 1
		for j < len(pel) && pel[j].DeliveryTimeMs == pel[i].DeliveryTimeMs && pel[j].DeliveryCount == pel[i].DeliveryCount {
			j++
		}
		w.start(wXCLAIM, w.key(k), group, consumer, wZero)
		for _, p := range pel[i:j] {
			w.args = append(w.args, w.id(p.ID))
		}
		count := int64(min(pel[i].DeliveryCount, math.MaxInt64))
		w.args = append(w.args, wTIME, w.int(pel[i].DeliveryTimeMs), wRETRYCOUNT, w.int(count), wFORCE, wJUSTID)
		if err := w.send(); err != nil {
			return err
		}
		i = j
	}
	return nil
}

func (w *CommandWriter) EndKey(k *KeyMeta) error {
	if !w.wrote {
		return nil
	}
	for len(w.deleted) > 0 {
		n := min(len(w.deleted), 1000)
		w.start(wXDEL, w.key(k))
		for _, id := range w.deleted[:n] {
			w.args = append(w.args, w.id(id))
		}
		if err := w.send(); err != nil {
			return err
		}
		w.deleted = w.deleted[n:]
	}
	w.deleted = w.deleted[:0]
	if w.staging != nil {
		// Renamed first, then given its expiry: a destination that
		// expires keys by itself (a sharded one) would delete a staged
		// key whose TTL passed during the load at its PEXPIREAT, and the
		// RENAME would then find nothing and fail the load.
		w.start(wRENAME, w.staged, k.Key)
		if err := w.send(); err != nil {
			return err
		}
	}
	if k.ExpireAtMs != 0 {
		w.start(wPEXPIREAT, k.Key)
		w.args = append(w.args, w.int(k.ExpireAtMs))
		return w.send()
	}
	return nil
}

// RawValue writes a whole key with RESTORE key ttl payload [REPLACE]
// [ABSTTL] (REPLACE with WithReplaceKeys; ABSTTL when it has an expiry).
// It is used when the Decoder has WithRawValues: Redis then loads the value
// as it loads an RDB, far cheaper than replaying it as commands.
func (w *CommandWriter) RawValue(k *KeyMeta, payload []byte) error {
	if k.DB != w.db {
		w.start(wSELECT)
		w.args = append(w.args, w.int(int64(k.DB)))
		if err := w.send(); err != nil {
			return err
		}
		w.db = k.DB
	}
	w.start(wRESTORE, k.Key)
	w.args = append(w.args, w.int(k.ExpireAtMs), payload)
	if w.replace {
		w.args = append(w.args, wREPLACE)
	}
	if k.ExpireAtMs != 0 {
		w.args = append(w.args, wABSTTL)
	}
	return w.send()
}
