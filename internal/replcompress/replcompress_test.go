package replcompress_test

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/replcompress"
)

func TestRoundTripWithFlushedChunks(t *testing.T) {
	var wire bytes.Buffer
	w, err := replcompress.NewWriter(&wire, 3)
	require.NoError(t, err)
	r := replcompress.NewReader(bufio.NewReader(&wire))
	for _, chunk := range []string{"+FULLRESYNC abc 0\r\n", "$5\r\nhello\r\n", ""} {
		_, err := io.WriteString(w, chunk)
		require.NoError(t, err)
		require.NoError(t, w.Flush())
		got := make([]byte, len(chunk))
		_, err = io.ReadFull(r, got)
		require.NoError(t, err, "a flushed chunk is readable at once")
		assert.Equal(t, chunk, string(got))
	}
}

func TestLevels(t *testing.T) {
	for _, ok := range []string{"1", "6", "+1", "+6"} {
		level, zstd, err := replcompress.ParseLevel([]byte(ok))
		assert.NoError(t, err, ok)
		assert.Equal(t, ok[0] == '+', zstd, "%s offers zstd", ok)
		assert.Equal(t, int(ok[len(ok)-1]-'0'), level)
	}
	for _, bad := range []string{"0", "7", "-1", "x", "", "+", "+0", "++3", "+7"} {
		_, _, err := replcompress.ParseLevel([]byte(bad))
		assert.Error(t, err, bad)
	}
	assert.Equal(t, []string{"REPLICAD.COMPRESS", "3"}, replcompress.Request(3, false))
	assert.Equal(t, []string{"REPLICAD.COMPRESS", "+3"}, replcompress.Request(3, true))
	assert.NoError(t, replcompress.CheckLevel(0))
	assert.Error(t, replcompress.CheckLevel(7))
	assert.True(t, replcompress.Refused("ERR unknown command 'REPLICAD.COMPRESS', with args beginning with: '3'"))
	assert.False(t, replcompress.Refused("ERR compression level must be 1 to 6"))
}

// FuzzParseLevel: any argument is a level in range or an error.
func FuzzParseLevel(f *testing.F) {
	for _, s := range []string{"1", "6", "0", "7", "-1", "", "x", "99999999999999999999"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, arg []byte) {
		level, _, err := replcompress.ParseLevel(arg)
		if err == nil && (level < replcompress.MinLevel || level > replcompress.MaxLevel) {
			t.Fatalf("level %d accepted from %q", level, arg)
		}
	})
}

// Both codecs carry flushed chunks that are readable at once, and a zstd
// stream at every level decodes to what was written.
func TestCodecsRoundTrip(t *testing.T) {
	for _, codec := range []string{replcompress.Zstd, replcompress.Deflate} {
		for _, level := range []int{1, 3, 4, 6} {
			pr, pw := io.Pipe()
			w, err := replcompress.NewCompressor(pw, codec, level)
			require.NoError(t, err)
			r, err := replcompress.NewDecompressor(bufio.NewReader(pr), codec)
			require.NoError(t, err)
			for _, chunk := range []string{"+FULLRESYNC abc 0\r\n", strings.Repeat(`{"sku":42,"qty":3}`, 5000), "$5\r\nhello\r\n"} {
				written := make(chan error, 1)
				go func() {
					_, err := io.WriteString(w, chunk)
					if err == nil {
						err = w.Flush()
					}
					written <- err
				}()
				got := make([]byte, len(chunk))
				_, err = io.ReadFull(r, got)
				require.NoError(t, err, "%s level %d: a flushed chunk is readable at once", codec, level)
				assert.Equal(t, chunk, string(got))
				require.NoError(t, <-written)
			}
			pw.Close()
		}
	}
}

func TestCodecNegotiation(t *testing.T) {
	assert.Equal(t, replcompress.Zstd, replcompress.CodecOfReply(replcompress.Reply(replcompress.Zstd)))
	assert.Equal(t, replcompress.Deflate, replcompress.CodecOfReply(replcompress.Reply(replcompress.Deflate)))
	assert.Equal(t, "OK", replcompress.Reply(replcompress.Deflate), "an older destination reads +OK")
	assert.Empty(t, replcompress.CodecOfReply("LZ4"), "an answer that names no known codec is none")
	assert.Equal(t, zstd.SpeedFastest, replcompress.ZstdLevel(1))
	assert.Equal(t, zstd.SpeedFastest, replcompress.ZstdLevel(3))
	assert.Equal(t, zstd.SpeedDefault, replcompress.ZstdLevel(4))
	assert.Equal(t, zstd.SpeedDefault, replcompress.ZstdLevel(5))
	assert.Equal(t, zstd.SpeedBetterCompression, replcompress.ZstdLevel(6))
}
