package rdb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
)

// rdbBuilder writes RDB payloads by hand, so tests can cover encodings that
// the installed Redis no longer produces (ziplists, zipmaps, RDB 11/12
// types, ...). It follows the format documentation, not Redis's code.
type rdbBuilder struct {
	buf bytes.Buffer
}

func newBuilder(version int) *rdbBuilder {
	b := &rdbBuilder{}
	fmt.Fprintf(&b.buf, "REDIS%04d", version)
	return b
}

func (b *rdbBuilder) raw(p ...byte) *rdbBuilder { b.buf.Write(p); return b }

// length writes n with the smallest length encoding.
func (b *rdbBuilder) length(n uint64) *rdbBuilder {
	switch {
	case n < 1<<6:
		b.raw(byte(n))
	case n < 1<<14:
		b.raw(byte(n>>8)|0x40, byte(n))
	case n <= math.MaxUint32:
		b.len32(n)
	default:
		b.len64(n)
	}
	return b
}

func (b *rdbBuilder) len32(n uint64) *rdbBuilder {
	b.raw(0x80)
	return b.raw(binary.BigEndian.AppendUint32(nil, uint32(n))...)
}

func (b *rdbBuilder) len64(n uint64) *rdbBuilder {
	b.raw(0x81)
	return b.raw(binary.BigEndian.AppendUint64(nil, n)...)
}

func (b *rdbBuilder) str(s string) *rdbBuilder {
	b.length(uint64(len(s)))
	b.buf.WriteString(s)
	return b
}

func (b *rdbBuilder) blob(p []byte) *rdbBuilder { return b.str(string(p)) }

// intStr writes v with the INT8/16/32 string encodings.
func (b *rdbBuilder) intStr(v int64) *rdbBuilder {
	switch {
	case v >= math.MinInt8 && v <= math.MaxInt8:
		return b.raw(0xc0, byte(int8(v)))
	case v >= math.MinInt16 && v <= math.MaxInt16:
		return b.raw(0xc1).raw(binary.LittleEndian.AppendUint16(nil, uint16(int16(v)))...)
	}
	return b.raw(0xc2).raw(binary.LittleEndian.AppendUint32(nil, uint32(int32(v)))...)
}

// lzfStr writes s as an LZF-compressed string.
func (b *rdbBuilder) lzfStr(s string) *rdbBuilder {
	c := testLZFCompress([]byte(s))
	b.raw(0xc3).length(uint64(len(c))).length(uint64(len(s)))
	return b.raw(c...)
}

func (b *rdbBuilder) aux(k, v string) *rdbBuilder { return b.raw(opAux).str(k).str(v) }
func (b *rdbBuilder) selectDB(n int) *rdbBuilder  { return b.raw(opSelectDB).length(uint64(n)) }
func (b *rdbBuilder) resizeDB(n, e int) *rdbBuilder {
	return b.raw(opResizeDB).length(uint64(n)).length(uint64(e))
}
func (b *rdbBuilder) expireMs(ms int64) *rdbBuilder {
	return b.raw(opExpireTimeMs).raw(binary.LittleEndian.AppendUint64(nil, uint64(ms))...)
}
func (b *rdbBuilder) expireSec(s int32) *rdbBuilder {
	return b.raw(opExpireTime).raw(binary.LittleEndian.AppendUint32(nil, uint32(s))...)
}
func (b *rdbBuilder) millis(ms int64) *rdbBuilder {
	return b.raw(binary.LittleEndian.AppendUint64(nil, uint64(ms))...)
}
func (b *rdbBuilder) key(typ byte, key string) *rdbBuilder { return b.raw(typ).str(key) }

func (b *rdbBuilder) streamID(id StreamID) *rdbBuilder {
	p := binary.BigEndian.AppendUint64(nil, id.Ms)
	return b.raw(binary.BigEndian.AppendUint64(p, id.Seq)...)
}

// end writes the EOF opcode and the CRC64 of everything before it.
func (b *rdbBuilder) end() []byte {
	b.raw(opEOF)
	sum := crc64Update(0, b.buf.Bytes())
	b.raw(binary.LittleEndian.AppendUint64(nil, sum)...)
	return bytes.Clone(b.buf.Bytes())
}

// endNoChecksum writes EOF and a zero checksum (rdbchecksum no).
func (b *rdbBuilder) endNoChecksum() []byte {
	b.raw(opEOF).raw(make([]byte, 8)...)
	return bytes.Clone(b.buf.Bytes())
}

