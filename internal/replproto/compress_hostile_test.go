package replproto

import (
	"bytes"
	"compress/flate"
	"context"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/replcompress"
	"github.com/replicad/terraform-provider-redis/internal/resp"
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
				zw := f.agreeZstd()
				if zw == nil {
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

// zstdBlob is what a zstd stream of chunks looks like on the wire, each
// chunk flushed: a test compresses before it measures the replica's
// memory, so that the compressor's own allocations are not counted.
func zstdBlob(t *testing.T, chunks ...[]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, err := zstd.NewWriter(&b, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
	require.NoError(t, err)
	for _, c := range chunks {
		_, err := zw.Write(c)
		require.NoError(t, err)
		require.NoError(t, zw.Flush())
	}
	return b.Bytes()
}

// allocatedDuring is how many bytes the process allocated while f ran.
func allocatedDuring(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A compressed source that answers a handshake step with an enormous reply
// (here a million arrays of eight integers: 38 MB once decompressed, a few
// kilobytes on the wire, 700 MB as parsed values) is refused at the reply's
// first line, without holding it: a handshake reply is a short line.
func TestACompressedHandshakeReplyBombIsRefusedUnread(t *testing.T) {
	elem := []byte("*8\r\n" + strings.Repeat(":0\r\n", 8))
	bomb := append([]byte("*1048576\r\n"), bytes.Repeat(elem, 1<<20)...)
	blob := zstdBlob(t, bomb)
	t.Logf("%d bytes on the wire for %d decompressed", len(blob), len(bomb))
	f, c := newFakePair(t, Options{Password: "pw", Compression: 3})
	f.run(func() {
		f.authPW()
		f.expect("REPLICAD.COMPRESS", "+3")
		f.send("+ZSTD\r\n")
		f.expect("REPLCONF", "listening-port", "0")
		f.conn.Write(blob)
	})
	var err error
	alloc := allocatedDuring(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err = c.Handshake(ctx, testReplID, 500)
	})
	require.ErrorIs(t, err, ErrProtocol)
	assert.Contains(t, err.Error(), "array length 1048576 exceeds limit")
	assert.Less(t, alloc, uint64(32<<20), "the replica held the reply (%d MB allocated)", alloc>>20)
}

// A compressed stream whose command is bigger than MaxCommandBytes (a SET
// of 256 MiB: a few kilobytes on the wire) ends the session with an error
// that says so, before the value is held; commands within the limit are
// returned.
func TestACompressedCommandBombIsRefusedUnread(t *testing.T) {
	const size = 256 << 20
	head := []byte(cmd("SET", "small", "1") + "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$" + strconv.Itoa(size) + "\r\n")
	blob := zstdBlob(t, head, bytes.Repeat([]byte{'x'}, size), []byte("\r\n"))
	f, c := newFakePair(t, Options{Password: "pw", Compression: 3, MaxCommandBytes: 64 << 20})
	f.run(func() {
		zw := f.agreeZstd()
		if zw == nil {
			return
		}
		f.compressedHandshake(zw)
		// A new frame: the destination reads frames one after the other.
		zw.Close()
		f.conn.Write(blob)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := c.Handshake(ctx, testReplID, 500)
	require.NoError(t, err)
	got, err := c.ReadCommand(ctx)
	require.NoError(t, err)
	assert.Equal(t, "SET small 1", argsString(got.Args))
	alloc := allocatedDuring(func() { _, err = c.ReadCommand(ctx) })
	require.ErrorIs(t, err, resp.ErrCommandTooBig)
	assert.Contains(t, err.Error(), "exceed 67108864 bytes")
	assert.Less(t, alloc, uint64(32<<20), "the replica held the value (%d MB allocated)", alloc>>20)
}

// A compressed stream that does not decode is told apart from a link that
// is cut: its error is a protocol error wrapping replcompress.ErrCorrupt
// that names the codec, while a stream cut in the middle of a frame is a
// connection error, as any cut link.
func TestCorruptCompressedStreamsAreToldFromCutLinks(t *testing.T) {
	for name, tc := range map[string]struct {
		codec   string
		tail    []byte
		corrupt bool
	}{
		"zstd reserved block type": {CodecZstd, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, true},
		// A new frame announcing a 1 TiB window.
		"zstd window bomb":    {CodecZstd, []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf0, 0, 0, 0}, true},
		"zstd cut":            {CodecZstd, []byte{0x28, 0xb5, 0x2f}, false},
		"deflate bad block":   {CodecDeflate, []byte{0xff, 0xff, 0xff, 0xff}, true},
		"deflate final block": {CodecDeflate, []byte{0x03, 0x00}, true},  // an empty final block: the stream may not end
		"deflate cut":         {CodecDeflate, []byte{0x00, 0x05}, false}, // a stored block's header, cut
	} {
		t.Run(name, func(t *testing.T) {
			f, c := newFakePair(t, Options{Password: "pw", Compression: 3, NoZstd: tc.codec == CodecDeflate})
			f.run(func() {
				f.authPW()
				var w flushWriter
				var closeW func()
				if tc.codec == CodecZstd {
					f.expect("REPLICAD.COMPRESS", "+3")
					f.send("+ZSTD\r\n")
					zw, err := zstd.NewWriter(f.conn, zstd.WithEncoderConcurrency(1))
					if err != nil {
						f.errorf("zstd writer: %v", err)
						return
					}
					w, closeW = zw, func() { zw.Close() }
				} else {
					f.expect("REPLICAD.COMPRESS", "3")
					f.send("+OK\r\n")
					fw, err := flate.NewWriter(f.conn, 3)
					if err != nil {
						f.errorf("flate writer: %v", err)
						return
					}
					w, closeW = fw, func() {}
				}
				f.compressedHandshake(w)
				f.sendCompressed(w, cmd("SET", "a", "1"))
				if tc.codec == CodecZstd {
					closeW() // the frame ends; what follows is read as the next one
				}
				f.conn.Write(tc.tail)
				f.conn.Close()
			})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := c.Handshake(ctx, testReplID, 500)
			require.NoError(t, err)
			got, err := c.ReadCommand(ctx)
			require.NoError(t, err)
			assert.Equal(t, "SET a 1", argsString(got.Args), "what decoded before the damage is returned")
			_, err = c.ReadCommand(ctx)
			require.Error(t, err)
			require.NoError(t, ctx.Err(), "the error came from the stream, not from the test's deadline")
			if tc.corrupt {
				assert.ErrorIs(t, err, replcompress.ErrCorrupt)
				assert.ErrorIs(t, err, ErrProtocol)
				assert.Contains(t, err.Error(), "("+tc.codec+")")
			} else {
				assert.NotErrorIs(t, err, replcompress.ErrCorrupt)
				assert.ErrorIs(t, err, ErrConn)
			}
			t.Log(err)
		})
	}
}

// An enormous answer to the compression request (a bulk string of 100 MiB)
// is refused at its length, before its bytes are read.
func TestAnEnormousAnswerToTheCompressionRequestIsRefusedUnread(t *testing.T) {
	f, c := newFakePair(t, Options{Password: "pw", Compression: 3})
	var sent atomic.Int64
	f.run(func() {
		f.authPW()
		f.expect("REPLICAD.COMPRESS", "+3")
		f.send("$104857600\r\n")
		chunk := bytes.Repeat([]byte{'z'}, 1<<20)
		for range 100 {
			if _, err := f.conn.Write(chunk); err != nil {
				return
			}
			sent.Add(int64(len(chunk)))
		}
	})
	_, err := c.Handshake(context.Background(), testReplID, 500)
	require.ErrorIs(t, err, ErrProtocol)
	assert.Contains(t, err.Error(), "bulk length 104857600 exceeds limit")
	assert.Less(t, sent.Load(), int64(8<<20), "the destination read the answer")
}
