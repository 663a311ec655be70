package rdb

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// Stream entry flags (t_stream.c).
const (
	streamFlagDeleted    = 1 << 0
	streamFlagSameFields = 1 << 1
)

// pelEntry is a group-level pending entry waiting for its consumer.
type pelEntry struct {
	PendingEntry
	owned bool
}

// decodeStream reads STREAM_LISTPACKS (15), _2 (19, RDB 10+: first ID, max
// deleted ID, entries added, group entries-read) and _3 (21, RDB 11+:
// consumer active time):
//
//	<listpack count> (<master ID: 16-byte string> <listpack>)...
//	<length> <last ID ms> <last ID seq>
//	[<first ID ms> <seq> <max deleted ID ms> <seq> <entries added>]  (19+)
//	<group count> per group:
//	  <name> <last ID ms> <seq> [<entries read>] (19+)
//	  <PEL count> (<ID 16 bytes BE> <delivery time 8 bytes LE> <delivery count>)...
//	  <consumer count> per consumer:
//	    <name> <seen time 8 bytes LE> [<active time 8 bytes LE>] (21)
//	    <PEL count> (<ID 16 bytes BE>)...
func (d *Decoder) decodeStream(typ byte) error {
	n, err := d.r.readLen()
	if err != nil {
		return err
	}
	for i := uint64(0); i < n; i++ {
		nodeKey, err := d.r.appendString(d.group[:0])
		d.group = nodeKey
		if err != nil {
			return fmt.Errorf("listpack %d master ID: %w", i, err)
		}
		if len(nodeKey) != 16 {
			return corruptf("listpack %d master ID is %d bytes, want 16", i, len(nodeKey))
		}
		master := StreamID{binary.BigEndian.Uint64(nodeKey), binary.BigEndian.Uint64(nodeKey[8:])}
		blob, err := d.readBlob()
		if err != nil {
			return fmt.Errorf("listpack %d: %w", i, err)
		}
		if err := d.streamListpack(master, blob); err != nil {
			return fmt.Errorf("listpack %d (master ID %s): %w", i, master, err)
		}
	}
	if err := d.flush(); err != nil {
		return err
	}

	var m StreamMeta
	lens := []*uint64{&m.Length, &m.LastID.Ms, &m.LastID.Seq}
	if typ >= rdbTypeStreamListpacks2 {
		m.HasV2Fields = true
		lens = append(lens, &m.FirstID.Ms, &m.FirstID.Seq, &m.MaxDeletedID.Ms, &m.MaxDeletedID.Seq, &m.EntriesAdded)
	}
	for _, p := range lens {
		if *p, err = d.r.readLen(); err != nil {
			return fmt.Errorf("stream metadata: %w", err)
		}
	}
	if err := d.h.StreamMeta(&d.meta, &m); err != nil {
		return err
	}

	groups, err := d.r.readLen()
	if err != nil {
		return fmt.Errorf("group count: %w", err)
	}
	for i := uint64(0); i < groups; i++ {
		if err := d.streamGroup(typ); err != nil {
			return fmt.Errorf("group %d: %w", i, err)
		}
	}
	return nil
}

// streamListpack delivers the entries of one stream listpack. Its layout is
// a master entry
//
//	<count> <deleted> <num-fields> <field>... <0>
//
// followed by entries, each
//
//	<flags> <ms-diff> <seq-diff> [<num-fields> <field> <value>...] <lp-count>
//
// or, with the SAMEFIELDS flag, <value>... in place of the bracket (field
// names taken from the master entry). IDs are deltas from the master ID.
func (d *Decoder) streamListpack(master StreamID, blob []byte) error {
	it, err := newListpackIter(blob)
	if err != nil {
		return err
	}
	next := func(what string) (packEntry, error) {
		e, ok, err := it.next()
		if err == nil && !ok {
			err = corruptf("listpack ends before %s", what)
		}
		return e, err
	}
	nextInt := func(what string) (int64, error) {
		e, err := next(what)
		if err != nil {
			return 0, err
		}
		v, ok := e.int()
		if !ok {
			return 0, corruptf("%s is not an integer", what)
		}
		return v, nil
	}
	var hdr [3]int64
	for i, what := range []string{"entry count", "deleted count", "master field count"} {
		if hdr[i], err = nextInt(what); err != nil {
			return err
		}
		if hdr[i] < 0 {
			return corruptf("negative %s", what)
		}
	}
	count, deleted, nf := hdr[0], hdr[1], hdr[2]
	d.master = d.master[:0]
	for j := int64(0); j < nf; j++ {
		e, err := next("master field")
		if err != nil {
			return err
		}
		d.master = append(d.master, e)
	}
	if term, err := nextInt("master terminator"); err != nil {
		return err
	} else if term != 0 {
		return corruptf("master entry terminator is %d", term)
	}

	var seen int64
	for {
		e, ok, err := it.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		flags, isInt := e.int()
		if !isInt {
			return corruptf("entry flags are not an integer")
		}
		msDiff, err := nextInt("ms delta")
		if err != nil {
			return err
		}
		seqDiff, err := nextInt("seq delta")
		if err != nil {
			return err
		}
		id := StreamID{master.Ms + uint64(msDiff), master.Seq + uint64(seqDiff)}
		f := d.b.begin()
		nfields, want := nf, int64(0)
		if flags&streamFlagSameFields != 0 {
			for _, field := range d.master {
				v, err := next("entry value")
				if err != nil {
					return err
				}
				d.b.addEntry(field)
				d.b.addEntry(v)
			}
			want = nfields + 3
		} else {
			if nfields, err = nextInt("entry field count"); err != nil {
				return err
			}
			if nfields < 0 {
				return corruptf("negative entry field count")
			}
			for j := int64(0); j < 2*nfields; j++ {
				v, err := next("entry field")
				if err != nil {
					return err
				}
				d.b.addEntry(v)
			}
			want = 2*nfields + 4
		}
		lpCount, err := nextInt("entry lp-count")
		if err != nil {
			return err
		}
		if lpCount != want {
			return corruptf("entry %s lp-count %d, want %d", id, lpCount, want)
		}
		d.b.push(f, item{id: id, deleted: flags&streamFlagDeleted != 0})
		seen++
		if err := d.maybeFlush(); err != nil {
			return err
		}
	}
	if seen != count+deleted {
		return corruptf("master entry counts %d live + %d deleted, listpack holds %d", count, deleted, seen)
	}
	return nil
}

