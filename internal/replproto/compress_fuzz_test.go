package replproto

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// compressedSession is what a compressing source sends after its reply to
// the compression request, for a handshake that continues at offset 500,
// then the stream: each reply and command flushed on its own, as the
// gateway flushes each chunk it relays.
func compressedSession(codec string, stream ...string) []byte {
	var b bytes.Buffer
	var w interface {
		io.Writer
		Flush() error
	}
	if codec == CodecZstd {
		zw, _ := zstd.NewWriter(&b, zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false))
		w = zw
	} else {
		fw, _ := flate.NewWriter(&b, 3)
		w = fw
	}
	for _, s := range append([]string{"+OK\r\n", "+OK\r\n", "+CONTINUE\r\n"}, stream...) {
		io.WriteString(w, s)
		w.Flush()
	}
	return b.Bytes()
}

// FuzzCompressedStream feeds a destination what follows a source's answer
// to the compression request: the compressed handshake replies and the
// stream. Whatever the bytes, the destination returns commands, then an
// error of the stream (not of the test's deadline), holds no command
// bigger than its MaxCommandBytes, and never panics. The first byte picks
// the codec. go test (with -short too) runs the seeds.
func FuzzCompressedStream(f *testing.F) {
	for _, codec := range []string{CodecZstd, CodecDeflate} {
		pick := byte(0)
		if codec == CodecDeflate {
			pick = 1
		}
		valid := compressedSession(codec, cmd("SET", "a", "1"), "*1\r\n$4\r\nPING\r\n", cmd("REPLCONF", "GETACK", "*"), cmd("INCR", "n"))
		f.Add(append([]byte{pick}, valid...))
		f.Add(append([]byte{pick}, valid[:len(valid)/2]...))                                                      // cut
		f.Add(append(append([]byte{pick}, valid...), 0xff, 0xff, 0xff, 0xff))                                     // garbage after
		f.Add(append([]byte{pick}, compressedSession(codec, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$99999999\r\nxx")...)) // too big
		f.Add(append([]byte{pick}, compressedSession(codec, "*1048576\r\n*8\r\n:0\r\n")...))                      // not a command
		f.Add(append([]byte{pick}, compressedSession(codec, "+OK\r\n+OK\r\n")...))                                // not a command either
	}
	f.Add([]byte{0, 0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf0, 0, 0, 0})                      // a 1 TiB window
	f.Add([]byte{1, 0x03, 0x00})                                                       // DEFLATE's final block
	f.Add(append([]byte{0}, compressedSession(CodecDeflate, cmd("SET", "a", "1"))...)) // a codec that was not agreed
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		codec := CodecZstd
		if in[0]%2 == 1 {
			codec = CodecDeflate
		}
		const maxCommand = 1 << 20
		fk, c := newFakePair(t, Options{Password: "pw", Compression: 3, NoZstd: codec == CodecDeflate, MaxCommandBytes: maxCommand, ReadTimeout: 2 * time.Second})
		fk.run(func() {
			fk.send("-NOAUTH Authentication required.\r\n", "+OK\r\n")
			if codec == CodecZstd {
				fk.send("+ZSTD\r\n")
			} else {
				fk.send("+OK\r\n")
			}
			fk.conn.Write(in[1:])
			fk.conn.Close()
		})
		go func() {
			for range fk.cmds { // what the destination sends is not checked here
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := c.Handshake(ctx, testReplID, 499); err != nil {
			if ctx.Err() != nil {
				t.Fatalf("the handshake waited for the test's deadline: %v", err)
			}
			return
		}
		for {
			cmd, err := c.ReadCommand(ctx)
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, errReadTimeout) {
					t.Fatalf("the stream waited instead of failing: %v", err)
				}
				return
			}
			size := 0
			for _, a := range cmd.Args {
				size += len(a)
			}
			if size > maxCommand {
				t.Fatalf("a command of %d bytes was returned past the %d limit", size, maxCommand)
			}
		}
	})
}
