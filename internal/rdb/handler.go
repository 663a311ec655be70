package rdb

// Handler receives what the decoder finds, in payload order. Every []byte
// (and every slice of structs holding them) is only valid during the call:
// the decoder reuses its buffers, so a handler copies what it keeps.
//
// A key is delivered as BeginKey, then zero or more chunks of the call that
// matches its type, then EndKey. Collections arrive in chunks bounded by the
// decoder's limits (see WithChunkLimits), never as a whole. For a stream the
// sequence is StreamEntries chunks, StreamMeta, then for each consumer
// group: StreamGroup, and for each of its consumers StreamConsumer followed
// by StreamPending chunks.
//
// Returning an error stops decoding; Decode returns it wrapped.
type Handler interface {
	// Aux is an AUX field (redis-ver, ctime, repl-id, lua, ...).
	Aux(key, value []byte) error
	// SelectDB starts the keys of a logical database.
	SelectDB(db int) error
	// ResizeDB is the size hint for the current database.
	ResizeDB(dbSize, expiresSize uint64) error
	// SlotInfo is the per-slot size hint written by cluster nodes (Redis 7.4+).
	SlotInfo(slot, size, expiresSize uint64) error
	// Function is a function library (its FUNCTION LOAD source code).
	Function(code []byte) error

	BeginKey(k *KeyMeta) error
	// StringPart delivers a string value, in several parts when it is
	// bigger than the chunk byte limit; last is set on the final part. An
	// empty string is one empty part.
	StringPart(k *KeyMeta, part []byte, last bool) error
	ListChunk(k *KeyMeta, elems [][]byte) error
	SetChunk(k *KeyMeta, members [][]byte) error
	ZSetChunk(k *KeyMeta, members []ZMember) error
	HashChunk(k *KeyMeta, fields []HashField) error
	StreamEntries(k *KeyMeta, entries []StreamEntry) error
	StreamMeta(k *KeyMeta, m *StreamMeta) error
	StreamGroup(k *KeyMeta, g *StreamGroup) error
	StreamConsumer(k *KeyMeta, group []byte, c *StreamConsumer) error
	// StreamPending is a chunk of consumer's pending entries list in group.
	StreamPending(k *KeyMeta, group, consumer []byte, pel []PendingEntry) error
	EndKey(k *KeyMeta) error
}

// BaseHandler implements Handler by ignoring everything. Embed it to
// handle only some events; beware that whatever is not overridden is
// silently dropped.
type BaseHandler struct{}

var _ Handler = BaseHandler{}

func (BaseHandler) Aux(key, value []byte) error                           { return nil }
func (BaseHandler) SelectDB(db int) error                                 { return nil }
func (BaseHandler) ResizeDB(dbSize, expiresSize uint64) error             { return nil }
func (BaseHandler) SlotInfo(slot, size, expiresSize uint64) error         { return nil }
func (BaseHandler) Function(code []byte) error                            { return nil }
func (BaseHandler) BeginKey(k *KeyMeta) error                             { return nil }
func (BaseHandler) StringPart(k *KeyMeta, part []byte, last bool) error   { return nil }
func (BaseHandler) ListChunk(k *KeyMeta, elems [][]byte) error            { return nil }
func (BaseHandler) SetChunk(k *KeyMeta, members [][]byte) error           { return nil }
func (BaseHandler) ZSetChunk(k *KeyMeta, members []ZMember) error         { return nil }
func (BaseHandler) HashChunk(k *KeyMeta, fields []HashField) error        { return nil }
func (BaseHandler) StreamEntries(k *KeyMeta, entries []StreamEntry) error { return nil }
func (BaseHandler) StreamMeta(k *KeyMeta, m *StreamMeta) error            { return nil }
func (BaseHandler) StreamGroup(k *KeyMeta, g *StreamGroup) error          { return nil }
func (BaseHandler) StreamConsumer(k *KeyMeta, group []byte, c *StreamConsumer) error {
	return nil
}
func (BaseHandler) StreamPending(k *KeyMeta, group, consumer []byte, pel []PendingEntry) error {
	return nil
}
func (BaseHandler) EndKey(k *KeyMeta) error { return nil }

// RawHandler is a Handler that can also take a whole key in the format of
// DUMP (the value's RDB type byte and encoding, then the 2-byte RDB version
// and the CRC64 of all that), which RESTORE loads without decoding anything
// into commands. With WithRawValues, a key whose value fits the limit is
// delivered as one RawValue call instead of BeginKey, chunks and EndKey.
// payload is only valid during the call.
type RawHandler interface {
	Handler
	RawValue(k *KeyMeta, payload []byte) error
}

// RawBodyHandler is a RawHandler that takes whole values without the DUMP
// footer (an RDB file has none): RawBody gets the type byte and the value,
// and RawValue is not called. body is only valid during the call.
type RawBodyHandler interface {
	RawHandler
	RawBody(k *KeyMeta, body []byte) error
}

// RawStreamHandler is a RawBodyHandler that can take a whole value in
// pieces as it is read, instead of held until its end (see
// Decoder.decodeRawStream): RawStart with the key (its Encoding is the
// value's RDB type), RawPart with each piece of the value after the type
// byte, in order, RawEnd once the value was read whole and found valid. A
// value found invalid ends the decoding with an error, after some of its
// pieces went to the handler: the handler's output must then be dropped.
// StreamsRaw says whether the handler wants values that way.
type RawStreamHandler interface {
	RawBodyHandler
	StreamsRaw() bool
	RawStart(k *KeyMeta) (keep bool, err error)
	RawPart(p []byte) error
	RawEnd(k *KeyMeta) error
}
