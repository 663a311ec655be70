package resp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Default limits of a Reader. The bulk limit matches Redis's own default
// proto-max-bulk-len, so anything a default-configured server accepts can be
// read; the array limit bounds commands and replies to a million elements.
const (
	DefaultMaxBulkLen  = 512 << 20
	DefaultMaxArrayLen = 1 << 20
	DefaultMaxDepth    = 64
)

// ArgOverhead is what the Reader holds for one argument of a command
// besides its bytes (its end offset and its slice), counted against
// MaxCommandBytes: a command of millions of empty arguments is not free.
const ArgOverhead = 32

const (
	// maxLineLen bounds header and simple-string lines. Headers are a few
	// bytes; simple strings and errors from Redis are short messages.
	maxLineLen = 64 << 10
	// readChunk is how much of a bulk string is read at a time when it is
	// not already buffered: the destination only grows as bytes arrive, so a
	// forged "$536870912" costs nothing until the data actually comes.
	readChunk = 64 << 10
	// retainBuf / retainArgs: command buffers above these capacities are
	// released at the next ReadCommand, so one huge value does not pin its
	// memory for the life of the connection.
	retainBuf  = 1 << 20
	retainArgs = 4096
)

// Reader reads RESP2 values and commands from a bufio.Reader.
//
// The limit fields may be changed between calls; they are checked against
// every length prefix before anything is allocated for it.
type Reader struct {
	br *bufio.Reader

	MaxBulkLen  int64 // maximum bulk string length (default DefaultMaxBulkLen)
	MaxArrayLen int64 // maximum number of array elements (default DefaultMaxArrayLen)
	MaxDepth    int   // maximum nesting of arrays in ReadValue (default DefaultMaxDepth)
	// MaxCommandBytes, when positive, bounds the arguments of one command
	// of ReadCommand, added up, each with ArgOverhead for what the Reader
	// keeps about it: checked at each argument's length, before its bytes
	// are read. Without it a command may hold MaxArrayLen arguments of
	// MaxBulkLen each, which a compressed stream delivers from a few
	// kilobytes on the wire; with it, MaxArrayLen may be as large as the
	// peer allows, the memory of a command of many small arguments bounded
	// all the same.
	MaxCommandBytes int64

	// Reused by ReadCommand: all arguments of one command live in buf.
	buf  []byte
	ends []int
	args [][]byte
	line []byte // scratch for lines longer than the bufio buffer
	// raw: buf[:raw] is the last command's encoding, as it was read (see
	// Raw); 0 when ReadCommand read it piece by piece.
	raw int
}

// NewReader returns a Reader with the default limits.
func NewReader(br *bufio.Reader) *Reader {
	return &Reader{
		br:          br,
		MaxBulkLen:  DefaultMaxBulkLen,
		MaxArrayLen: DefaultMaxArrayLen,
		MaxDepth:    DefaultMaxDepth,
	}
}

// Buffered returns the underlying bufio.Reader, for callers that interleave
// RESP with raw bytes (the RDB payload of a replication link).
func (r *Reader) Buffered() *bufio.Reader { return r.br }

