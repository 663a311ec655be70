package rdb

import "strconv"

// batch accumulates the elements of one chunk. All bytes live in a single
// arena and items refer to them by offset, so growing the arena never
// invalidates earlier elements; the typed views handed to the Handler are
// built only when the chunk is flushed.
type batch struct {
	maxElems int
	maxBytes int

	arena []byte
	spans []span
	items []item

	views [][]byte // reused output buffers
	zset  []ZMember
	hash  []HashField
	strm  []StreamEntry
}

type span struct{ start, end int }

type item struct {
	first, n int // range in spans
	score    float64
	ms       int64
	id       StreamID
	deleted  bool
}

func (b *batch) full() bool {
	return len(b.items) >= b.maxElems || len(b.arena) >= b.maxBytes
}

func (b *batch) empty() bool { return len(b.items) == 0 }

// begin starts an item; its spans are those added until push.
func (b *batch) begin() int { return len(b.spans) }

func (b *batch) push(first int, it item) {
	it.first, it.n = first, len(b.spans)-first
	b.items = append(b.items, it)
}

func (b *batch) addSpan(start int) {
	b.spans = append(b.spans, span{start, len(b.arena)})
}

func (b *batch) addBytes(p []byte) {
	start := len(b.arena)
	b.arena = append(b.arena, p...)
	b.addSpan(start)
}

func (b *batch) addInt(v int64) {
	start := len(b.arena)
	b.arena = strconv.AppendInt(b.arena, v, 10)
	b.addSpan(start)
}

func (b *batch) addEntry(e packEntry) {
	start := len(b.arena)
	b.arena = e.appendTo(b.arena)
	b.addSpan(start)
}

// addFromReader reads an RDB string straight into the arena.
func (b *batch) addFromReader(r *reader) error {
	start := len(b.arena)
	var err error
	b.arena, err = r.appendString(b.arena)
	if err != nil {
		b.arena = b.arena[:start]
		return err
	}
	b.addSpan(start)
	return nil
}

func (b *batch) bytes(s span) []byte { return b.arena[s.start:s.end:s.end] }

// reset empties the batch after a flush. An arena inflated by one huge
// element is dropped so memory returns to the chunk size.
func (b *batch) reset() {
	if cap(b.arena) > 4*b.maxBytes {
		b.arena = nil
	} else {
		b.arena = b.arena[:0]
	}
	b.spans = b.spans[:0]
	b.items = b.items[:0]
	clear(b.views)
	clear(b.zset)
	clear(b.hash)
	clear(b.strm)
}

// viewSingles returns the first span of every item (lists, sets).
func (b *batch) viewSingles() [][]byte {
	b.views = b.views[:0]
	for _, it := range b.items {
		b.views = append(b.views, b.bytes(b.spans[it.first]))
	}
	return b.views
}

func (b *batch) viewZSet() []ZMember {
	b.zset = b.zset[:0]
	for _, it := range b.items {
		b.zset = append(b.zset, ZMember{Member: b.bytes(b.spans[it.first]), Score: it.score})
	}
	return b.zset
}

func (b *batch) viewHash() []HashField {
	b.hash = b.hash[:0]
	for _, it := range b.items {
		b.hash = append(b.hash, HashField{
			Field:      b.bytes(b.spans[it.first]),
			Value:      b.bytes(b.spans[it.first+1]),
			ExpireAtMs: it.ms,
		})
	}
	return b.hash
}

func (b *batch) viewStream() []StreamEntry {
	b.views = b.views[:0]
	for _, s := range b.spans {
		b.views = append(b.views, b.bytes(s))
	}
	b.strm = b.strm[:0]
	for _, it := range b.items {
		b.strm = append(b.strm, StreamEntry{
			ID:      it.id,
			Fields:  b.views[it.first : it.first+it.n : it.first+it.n],
			Deleted: it.deleted,
		})
	}
	return b.strm
}
