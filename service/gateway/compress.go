package gateway

import (
	"compress/flate"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Codecs of a compressed session.
const (
	codecDeflate = "deflate" // every destination decodes it: the first codec, kept for them
	codecZstd    = "zstd"
)

// ZstdWindow is the zstd window the gateway compresses with: what the
// destination must keep to decode (it refuses bigger ones), and what a
// session's compressor holds, twice over. Big enough to find what repeats
// from one key to the next.
const ZstdWindow = 1 << 20

// codecs are the codecs a client offered with CodecsCommand.
type codecs struct{ zstd bool }

// parseCodecs reads CodecsCommand's arguments; names it does not know are
// ignored (a newer client may offer more).
func parseCodecs(args [][]byte) codecs {
	var c codecs
	for _, a := range args {
		if strings.EqualFold(string(a), codecZstd) {
			c.zstd = true
		}
	}
	return c
}

// compression is what a session was asked: level 0 is none.
type compression struct {
	level int
	codec string
}

// compressor writes a compressed stream; Flush makes all that was written
// so far decodable at the other end.
type compressor interface {
	io.Writer
	flusher
}

// writer returns the compressor of the session over w.
func (c compression) writer(w io.Writer) (compressor, error) {
	switch c.codec {
	case codecZstd:
		// One goroutine (ours), no checksum: TCP and TLS already check
		// the bytes, and the stream never ends by itself.
		return zstd.NewWriter(w, zstd.WithEncoderLevel(ZstdLevel(c.level)), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(ZstdWindow), zstd.WithEncoderCRC(false))
	case codecDeflate:
		return flate.NewWriter(w, c.level)
	}
	return nil, fmt.Errorf("unknown codec %q", c.codec)
}

// ZstdLevel maps the API's compression level (1 to 6) to zstd's: 1 to 3 are
// zstd's fastest (its level 1), which compresses faster than loopback
// carries a full sync; 4 and 5 its default (level 3); 6 its better
// compression (about level 7). DEFLATE uses the level as it is.
func ZstdLevel(level int) zstd.EncoderLevel {
	switch {
	case level <= 3:
		return zstd.SpeedFastest
	case level <= 5:
		return zstd.SpeedDefault
	}
	return zstd.SpeedBetterCompression
}