// ReadCommand reads one command in the form a client (or a master on the
// replication stream) sends it: an array of bulk strings. It returns the
// arguments and the exact number of bytes consumed, which is what Redis adds
// to the replication offset for that command.
//
// "*0\r\n" and "*-1\r\n" yield zero arguments (Redis ignores such empty
// commands, but their bytes still count). Inline commands are rejected with
// ErrProtocol: a master never sends them, so one showing up means the stream
// is out of sync, and guessing would risk applying garbage.
//
// Ownership: the returned slices point into a buffer owned by the Reader and
// are valid only until the next call to ReadCommand or ReadValue; copy what
// must outlive that. Each argument's capacity is clipped to its length, so
// appending to one can never overwrite another.
//
// After an error the Reader's position in the stream is undefined.
func (r *Reader) ReadCommand() (args [][]byte, n int64, err error) {
	if cap(r.buf) > retainBuf {
		r.buf = nil
	}
	if cap(r.args) > retainArgs {
		r.args, r.ends = nil, nil
	}

	r.raw = 0
	if args, n, done, err := r.readBuffered(); done {
		return args, n, err
	}
	line, ln, err := r.readLine()
	if err != nil {
		return nil, 0, err
	}
	n = int64(ln)
	if len(line) == 0 || line[0] != '*' {
		return nil, 0, protoErrorf("command: expected '*', got %s", quotePrefix(line))
	}
	count, ok := parseInt(line[1:])
	switch {
	case !ok:
		return nil, 0, protoErrorf("command: invalid array length %s", quotePrefix(line[1:]))
	case count == 0 || count == -1:
		return r.args[:0], n, nil
	case count < 0:
		return nil, 0, protoErrorf("command: negative array length %d", count)
	case count > r.MaxArrayLen:
		return nil, 0, protoErrorf("command: array length %d exceeds limit %d", count, r.MaxArrayLen)
	}

	buf, ends := r.buf[:0], r.ends[:0]
	var total int64
	for i := int64(0); i < count; i++ {
		line, ln, err := r.readLine()
		if err != nil {
			return nil, 0, eofIsUnexpected(err)
		}
		n += int64(ln)
		size, err := r.bulkHeader(line)
		if err != nil {
			return nil, 0, err
		}
		if size < 0 {
			return nil, 0, protoErrorf("command: null bulk string as argument %d", i)
		}
		if total += size + ArgOverhead; r.MaxCommandBytes > 0 && total > r.MaxCommandBytes {
			r.buf = buf[:0]
			return nil, 0, fmt.Errorf("%w: %w: its arguments exceed %d bytes (argument %d of %d)", ErrProtocol, ErrCommandTooBig, r.MaxCommandBytes, i+1, count)
		}
		buf, err = r.readBulk(buf, size)
		if err != nil {
			r.buf = buf[:0] // keep the grown buffer for reuse
			return nil, 0, err
		}
		n += size + 2
		ends = append(ends, len(buf))
	}

	// Slices are cut only now: buf may have moved while it grew.
	args = r.args[:0]
	start := 0
	for _, end := range ends {
		args = append(args, buf[start:end:end])
		start = end
	}
	r.buf, r.ends, r.args = buf, ends, args
	return args, n, nil
}

// Raw returns the encoding of the command the last ReadCommand returned,
// exactly as it was read, when that command was already buffered whole
// (the common case on a busy stream), and nil otherwise. What ReadCommand
// accepts has one encoding only (no signs or leading zeros in lengths), so
// Raw is AppendCommand of the arguments, without the work. It shares the
// arguments' buffer and is valid as long as they are.
func (r *Reader) Raw() []byte {
	if r.raw == 0 {
		return nil
	}
	return r.buf[:r.raw:r.raw]
}

// readBuffered is ReadCommand for a command that is buffered whole: one
// pass over the buffered bytes, one copy. done is false, with nothing
// consumed, for anything else (not all there yet, an empty or malformed
// command, a limit exceeded): the line-by-line path then reads it, and
// reports the errors. With nothing buffered it waits for the next bytes,
// as that path would, and returns the read's error as it would.
func (r *Reader) readBuffered() (args [][]byte, n int64, done bool, err error) {
	if r.br.Buffered() == 0 {
		// One read brings what arrived, often many commands.
		if _, err := r.br.Peek(1); err != nil {
			return nil, 0, true, err
		}
	}
	b, _ := r.br.Peek(r.br.Buffered())
	if len(b) < 4 || b[0] != '*' {
		return nil, 0, false, nil
	}
	count, pos, ok := bufferedLength(b, 1)
	if !ok || count < 1 || count > r.MaxArrayLen {
		return nil, 0, false, nil
	}
	ends := r.ends[:0]
	var total int64
	for range count {
		if pos >= len(b) || b[pos] != '$' {
			return nil, 0, false, nil
		}
		size, next, ok := bufferedLength(b, pos+1)
		if total += size + ArgOverhead; !ok || size < 0 || size > r.MaxBulkLen || int64(len(b)-next) < size+2 ||
			(r.MaxCommandBytes > 0 && total > r.MaxCommandBytes) {
			return nil, 0, false, nil
		}
		end := next + int(size)
		if b[end] != '\r' || b[end+1] != '\n' {
			return nil, 0, false, nil
		}
		ends = append(ends, next, end)
		pos = end + 2
	}
	buf := append(r.buf[:0], b[:pos]...)
	argv := r.args[:0]
	for i := 0; i < len(ends); i += 2 {
		argv = append(argv, buf[ends[i]:ends[i+1]:ends[i+1]])
	}
	_, _ = r.br.Discard(pos)
	r.buf, r.ends, r.args, r.raw = buf, ends, argv, pos
	return argv, int64(pos), true, nil
}

