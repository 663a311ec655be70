package rdb

import "encoding/binary"

// Ziplist layout (ziplist.c, written by Redis before 7.0):
//
//	<zlbytes u32 LE> <zltail u32 LE> <zllen u16 LE> <entry>... <0xFF>
//
// each entry being <prevlen> <encoding> <data>. prevlen is one byte, or
// 0xFE followed by a 4-byte LE length. Encodings by first byte:
//
//	00xxxxxx                 string, 6-bit length
//	01xxxxxx + 1 byte        string, 14-bit length (big-endian)
//	10000000 + 4 bytes       string, 32-bit length (big-endian)
//	11000000 / 11010000 / 11100000   int16 / int32 / int64 (LE) follows
//	11110000                 24-bit signed int follows
//	11111110                 8-bit signed int follows
//	1111xxxx (0001..1101)    immediate integer xxxx-1 (0..12)
type ziplistIter struct {
	buf      []byte
	pos      int
	count    int
	hdrCount int // 65535 when unknown
	tail     int // offset of the last entry, from the header
	prevLen  int
	last     int // offset of the last entry seen
}

const zlHeaderSize = 10

func newZiplistIter(b []byte) (*ziplistIter, error) {
	if len(b) < zlHeaderSize+1 {
		return nil, corruptf("ziplist of %d bytes is too short", len(b))
	}
	if total := binary.LittleEndian.Uint32(b); int64(total) != int64(len(b)) {
		return nil, corruptf("ziplist header says %d bytes, blob has %d", total, len(b))
	}
	tail := binary.LittleEndian.Uint32(b[4:])
	if int64(tail) >= int64(len(b)) {
		return nil, corruptf("ziplist tail offset %d out of range", tail)
	}
	if b[len(b)-1] != 0xff {
		return nil, corruptf("ziplist is not terminated")
	}
	return &ziplistIter{buf: b, pos: zlHeaderSize, last: zlHeaderSize, tail: int(tail),
		hdrCount: int(binary.LittleEndian.Uint16(b[8:]))}, nil
}

func (it *ziplistIter) next() (packEntry, bool, error) {
	b := it.buf
	end := len(b) - 1
	p := it.pos
	if p > end {
		return packEntry{}, false, corruptf("ziplist overrun")
	}
	if b[p] == 0xff {
		if p != end {
			return packEntry{}, false, corruptf("ziplist terminator at %d of %d bytes", p, len(b))
		}
		if it.hdrCount != 0xffff && it.hdrCount != it.count {
			return packEntry{}, false, corruptf("ziplist header says %d elements, found %d", it.hdrCount, it.count)
		}
		if it.tail != it.last {
			return packEntry{}, false, corruptf("ziplist tail offset %d, last entry at %d", it.tail, it.last)
		}
		return packEntry{}, false, nil
	}
	start := p
	need := func(n int) bool { return p+n <= end }
	// prevlen
	var prev int
	if b[p] < 0xfe {
		prev = int(b[p])
		p++
	} else {
		if !need(5) {
			return packEntry{}, false, corruptf("ziplist prevlen overruns the blob")
		}
		prev = int(binary.LittleEndian.Uint32(b[p+1:]))
		p += 5
	}
	if prev != it.prevLen {
		return packEntry{}, false, corruptf("ziplist prevlen %d, previous entry is %d bytes", prev, it.prevLen)
	}
	if !need(1) {
		return packEntry{}, false, corruptf("ziplist entry overruns the blob")
	}
	c := b[p]
	var e packEntry
	switch {
	case c>>6 == 0:
		n := int(c & 0x3f)
		if !need(1 + n) {
			return e, false, corruptf("ziplist string overruns the blob")
		}
		e, p = packEntry{str: b[p+1 : p+1+n]}, p+1+n
	case c>>6 == 1:
		if !need(2) {
			return e, false, corruptf("ziplist string overruns the blob")
		}
		n := int(c&0x3f)<<8 | int(b[p+1])
		if !need(2 + n) {
			return e, false, corruptf("ziplist string overruns the blob")
		}
		e, p = packEntry{str: b[p+2 : p+2+n]}, p+2+n
	case c>>6 == 2:
		if !need(5) {
			return e, false, corruptf("ziplist string overruns the blob")
		}
		n := uint64(binary.BigEndian.Uint32(b[p+1:]))
		if uint64(end-p) < 5+n {
			return e, false, corruptf("ziplist string overruns the blob")
		}
		e, p = packEntry{str: b[p+5 : p+5+int(n)]}, p+5+int(n)
	case c >= 0xf1 && c <= 0xfd:
		e, p = packEntry{ival: int64(c&0x0f) - 1, isInt: true}, p+1
	default:
		var width int
		switch c {
		case 0xc0:
			width = 2
		case 0xd0:
			width = 4
		case 0xe0:
			width = 8
		case 0xf0:
			width = 3
		case 0xfe:
			width = 1
		default:
			return e, false, corruptf("invalid ziplist encoding byte 0x%02x", c)
		}
		if !need(1 + width) {
			return e, false, corruptf("ziplist int overruns the blob")
		}
		var u uint64
		for i := width - 1; i >= 0; i-- {
			u = u<<8 | uint64(b[p+1+i])
		}
		shift := 64 - 8*width
		e, p = packEntry{ival: int64(u<<shift) >> shift, isInt: true}, p+1+width
	}
	it.prevLen = p - start
	it.last = start
	it.pos = p
	it.count++
	return e, true, nil
}

