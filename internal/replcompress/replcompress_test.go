package replcompress_test

import (
	"bufio"
	"bytes"
	"io"
	"testing"

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
	for _, ok := range []string{"1", "6"} {
		_, err := replcompress.ParseLevel([]byte(ok))
		assert.NoError(t, err, ok)
	}
	for _, bad := range []string{"0", "7", "-1", "x", ""} {
		_, err := replcompress.ParseLevel([]byte(bad))
		assert.Error(t, err, bad)
	}
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
		level, err := replcompress.ParseLevel(arg)
		if err == nil && (level < replcompress.MinLevel || level > replcompress.MaxLevel) {
			t.Fatalf("level %d accepted from %q", level, arg)
		}
	})
}