// --- encoded blobs ---

// listpack encodes strings and int64s (ints with the smallest encoding).
func listpack(elems ...any) []byte {
	out := []byte{0, 0, 0, 0, 0, 0}
	for _, e := range elems {
		var enc []byte
		switch v := e.(type) {
		case string:
			n := len(v)
			switch {
			case n < 64:
				enc = append([]byte{0x80 | byte(n)}, v...)
			case n < 4096:
				enc = append([]byte{0xe0 | byte(n>>8), byte(n)}, v...)
			default:
				enc = append(binary.LittleEndian.AppendUint32([]byte{0xf0}, uint32(n)), v...)
			}
		case int:
			enc = lpInt(int64(v))
		case int64:
			enc = lpInt(v)
		default:
			panic(fmt.Sprintf("listpack: %T", e))
		}
		out = append(out, enc...)
		out = append(out, lpBacklen(len(enc))...)
	}
	out = append(out, 0xff)
	binary.LittleEndian.PutUint32(out, uint32(len(out)))
	n := len(elems)
	if n > 65535 {
		n = 65535
	}
	binary.LittleEndian.PutUint16(out[4:], uint16(n))
	return out
}

func lpInt(v int64) []byte {
	switch {
	case v >= 0 && v <= 127:
		return []byte{byte(v)}
	case v >= -4096 && v <= 4095:
		u := uint16(v) & 0x1fff
		return []byte{0xc0 | byte(u>>8), byte(u)}
	case v >= math.MinInt16 && v <= math.MaxInt16:
		return binary.LittleEndian.AppendUint16([]byte{0xf1}, uint16(v))
	case v >= -1<<23 && v < 1<<23:
		u := uint32(v)
		return []byte{0xf2, byte(u), byte(u >> 8), byte(u >> 16)}
	case v >= math.MinInt32 && v <= math.MaxInt32:
		return binary.LittleEndian.AppendUint32([]byte{0xf3}, uint32(v))
	}
	return binary.LittleEndian.AppendUint64([]byte{0xf4}, uint64(v))
}

func lpBacklen(l int) []byte {
	n := backlenSize(l)
	out := make([]byte, n)
	for i := n - 1; i >= 0; i-- {
		out[i] = byte(l & 127)
		if i != 0 {
			out[i] |= 128
		}
		l >>= 7
	}
	return out
}

// ziplist encodes strings and int64s (ints with the smallest encoding,
// including the 4-bit immediates).
func ziplist(elems ...any) []byte {
	out := make([]byte, 10)
	prev := 0
	tail := 10
	for _, e := range elems {
		var ent []byte
		if prev < 254 {
			ent = []byte{byte(prev)}
		} else {
			ent = binary.LittleEndian.AppendUint32([]byte{0xfe}, uint32(prev))
		}
		switch v := e.(type) {
		case string:
			n := len(v)
			switch {
			case n < 64:
				ent = append(ent, byte(n))
			case n < 16384:
				ent = append(ent, 0x40|byte(n>>8), byte(n))
			default:
				ent = binary.BigEndian.AppendUint32(append(ent, 0x80), uint32(n))
			}
			ent = append(ent, v...)
		case int, int64:
			var x int64
			if i, ok := v.(int); ok {
				x = int64(i)
			} else {
				x = v.(int64)
			}
			switch {
			case x >= 0 && x <= 12:
				ent = append(ent, 0xf1+byte(x))
			case x >= math.MinInt8 && x <= math.MaxInt8:
				ent = append(ent, 0xfe, byte(x))
			case x >= math.MinInt16 && x <= math.MaxInt16:
				ent = binary.LittleEndian.AppendUint16(append(ent, 0xc0), uint16(x))
			case x >= -1<<23 && x < 1<<23:
				u := uint32(x)
				ent = append(ent, 0xf0, byte(u), byte(u>>8), byte(u>>16))
			case x >= math.MinInt32 && x <= math.MaxInt32:
				ent = binary.LittleEndian.AppendUint32(append(ent, 0xd0), uint32(x))
			default:
				ent = binary.LittleEndian.AppendUint64(append(ent, 0xe0), uint64(x))
			}
		default:
			panic(fmt.Sprintf("ziplist: %T", e))
		}
		tail = len(out)
		out = append(out, ent...)
		prev = len(ent)
	}
	out = append(out, 0xff)
	binary.LittleEndian.PutUint32(out, uint32(len(out)))
	binary.LittleEndian.PutUint32(out[4:], uint32(tail))
	binary.LittleEndian.PutUint16(out[8:], uint16(min(len(elems), 65535)))
	return out
}

