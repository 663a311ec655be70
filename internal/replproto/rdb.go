package replproto

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
)

// eofMarkLen is the length of the random delimiter of a diskless transfer
// (RDB_EOF_MARK_SIZE in Redis).
const eofMarkLen = 40

// RDB reads the header of the RDB payload that follows +FULLRESYNC and
// returns a reader of exactly the payload.
//
// The source announces the payload in one of two forms: "$<len>\r\n" followed
// by len bytes (disk-based sync), or "$EOF:<40-byte mark>\r\n" followed by the
// payload and then the mark again (diskless sync, where the size is not known
// in advance). Before the header it may send bare newlines while the RDB is
// being produced; they are skipped.
//
// ctx governs the whole transfer, including every Read of the returned
// reader. The caller must read the payload and then call RDBReader.Close,
// which checks the end of the payload and moves the connection to the
// command stream.
func (c *Conn) RDB(ctx context.Context) (*RDBReader, error) {
	switch c.state {
	case stateRDB:
	case stateBroken:
		return nil, c.err
	default:
		return nil, &Error{Op: "RDB", Kind: ErrState, Err: errors.New("no full resync in progress")}
	}
	c.dc.ctx = ctx
	defer c.clearReadContext()

	if err := c.skipKeepalives(); err != nil {
		return nil, c.fail(ioError("RDB", err))
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, c.fail(&Error{Op: "RDB", Kind: ErrProtocol, Err: errors.New("RDB header line too long")})
		}
		return nil, c.fail(ioError("RDB", err))
	}
	r := &RDBReader{c: c, ctx: ctx, size: -1}
	switch {
	case len(line) < 3 || line[len(line)-2] != '\r':
		return nil, c.fail(rdbHeaderError(line))
	case line[0] == '-':
		// The source gave up (e.g. its BGSAVE failed) and will close.
		return nil, c.fail(&Error{Op: "RDB", Kind: ErrSource, Reply: c.redact(string(line[1 : len(line)-2]))})
	case bytes.HasPrefix(line, []byte("$EOF:")):
		mark := line[5 : len(line)-2]
		if len(mark) != eofMarkLen {
			return nil, c.fail(rdbHeaderError(line))
		}
		r.mark = bytes.Clone(mark)
	case line[0] == '$':
		size, err := strconv.ParseInt(string(line[1:len(line)-2]), 10, 64)
		if err != nil || size < 0 {
			return nil, c.fail(rdbHeaderError(line))
		}
		r.size, r.remaining = size, size
	default:
		return nil, c.fail(rdbHeaderError(line))
	}
	c.log.Info("receiving RDB", "size", r.size, "diskless", r.mark != nil)
	if r.size == 0 {
		if err := r.finish(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func rdbHeaderError(line []byte) *Error {
	return &Error{Op: "RDB", Kind: ErrProtocol, Err: fmt.Errorf("invalid RDB header %.64q", line)}
}

// RDBReader reads the RDB payload of a full resync: exactly the payload,
// never the mark of a diskless transfer nor the command stream after it.
// Read, Bufio and Close must be called from the connection's reader
// goroutine; Size, Transferred and Complete from any goroutine.
type RDBReader struct {
	c   *Conn
	ctx context.Context

	size      int64  // announced size, -1 for a diskless transfer
	remaining int64  // sized form: payload bytes not yet read
	mark      []byte // diskless form: the end delimiter

	transferred atomic.Int64
	complete    atomic.Bool
	err         error
	bufr        *bufio.Reader
}

// Size returns the payload size announced by the source, or -1 when the
// source did not announce it (diskless sync).
func (r *RDBReader) Size() int64 { return r.size }

// Transferred returns the number of payload bytes read from the source so
// far.
func (r *RDBReader) Transferred() int64 { return r.transferred.Load() }

// Complete reports whether the whole payload has been received and its end
// verified.
func (r *RDBReader) Complete() bool { return r.complete.Load() }

// Bufio returns a buffered view of the payload for decoders that want a
// *bufio.Reader. It never reads past the payload. Bytes it has buffered but
// the decoder has not consumed count as unread for Close.
func (r *RDBReader) Bufio() *bufio.Reader {
	if r.bufr == nil {
		r.bufr = bufio.NewReaderSize(r, readBufferSize)
	}
	return r.bufr
}

// Read reads payload bytes; it returns io.EOF after the last one.
func (r *RDBReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.complete.Load() {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	r.c.dc.ctx = r.ctx
	defer r.c.clearReadContext()

	var (
		n   int
		end bool
		err error
	)
	if r.mark == nil {
		n, end, err = r.readSized(p)
	} else {
		n, end, err = r.readMarked(p)
	}
	r.transferred.Add(int64(n))
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // the source hung up mid-payload
		}
		r.err = r.c.fail(ioError("RDB", err))
		return n, r.err
	}
	if end {
		// Finish as soon as the end is seen, not at the next Read: a
		// decoder stops reading after the last byte it needs.
		if err := r.finish(); err != nil {
			return n, err
		}
		if n == 0 {
			return 0, io.EOF
		}
	}
	return n, nil
}

func (r *RDBReader) readSized(p []byte) (n int, end bool, err error) {
	if int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	n, err = r.c.br.Read(p)
	r.remaining -= int64(n)
	if r.remaining == 0 {
		return n, true, nil
	}
	return n, false, err
}

// readMarked delivers payload bytes while always holding back the last 40
// bytes received, since they may be the mark. The source sends nothing after
// the mark until we acknowledge (Redis starts the command stream only on the
// first REPLCONF ACK), so the payload has ended exactly when the held-back
// bytes are the mark and nothing else is buffered — which is also how Redis
// replicas detect it.
func (r *RDBReader) readMarked(p []byte) (n int, end bool, err error) {
	br := r.c.br
	for {
		buffered := br.Buffered()
		if buffered > eofMarkLen {
			b, _ := br.Peek(buffered)
			n = copy(p, b[:buffered-eofMarkLen])
			_, _ = br.Discard(n)
			return n, r.atMark(), nil
		}
		if r.atMark() {
			return 0, true, nil
		}
		// Wait for at least one more byte (this refills the buffer).
		if _, err := br.Peek(buffered + 1); err != nil {
			return 0, false, err
		}
	}
}

// atMark reports whether the buffered bytes are exactly the mark, and
// consumes it if so.
func (r *RDBReader) atMark() bool {
	br := r.c.br
	if br.Buffered() != eofMarkLen {
		return false
	}
	b, _ := br.Peek(eofMarkLen)
	if !bytes.Equal(b, r.mark) {
		return false
	}
	_, _ = br.Discard(eofMarkLen)
	return true
}

// finish moves the connection to the command stream and sends the first
// ACK. For a diskless transfer the source waits for it before streaming
// commands; after a sized transfer it is harmless and refreshes the
// source's view of us. It reports the RDB's offset: the data is received in
// full, and nothing after it has been sent yet.
func (r *RDBReader) finish() error {
	c := r.c
	r.complete.Store(true)
	c.startStream()
	c.log.Info("RDB received", "bytes", r.transferred.Load(), "diskless", r.mark != nil)
	if c.noInitialAck {
		return nil
	}
	if err := c.sendAck(r.ctx, c.offset.Load()); err != nil {
		r.err = c.failErr(err)
		return r.err
	}
	return nil
}

// Close makes sure the payload was read to its end. If it was not, the rest
// is read and discarded (so the connection can still proceed to the command
// stream) and an error wrapping ErrRDBNotConsumed says how many bytes the
// caller left: a decoder that stops early has misread the payload. To give
// up on a transfer instead, close the Conn.
func (r *RDBReader) Close() error {
	if r.err != nil {
		return r.err
	}
	var unread int64
	if r.bufr != nil {
		unread = int64(r.bufr.Buffered())
	}
	if !r.complete.Load() && r.mark != nil {
		// The decoder read the whole RDB, up to its end opcode and
		// checksum: the mark must come next, as Redis checks ("Replication
		// stream EOF marker is broken"). Reading on until something that
		// looks like the mark turns up would take the source's pings for
		// payload and wait for ever, so bytes the decoder left are not
		// drained either.
		if unread > 0 {
			r.err = r.c.fail(&Error{Op: "RDB", Kind: ErrProtocol, Err: fmt.Errorf(
				"%w: %d bytes left unread after the RDB's end, where the end mark of the diskless transfer should be", ErrRDBNotConsumed, unread)})
			return r.err
		}
		return r.expectMark()
	}
	if !r.complete.Load() {
		n, err := io.Copy(io.Discard, struct{ io.Reader }{r})
		if err != nil {
			return err
		}
		unread += n
	}
	if unread > 0 {
		return &Error{Op: "RDB", Kind: ErrState, Err: fmt.Errorf("%w: %d bytes left unread", ErrRDBNotConsumed, unread)}
	}
	return nil
}

// expectMark reads the mark that must follow the end of a diskless RDB and
// finishes the transfer, or fails the connection when the bytes there are
// not the mark.
func (r *RDBReader) expectMark() error {
	c := r.c
	c.dc.ctx = r.ctx
	defer c.clearReadContext()
	b, err := c.br.Peek(eofMarkLen)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // the source hung up before the mark
		}
		r.err = c.fail(ioError("RDB", err))
		return r.err
	}
	if !bytes.Equal(b, r.mark) {
		r.err = c.fail(&Error{Op: "RDB", Kind: ErrProtocol, Err: fmt.Errorf(
			"the end mark of the diskless transfer is broken: the RDB ended, and the next %d bytes are %.64q, not the mark the source announced", eofMarkLen, b)})
		return r.err
	}
	_, _ = c.br.Discard(eofMarkLen)
	return r.finish()
}
