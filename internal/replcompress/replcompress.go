// Package replcompress is the compression extension of redis-replicad's
// replication endpoints, both sides: a destination sends
// "REPLICAD.COMPRESS <level>" right after AUTH; a replication endpoint that
// agrees answers and sends the rest of the session as one compressed
// stream, flushed after each chunk it relays. Any other source (a plain
// redis-server) answers "unknown command", and the session goes on
// uncompressed.
//
// The codec is negotiated after AUTH, in that one request: a destination
// that decodes zstd writes the level with a plus sign ("REPLICAD.COMPRESS
// +3"); an endpoint that knows zstd answers +ZSTD and the stream is zstd.
// An endpoint that predates zstd reads the signed level as the number it
// is (strconv.Atoi takes the sign) and answers +OK; a destination that
// predates zstd sends no sign: either way the stream is DEFLATE, as before.
// Nothing is negotiated before AUTH, where an endpoint answers every
// command but AUTH and QUIT with NOAUTH.
package replcompress

import (
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Command is the request, sent right after AUTH.
const Command = "REPLICAD.COMPRESS"

// Levels a session may ask for (DEFLATE's fast end: the stream is relayed
// live, and higher levels cost CPU for little gain on Redis data). 0 in a
// source's settings means no compression.
const (
	MinLevel = 1
	MaxLevel = 6
)

// CheckLevel says why level is not a valid setting for a source (0: none).
func CheckLevel(level int) error {
	if level < 0 || level > MaxLevel {
		return fmt.Errorf("compression %d is out of range 0-%d", level, MaxLevel)
	}
	return nil
}

// ParseLevel reads the level argument of a request, and whether it offers
// zstd (a plus sign before the level).
func ParseLevel(arg []byte) (level int, zstd bool, err error) {
	zstd = len(arg) > 0 && arg[0] == '+'
	level, err = strconv.Atoi(string(arg))
	if err != nil || level < MinLevel || level > MaxLevel {
		return 0, false, fmt.Errorf("compression level must be %d to %d", MinLevel, MaxLevel)
	}
	return level, zstd, nil
}

// Request is the command asking for level, as its arguments; offerZstd
// says the destination decodes zstd (the level is then signed).
func Request(level int, offerZstd bool) []string {
	arg := strconv.Itoa(level)
	if offerZstd {
		arg = "+" + arg
	}
	return []string{Command, arg}
}

// Refused says whether an error reply to the request means the source cannot
// compress at all (it does not know the command), as opposed to an error of
// a source that can (a bad level, say).
func Refused(reply string) bool {
	return strings.Contains(strings.ToLower(reply), "unknown command")
}

// NewWriter is the server side: what it writes after +OK is compressed;
// Flush ends each relayed chunk so that the destination gets it at once.
func NewWriter(w io.Writer, level int) (*flate.Writer, error) {
	return flate.NewWriter(w, level)
}

// NewReader is the client side: it decompresses what follows +OK. Give it a
// reader that is an io.ByteReader (a bufio.Reader), so that it reads nothing
// ahead of need.
func NewReader(r io.Reader) io.ReadCloser { return flate.NewReader(r) }

// Codecs of a compressed session.
const (
	Deflate = "deflate" // every destination decodes it
	Zstd    = "zstd"
)

// CodecsCommand is the offer of zstd that destinations of an earlier
// development version sent before AUTH. An endpoint answers it NOAUTH, as
// any command before AUTH: such a destination then asks for DEFLATE.
const CodecsCommand = "REPLICAD.CODECS"

// Reply is the endpoint's answer to the compression request for a codec:
// +ZSTD, or +OK for DEFLATE (what every destination understands).
func Reply(codec string) string {
	if codec == Zstd {
		return "ZSTD"
	}
	return "OK"
}

// CodecOfReply is the codec a destination reads after the reply (a
// simple string) to its compression request: +ZSTD, or +OK for DEFLATE.
// Any other answer names no codec this side decodes: "" (reading the
// stream as DEFLATE would only fail later, with a message about corrupt
// data instead of the answer).
func CodecOfReply(reply string) string {
	switch reply {
	case "ZSTD":
		return Zstd
	case "OK":
		return Deflate
	}
	return ""
}

// ZstdWindow is the window an endpoint compresses with: what a session's
// compressor keeps (twice over) and its destination must hold to decode.
// Big enough to find what repeats from one key to the next.
const ZstdWindow = 1 << 20

// MaxZstdWindow is the biggest window a destination accepts: a bound on
// the memory a source can make it hold.
const MaxZstdWindow = 8 << 20

// ZstdLevel maps a level (1 to 6) to zstd's: 1 to 3 are zstd's fastest
// (its level 1), which compresses faster than loopback carries a full
// sync; 4 and 5 its default (level 3); 6 its better compression (about
// level 7).
func ZstdLevel(level int) zstd.EncoderLevel {
	switch {
	case level <= 3:
		return zstd.SpeedFastest
	case level <= 5:
		return zstd.SpeedDefault
	}
	return zstd.SpeedBetterCompression
}

// Compressor is the server side of a session: what is written is
// compressed, and Flush makes it all decodable at the other end.
type Compressor interface {
	io.Writer
	Flush() error
}

// NewCompressor is the server side for codec at level.
func NewCompressor(w io.Writer, codec string, level int) (Compressor, error) {
	switch codec {
	case Zstd:
		// One goroutine (the caller's), no checksum: TCP and TLS already
		// check the bytes, and the stream never ends by itself.
		return zstd.NewWriter(w, zstd.WithEncoderLevel(ZstdLevel(level)), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(ZstdWindow), zstd.WithEncoderCRC(false))
	case Deflate:
		return NewWriter(w, level)
	}
	return nil, fmt.Errorf("unknown codec %q", codec)
}

// ErrCorrupt is wrapped by the error of a decompressor whose input does
// not decode (as opposed to input that ends, or fails to arrive, which
// the decompressor passes on as the network's error).
var ErrCorrupt = errors.New("the compressed stream does not decode")

// NewDecompressor is the client side for codec. r should be a bufio.Reader:
// DEFLATE then reads nothing ahead of need, and zstd reads whole blocks,
// which the source flushes one at a time. Its errors that come from the
// compressed bytes themselves wrap ErrCorrupt.
func NewDecompressor(r interface {
	io.Reader
	io.ByteReader
}, codec string) (io.Reader, error) {
	src := &inputReader{r: r, br: r}
	var dec io.Reader
	switch codec {
	case Zstd:
		// Synchronous (no goroutine to stop), with a bound on the window.
		zr, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(MaxZstdWindow))
		if err != nil {
			return nil, err
		}
		dec = zr
	case Deflate:
		dec = NewReader(src)
	default:
		return nil, fmt.Errorf("unknown codec %q", codec)
	}
	return &decoder{dec: dec, src: src, codec: codec}, nil
}

// inputReader passes the compressed bytes on and keeps the error of their
// reader, so that decoder can tell the two kinds of error apart. It is an
// io.ByteReader, so that DEFLATE reads nothing ahead of need.
type inputReader struct {
	r   io.Reader
	br  io.ByteReader
	err error
}

func (i *inputReader) Read(p []byte) (int, error) {
	n, err := i.r.Read(p)
	if err != nil {
		i.err = err
	}
	return n, err
}

func (i *inputReader) ReadByte() (byte, error) {
	b, err := i.br.ReadByte()
	if err != nil {
		i.err = err
	}
	return b, err
}

type decoder struct {
	dec   io.Reader
	src   *inputReader
	codec string
}

func (d *decoder) Read(p []byte) (int, error) {
	n, err := d.dec.Read(p)
	if err != nil && d.src.err == nil {
		// Nothing failed under the decompressor: its input is wrong
		// (corrupt, a window beyond the bound, or an end of stream where
		// the source must not end it).
		if err == io.EOF {
			return n, fmt.Errorf("%w (%s): it ends, which a source's stream never does", ErrCorrupt, d.codec)
		}
		err = fmt.Errorf("%w (%s): %w", ErrCorrupt, d.codec, err)
	}
	return n, err
}