// zipmap encodes field/value pairs, with `free` padding bytes after each value.
func zipmap(free int, pairs ...string) []byte {
	out := []byte{byte(len(pairs) / 2)}
	zmLen := func(n int) {
		if n < 254 {
			out = append(out, byte(n))
		} else {
			out = binary.LittleEndian.AppendUint32(append(out, 254), uint32(n))
		}
	}
	for i := 0; i < len(pairs); i += 2 {
		zmLen(len(pairs[i]))
		out = append(out, pairs[i]...)
		zmLen(len(pairs[i+1]))
		out = append(out, byte(free))
		out = append(out, pairs[i+1]...)
		out = append(out, make([]byte, free)...)
	}
	return append(out, 0xff)
}

func intset(width int, vals ...int64) []byte {
	out := binary.LittleEndian.AppendUint32(nil, uint32(width))
	out = binary.LittleEndian.AppendUint32(out, uint32(len(vals)))
	for _, v := range vals {
		switch width {
		case 2:
			out = binary.LittleEndian.AppendUint16(out, uint16(v))
		case 4:
			out = binary.LittleEndian.AppendUint32(out, uint32(v))
		default:
			out = binary.LittleEndian.AppendUint64(out, uint64(v))
		}
	}
	return out
}

// testStreamEntry is one entry for streamListpack.
type testStreamEntry struct {
	id      StreamID
	fv      []string // field, value, field, value...
	deleted bool
}

// streamListpack lays out a stream node as Redis does: the master entry
// with the first entry's fields, then entries delta-encoded against master,
// using SAMEFIELDS when an entry has exactly the master fields.
func streamListpack(master StreamID, entries []testStreamEntry) []byte {
	var masterFields []string
	for i := 0; i < len(entries[0].fv); i += 2 {
		masterFields = append(masterFields, entries[0].fv[i])
	}
	live, deleted := 0, 0
	for _, e := range entries {
		if e.deleted {
			deleted++
		} else {
			live++
		}
	}
	elems := []any{live, deleted, len(masterFields)}
	for _, f := range masterFields {
		elems = append(elems, f)
	}
	elems = append(elems, 0)
	for _, e := range entries {
		flags := 0
		if e.deleted {
			flags |= streamFlagDeleted
		}
		same := len(e.fv) == 2*len(masterFields)
		for i := 0; same && i < len(masterFields); i++ {
			same = e.fv[2*i] == masterFields[i]
		}
		if same {
			flags |= streamFlagSameFields
		}
		elems = append(elems, flags, int64(e.id.Ms-master.Ms), int64(e.id.Seq-master.Seq))
		n := len(e.fv) / 2
		if same {
			for i := 1; i < len(e.fv); i += 2 {
				elems = append(elems, e.fv[i])
			}
			elems = append(elems, n+3)
		} else {
			elems = append(elems, n)
			for _, s := range e.fv {
				elems = append(elems, s)
			}
			elems = append(elems, 2*n+4)
		}
	}
	return listpack(elems...)
}

// testLZFCompress is a small greedy LZF compressor, enough to produce valid
// LZF streams with literal runs, short and long back references.
func testLZFCompress(in []byte) []byte {
	var out, lit []byte
	flush := func() {
		for len(lit) > 0 {
			n := min(len(lit), 32)
			out = append(out, byte(n-1))
			out = append(out, lit[:n]...)
			lit = lit[n:]
		}
	}
	seen := map[[3]byte]int{}
	for i := 0; i < len(in); {
		if i+3 <= len(in) {
			k := [3]byte(in[i : i+3])
			if p, ok := seen[k]; ok && i-p-1 < 8192 {
				l := 3
				for i+l < len(in) && l < 264 && in[p+l] == in[i+l] {
					l++
				}
				flush()
				off := i - p - 1
				if l-2 < 7 {
					out = append(out, byte((l-2)<<5|off>>8))
				} else {
					out = append(out, byte(7<<5|off>>8), byte(l-2-7))
				}
				out = append(out, byte(off))
				for j := i; j < i+l && j+3 <= len(in); j++ {
					seen[[3]byte(in[j:j+3])] = j
				}
				i += l
				continue
			}
			seen[k] = i
		}
		lit = append(lit, in[i])
		i++
	}
	flush()
	return out
}