// bufferedLength parses the length that starts at b[at] and ends with CRLF,
// as parseInt does; next is where the line after it starts.
func bufferedLength(b []byte, at int) (v int64, next int, ok bool) {
	for i := at; i < len(b) && i-at <= 20; i++ {
		if b[i] == '\r' {
			if i+1 >= len(b) || b[i+1] != '\n' {
				return 0, 0, false
			}
			v, ok = parseInt(b[at:i])
			return v, i + 2, ok
		}
	}
	return 0, 0, false
}

// ReadValue reads one reply of any RESP2 type. The returned Value owns its
// memory. Error replies are returned as values (Type Error), not as errors:
// err is only for I/O failures and protocol errors.
func (r *Reader) ReadValue() (Value, error) {
	return r.readValue(0)
}

func (r *Reader) readValue(depth int) (Value, error) {
	line, _, err := r.readLine()
	if err != nil {
		if depth > 0 {
			err = eofIsUnexpected(err)
		}
		return Value{}, err
	}
	if len(line) == 0 {
		return Value{}, protoErrorf("empty line where a value was expected")
	}
	switch t := Type(line[0]); t {
	case SimpleString, Error:
		return Value{Type: t, Str: slices.Clone(line[1:len(line):len(line)])}, nil
	case Integer:
		v, ok := parseInt(line[1:])
		if !ok {
			return Value{}, protoErrorf("invalid integer %s", quotePrefix(line[1:]))
		}
		return Value{Type: Integer, Int: v}, nil
	case BulkString:
		size, err := r.bulkHeader(line)
		if err != nil {
			return Value{}, err
		}
		if size < 0 {
			return Value{Type: BulkString, Null: true}, nil
		}
		var dst []byte
		if size <= int64(r.br.Buffered()) {
			dst = make([]byte, 0, size) // the bytes are here: exact allocation is safe
		}
		str, err := r.readBulk(dst, size)
		if err != nil {
			return Value{}, err
		}
		if str == nil {
			str = []byte{}
		}
		return Value{Type: BulkString, Str: str}, nil
	case Array:
		count, ok := parseInt(line[1:])
		switch {
		case !ok:
			return Value{}, protoErrorf("invalid array length %s", quotePrefix(line[1:]))
		case count == -1:
			return Value{Type: Array, Null: true}, nil
		case count < 0:
			return Value{}, protoErrorf("negative array length %d", count)
		case count > r.MaxArrayLen:
			return Value{}, protoErrorf("array length %d exceeds limit %d", count, r.MaxArrayLen)
		case depth >= r.MaxDepth:
			return Value{}, protoErrorf("arrays nested deeper than %d", r.MaxDepth)
		}
		// Every element takes at least 3 bytes on the wire, so the
		// buffered bytes bound how many elements can be present right now.
		elems := make([]Value, 0, min(count, int64(r.br.Buffered()/3)+1))
		for i := int64(0); i < count; i++ {
			e, err := r.readValue(depth + 1)
			if err != nil {
				return Value{}, eofIsUnexpected(err)
			}
			elems = append(elems, e)
		}
		return Value{Type: Array, Elems: elems}, nil
	}
	return Value{}, protoErrorf("unknown type byte %s", quotePrefix(line))
}

