package rdb

import (
	"errors"
	"math"
	"runtime"
	"testing"
)

func measureAlloc(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

type testPEL struct {
	id    StreamID
	ms    int64
	count uint64
}

type testConsumer struct {
	name         string
	seen, active int64
	pel          []StreamID
}

type testGroup struct {
	name      string
	last      StreamID
	read      uint64
	pel       []testPEL
	consumers []testConsumer
}

// writeTestStream writes a stream with two nodes (SAMEFIELDS entries, an
// entry with other fields, a deleted one), a group with pending entries
// spread over consumers, and an empty group.
func writeTestStream(b *rdbBuilder, typ byte, key string) {
	id := func(ms, seq uint64) StreamID { return StreamID{ms, seq} }
	nodes := []struct {
		master  StreamID
		entries []testStreamEntry
	}{
		{id(1, 0), []testStreamEntry{
			{id: id(1, 0), fv: []string{"a", "1", "b", "2"}},
			{id: id(1, 1), fv: []string{"a", "3", "b", "4"}},
			{id: id(2, 0), fv: []string{"c", "5"}},
			{id: id(2, 5), fv: []string{"a", "x", "b", "y"}, deleted: true},
		}},
		{id(3, 0), []testStreamEntry{{id: id(3, 0), fv: []string{"x", "1"}}}},
	}
	groups := []testGroup{
		{name: "g1", last: id(2, 0), read: 3,
			pel: []testPEL{{id(1, 0), 1700000000000, 2}, {id(1, 1), 1700000000000, 1}, {id(3, 0), 1700000000500, 5}},
			consumers: []testConsumer{
				{"alice", 1700000001000, 1700000000900, []StreamID{id(1, 0), id(3, 0)}},
				{"bob", 1700000002000, 1700000000800, []StreamID{id(1, 1)}},
				{"carol", 1700000003000, 1700000000700, nil},
			}},
		{name: "g2", read: math.MaxUint64},
	}
	b.key(typ, key).length(uint64(len(nodes)))
	for _, n := range nodes {
		b.blob(append(be64(n.master.Ms), be64(n.master.Seq)...))
		b.blob(streamListpack(n.master, n.entries))
	}
	b.length(4).length(3).length(0) // length, last ID
	if typ >= rdbTypeStreamListpacks2 {
		b.length(1).length(0).length(2).length(5).length(5) // first ID, max deleted ID, entries added
	}
	b.length(uint64(len(groups)))
	for _, g := range groups {
		b.str(g.name).length(g.last.Ms).length(g.last.Seq)
		if typ >= rdbTypeStreamListpacks2 {
			b.length(g.read)
		}
		b.length(uint64(len(g.pel)))
		for _, p := range g.pel {
			b.streamID(p.id).millis(p.ms).length(p.count)
		}
		b.length(uint64(len(g.consumers)))
		for _, c := range g.consumers {
			b.str(c.name).millis(c.seen)
			if typ >= rdbTypeStreamListpacks3 {
				b.millis(c.active)
			}
			b.length(uint64(len(c.pel)))
			for _, id := range c.pel {
				b.streamID(id)
			}
		}
	}
}

func be64(v uint64) []byte {
	return []byte{byte(v >> 56), byte(v >> 48), byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

func TestStreams(t *testing.T) {
	common := []string{
		"XADD st 1-0 a 1 b 2",
		"XADD st 1-1 a 3 b 4",
		"XADD st 2-0 c 5",
		"XADD st 2-5 a x b y", // deleted at the source: written to be claimed, deleted at the end
		"XADD st 3-0 x 1",
	}
	pel := []string{
		"XGROUP CREATECONSUMER st g1 alice",
		"XCLAIM st g1 alice 0 1-0 TIME 1700000000000 RETRYCOUNT 2 FORCE JUSTID",
		"XCLAIM st g1 alice 0 3-0 TIME 1700000000500 RETRYCOUNT 5 FORCE JUSTID",
		"XGROUP CREATECONSUMER st g1 bob",
		"XCLAIM st g1 bob 0 1-1 TIME 1700000000000 RETRYCOUNT 1 FORCE JUSTID",
		"XGROUP CREATECONSUMER st g1 carol",
	}
	for _, tc := range []struct {
		typ  byte
		want []string
	}{
		{rdbTypeStreamListpacks3, append(append(append(append([]string{"SELECT 0"}, common...),
			"XSETID st 3-0 ENTRIESADDED 5 MAXDELETEDID 2-5",
			"XGROUP CREATE st g1 2-0 ENTRIESREAD 3"), pel...), "XGROUP CREATE st g2 0-0", "XDEL st 2-5")},
		{rdbTypeStreamListpacks2, nil},
		{rdbTypeStreamListpacks, append(append(append(append([]string{"SELECT 0"}, common...),
			"XSETID st 3-0",
			"XGROUP CREATE st g1 2-0"), pel...), "XGROUP CREATE st g2 0-0", "XDEL st 2-5")},
	} {
		b := newBuilder(11)
		writeTestStream(b, tc.typ, "st")
		payload := b.end()
		if tc.want != nil {
			wantCmds(t, decodeCmds(t, payload), tc.want...)
		}
		r := record(t, payload, WithChunkLimits(2, 0))
		k := r.keys[0]
		if len(k.entries) != 5 || !k.entries[3].Deleted || k.entries[3].ID != (StreamID{2, 5}) || string(k.entries[2].Fields[0]) != "c" {
			t.Fatalf("type %d entries %+v", tc.typ, k.entries)
		}
		if k.smeta.Length != 4 || k.smeta.LastID != (StreamID{3, 0}) || k.smeta.HasV2Fields != (tc.typ >= rdbTypeStreamListpacks2) {
			t.Fatalf("type %d meta %+v", tc.typ, k.smeta)
		}
		if tc.typ >= rdbTypeStreamListpacks2 && (k.smeta.EntriesAdded != 5 || k.smeta.MaxDeletedID != (StreamID{2, 5}) || k.smeta.FirstID != (StreamID{1, 0})) {
			t.Fatalf("type %d v2 meta %+v", tc.typ, k.smeta)
		}
		if len(k.groups) != 2 || k.groups[1].EntriesRead != -1 || len(k.cons) != 3 || len(k.pending) != 3 {
			t.Fatalf("type %d groups %+v consumers %v pending %v", tc.typ, k.groups, k.cons, k.pending)
		}
		if want := int64(-1); tc.typ >= rdbTypeStreamListpacks2 {
			want = 3
			if k.groups[0].EntriesRead != want {
				t.Fatalf("entries read %d", k.groups[0].EntriesRead)
			}
		}
	}
}

func TestEmptyStreams(t *testing.T) {
	// Every entry deleted: the key must still exist with its last ID.
	b := newBuilder(10)
	b.key(rdbTypeStreamListpacks2, "s").length(1).blob(append(be64(5), be64(0)...)).
		blob(streamListpack(StreamID{5, 0}, []testStreamEntry{{id: StreamID{5, 0}, fv: []string{"f", "v"}, deleted: true}}))
	b.length(0).length(5).length(0).length(0).length(0).length(5).length(0).length(1).length(0)
	// Never had an entry (XGROUP CREATE ... MKSTREAM).
	b.expireMs(1900000000000).key(rdbTypeStreamListpacks2, "e").length(0).length(0).length(0).length(0).
		length(0).length(0).length(0).length(0).length(0).length(0)
	wantCmds(t, decodeCmds(t, b.end()), "SELECT 0",
		"XADD s 5-0 f v", // deleted at the source: the key exists, and its entry does not once complete
		"XSETID s 5-0 ENTRIESADDED 1 MAXDELETEDID 5-0",
		"XDEL s 5-0",
		"XGROUP CREATE e __rdb_replay_tmp_group__ 0 MKSTREAM",
		"XGROUP DESTROY e __rdb_replay_tmp_group__",
		"XSETID e 0-0 ENTRIESADDED 0 MAXDELETEDID 0-0",
		"PEXPIREAT e 1900000000000",
	)
}

func TestCorruptStreams(t *testing.T) {
	node := func(entries ...testStreamEntry) []byte { return streamListpack(StreamID{1, 0}, entries) }
	e := testStreamEntry{id: StreamID{1, 0}, fv: []string{"f", "v"}}
	meta := func(b *rdbBuilder) {
		b.length(1).length(1).length(0).length(1).length(0).length(0).length(0).length(1)
	}
	cases := map[string]func(b *rdbBuilder){
		"short master id": func(b *rdbBuilder) { b.length(1).str("12345678").blob(node(e)) },
		"lp-count": func(b *rdbBuilder) {
			lp := listpack(1, 0, 1, "f", 0, 2, 0, 0, "v", 99)
			b.length(1).blob(append(be64(1), be64(0)...)).blob(lp)
			meta(b)
			b.length(0)
		},
		"entry counts": func(b *rdbBuilder) {
			lp := listpack(2, 0, 1, "f", 0, 2, 0, 0, "v", 4)
			b.length(1).blob(append(be64(1), be64(0)...)).blob(lp)
			meta(b)
			b.length(0)
		},
		"consumer pel not in group pel": func(b *rdbBuilder) {
			b.length(1).blob(append(be64(1), be64(0)...)).blob(node(e))
			meta(b)
			b.length(1).str("g").length(0).length(0).length(0).length(0).length(1).str("c").millis(0).length(1).streamID(StreamID{9, 9})
		},
		"orphan pending entry": func(b *rdbBuilder) {
			b.length(1).blob(append(be64(1), be64(0)...)).blob(node(e))
			meta(b)
			b.length(1).str("g").length(0).length(0).length(0).length(1).streamID(StreamID{1, 0}).millis(0).length(1).length(0)
		},
		"unsorted pel": func(b *rdbBuilder) {
			b.length(1).blob(append(be64(1), be64(0)...)).blob(node(e))
			meta(b)
			b.length(1).str("g").length(0).length(0).length(0).length(2).
				streamID(StreamID{2, 0}).millis(0).length(1).streamID(StreamID{1, 0}).millis(0).length(1).length(0)
		},
	}
	for name, f := range cases {
		b := newBuilder(10).key(rdbTypeStreamListpacks2, "k")
		f(b)
		if _, err := tryDecodeCmds(b.end()); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
