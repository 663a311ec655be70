package rdb

import "fmt"

// decodeString delivers a string value in parts of at most the chunk byte
// limit. A plain string is read part by part, so even a 512 MiB value only
// ever occupies one part in memory; integer and LZF encodings are decoded
// whole first (LZF needs the whole input, and integers are tiny).
func (d *Decoder) decodeString() error {
	v, enc, err := d.r.readLenOrEnc()
	if err != nil {
		return err
	}
	partSize := uint64(d.opts.maxBytes)
	if enc {
		d.part, err = d.r.appendStringBody(d.part[:0], v, enc)
		if err != nil {
			return err
		}
		whole := d.part
		for {
			n := min(uint64(len(whole)), partSize)
			last := n == uint64(len(whole))
			if err := d.h.StringPart(&d.meta, whole[:n], last); err != nil {
				return err
			}
			if last {
				return nil
			}
			whole = whole[n:]
			if err := d.ctx.Err(); err != nil {
				return err
			}
		}
	}
	if err := d.r.checkStrLen(v); err != nil {
		return err
	}
	for remaining := v; ; {
		n := min(remaining, partSize)
		d.part, err = d.r.appendRaw(d.part[:0], n)
		if err != nil {
			return err
		}
		remaining -= n
		if err := d.h.StringPart(&d.meta, d.part, remaining == 0); err != nil {
			return err
		}
		if remaining == 0 {
			return nil
		}
		if err := d.ctx.Err(); err != nil {
			return err
		}
	}
}

// checkStreamedEntries refuses a hash-table encoded value that streams in
// pieces and declares more entries than WithMaxStreamedEntries allows.
func (d *Decoder) checkStreamedEntries(n uint64) error {
	if !d.streamingKept || d.opts.maxStreamedEntries == 0 || n <= d.opts.maxStreamedEntries {
		return nil
	}
	switch d.meta.Encoding {
	case rdbTypeSet, rdbTypeHash, rdbTypeZSet, rdbTypeZSet2, rdbTypeHashMetadata:
		return fmt.Errorf("%w (it declares %d entries, more than %d: the loading server would allocate a hash table for them before it reads one)",
			ErrTooBigToStream, n, d.opts.maxStreamedEntries)
	}
	return nil
}

// decodeSingles reads the plain LIST and SET encodings: a count, then that
// many strings.
func (d *Decoder) decodeSingles() error {
	n, err := d.r.readLen()
	if err != nil {
		return err
	}
	if err := d.checkStreamedEntries(n); err != nil {
		return err
	}
	for i := uint64(0); i < n; i++ {
		f := d.b.begin()
		if err := d.b.addFromReader(&d.r); err != nil {
			return fmt.Errorf("element %d: %w", i, err)
		}
		d.b.push(f, item{})
		if err := d.maybeFlush(); err != nil {
			return err
		}
	}
	return d.flush()
}

// decodeZSet reads ZSET (string scores) and ZSET_2 (binary scores).
func (d *Decoder) decodeZSet(binaryScores bool) error {
	n, err := d.r.readLen()
	if err != nil {
		return err
	}
	if err := d.checkStreamedEntries(n); err != nil {
		return err
	}
	for i := uint64(0); i < n; i++ {
		f := d.b.begin()
		if err := d.b.addFromReader(&d.r); err != nil {
			return fmt.Errorf("member %d: %w", i, err)
		}
		var score float64
		if binaryScores {
			score, err = d.r.readBinaryDouble()
		} else {
			score, err = d.r.readDoubleString()
		}
		if err != nil {
			return fmt.Errorf("score of member %d: %w", i, err)
		}
		d.b.push(f, item{score: score})
		if err := d.maybeFlush(); err != nil {
			return err
		}
	}
	return d.flush()
}

// decodeHash reads the plain HASH encoding: a count of field/value pairs.
func (d *Decoder) decodeHash() error {
	n, err := d.r.readLen()
	if err != nil {
		return err
	}
	if err := d.checkStreamedEntries(n); err != nil {
		return err
	}
	for i := uint64(0); i < n; i++ {
		f := d.b.begin()
		if err := d.b.addFromReader(&d.r); err != nil {
			return fmt.Errorf("field %d: %w", i, err)
		}
		if err := d.b.addFromReader(&d.r); err != nil {
			return fmt.Errorf("value of field %d: %w", i, err)
		}
		d.b.push(f, item{})
		if err := d.maybeFlush(); err != nil {
			return err
		}
	}
	return d.flush()
}

// maxFieldExpire is Redis's EB_EXPIRE_TIME_MAX: field expiries are 48-bit.
const maxFieldExpire = 1<<48 - 1

