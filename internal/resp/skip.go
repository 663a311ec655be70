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
	return r.skipValue(0, 0, &Nested{Error: func(_ int, msg []byte) { nested(msg) }})
}

// Nested receives what SkipValueIndexed finds inside a top-level array,
// with the index of the element it is in: for EXEC, which queued command.
type Nested struct {
	// Error, when not nil, is called with every error at any depth.
	Error func(index int, msg []byte)
	// Int, when not nil, is called with every element that is an integer.
	Int func(index int, v int64)
}

// SkipValueIndexed is SkipValue reporting to n what is inside an array.
func (r *Reader) SkipValueIndexed(n *Nested) (errMsg []byte, err error) {
	return r.skipValue(0, 0, n)
}

func (r *Reader) skipValue(depth, top int, nested *Nested) ([]byte, error) {
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
			if nested != nil && nested.Error != nil {
				nested.Error(top, line[1:])
			}
			return nil, nil
		}
		return slices.Clone(line[1:]), nil
	case Integer:
		v, ok := parseInt(line[1:])
		if !ok {
			return nil, protoErrorf("invalid integer %s", quotePrefix(line[1:]))
		}
		if depth == 1 && nested != nil && nested.Int != nil {
			nested.Int(top, v)
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
