// Package rdb decodes Redis RDB payloads (RDB versions 9 to 12: Redis 6.0
// to 7.4) as a stream, and turns them into Redis commands.
//
// It is written for replication: a replica receives the RDB payload of a
// full resync (PSYNC) on a socket and must write it into another Redis as
// commands, without staging it on disk and whatever the size of the
// biggest key.
//
// # API
//
//	func NewDecoder(r io.Reader, opts ...Option) *Decoder
//	func (d *Decoder) Decode(ctx context.Context, h Handler) error
//	func (d *Decoder) Version() int
//	func (d *Decoder) Offset() int64
//
//	type Handler interface { Aux, SelectDB, ResizeDB, SlotInfo, Function,
//	    BeginKey, StringPart, ListChunk, SetChunk, ZSetChunk, HashChunk,
//	    StreamEntries, StreamMeta, StreamGroup, StreamConsumer, StreamPending,
//	    EndKey }
//
//	func NewCommandWriter(emit func(cmd [][]byte) error, opts ...WriterOption) *CommandWriter
//
// Decode calls the Handler in payload order; every key is BeginKey, chunks,
// EndKey, with a KeyMeta giving its database, name, expiry (absolute ms, 0
// for none) and type. CommandWriter is the Handler that produces commands
// (SET/APPEND, RPUSH, SADD, ZADD, HSET + HPEXPIREAT, XADD/XSETID/XGROUP/
// XCLAIM, PEXPIREAT, SELECT, FUNCTION LOAD); see its documentation for the
// exact mapping.
//
// # Memory
//
// The decoder holds at most one chunk of a collection: by default 512
// elements or about 1 MiB (WithChunkLimits), whatever the collection's size
// and encoding. Big string values are delivered in parts of the chunk byte
// size (CommandWriter turns them into SET then APPEND). What is held whole:
// a single collection element, one encoded blob (a listpack, ziplist or
// intset: Redis keeps them to a few KiB by its *-max-listpack-* settings),
// an LZF-compressed string once decompressed, and, for a stream consumer
// group, its pending entries list (40 bytes per entry), because the format
// stores delivery times in the group PEL before it says which consumer owns
// each entry. Lengths are never trusted for allocation: buffers grow with
// the bytes actually read, and strings longer than WithMaxStringSize
// (512 MiB by default, Redis's own limit) are errors.
//
// # Raw values
//
// With WithRawValues(limit, maxVersion) and a Handler that implements
// RawHandler (CommandWriter does), a key whose encoded value takes at most
// limit bytes is handed over whole, as the payload DUMP would produce for
// it, instead of in chunks; CommandWriter writes it with RESTORE, which the
// target loads as cheaply as an RDB. Only payloads whose RDB version the
// target reads (maxVersion) qualify. The value is recorded while it is
// decoded (so it is still checked); one that outgrows the limit is decoded
// again from the recorded bytes and delivered in chunks as usual, so memory
// stays bounded by the limit plus a chunk.
//
// # Reading exactly the payload
//
// After a full resync the master keeps sending the replication stream on
// the same connection, so Decode reads nothing past the payload's end (the
// EOF opcode and its 8 checksum bytes). It can only guarantee that for the
// reader it reads from: pass your own *bufio.Reader, which Decode uses as
// is and leaves positioned right after the payload; any other io.Reader is
// wrapped in a new bufio.Reader that may read ahead. (Diskless transfers end
// with the 40-byte $EOF mark after the payload, which is the caller's to
// read, as is the $<length> or $EOF: line before it.)
//
// # Errors
//
// A truncated or corrupt payload is an error wrapping io.ErrUnexpectedEOF
// or ErrCorrupt, with the offset and what was being decoded ("decode zset
// \"key\": ..."), never a panic. A checksum mismatch is ErrChecksum; it can
// only be detected at the end, after the handler has seen the data. Content
// that has no command equivalent stops decoding with an error wrapping
// ErrUnsupported: module values (an *UnsupportedTypeError naming the key
// and module), non-empty module AUX data, the Redis 7.0 RC function format;
// a value type this package does not know is an *UnsupportedTypeError
// naming the key and type number. Nothing is skipped silently. The context
// is checked between keys and chunks.
package rdb
