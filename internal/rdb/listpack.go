package rdb

import (
	"encoding/binary"
	"strconv"
)

// packEntry is one element of a listpack or ziplist: either a string (str,
// pointing into the blob) or an integer.
type packEntry struct {
	str   []byte
	ival  int64
	isInt bool
}

// appendTo appends the element's bytes (integers in decimal) to dst.
func (e packEntry) appendTo(dst []byte) []byte {
	if e.isInt {
		return strconv.AppendInt(dst, e.ival, 10)
	}
	return append(dst, e.str...)
}

// int returns the element as an integer; strings holding a decimal integer
// are accepted as Redis's own lpGetInteger does.
func (e packEntry) int() (int64, bool) {
	if e.isInt {
		return e.ival, true
	}
	v, err := strconv.ParseInt(string(e.str), 10, 64)
	return v, err == nil
}

// float returns the element as a sorted-set score.
func (e packEntry) float() (float64, error) {
	if e.isInt {
		return float64(e.ival), nil
	}
	return parseScore(e.str)
}

// packIter walks the elements of an encoded blob.
type packIter interface {
	next() (e packEntry, ok bool, err error)
}

// Listpack layout (listpack.c):
//
//	<total-bytes u32 LE> <num-elements u16 LE> <entry>... <0xFF>
//
// each entry being <encoding+data> <backlen>, where backlen is the size of
// encoding+data stored in 1-5 bytes, 7 bits per byte, read right to left.
// Encodings by first byte:
//
//	0xxxxxxx                 7-bit unsigned integer
//	10xxxxxx                 string, 6-bit length
//	110xxxxx + 1 byte        13-bit signed integer
//	1110xxxx + 1 byte        string, 12-bit length
//	11110000 + 4 bytes       string, 32-bit length
//	11110001/2/3/4           16/24/32/64-bit signed integer follows
//	11111111                 end of listpack
type listpackIter struct {
	buf     []byte
	pos     int
	count   int
	hdrSize int // element count from the header, 65535 when unknown
}

const lpHeaderSize = 6

func newListpackIter(b []byte) (*listpackIter, error) {
	if len(b) < lpHeaderSize+1 {
		return nil, corruptf("listpack of %d bytes is too short", len(b))
	}
	if total := binary.LittleEndian.Uint32(b); int64(total) != int64(len(b)) {
		return nil, corruptf("listpack header says %d bytes, blob has %d", total, len(b))
	}
	if b[len(b)-1] != 0xff {
		return nil, corruptf("listpack is not terminated")
	}
	return &listpackIter{buf: b, pos: lpHeaderSize, hdrSize: int(binary.LittleEndian.Uint16(b[4:]))}, nil
}

// backlenSize is the number of bytes used to store an entry length l.
func backlenSize(l int) int {
	switch {
	case l < 1<<7:
		return 1
	case l < 1<<14:
		return 2
	case l < 1<<21:
		return 3
	case l < 1<<28:
		return 4
	}
	return 5
}

func (it *listpackIter) next() (packEntry, bool, error) {
	b := it.buf
	end := len(b) - 1 // position of the terminator
	p := it.pos
	if p > end {
		return packEntry{}, false, corruptf("listpack overrun")
	}
	c := b[p]
	if c == 0xff {
		if p != end {
			return packEntry{}, false, corruptf("listpack terminator at %d of %d bytes", p, len(b))
		}
		if it.hdrSize != 0xffff && it.hdrSize != it.count {
			return packEntry{}, false, corruptf("listpack header says %d elements, found %d", it.hdrSize, it.count)
		}
		return packEntry{}, false, nil
	}
	need := func(n int) bool { return p+n <= end }
	var e packEntry
	var size int // encoding + data bytes
	switch {
	case c&0x80 == 0:
		e, size = packEntry{ival: int64(c), isInt: true}, 1
	case c&0xc0 == 0x80:
		n := int(c & 0x3f)
		if !need(1 + n) {
			return e, false, corruptf("listpack string overruns the blob")
		}
		e, size = packEntry{str: b[p+1 : p+1+n]}, 1+n
	case c&0xe0 == 0xc0:
		if !need(2) {
			return e, false, corruptf("listpack int overruns the blob")
		}
		v := int64(c&0x1f)<<8 | int64(b[p+1])
		e, size = packEntry{ival: v << 51 >> 51, isInt: true}, 2 // sign-extend 13 bits
	case c&0xf0 == 0xe0:
		if !need(2) {
			return e, false, corruptf("listpack string overruns the blob")
		}
		n := int(c&0x0f)<<8 | int(b[p+1])
		if !need(2 + n) {
			return e, false, corruptf("listpack string overruns the blob")
		}
		e, size = packEntry{str: b[p+2 : p+2+n]}, 2+n
	case c == 0xf0:
		if !need(5) {
			return e, false, corruptf("listpack string overruns the blob")
		}
		n := uint64(binary.LittleEndian.Uint32(b[p+1:]))
		if uint64(end-p) < 5+n {
			return e, false, corruptf("listpack string overruns the blob")
		}
		e, size = packEntry{str: b[p+5 : p+5+int(n)]}, 5+int(n)
	case c >= 0xf1 && c <= 0xf4:
		width := [...]int{2, 3, 4, 8}[c-0xf1]
		if !need(1 + width) {
			return e, false, corruptf("listpack int overruns the blob")
		}
		var u uint64
		for i := width - 1; i >= 0; i-- { // little-endian
			u = u<<8 | uint64(b[p+1+i])
		}
		shift := 64 - 8*width
		e, size = packEntry{ival: int64(u<<shift) >> shift, isInt: true}, 1+width
	default:
		return e, false, corruptf("invalid listpack encoding byte 0x%02x", c)
	}
	bl := backlenSize(size)
	if !need(size + bl) {
		return e, false, corruptf("listpack entry backlen overruns the blob")
	}
	// Check the backlen: a cheap way to catch a corrupted entry header.
	var v, shift int
	for i := p + size + bl - 1; i >= p+size; i-- {
		v |= int(b[i]&0x7f) << shift
		shift += 7
	}
	if v != size {
		return e, false, corruptf("listpack entry backlen %d, entry is %d bytes", v, size)
	}
	it.pos = p + size + bl
	it.count++
	return e, true, nil
}
