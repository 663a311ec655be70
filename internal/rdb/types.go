package rdb

import (
	"fmt"
	"strconv"
)

// Type is the logical Redis type of a key, whatever its RDB encoding.
type Type uint8

// Logical key types.
const (
	TypeString Type = iota + 1
	TypeList
	TypeSet
	TypeZSet
	TypeHash
	TypeStream
	TypeModule
)

func (t Type) String() string {
	switch t {
	case TypeString:
		return "string"
	case TypeList:
		return "list"
	case TypeSet:
		return "set"
	case TypeZSet:
		return "zset"
	case TypeHash:
		return "hash"
	case TypeStream:
		return "stream"
	case TypeModule:
		return "module"
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// RDB value type bytes (Redis rdb.h, up to Redis 7.4 / RDB 12).
const (
	rdbTypeString             = 0
	rdbTypeList               = 1
	rdbTypeSet                = 2
	rdbTypeZSet               = 3
	rdbTypeHash               = 4
	rdbTypeZSet2              = 5
	rdbTypeModulePreGA        = 6
	rdbTypeModule2            = 7
	rdbTypeHashZipmap         = 9
	rdbTypeListZiplist        = 10
	rdbTypeSetIntset          = 11
	rdbTypeZSetZiplist        = 12
	rdbTypeHashZiplist        = 13
	rdbTypeListQuicklist      = 14
	rdbTypeStreamListpacks    = 15
	rdbTypeHashListpack       = 16
	rdbTypeZSetListpack       = 17
	rdbTypeListQuicklist2     = 18
	rdbTypeStreamListpacks2   = 19
	rdbTypeSetListpack        = 20
	rdbTypeStreamListpacks3   = 21
	rdbTypeHashMetadataPreGA  = 22
	rdbTypeHashListpackExPreG = 23
	rdbTypeHashMetadata       = 24
	rdbTypeHashListpackEx     = 25
)

// RDB opcodes: bytes in the type position that are not keys.
const (
	opSlotInfo       = 244
	opFunction2      = 245
	opFunctionPreGA  = 246
	opModuleAux      = 247
	opIdle           = 248
	opFreq           = 249
	opAux            = 250
	opResizeDB       = 251
	opExpireTimeMs   = 252
	opExpireTime     = 253
	opSelectDB       = 254
	opEOF            = 255
	moduleOpcodeEOF  = 0
	moduleOpcodeUint = 2
)

// typeOf maps an RDB value type byte to its logical type.
func typeOf(b byte) (Type, bool) {
	switch b {
	case rdbTypeString:
		return TypeString, true
	case rdbTypeList, rdbTypeListZiplist, rdbTypeListQuicklist, rdbTypeListQuicklist2:
		return TypeList, true
	case rdbTypeSet, rdbTypeSetIntset, rdbTypeSetListpack:
		return TypeSet, true
	case rdbTypeZSet, rdbTypeZSet2, rdbTypeZSetZiplist, rdbTypeZSetListpack:
		return TypeZSet, true
	case rdbTypeHash, rdbTypeHashZipmap, rdbTypeHashZiplist, rdbTypeHashListpack,
		rdbTypeHashMetadataPreGA, rdbTypeHashListpackExPreG, rdbTypeHashMetadata, rdbTypeHashListpackEx:
		return TypeHash, true
	case rdbTypeStreamListpacks, rdbTypeStreamListpacks2, rdbTypeStreamListpacks3:
		return TypeStream, true
	case rdbTypeModulePreGA, rdbTypeModule2:
		return TypeModule, true
	}
	return 0, false
}

// KeyMeta describes the key being decoded. The decoder reuses it: a handler
// must copy Key if it keeps it past EndKey.
type KeyMeta struct {
	DB         int
	Key        []byte
	ExpireAtMs int64 // absolute Unix time in ms; 0 means no expiry
	Type       Type
	Encoding   byte  // RDB type byte as found in the payload (e.g. 18 for a quicklist list)
	IdleSec    int64 // LRU idle time from an IDLE opcode, -1 if absent
	Freq       int   // LFU counter from a FREQ opcode, -1 if absent
}

// ZMember is one sorted-set member.
type ZMember struct {
	Member []byte
	Score  float64
}

// HashField is one hash field. ExpireAtMs is the field's own expiry
// (Redis 7.4 hash field expiration), 0 when it has none.
type HashField struct {
	Field, Value []byte
	ExpireAtMs   int64
}

// StreamID is a stream entry ID, <ms>-<seq>.
type StreamID struct{ Ms, Seq uint64 }

func (id StreamID) String() string {
	return strconv.FormatUint(id.Ms, 10) + "-" + strconv.FormatUint(id.Seq, 10)
}

// appendTo appends the textual form of id to b.
func (id StreamID) appendTo(b []byte) []byte {
	b = strconv.AppendUint(b, id.Ms, 10)
	b = append(b, '-')
	return strconv.AppendUint(b, id.Seq, 10)
}

func (id StreamID) less(o StreamID) bool {
	return id.Ms < o.Ms || id.Ms == o.Ms && id.Seq < o.Seq
}

// StreamEntry is one stream entry. Fields alternates field names and
// values. Deleted entries (tombstones still present in the listpacks) are
// delivered with Deleted set so a handler can skip them.
type StreamEntry struct {
	ID      StreamID
	Fields  [][]byte
	Deleted bool
}

// StreamMeta is the stream-level state that follows the entries.
type StreamMeta struct {
	Length       uint64 // number of live entries
	LastID       StreamID
	HasV2Fields  bool // the fields below are only stored since RDB 10 (stream type 19+)
	FirstID      StreamID
	MaxDeletedID StreamID
	EntriesAdded uint64
}

// StreamGroup is a consumer group header.
type StreamGroup struct {
	Name        []byte
	LastID      StreamID
	EntriesRead int64 // -1 when unknown (before RDB 10, or invalid in the source)
}

// StreamConsumer is one consumer of a group.
type StreamConsumer struct {
	Name         []byte
	SeenTimeMs   int64
	ActiveTimeMs int64 // -1 when not stored (before stream type 21 / Redis 7.2)
}

// PendingEntry is one entry of a consumer's pending entries list.
type PendingEntry struct {
	ID             StreamID
	DeliveryTimeMs int64
	DeliveryCount  uint64
}

// UnsupportedTypeError reports a key whose value cannot be decoded into
// commands: module types, or a type byte this decoder does not know.
type UnsupportedTypeError struct {
	DB      int
	Key     []byte
	RDBType byte
	Module  string // module type name for module values, when known
}

func (e *UnsupportedTypeError) Error() string {
	switch {
	case e.Module != "":
		return fmt.Sprintf("key %s (db %d): module type %q (rdb type %d) needs its Redis module and cannot be replicated as commands",
			quoteKey(e.Key), e.DB, e.Module, e.RDBType)
	case e.RDBType == rdbTypeModulePreGA || e.RDBType == rdbTypeModule2:
		return fmt.Sprintf("key %s (db %d): module value (rdb type %d) cannot be replicated as commands",
			quoteKey(e.Key), e.DB, e.RDBType)
	}
	return fmt.Sprintf("key %s (db %d): unknown rdb value type %d", quoteKey(e.Key), e.DB, e.RDBType)
}

// quoteKey quotes a key for error messages, cutting very long keys so an
// error never carries megabytes of payload.
func quoteKey(k []byte) string {
	const max = 128
	if len(k) > max {
		return strconv.Quote(string(k[:max])) + "..."
	}
	return strconv.Quote(string(k))
}