// decodeHashMetadata reads the Redis 7.4 hash with field expiries:
// [min expiry, 8 bytes LE (GA format only)] count, then per field a TTL
// length, the field and the value. In the GA format a TTL t != 0 means
// minExpire + t - 1; in the pre-GA format it is absolute. 0 means none.
func (d *Decoder) decodeHashMetadata(relative bool) error {
	var minExpire uint64
	if relative {
		v, err := d.r.readUint64LE()
		if err != nil {
			return err
		}
		minExpire = v
	}
	n, err := d.r.readLen()
	if err != nil {
		return err
	}
	if err := d.checkStreamedEntries(n); err != nil {
		return err
	}
	for i := uint64(0); i < n; i++ {
		ttl, err := d.r.readLen()
		if err != nil {
			return fmt.Errorf("ttl of field %d: %w", i, err)
		}
		expireAt := ttl
		if relative && ttl != 0 {
			expireAt = ttl + minExpire - 1
			if expireAt < ttl { // wrapped
				return corruptf("field %d expiry overflows", i)
			}
		}
		if expireAt > maxFieldExpire {
			return corruptf("field %d expiry %d out of range", i, expireAt)
		}
		f := d.b.begin()
		if err := d.b.addFromReader(&d.r); err != nil {
			return fmt.Errorf("field %d: %w", i, err)
		}
		if err := d.b.addFromReader(&d.r); err != nil {
			return fmt.Errorf("value of field %d: %w", i, err)
		}
		d.b.push(f, item{ms: int64(expireAt)})
		if err := d.maybeFlush(); err != nil {
			return err
		}
	}
	return d.flush()
}

// Quicklist node containers (quicklist.h).
const (
	qlContainerPlain  = 1
	qlContainerPacked = 2
)

// decodeQuicklist reads LIST_QUICKLIST (a count of ziplists) and
// LIST_QUICKLIST_2 (a count of nodes, each a container type then either a
// listpack (PACKED) or one raw element (PLAIN)).
func (d *Decoder) decodeQuicklist(v2 bool) error {
	n, err := d.r.readLen()
	if err != nil {
		return err
	}
	for i := uint64(0); i < n; i++ {
		container := uint64(qlContainerPacked)
		if v2 {
			if container, err = d.r.readLen(); err != nil {
				return fmt.Errorf("node %d: %w", i, err)
			}
			if container != qlContainerPlain && container != qlContainerPacked {
				return corruptf("node %d: unknown quicklist container %d", i, container)
			}
		}
		if container == qlContainerPlain {
			// A PLAIN node is one (big) element: read it straight into
			// the chunk instead of through the blob buffer.
			f := d.b.begin()
			if err := d.b.addFromReader(&d.r); err != nil {
				return fmt.Errorf("node %d: %w", i, err)
			}
			if s := d.b.spans[len(d.b.spans)-1]; s.end == s.start {
				return corruptf("node %d: empty plain node", i)
			}
			d.b.push(f, item{})
			if err := d.maybeFlush(); err != nil {
				return err
			}
			continue
		}
		blob, err := d.readBlob()
		if err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
		it, err := d.packIterFor(v2, blob)
		if err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
		if err := d.packSingles(it); err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
	}
	return d.flush()
}

// The pack* functions add the elements of one encoded blob to the current
// chunk; the caller flushes at the end of the key, so that a quicklist's
// many small nodes still make full-size chunks.

// packSingles adds every element of an encoded blob (list, set).
func (d *Decoder) packSingles(it packIter) error {
	for {
		e, ok, err := it.next()
		if err != nil || !ok {
			return err
		}
		f := d.b.begin()
		d.b.addEntry(e)
		d.b.push(f, item{})
		if err := d.maybeFlush(); err != nil {
			return err
		}
	}
}

// packZSet adds member/score pairs of a ziplist or listpack.
func (d *Decoder) packZSet(it packIter) error {
	for {
		m, ok, err := it.next()
		if err != nil || !ok {
			return err
		}
		s, ok, err := it.next()
		if err != nil {
			return err
		}
		if !ok {
			return corruptf("zset member without a score")
		}
		score, err := s.float()
		if err != nil {
			return err
		}
		f := d.b.begin()
		d.b.addEntry(m)
		d.b.push(f, item{score: score})
		if err := d.maybeFlush(); err != nil {
			return err
		}
	}
}

// packHash adds field/value pairs, or field/value/expiry triples for
// the 7.4 listpack-ex encodings (expiry: absolute ms, 0 for none).
func (d *Decoder) packHash(it packIter, withTTL bool) error {
	for {
		field, ok, err := it.next()
		if err != nil || !ok {
			return err
		}
		value, ok, err := it.next()
		if err != nil {
			return err
		}
		if !ok {
			return corruptf("hash field without a value")
		}
		var ms int64
		if withTTL {
			ttl, ok, err := it.next()
			if err != nil {
				return err
			}
			if !ok {
				return corruptf("hash field without an expiry")
			}
			v, isInt := ttl.int()
			if !isInt || v < 0 || v > maxFieldExpire {
				return corruptf("invalid hash field expiry")
			}
			ms = v
		}
		f := d.b.begin()
		d.b.addEntry(field)
		d.b.addEntry(value)
		d.b.push(f, item{ms: ms})
		if err := d.maybeFlush(); err != nil {
			return err
		}
	}
}
