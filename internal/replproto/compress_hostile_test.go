package replproto

import (
	"context"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

// A compressed stream that turns corrupt, is cut in the middle of a frame,
// or announces a window bigger than a destination holds ends the session
// with an error, at once: no command of it is returned, nothing hangs, and
// no memory is taken for the announced window.
func TestHostileCompressedStreams(t *testing.T) {
	for name, tail := range map[string][]byte{
		"corrupt": []byte("\x28\xb5\x2f\xfd garbage that is no zstd block at all, none at all"),
		// A frame header announcing a 1 TiB window (exponent 30 + 10).
		"window bomb": {0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf0},
		"truncated":   {0x28, 0xb5, 0x2f},
	} {
		t.Run(name, func(t *testing.T) {
			f, c := newFakePair(t, Options{Password: "pw", Compression: 3})
			f.run(func() {
				f.expect("PING")
				f.send("-NOAUTH Authentication required.\r\n")
				f.expect("AUTH", "pw")
				f.send("+OK\r\n")
				f.expect("REPLICAD.COMPRESS", "+3")
				f.send("+ZSTD\r\n")
				zw, err := zstd.NewWriter(f.conn, zstd.WithEncoderConcurrency(1))
				if err != nil {
					f.errorf("zstd writer: %v", err)
					return
				}
				f.compressedHandshake(zw)
				f.conn.Write(tail)
				f.conn.Close()
			})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := c.Handshake(ctx, testReplID, 500)
			require.NoError(t, err)
			_, err = c.ReadCommand(ctx)
			require.Error(t, err)
			require.NoError(t, ctx.Err(), "the error came from the stream, not from the test's deadline")
			t.Log(err)
		})
	}
}
