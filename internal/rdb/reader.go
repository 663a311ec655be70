package rdb

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// ErrCorrupt is wrapped by every error caused by malformed payload bytes
// (as opposed to I/O errors, handler errors or unsupported types).
var ErrCorrupt = errors.New("corrupt rdb payload")

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// reader is the decoder's only access to the input. It keeps the running
// CRC64 of everything consumed and the offset for error messages, and never
// reads ahead of what the format asks for (beyond what br buffers).
type reader struct {
	br        *bufio.Reader
	crc       uint64
	off       int64
	maxString int64
	scratch   [16]byte
	lzfIn     []byte // reused buffer for compressed bytes

	// Raw values (see Decoder.decodeRaw): while recording, every byte
	// consumed is appended to rec, and a read that takes rec past recLimit
	// fails with errRawLimit. Bytes in pre are consumed before br again
	// (a value recorded then found too big, decoded a second time); they
	// were already counted in crc and off.
	rec       []byte
	recording bool
	recLimit  int
	pre       []byte
	// sink, while recording a value that streams (Decoder.decodeRawStream),
	// takes what rec holds at the next safe point once rec holds
	// streamPiece bytes: rec then only holds what came since.
	sink  func([]byte) error
	piece int // streamPiece, or less in tests
}

// streamPiece is how much of a streaming value is gathered before it goes
// on.
const streamPiece = 64 << 10

// safePoint is called where everything recorded so far has been checked
// (the start of a length: the elements before it were read whole and
// validated): what a streaming value recorded may go on.
func (r *reader) safePoint() error {
	if r.sink == nil || len(r.rec) < r.piece {
		return nil
	}
	err := r.sink(r.rec)
	r.rec = r.rec[:0]
	return err
}

// errRawLimit stops the recording of a value bigger than the raw limit.
var errRawLimit = errors.New("value bigger than the raw value limit")

// noEOF turns a clean EOF into ErrUnexpectedEOF: the RDB format says when
// it ends (the EOF opcode), so running out of input is always truncation.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (r *reader) readByte() (byte, error) {
	if len(r.pre) > 0 {
		b := r.pre[0]
		r.pre = r.pre[1:]
		return b, nil
	}
	b, err := r.br.ReadByte()
	if err != nil {
		return 0, noEOF(err)
	}
	r.crc = crcTables[0][byte(r.crc)^b] ^ r.crc>>8
	r.off++
	if r.recording {
		r.rec = append(r.rec, b)
		if len(r.rec) > r.recLimit {
			return b, errRawLimit
		}
	}
	return b, nil
}

func (r *reader) readFull(p []byte) error {
	if len(r.pre) > 0 {
		k := copy(p, r.pre)
		r.pre = r.pre[k:]
		if p = p[k:]; len(p) == 0 {
			return nil
		}
	}
	n, err := io.ReadFull(r.br, p)
	r.crc = crc64Update(r.crc, p[:n])
	r.off += int64(n)
	if r.recording {
		r.rec = append(r.rec, p[:n]...)
		if err == nil && len(r.rec) > r.recLimit {
			return errRawLimit
		}
	}
	return noEOF(err)
}

// readUint64LE reads a little-endian 64-bit value (millisecond times).
func (r *reader) readUint64LE() (uint64, error) {
	b := r.scratch[:8]
	if err := r.readFull(b); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// readMillis reads an 8-byte little-endian millisecond timestamp. RDB 9+
// always writes it little-endian (older files used host order, which was
// little-endian on every platform Redis shipped for).
func (r *reader) readMillis() (int64, error) {
	v, err := r.readUint64LE()
	return int64(v), err
}

// readStreamIDRaw reads a 16-byte big-endian stream ID as stored in rax keys
// and PELs.
func (r *reader) readStreamIDRaw() (StreamID, error) {
	b := r.scratch[:16]
	if err := r.readFull(b); err != nil {
		return StreamID{}, err
	}
	return StreamID{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}, nil
}

// readBinaryDouble reads the 8-byte little-endian IEEE 754 score of ZSET_2.
func (r *reader) readBinaryDouble() (float64, error) {
	v, err := r.readUint64LE()
	return math.Float64frombits(v), err
}
