package rdb

// Option configures a Decoder.
type Option func(*options)

type options struct {
	maxElems  int   // elements per chunk
	maxBytes  int   // approximate bytes per chunk
	maxString int64 // largest single string accepted
	checksum  bool  // verify the trailing CRC64
	bufSize   int   // size of the bufio.Reader wrapped around a plain io.Reader

	rawLimit   int // values encoded in at most this many bytes go whole to a RawHandler; 0 = never
	rawVersion int // ... when the payload's RDB version is at most this
	piece      int // a value that streams goes on once this many bytes are checked (0: streamPiece)
	// maxStreamedEntries: a set, hash or sorted set that streams
	// (decodeRawStream) declaring more entries is refused (0 = no limit).
	maxStreamedEntries uint64
}

// Defaults. 512 MiB matches Redis's proto-max-bulk-len default: no valid
// string is longer, so a longer length can only be corruption.
const (
	DefaultChunkElems    = 512
	DefaultChunkBytes    = 1 << 20
	DefaultMaxStringSize = 512 << 20
	defaultBufSize       = 64 << 10
	maxSupportedVersion  = 12
)

func defaultOptions() options {
	return options{
		maxElems:  DefaultChunkElems,
		maxBytes:  DefaultChunkBytes,
		maxString: DefaultMaxStringSize,
		checksum:  true,
		bufSize:   defaultBufSize,
	}
}

// WithChunkLimits bounds each chunk handed to the Handler to at most
// maxElems elements and about maxBytes bytes (a chunk is closed as soon as
// it reaches maxBytes, so a single element bigger than maxBytes makes a
// chunk of its own). Values < 1 keep the defaults (512, 1 MiB). maxBytes
// also sets the size of the parts of big string values.
func WithChunkLimits(maxElems, maxBytes int) Option {
	return func(o *options) {
		if maxElems > 0 {
			o.maxElems = maxElems
		}
		if maxBytes > 0 {
			o.maxBytes = maxBytes
		}
	}
}

// WithMaxStringSize sets the longest string (value, element or encoded
// blob) accepted before the payload is declared corrupt. Default 512 MiB.
func WithMaxStringSize(n int64) Option {
	return func(o *options) {
		if n > 0 {
			o.maxString = n
		}
	}
}

// WithChecksum turns verification of the trailing CRC64 on (default) or off.
// The 8 checksum bytes are consumed either way.
func WithChecksum(verify bool) Option {
	return func(o *options) { o.checksum = verify }
}

// WithBufferSize sets the size of the bufio.Reader the decoder wraps around
// a reader that is not already a *bufio.Reader.
func WithBufferSize(n int) Option {
	return func(o *options) {
		if n >= 16 {
			o.bufSize = n
		}
	}
}

// WithRawValues makes the decoder hand every key whose encoded value takes
// at most limit bytes to the Handler's RawValue method (see RawHandler), as
// a DUMP payload that RESTORE accepts, instead of decoding it into chunks.
// It applies when the Handler implements RawHandler and the payload's RDB
// version is at most maxVersion: the newest version that the server which
// will RESTORE the payloads can read (RESTORE refuses newer ones). Bigger
// values, and every value of a newer payload, are decoded as usual; memory
// stays bounded by about limit plus the usual chunk.
//
// A raw value is still checked by decoding it in full before it is handed
// over, so corrupt payloads are reported the same way.
func WithRawValues(limit, maxVersion int) Option {
	return func(o *options) {
		if limit > 0 {
			o.rawLimit, o.rawVersion = limit, maxVersion
		}
	}
}

// WithMaxStreamedEntries refuses, with ErrTooBigToStream, to stream in
// pieces (RawStreamHandler) a set, hash or sorted set in its hash-table
// encoding that declares more than n entries. A server that loads such a
// value allocates a hash table for the declared count before it reads an
// entry (8 bytes a bucket), and the count goes on with the first piece,
// before the decoder has seen whether the value holds that many: a payload
// that declares billions of entries and sends a few makes the loading
// server take gigabytes. Such a value goes to the handler's other
// methods, which write the count of the entries actually read. n < 1
// means no limit.
func WithMaxStreamedEntries(n int64) Option {
	return func(o *options) {
		if n > 0 {
			o.maxStreamedEntries = uint64(n)
		}
	}
}

// withPiece makes values that stream go on in pieces of about n bytes (at
// their first safe point past n), to exercise the pieces in tests.
func withPiece(n int) Option { return func(o *options) { o.piece = n } }
