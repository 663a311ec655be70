package gateway

import "github.com/replicad/terraform-provider-redis/internal/replcompress"

// codecs are the codecs a client offered with CodecsCommand.
type codecs struct{ zstd bool }

// parseCodecs reads CodecsCommand's arguments.
func parseCodecs(args [][]byte) codecs { return codecs{zstd: replcompress.Offered(args)} }

// compression is what a session was asked: level 0 is none.
type compression struct {
	level int
	codec string // replcompress.Zstd or replcompress.Deflate
}
