// Package resp implements the RESP2 framing used by Redis: reading replies
// and commands from a stream, and encoding commands.
//
// It is written for the replication link, where a corrupt or hostile stream
// must never crash or exhaust the process: every length read from the wire is
// checked against configurable limits, nothing is preallocated beyond what the
// bytes already received justify, and every malformed input yields an error
// wrapping ErrProtocol.
package resp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrProtocol is wrapped by every error caused by bytes that are not valid
// RESP (or exceed the Reader's limits). A stream that ends early is not a
// protocol error: it yields io.EOF (nothing read) or io.ErrUnexpectedEOF.
var ErrProtocol = errors.New("resp: protocol error")

// ErrCommandTooBig is wrapped (beside ErrProtocol) by the error of a
// command whose arguments add up to more than Reader.MaxCommandBytes.
var ErrCommandTooBig = errors.New("command too big")

func protoErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// Type is the RESP2 type of a Value; its value is the type's prefix byte.
type Type byte

// The RESP2 types.
const (
	SimpleString Type = '+'
	Error        Type = '-'
	Integer      Type = ':'
	BulkString   Type = '$'
	Array        Type = '*'
)

func (t Type) String() string {
	switch t {
	case SimpleString:
		return "simple-string"
	case Error:
		return "error"
	case Integer:
		return "integer"
	case BulkString:
		return "bulk-string"
	case Array:
		return "array"
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// Value is one RESP2 reply. Values returned by Reader.ReadValue own their
// memory: they stay valid after further reads.
type Value struct {
	Type  Type
	Str   []byte  // SimpleString, Error and BulkString payload
	Int   int64   // Integer
	Elems []Value // Array elements
	Null  bool    // null bulk string ($-1) or null array (*-1)
}

// IsError reports whether v is an error reply.
func (v Value) IsError() bool { return v.Type == Error }

// Err returns the error reply as a *ServerError, or nil if v is not an error.
func (v Value) Err() error {
	if v.Type != Error {
		return nil
	}
	return &ServerError{Msg: string(v.Str)}
}

// String renders v for logs and test failures (not a wire encoding).
func (v Value) String() string {
	switch v.Type {
	case SimpleString:
		return "+" + string(v.Str)
	case Error:
		return "-" + string(v.Str)
	case Integer:
		return ":" + strconv.FormatInt(v.Int, 10)
	case BulkString:
		if v.Null {
			return "(nil)"
		}
		return strconv.Quote(string(v.Str))
	case Array:
		if v.Null {
			return "(nil array)"
		}
		var b strings.Builder
		b.WriteByte('[')
		for i, e := range v.Elems {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(e.String())
		}
		b.WriteByte(']')
		return b.String()
	}
	return v.Type.String()
}

// ServerError is an error reply ("-ERR ...") sent by a Redis server.
type ServerError struct {
	Msg string // the reply without the leading '-'
}

func (e *ServerError) Error() string { return e.Msg }

// Code returns the first word of the error, which Redis uses as an error
// code: "ERR", "WRONGPASS", "NOAUTH", "LOADING", ...
func (e *ServerError) Code() string {
	code, _, _ := strings.Cut(e.Msg, " ")
	return code
}

// parseInt parses a RESP integer with the same strictness as Redis's
// string2ll: an optional '-', no '+', no leading zeros, no "-0", no
// overflow. Being strict keeps the encoding canonical, so that a command read
// from the wire re-encodes to exactly the same bytes (the replication offset
// counts bytes, so two spellings of one length must not both be accepted).
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	if len(b) == 1 && b[0] == '0' {
		return 0, true
	}
	neg := false
	if b[0] == '-' {
		neg = true
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	if b[0] < '1' || b[0] > '9' {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	if neg {
		if v > 1<<63 {
			return 0, false
		}
		return -int64(v), true // for v == 1<<63 this wraps to MinInt64, as intended
	}
	if v > 1<<63-1 {
		return 0, false
	}
	return int64(v), true
}