// bulkHeader parses a "$<len>" line, returning -1 for a null bulk string.
func (r *Reader) bulkHeader(line []byte) (int64, error) {
	if len(line) == 0 || line[0] != '$' {
		return 0, protoErrorf("expected '$', got %s", quotePrefix(line))
	}
	size, ok := parseInt(line[1:])
	switch {
	case !ok:
		return 0, protoErrorf("invalid bulk length %s", quotePrefix(line[1:]))
	case size == -1:
		return -1, nil
	case size < 0:
		return 0, protoErrorf("negative bulk length %d", size)
	case size > r.MaxBulkLen:
		return 0, protoErrorf("bulk length %d exceeds limit %d", size, r.MaxBulkLen)
	}
	return size, nil
}

// readBulk appends size payload bytes to dst and consumes the trailing CRLF.
func (r *Reader) readBulk(dst []byte, size int64) ([]byte, error) {
	// Fast path, the common case for small values: everything is buffered.
	if size+2 <= int64(r.br.Buffered()) {
		b, _ := r.br.Peek(int(size) + 2)
		if b[size] != '\r' || b[size+1] != '\n' {
			return dst, protoErrorf("bulk string not terminated by CRLF")
		}
		dst = append(dst, b[:size]...)
		_, _ = r.br.Discard(int(size) + 2)
		return dst, nil
	}
	for remaining := size; remaining > 0; {
		chunk := int(min(remaining, readChunk))
		dst = slices.Grow(dst, chunk) // amortized doubling, bounded by bytes received
		m, err := io.ReadFull(r.br, dst[len(dst):len(dst)+chunk])
		dst = dst[:len(dst)+m]
		if err != nil {
			return dst, eofIsUnexpected(err)
		}
		remaining -= int64(chunk)
	}
	var crlf [2]byte
	if _, err := io.ReadFull(r.br, crlf[:]); err != nil {
		return dst, eofIsUnexpected(err)
	}
	if crlf != [2]byte{'\r', '\n'} {
		return dst, protoErrorf("bulk string not terminated by CRLF")
	}
	return dst, nil
}

// readLine reads a CRLF-terminated line and returns it without the CRLF,
// plus the number of bytes consumed. The line is valid until the next read.
func (r *Reader) readLine() ([]byte, int, error) {
	line, err := r.br.ReadSlice('\n')
	if err == nil {
		return checkCRLF(line)
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		if len(line) > 0 {
			return nil, 0, eofIsUnexpected(err)
		}
		return nil, 0, err
	}
	// Longer than the bufio buffer: gather it, up to maxLineLen.
	r.line = append(r.line[:0], line...)
	for {
		line, err = r.br.ReadSlice('\n')
		r.line = append(r.line, line...)
		if len(r.line) > maxLineLen {
			return nil, 0, protoErrorf("line longer than %d bytes", maxLineLen)
		}
		if err == nil {
			return checkCRLF(r.line)
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, 0, eofIsUnexpected(err)
		}
	}
}

func checkCRLF(line []byte) ([]byte, int, error) {
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, 0, protoErrorf("line not terminated by CRLF: %s", quotePrefix(line))
	}
	return line[:len(line)-2], len(line), nil
}

// eofIsUnexpected turns io.EOF into io.ErrUnexpectedEOF: once part of a value
// was read, the end of the stream means truncation.
func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// quotePrefix quotes at most the first 32 bytes of b for error messages, so a
// corrupt stream cannot produce huge errors (or leak much of a payload).
func quotePrefix(b []byte) string {
	const max = 32
	if len(b) > max {
		return quote(b[:max]) + "..."
	}
	return quote(b)
}