// Zipmap layout (zipmap.c, hashes written by Redis before 2.6):
//
//	<zmlen> (<len> key <len> <free> value <free bytes>)... <0xFF>
//
// where a len is one byte below 254, or 254 followed by a 4-byte LE length.
type zipmapIter struct {
	buf      []byte
	pos      int
	valueNow bool // next element is a value
	free     int  // padding to skip after the value
}

func newZipmapIter(b []byte) (*zipmapIter, error) {
	if len(b) < 2 || b[len(b)-1] != 0xff {
		return nil, corruptf("zipmap is not terminated")
	}
	return &zipmapIter{buf: b, pos: 1}, nil
}

func (it *zipmapIter) readLen() (int, error) {
	b := it.buf
	if it.pos >= len(b) {
		return 0, corruptf("zipmap overrun")
	}
	c := b[it.pos]
	switch {
	case c < 254:
		it.pos++
		return int(c), nil
	case c == 254:
		if it.pos+5 > len(b) {
			return 0, corruptf("zipmap length overruns the blob")
		}
		n := binary.LittleEndian.Uint32(b[it.pos+1:])
		it.pos += 5
		if int64(n) > int64(len(b)) {
			return 0, corruptf("zipmap length %d overruns the blob", n)
		}
		return int(n), nil
	}
	return 0, corruptf("zipmap ends inside an entry")
}

func (it *zipmapIter) next() (packEntry, bool, error) {
	b := it.buf
	if !it.valueNow {
		if it.pos >= len(b) {
			return packEntry{}, false, corruptf("zipmap overrun")
		}
		if b[it.pos] == 0xff {
			if it.pos != len(b)-1 {
				return packEntry{}, false, corruptf("zipmap terminator before its end")
			}
			return packEntry{}, false, nil
		}
	}
	n, err := it.readLen()
	if err != nil {
		return packEntry{}, false, err
	}
	if it.valueNow {
		if it.pos >= len(b) {
			return packEntry{}, false, corruptf("zipmap overrun")
		}
		it.free = int(b[it.pos])
		it.pos++
	}
	// The terminator byte must stay after the data (and the free padding).
	if it.pos+n+it.free*boolInt(it.valueNow) > len(b)-1 {
		return packEntry{}, false, corruptf("zipmap entry overruns the blob")
	}
	e := packEntry{str: b[it.pos : it.pos+n]}
	it.pos += n
	if it.valueNow {
		it.pos += it.free
	}
	it.valueNow = !it.valueNow
	return e, true, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
