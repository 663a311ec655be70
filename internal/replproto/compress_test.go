package replproto

import (
	"compress/flate"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// flushWriter is the compressor of a fake source: every send is flushed, as
// the gateway flushes every chunk it relays.
type flushWriter interface {
	io.Writer
	Flush() error
}

func (f *fakeSource) sendCompressed(w flushWriter, chunks ...string) {
	for _, c := range chunks {
		if _, err := w.Write([]byte(c)); err != nil {
			return
		}
		if err := w.Flush(); err != nil {
			return
		}
	}
}

// compressedHandshake plays the handshake's steps after the compression
// reply, compressed with w, and answers PSYNC with +CONTINUE.
func (f *fakeSource) compressedHandshake(w flushWriter) {
	f.expect("REPLCONF", "listening-port", "0")
	f.sendCompressed(w, "+OK\r\n")
	f.expect("REPLCONF", "capa", "eof", "capa", "psync2")
	f.sendCompressed(w, "+OK\r\n")
	f.expect("PSYNC", testReplID, "501")
	f.sendCompressed(w, "+CONTINUE\r\n")
}

// authPW plays PING answered NOAUTH, then AUTH "pw" answered +OK: the
// start of every compressed session in these tests.
func (f *fakeSource) authPW() {
	f.expect("PING")
	f.send("-NOAUTH Authentication required.\r\n")
	f.expect("AUTH", "pw")
	f.send("+OK\r\n")
}

// agreeZstd plays the compression request at level "+3" answered +ZSTD,
// after authPW, and returns the source's compressor (nil after errorf).
func (f *fakeSource) agreeZstd() *zstd.Encoder {
	f.authPW()
	f.expect("REPLICAD.COMPRESS", "+3")
	f.send("+ZSTD\r\n")
	zw, err := zstd.NewWriter(f.conn, zstd.WithEncoderConcurrency(1))
	if err != nil {
		f.errorf("zstd writer: %v", err)
		return nil
	}
	return zw
}

// A source that knows zstd reads the offer in the compression request (the
// level's plus sign, after AUTH: nothing is offered before) and answers
// +ZSTD; each flushed block is readable at once,
// without waiting for the next one (the stream would lag otherwise).
func TestCompressionNegotiatesZstd(t *testing.T) {
	f, c := newFakePair(t, Options{Password: "pw", Compression: 3})
	more := make(chan struct{})
	f.run(func() {
		zw := f.agreeZstd()
		if zw == nil {
			return
		}
		f.compressedHandshake(zw)
		f.sendCompressed(zw, cmd("SET", "a", "1"))
		<-more // nothing more until the replica has read the first command
		f.sendCompressed(zw, cmd("SET", "b", "2"))
	})
	ctx := context.Background()
	_, err := c.Handshake(ctx, testReplID, 500)
	require.NoError(t, err)
	assert.True(t, c.Compressed())
	assert.Equal(t, CodecZstd, c.Codec())
	got, err := c.ReadCommand(ctx)
	require.NoError(t, err)
	assert.Equal(t, "SET a 1", argsString(got.Args))
	close(more)
	got, err = c.ReadCommand(ctx)
	require.NoError(t, err)
	assert.Equal(t, "SET b 2", argsString(got.Args))
	assert.Equal(t, int64(500+len(cmd("SET", "a", "1"))+len(cmd("SET", "b", "2"))), got.Offset)
}

// A gateway that predates zstd reads the signed level as the level, and
// compresses with DEFLATE (+OK): the session works.
func TestCompressionFallsBackToDeflateWithAnOlderSource(t *testing.T) {
	f, c := newFakePair(t, Options{Password: "pw", Compression: 6})
	f.run(func() {
		f.authPW()
		f.expect("REPLICAD.COMPRESS", "+6")
		f.send("+OK\r\n")
		fw, _ := flate.NewWriter(f.conn, 6)
		f.compressedHandshake(fw)
		f.sendCompressed(fw, cmd("SET", "a", "1"))
	})
	ctx := context.Background()
	_, err := c.Handshake(ctx, testReplID, 500)
	require.NoError(t, err)
	assert.Equal(t, CodecDeflate, c.Codec())
	got, err := c.ReadCommand(ctx)
	require.NoError(t, err)
	assert.Equal(t, "SET a 1", argsString(got.Args))
}

// Without compression nothing new is sent: a plain source sees the handshake
// of a Redis replica.
func TestNoCodecsOfferWithoutCompression(t *testing.T) {
	f, c := newFakePair(t, Options{})
	f.run(func() {
		f.handshake([]string{"PSYNC", testReplID, "501"}, "+CONTINUE\r\n")
	})
	_, err := c.Handshake(context.Background(), testReplID, 500)
	require.NoError(t, err)
	assert.False(t, c.Compressed())
	assert.Empty(t, c.Codec())
}

// A source that answers +ZSTD to a replica that did not offer it (one that
// asks for DEFLATE, as an instance that predates zstd does) breaks the
// protocol: the handshake fails instead of decoding garbage.
func TestZstdNotOfferedIsAProtocolError(t *testing.T) {
	f, c := newFakePair(t, Options{Compression: 3, NoZstd: true})
	f.run(func() {
		f.expect("PING")
		f.send("+PONG\r\n")
		f.expect("REPLICAD.COMPRESS", "3")
		f.send("+ZSTD\r\n")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.Handshake(ctx, testReplID, 500)
	require.ErrorIs(t, err, ErrProtocol)
	assert.Contains(t, err.Error(), "zstd")
}

// A source that closes the connection instead of answering AUTH (a
// redis-replicad gateway throttling a burst of failed authentications from
// this address) is a connection error, retried: not wrong credentials,
// which stop the sync. The error says what may be going on.
func TestAuthClosedWithoutAnswerIsRetryable(t *testing.T) {
	f, c := newFakePair(t, Options{Password: "pw"})
	f.run(func() {
		f.expect("PING")
		f.send("-NOAUTH Authentication required.\r\n")
		f.expect("AUTH", "pw")
		f.conn.Close()
	})
	_, err := c.Handshake(context.Background(), testReplID, 500)
	require.Error(t, err)
	assert.False(t, errors.Is(err, ErrAuth), "%v", err)
	assert.True(t, IsRetryable(err), "%v", err)
	assert.Contains(t, err.Error(), "throttles failed authentications")
}

// A source that answers the compression request with a codec this side
// does not know (+LZ4), or with anything but a simple string, fails the
// handshake with an error that quotes the answer; its stream was read as
// DEFLATE and failed later as corrupt data.
func TestAnUnknownCodecIsRefusedAtTheHandshake(t *testing.T) {
	for _, reply := range []string{"+LZ4\r\n", ":1\r\n", "$4\r\nZSTD\r\n"} {
		t.Run(reply[:len(reply)-2], func(t *testing.T) {
			f, c := newFakePair(t, Options{Password: "pw", Compression: 3})
			f.run(func() {
				f.authPW()
				f.expect("REPLICAD.COMPRESS", "+3")
				f.send(reply)
			})
			_, err := c.Handshake(context.Background(), testReplID, 500)
			require.ErrorIs(t, err, ErrProtocol)
			assert.Contains(t, err.Error(), "names no codec this instance decodes")
			assert.False(t, c.Compressed())
		})
	}
}
