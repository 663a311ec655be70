package gateway

import (
	"bufio"
	"compress/flate"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/replcompress"
	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// compressedReplies reads what the gateway sends after the compression
// reply through the decoder of codec.
func compressedReplies(t *testing.T, c *client, codec string) *resp.Reader {
	t.Helper()
	// The reply to the compression request was read through c.rd's
	// buffer; nothing was sent after it, so the buffer is empty.
	var r io.Reader
	switch codec {
	case replcompress.Zstd:
		zr, err := zstd.NewReader(c.c, zstd.WithDecoderConcurrency(1))
		require.NoError(t, err)
		t.Cleanup(zr.Close)
		r = zr
	default:
		r = flate.NewReader(c.c)
	}
	return resp.NewReader(bufio.NewReader(r))
}

// A destination that offers zstd before AUTH gets it (+ZSTD), one that does
// not (an instance that predates zstd) gets DEFLATE (+OK), as before.
func TestCompressionCodecNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		offer []string // REPLICAD.CODECS arguments; nil = not sent
		reply string
		codec string
	}{
		{"zstd offered", []string{"zstd"}, "ZSTD", replcompress.Zstd},
		{"zstd offered among unknown codecs", []string{"brotli", "ZSTD"}, "ZSTD", replcompress.Zstd},
		{"older destination", nil, "OK", replcompress.Deflate},
		{"nothing it knows offered", []string{"lz4"}, "OK", replcompress.Deflate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, addr, _, _ := startGateway(t)
			c := dial(t, addr)
			if tc.offer != nil {
				v := c.do(append([]string{CodecsCommand}, tc.offer...)...)
				require.Equal(t, "OK", string(v.Str), "offer answered %s", v)
			}
			require.Equal(t, "OK", string(c.do("AUTH", "admin", "secret").Str))
			v := c.do(CompressCommand, "3")
			require.Equal(t, resp.SimpleString, v.Type, "compression refused: %s", v)
			assert.Equal(t, tc.reply, string(v.Str))
			_, err := c.c.Write(resp.AppendCommandStrings(nil, "PING"))
			require.NoError(t, err)
			got, err := compressedReplies(t, c, tc.codec).ReadValue()
			require.NoError(t, err, "the reply to PING decoded with %s", tc.codec)
			assert.Equal(t, "PONG", string(got.Str))
		})
	}
}

// The offer belongs before AUTH; after it, it is refused like any command
// that is not replication's, and the session goes on uncompressed.
func TestCodecsOfferAfterAuthIsRefused(t *testing.T) {
	_, addr, up, _ := startGateway(t)
	c := dial(t, addr)
	require.Equal(t, "OK", string(c.do("AUTH", "admin", "secret").Str))
	v := c.do(CodecsCommand, "zstd")
	require.True(t, v.IsError())
	assert.Contains(t, string(v.Str), "before AUTH")
	assert.Equal(t, "PONG", string(c.do("PING").Str))
	assert.NotContains(t, up.commands(), "REPLICAD.CODECS ZSTD", "the offer never reaches redis-server")
}
