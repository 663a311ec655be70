package rdb

// Option configures a Decoder.
type Option func(*options)

type options struct {
	maxElems  int   // elements per chunk
	maxBytes  int   // approximate bytes per chunk
	maxString int64 // largest single string accepted
	checksum  bool  // verify the trailing CRC64
	bufSize   int   // size of the bufio.Reader wrapped around a plain io.Reader
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
