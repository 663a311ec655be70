package rdb

import (
	"encoding/binary"
	"math"
	"slices"
	"strconv"
)

// Length encoding (rdb.h). The two top bits of the first byte select:
//
//	00xxxxxx           6-bit length
//	01xxxxxx xxxxxxxx  14-bit length, big-endian
//	10000000 + 4 bytes 32-bit length, big-endian
//	10000001 + 8 bytes 64-bit length, big-endian
//	11xxxxxx           a specially encoded string follows (xxxxxx = encoding)
const (
	len6Bit  = 0
	len14Bit = 1
	len32Bit = 0x80
	len64Bit = 0x81
	lenEnc   = 3

	encInt8  = 0
	encInt16 = 1
	encInt32 = 2
	encLZF   = 3
)

// readLenOrEnc reads a length, or the special-encoding number when enc is set.
func (r *reader) readLenOrEnc() (v uint64, enc bool, err error) {
	if err := r.safePoint(); err != nil {
		return 0, false, err
	}
	b, err := r.readByte()
	if err != nil {
		return 0, false, err
	}
	switch b >> 6 {
	case len6Bit:
		return uint64(b & 0x3f), false, nil
	case len14Bit:
		b2, err := r.readByte()
		if err != nil {
			return 0, false, err
		}
		return uint64(b&0x3f)<<8 | uint64(b2), false, nil
	case lenEnc:
		return uint64(b & 0x3f), true, nil
	}
	switch b {
	case len32Bit:
		p := r.scratch[:4]
		if err := r.readFull(p); err != nil {
			return 0, false, err
		}
		return uint64(binary.BigEndian.Uint32(p)), false, nil
	case len64Bit:
		p := r.scratch[:8]
		if err := r.readFull(p); err != nil {
			return 0, false, err
		}
		return binary.BigEndian.Uint64(p), false, nil
	}
	return 0, false, corruptf("invalid length byte 0x%02x", b)
}

// readLen reads a plain length (or 64-bit number: stream IDs and counters
// use the same encoding), rejecting the string special encodings.
func (r *reader) readLen() (uint64, error) {
	v, enc, err := r.readLenOrEnc()
	if err != nil {
		return 0, err
	}
	if enc {
		return 0, corruptf("unexpected string encoding %d where a length was expected", v)
	}
	return v, nil
}

// checkStrLen rejects string lengths beyond the configured maximum before
// anything is allocated for them.
func (r *reader) checkStrLen(n uint64) error {
	if n > uint64(r.maxString) {
		return corruptf("string length %d exceeds the limit of %d bytes", n, r.maxString)
	}
	return nil
}

// appendString reads one RDB string (raw, integer-encoded or LZF) and
// appends its bytes to dst.
func (r *reader) appendString(dst []byte) ([]byte, error) {
	v, enc, err := r.readLenOrEnc()
	if err != nil {
		return dst, err
	}
	return r.appendStringBody(dst, v, enc)
}

// appendStringBody is appendString once the length byte(s) have been read.
func (r *reader) appendStringBody(dst []byte, v uint64, enc bool) ([]byte, error) {
	if !enc {
		return r.appendRaw(dst, v)
	}
	switch v {
	case encInt8, encInt16, encInt32:
		n, err := r.readEncInt(v)
		if err != nil {
			return dst, err
		}
		return strconv.AppendInt(dst, n, 10), nil
	case encLZF:
		return r.appendLZF(dst)
	}
	return dst, corruptf("unknown string encoding %d", v)
}

// readEncInt reads the little-endian integer of an INT8/16/32 string.
func (r *reader) readEncInt(enc uint64) (int64, error) {
	size := 1 << enc // 1, 2 or 4 bytes
	p := r.scratch[:size]
	if err := r.readFull(p); err != nil {
		return 0, err
	}
	switch size {
	case 1:
		return int64(int8(p[0])), nil
	case 2:
		return int64(int16(binary.LittleEndian.Uint16(p))), nil
	}
	return int64(int32(binary.LittleEndian.Uint32(p))), nil
}

// appendRaw appends n bytes from the input to dst. The buffer grows with
// the bytes actually received (doubling the read size each step), so a huge
// length on a short input fails with EOF instead of a huge allocation.
func (r *reader) appendRaw(dst []byte, n uint64) ([]byte, error) {
	if err := r.checkStrLen(n); err != nil {
		return dst, err
	}
	const firstStep = 64 << 10
	remaining := int(n)
	step := firstStep
	for remaining > 0 {
		k := min(remaining, step)
		dst = slices.Grow(dst, k)
		start := len(dst)
		dst = dst[:start+k]
		if err := r.readFull(dst[start:]); err != nil {
			return dst[:start], err
		}
		remaining -= k
		step *= 2
	}
	return dst, nil
}

// appendLZF reads an LZF string (compressed length, original length,
// compressed bytes) and appends the decompressed bytes to dst.
func (r *reader) appendLZF(dst []byte) ([]byte, error) {
	clen, err := r.readLen()
	if err != nil {
		return dst, err
	}
	ulen, err := r.readLen()
	if err != nil {
		return dst, err
	}
	if err := r.checkStrLen(ulen); err != nil {
		return dst, err
	}
	if clen == 0 || clen > ulen+ulen/16+64 {
		// LZF never expands data by more than a small fraction.
		return dst, corruptf("LZF compressed length %d inconsistent with length %d", clen, ulen)
	}
	in, err := r.appendRaw(r.lzfIn[:0], clen)
	if cap(in) <= 4<<20 {
		r.lzfIn = in // keep small buffers for reuse, drop big ones
	} else {
		r.lzfIn = nil
	}
	if err != nil {
		return dst, err
	}
	out, err := lzfDecompress(dst, in, int(ulen))
	if err != nil {
		return dst, corruptf("%v", err)
	}
	return out, nil
}

// readDoubleString reads the string-encoded score of the old ZSET type: one
// length byte (253 NaN, 254 +inf, 255 -inf) then that many ASCII bytes.
func (r *reader) readDoubleString() (float64, error) {
	n, err := r.readByte()
	if err != nil {
		return 0, err
	}
	switch n {
	case 253:
		return math.NaN(), nil
	case 254:
		return math.Inf(1), nil
	case 255:
		return math.Inf(-1), nil
	}
	p := r.scratch[:0]
	p, err = r.appendRaw(p, uint64(n))
	if err != nil {
		return 0, err
	}
	return parseScore(p)
}

// parseScore parses a score written by Redis (%.17g, "inf", "-inf", ...).
func parseScore(p []byte) (float64, error) {
	f, err := strconv.ParseFloat(string(p), 64)
	if err != nil {
		return 0, corruptf("invalid score %q", p)
	}
	return f, nil
}