// streamGroup reads one consumer group. The group PEL carries delivery
// time and count while consumers only list the IDs they own, so the group
// PEL is kept (sorted, as Redis writes it) until its consumers are read;
// that is the one place where memory grows with a collection's size, 40
// bytes per pending entry.
func (d *Decoder) streamGroup(typ byte) error {
	name, err := d.r.appendString(d.group[:0])
	d.group = name
	if err != nil {
		return fmt.Errorf("name: %w", err)
	}
	g := StreamGroup{Name: name, EntriesRead: -1}
	if g.LastID.Ms, err = d.r.readLen(); err != nil {
		return err
	}
	if g.LastID.Seq, err = d.r.readLen(); err != nil {
		return err
	}
	if typ >= rdbTypeStreamListpacks2 {
		v, err := d.r.readLen()
		if err != nil {
			return err
		}
		// Redis stores "unknown" (-1) as the 64-bit length 2^64-1.
		if v <= math.MaxInt64 {
			g.EntriesRead = int64(v)
		}
	}
	if err := d.h.StreamGroup(&d.meta, &g); err != nil {
		return err
	}

	pelN, err := d.r.readLen()
	if err != nil {
		return fmt.Errorf("PEL size: %w", err)
	}
	d.pel = d.pel[:0]
	for i := uint64(0); i < pelN; i++ {
		var p pelEntry
		if p.ID, err = d.r.readStreamIDRaw(); err != nil {
			return fmt.Errorf("PEL entry %d: %w", i, err)
		}
		if p.DeliveryTimeMs, err = d.r.readMillis(); err != nil {
			return fmt.Errorf("PEL entry %d: %w", i, err)
		}
		if p.DeliveryCount, err = d.r.readLen(); err != nil {
			return fmt.Errorf("PEL entry %d: %w", i, err)
		}
		if n := len(d.pel); n > 0 && !d.pel[n-1].ID.less(p.ID) {
			return corruptf("PEL entry %s out of order", p.ID)
		}
		d.pel = append(d.pel, p)
	}

	consumers, err := d.r.readLen()
	if err != nil {
		return fmt.Errorf("consumer count: %w", err)
	}
	for i := uint64(0); i < consumers; i++ {
		if err := d.streamConsumer(typ, name); err != nil {
			return fmt.Errorf("consumer %d: %w", i, err)
		}
	}
	for _, p := range d.pel {
		if !p.owned {
			return corruptf("pending entry %s has no consumer", p.ID)
		}
	}
	return nil
}

func (d *Decoder) streamConsumer(typ byte, group []byte) error {
	name, err := d.r.appendString(d.consumer[:0])
	d.consumer = name
	if err != nil {
		return fmt.Errorf("name: %w", err)
	}
	c := StreamConsumer{Name: name, ActiveTimeMs: -1}
	if c.SeenTimeMs, err = d.r.readMillis(); err != nil {
		return err
	}
	if typ >= rdbTypeStreamListpacks3 {
		if c.ActiveTimeMs, err = d.r.readMillis(); err != nil {
			return err
		}
	}
	if err := d.h.StreamConsumer(&d.meta, group, &c); err != nil {
		return err
	}
	n, err := d.r.readLen()
	if err != nil {
		return fmt.Errorf("PEL size: %w", err)
	}
	d.pending = d.pending[:0]
	for i := uint64(0); i < n; i++ {
		id, err := d.r.readStreamIDRaw()
		if err != nil {
			return fmt.Errorf("PEL entry %d: %w", i, err)
		}
		j, found := slices.BinarySearchFunc(d.pel, id, func(p pelEntry, id StreamID) int {
			switch {
			case p.ID.less(id):
				return -1
			case id.less(p.ID):
				return 1
			}
			return 0
		})
		if !found {
			return corruptf("pending entry %s is not in the group PEL", id)
		}
		if d.pel[j].owned {
			return corruptf("pending entry %s owned twice", id)
		}
		d.pel[j].owned = true
		d.pending = append(d.pending, d.pel[j].PendingEntry)
		if len(d.pending) >= d.opts.maxElems {
			if err := d.flushPending(group, name); err != nil {
				return err
			}
		}
	}
	return d.flushPending(group, name)
}

func (d *Decoder) flushPending(group, consumer []byte) error {
	if len(d.pending) == 0 {
		return nil
	}
	if err := d.ctx.Err(); err != nil {
		return err
	}
	err := d.h.StreamPending(&d.meta, group, consumer, d.pending)
	d.pending = d.pending[:0]
	return err
}
