package gateway

import (
	"bufio"
	"compress/flate"
	"io"
	"strings"
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

// A destination that offers zstd (the level's plus sign) gets it (+ZSTD),
// one that does not (an instance that predates zstd) gets DEFLATE (+OK), as
// before. So does a destination of an earlier development version, which
// offered zstd before AUTH: answered NOAUTH, it asks without the sign.
func TestCompressionCodecNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		preAuth bool // sends the offer of an earlier version before AUTH
		level   string
		reply   string
		codec   string
	}{
		{"zstd offered", false, "+3", "ZSTD", replcompress.Zstd},
		{"older destination", false, "3", "OK", replcompress.Deflate},
		{"destination that offered before AUTH", true, "3", "OK", replcompress.Deflate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, addr, _, _ := startGateway(t)
			c := dial(t, addr)
			if tc.preAuth {
				v := c.do(CodecsCommand, "zstd")
				require.True(t, v.IsError(), "offer answered %s", v)
				require.Contains(t, string(v.Str), "NOAUTH")
			}
			require.Equal(t, "OK", string(c.do("AUTH", "admin", "secret").Str))
			v := c.do(CompressCommand, tc.level)
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

// The old offer after AUTH is refused like any command that is not
// replication's, and the session goes on uncompressed.
func TestCodecsOfferAfterAuthIsRefused(t *testing.T) {
	_, addr, up, _ := startGateway(t)
	c := dial(t, addr)
	require.Equal(t, "OK", string(c.do("AUTH", "admin", "secret").Str))
	v := c.do(CodecsCommand, "zstd")
	require.True(t, v.IsError())
	assert.Contains(t, string(v.Str), "plus sign")
	assert.Equal(t, "PONG", string(c.do("PING").Str))
	assert.NotContains(t, up.commands(), "REPLICAD.CODECS ZSTD", "the offer never reaches redis-server")
}

// An unauthenticated client learns nothing from the codec offer: it is
// answered NOAUTH as any command before AUTH (it was answered +OK, which told
// a stranger that a redis-replicad endpoint of this version listens).
func TestCodecsOfferBeforeAuthIsNoAuth(t *testing.T) {
	_, addr, up, _ := startGateway(t)
	c := dial(t, addr)
	for _, offer := range [][]string{{CodecsCommand, "zstd"}, {CodecsCommand}, {strings.ToLower(CodecsCommand), "zstd", "lz4"}} {
		v := c.do(offer...)
		require.True(t, v.IsError(), "%v answered %s", offer, v)
		assert.Equal(t, "NOAUTH Authentication required.", string(v.Str), "%v", offer)
	}
	assert.Empty(t, up.commands(), "nothing reached redis-server")
}
