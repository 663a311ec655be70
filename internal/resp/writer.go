package resp

import (
	"bufio"
	"strconv"
)

func quote(b []byte) string { return strconv.Quote(string(b)) }

// AppendCommand appends the RESP encoding of a command (an array of bulk
// strings) to dst and returns the extended slice.
func AppendCommand(dst []byte, args ...[]byte) []byte {
	dst = appendHeader(dst, '*', int64(len(args)))
	for _, a := range args {
		dst = appendHeader(dst, '$', int64(len(a)))
		dst = append(dst, a...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}

// AppendCommandStrings is AppendCommand for string arguments.
func AppendCommandStrings(dst []byte, args ...string) []byte {
	dst = appendHeader(dst, '*', int64(len(args)))
	for _, a := range args {
		dst = appendHeader(dst, '$', int64(len(a)))
		dst = append(dst, a...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}

// AppendValue appends the RESP2 encoding of v. Simple strings and errors are
// written as they are: the caller must not put CR or LF in them.
func AppendValue(dst []byte, v Value) []byte {
	switch v.Type {
	case SimpleString, Error:
		dst = append(dst, byte(v.Type))
		dst = append(dst, v.Str...)
		return append(dst, '\r', '\n')
	case Integer:
		return appendHeader(dst, ':', v.Int)
	case BulkString:
		if v.Null {
			return append(dst, "$-1\r\n"...)
		}
		dst = appendHeader(dst, '$', int64(len(v.Str)))
		dst = append(dst, v.Str...)
		return append(dst, '\r', '\n')
	case Array:
		if v.Null {
			return append(dst, "*-1\r\n"...)
		}
		dst = appendHeader(dst, '*', int64(len(v.Elems)))
		for _, e := range v.Elems {
			dst = AppendValue(dst, e)
		}
		return dst
	}
	panic("resp: AppendValue of unknown type " + v.Type.String())
}

func appendHeader(dst []byte, prefix byte, n int64) []byte {
	dst = append(dst, prefix)
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, '\r', '\n')
}

// Writer writes commands to a bufio.Writer. Like bufio.Writer, it is not
// safe for concurrent use, and nothing reaches the wire before Flush (or the
// buffer filling up).
type Writer struct {
	bw  *bufio.Writer
	hdr [24]byte // scratch for headers: no allocation per command
}

// NewWriter returns a Writer that writes to bw.
func NewWriter(bw *bufio.Writer) *Writer { return &Writer{bw: bw} }

// WriteCommand buffers one command.
func (w *Writer) WriteCommand(args ...[]byte) error {
	w.header('*', len(args))
	for _, a := range args {
		w.header('$', len(a))
		_, _ = w.bw.Write(a)
		_, _ = w.bw.WriteString("\r\n")
	}
	// bufio.Writer errors are sticky: checking once at the end is enough.
	return w.err()
}

// WriteCommandStrings is WriteCommand for string arguments.
func (w *Writer) WriteCommandStrings(args ...string) error {
	w.header('*', len(args))
	for _, a := range args {
		w.header('$', len(a))
		_, _ = w.bw.WriteString(a)
		_, _ = w.bw.WriteString("\r\n")
	}
	return w.err()
}

// Flush writes buffered commands to the underlying writer.
func (w *Writer) Flush() error { return w.bw.Flush() }

func (w *Writer) header(prefix byte, n int) {
	_, _ = w.bw.Write(appendHeader(w.hdr[:0], prefix, int64(n)))
}

// err returns the bufio.Writer's sticky error, if any: an empty Write
// writes nothing and reports it.
func (w *Writer) err() error {
	_, err := w.bw.Write(nil)
	return err
}
