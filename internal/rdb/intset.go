package rdb

import "encoding/binary"

// Intset layout (intset.c): <encoding u32 LE> <length u32 LE> followed by
// length integers of encoding bytes each (2, 4 or 8), little-endian, signed,
// sorted.
type intsetIter struct {
	buf   []byte
	width int
	i, n  int
}

func newIntsetIter(b []byte) (*intsetIter, error) {
	if len(b) < 8 {
		return nil, corruptf("intset of %d bytes is too short", len(b))
	}
	width := binary.LittleEndian.Uint32(b)
	if width != 2 && width != 4 && width != 8 {
		return nil, corruptf("invalid intset encoding %d", width)
	}
	n := uint64(binary.LittleEndian.Uint32(b[4:]))
	if uint64(len(b)-8) != n*uint64(width) {
		return nil, corruptf("intset of %d %d-byte integers in %d bytes", n, width, len(b))
	}
	return &intsetIter{buf: b[8:], width: int(width), n: int(n)}, nil
}

func (it *intsetIter) next() (packEntry, bool, error) {
	if it.i >= it.n {
		return packEntry{}, false, nil
	}
	p := it.buf[it.i*it.width:]
	var v int64
	switch it.width {
	case 2:
		v = int64(int16(binary.LittleEndian.Uint16(p)))
	case 4:
		v = int64(int32(binary.LittleEndian.Uint32(p)))
	default:
		v = int64(binary.LittleEndian.Uint64(p))
	}
	it.i++
	return packEntry{ival: v, isInt: true}, true, nil
}
