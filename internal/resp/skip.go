package resp

import (
	"io"
	"slices"
)

// SkipValue reads one reply without building it, for a caller that only
// needs to know what failed: a pipeline's +OK and +QUEUED, or the array of
// results of EXEC. It returns the message of the reply itself when it is an
// error, and calls nested (when not nil) with the message of every error
// found inside an array; nested's argument is only valid during the call.
// err is only for I/O failures and protocol errors, as for ReadValue, whose
// limits it applies.
func (r *Reader) SkipValue(nested func(msg []byte)) (errMsg []byte, err error) {
	if nested == nil {
		return r.skipValue(0, 0, nil)
	}
	return r.skipValue(0, 0, func(_ int, msg []byte) { nested(msg) })
}

// SkipValueIndexed is SkipValue whose nested is also told the index, in the
// top-level array, of the element the error is in: for EXEC, which queued
// command failed.
func (r *Reader) SkipValueIndexed(nested func(index int, msg []byte)) (errMsg []byte, err error) {
	return r.skipValue(0, 0, nested)
}

func (r *Reader) skipValue(depth, top int, nested func(index int, msg []byte)) ([]byte, error) {
	line, _, err := r.readLine()
	if err != nil {
		if depth > 0 {
			err = eofIsUnexpected(err)
		}
		return nil, err
	}
	if len(line) == 0 {
		return nil, protoErrorf("empty line where a value was expected")
	}
	switch Type(line[0]) {
	case SimpleString:
		return nil, nil
	case Error:
		if depth > 0 {
			if nested != nil {
				nested(top, line[1:])
			}
			return nil, nil
		}
		return slices.Clone(line[1:]), nil
	case Integer:
		if _, ok := parseInt(line[1:]); !ok {
			return nil, protoErrorf("invalid integer %s", quotePrefix(line[1:]))
		}
		return nil, nil
	case BulkString:
		size, err := r.bulkHeader(line)
		if err != nil || size < 0 {
			return nil, err
		}
		if _, err := r.br.Discard(int(size)); err != nil {
			return nil, eofIsUnexpected(err)
		}
		var crlf [2]byte
		if _, err := io.ReadFull(r.br, crlf[:]); err != nil {
			return nil, eofIsUnexpected(err)
		}
		if crlf != [2]byte{'\r', '\n'} {
			return nil, protoErrorf("bulk string not terminated by CRLF")
		}
		return nil, nil
	case Array:
		count, ok := parseInt(line[1:])
		switch {
		case !ok:
			return nil, protoErrorf("invalid array length %s", quotePrefix(line[1:]))
		case count == -1:
			return nil, nil
		case count < 0:
			return nil, protoErrorf("negative array length %d", count)
		case count > r.MaxArrayLen:
			return nil, protoErrorf("array length %d exceeds limit %d", count, r.MaxArrayLen)
		case depth >= r.MaxDepth:
			return nil, protoErrorf("arrays nested deeper than %d", r.MaxDepth)
		}
		for i := int64(0); i < count; i++ {
			at := top
			if depth == 0 {
				at = int(i)
			}
			if _, err := r.skipValue(depth+1, at, nested); err != nil {
				return nil, eofIsUnexpected(err)
			}
		}
		return nil, nil
	}
	return nil, protoErrorf("unknown type byte %s", quotePrefix(line))
}
