package rdb

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// ErrChecksum reports a payload whose trailing CRC64 does not match.
var ErrChecksum = errors.New("rdb checksum mismatch")

// ErrUnsupported is wrapped by errors for content that cannot be turned
// into commands: module values and module aux data, pre-release formats.
var ErrUnsupported = errors.New("unsupported rdb content")

// Unwrap lets errors.Is(err, ErrUnsupported) match type errors.
func (e *UnsupportedTypeError) Unwrap() error { return ErrUnsupported }

// Decoder reads one RDB payload from a reader and hands its content to a
// Handler as it goes. See the package documentation for the guarantees on
// memory and on how far it reads.
type Decoder struct {
	r       reader
	opts    options
	version int
	used    bool

	ctx  context.Context
	h    Handler
	db   int
	meta KeyMeta
	// streamingKept: the value under way streams in pieces to a handler
	// that keeps it (decodeRawStream); see WithMaxStreamedEntries.
	streamingKept bool

	key  []byte // current key
	blob []byte // current encoded blob (listpack, ziplist, ...)
	part []byte // current string value part
	aux  []byte // AUX value / function code
	b    batch

	// stream state, see stream.go
	pel      []pelEntry
	pending  []PendingEntry
	master   []packEntry
	group    []byte
	consumer []byte
}

// NewDecoder returns a decoder reading from r. If r is a *bufio.Reader it is
// used as is, and after Decode returns nil it is positioned exactly after
// the RDB payload (EOF opcode and checksum): a caller that reads more from
// the same connection afterwards must pass its own *bufio.Reader. Any other
// reader is wrapped in a new bufio.Reader, which may read ahead.
func NewDecoder(r io.Reader, opts ...Option) *Decoder {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, o.bufSize)
	}
	d := &Decoder{opts: o}
	d.r = reader{br: br, maxString: o.maxString}
	d.b = batch{maxElems: o.maxElems, maxBytes: o.maxBytes}
	return d
}

// Version is the RDB format version read from the header (0 before).
func (d *Decoder) Version() int { return d.version }

// Offset is the number of payload bytes consumed so far.
func (d *Decoder) Offset() int64 { return d.r.off }

// Decode reads the whole payload, calling h for everything it contains. It
// returns nil after the EOF opcode and a matching checksum (a zero checksum
// means the source disabled checksums and is not verified). Errors are
// wrapped with the offset and what was being decoded; ErrCorrupt,
// ErrChecksum, ErrUnsupported, io.ErrUnexpectedEOF, the context's error and
// the handler's own errors can be tested with errors.Is.
//
// The context is checked between keys and between chunks; a Read that
// blocks is not interrupted by it (set a deadline on the connection).
func (d *Decoder) Decode(ctx context.Context, h Handler) error {
	if d.used {
		return errors.New("rdb: Decode called twice")
	}
	d.used = true
	if h == nil {
		return errors.New("rdb: Decode needs a Handler")
	}
	if ctx == nil {
		ctx = context.Background()
	}
	d.ctx, d.h = ctx, h
	if err := d.decode(); err != nil {
		return fmt.Errorf("rdb: at offset %d: %w", d.r.off, err)
	}
	return nil
}

func (d *Decoder) decode() error {
	if err := d.readHeader(); err != nil {
		return err
	}
	expire, idle, freq := int64(0), int64(-1), -1
	for {
		if err := d.ctx.Err(); err != nil {
			return err
		}
		op, err := d.r.readByte()
		if err != nil {
			return fmt.Errorf("read opcode: %w", err)
		}
		switch op {
		case opExpireTimeMs:
			ms, err := d.r.readMillis()
			if err != nil {
				return fmt.Errorf("read expire time: %w", err)
			}
			expire = nonZeroExpire(ms)
		case opExpireTime:
			p := d.r.scratch[:4]
			if err := d.r.readFull(p); err != nil {
				return fmt.Errorf("read expire time: %w", err)
			}
			expire = nonZeroExpire(int64(int32(binary.LittleEndian.Uint32(p))) * 1000)
		case opFreq:
			b, err := d.r.readByte()
			if err != nil {
				return fmt.Errorf("read LFU frequency: %w", err)
			}
			freq = int(b)
		case opIdle:
			v, err := d.r.readLen()
			if err != nil {
				return fmt.Errorf("read LRU idle time: %w", err)
			}
			idle = int64(min(v, math.MaxInt64))
		case opSelectDB:
			v, err := d.r.readLen()
			if err != nil {
				return fmt.Errorf("read SELECTDB: %w", err)
			}
			if v > math.MaxInt32 {
				return corruptf("database number %d", v)
			}
			d.db = int(v)
			if err := d.h.SelectDB(d.db); err != nil {
				return err
			}
		case opResizeDB:
			if err := d.resizeDB(); err != nil {
				return err
			}
		case opSlotInfo:
			if err := d.slotInfo(); err != nil {
				return err
			}
		case opAux:
			if err := d.auxField(); err != nil {
				return err
			}
		case opModuleAux:
			if err := d.moduleAux(); err != nil {
				return err
			}
		case opFunctionPreGA:
			return fmt.Errorf("%w: function library in the Redis 7.0 release-candidate format (opcode 246)", ErrUnsupported)
		case opFunction2:
			code, err := d.r.appendString(d.aux[:0])
			d.aux = code
			if err != nil {
				return fmt.Errorf("read function library: %w", err)
			}
			if err := d.h.Function(code); err != nil {
				return err
			}
		case opEOF:
			return d.finish()
		default:
			if err := d.decodeKey(op, expire, idle, freq); err != nil {
				return err
			}
			expire, idle, freq = 0, -1, -1
		}
	}
}

// nonZeroExpire keeps an expiry at (or before) the epoch distinguishable
// from "no expiry": 0 means none in KeyMeta, and such a key is expired
// anyway.
func nonZeroExpire(ms int64) int64 {
	if ms <= 0 {
		return 1
	}
	return ms
}

func (d *Decoder) readHeader() error {
	p := d.r.scratch[:9]
	if err := d.r.readFull(p); err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	if string(p[:5]) != "REDIS" {
		return corruptf("bad magic %q, not an RDB payload", p[:5])
	}
	v, err := strconv.Atoi(string(p[5:9]))
	if err != nil || v < 1 {
		return corruptf("bad version %q", p[5:9])
	}
	if v > maxSupportedVersion {
		return fmt.Errorf("%w: RDB version %d (newest supported is %d)", ErrUnsupported, v, maxSupportedVersion)
	}
	d.version = v
	return nil
}

// finish checks the checksum that follows the EOF opcode (RDB 5+), reading
// exactly its 8 bytes and nothing more.
func (d *Decoder) finish() error {
	if d.version < 5 {
		return nil
	}
	expected := d.r.crc
	stored, err := d.r.readUint64LE()
	if err != nil {
		return fmt.Errorf("read checksum: %w", err)
	}
	if stored != 0 && d.opts.checksum && stored != expected {
		return fmt.Errorf("%w: stored %016x, computed %016x", ErrChecksum, stored, expected)
	}
	return nil
}

func (d *Decoder) resizeDB() error {
	size, err := d.r.readLen()
	if err != nil {
		return fmt.Errorf("read RESIZEDB: %w", err)
	}
	expires, err := d.r.readLen()
	if err != nil {
		return fmt.Errorf("read RESIZEDB: %w", err)
	}
	return d.h.ResizeDB(size, expires)
}

func (d *Decoder) slotInfo() error {
	var v [3]uint64
	for i := range v {
		var err error
		if v[i], err = d.r.readLen(); err != nil {
			return fmt.Errorf("read SLOT_INFO: %w", err)
		}
	}
	return d.h.SlotInfo(v[0], v[1], v[2])
}

func (d *Decoder) auxField() error {
	k, err := d.r.appendString(d.key[:0])
	d.key = k
	if err != nil {
		return fmt.Errorf("read AUX key: %w", err)
	}
	v, err := d.r.appendString(d.aux[:0])
	d.aux = v
	if err != nil {
		return fmt.Errorf("read AUX %s: %w", quoteKey(k), err)
	}
	return d.h.Aux(k, v)
}

// moduleAux reads a MODULE_AUX header. Without the module its content
// cannot be interpreted, so anything but an empty body is an error.
func (d *Decoder) moduleAux() error {
	id, err := d.r.readLen()
	if err != nil {
		return fmt.Errorf("read module aux: %w", err)
	}
	name := moduleTypeName(id)
	whenOp, err := d.r.readLen()
	if err != nil {
		return fmt.Errorf("read module aux of %q: %w", name, err)
	}
	if whenOp != moduleOpcodeUint {
		return corruptf("module aux of %q: bad when opcode %d", name, whenOp)
	}
	if _, err := d.r.readLen(); err != nil {
		return fmt.Errorf("read module aux of %q: %w", name, err)
	}
	first, err := d.r.readLen()
	if err != nil {
		return fmt.Errorf("read module aux of %q: %w", name, err)
	}
	if first == moduleOpcodeEOF {
		return nil
	}
	return fmt.Errorf("%w: module aux data of module type %q needs the module loaded in the destination", ErrUnsupported, name)
}

// moduleTypeName recovers the 9-character module type name that Redis packs
// into the upper 54 bits of a module ID, 6 bits per character.
func moduleTypeName(id uint64) string {
	const charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var name [9]byte
	id >>= 10
	for i := 8; i >= 0; i-- {
		name[i] = charset[id&63]
		id >>= 6
	}
	return string(name[:])
}

func (d *Decoder) decodeKey(typ byte, expire, idle int64, freq int) error {
	key, err := d.r.appendString(d.key[:0])
	d.key = key
	if err != nil {
		return fmt.Errorf("read key of rdb type %d: %w", typ, err)
	}
	t, ok := typeOf(typ)
	if !ok || t == TypeModule {
		e := &UnsupportedTypeError{DB: d.db, Key: append([]byte(nil), key...), RDBType: typ}
		if typ == rdbTypeModule2 {
			if id, err := d.r.readLen(); err == nil {
				e.Module = moduleTypeName(id)
			}
		}
		return e
	}
	d.meta = KeyMeta{DB: d.db, Key: key, ExpireAtMs: expire, Type: t, Encoding: typ, IdleSec: idle, Freq: freq}
	if sh, ok := d.h.(RawStreamHandler); ok && d.rawEligible(typ) && sh.StreamsRaw() && t != TypeStream {
		if err := d.decodeRawStream(sh, typ); err != nil {
			return fmt.Errorf("decode %s %s: %w", t, quoteKey(key), err)
		}
		d.trimBuffers()
		return nil
	}
	if rh, ok := d.h.(RawHandler); ok && d.rawEligible(typ) {
		done, err := d.decodeRaw(rh, typ)
		if err != nil {
			return fmt.Errorf("decode %s %s: %w", t, quoteKey(key), err)
		}
		if done {
			d.trimBuffers()
			return nil
		}
		// Too big to go whole: decoded again below, from the recorded bytes.
	}
	if err := d.h.BeginKey(&d.meta); err != nil {
		return fmt.Errorf("key %s: %w", quoteKey(key), err)
	}
	if err := d.decodeValue(typ); err != nil {
		return fmt.Errorf("decode %s %s: %w", t, quoteKey(key), err)
	}
	if err := d.h.EndKey(&d.meta); err != nil {
		return fmt.Errorf("key %s: %w", quoteKey(key), err)
	}
	d.trimBuffers()
	return nil
}

// trimBuffers drops buffers a big value inflated, so memory goes back to
// the chunk size once the key is done.
func (d *Decoder) trimBuffers() {
	limit := max(4*d.opts.maxBytes, 1<<20)
	if cap(d.blob) > limit {
		d.blob = nil
	}
	if cap(d.part) > limit {
		d.part = nil
	}
	if cap(d.key) > limit {
		d.key = nil
	}
	if cap(d.aux) > limit {
		d.aux = nil
	}
	if cap(d.group) > limit {
		d.group = nil
	}
	if cap(d.consumer) > limit {
		d.consumer = nil
	}
	if cap(d.pel) > 1<<16 {
		d.pel = nil
	}
	if cap(d.r.rec) > limit {
		d.r.rec = nil
	}
}

// rawEligible says whether a value of RDB type typ may go whole to a
// RawHandler: raw values are on, the server that will RESTORE it reads this
// payload's version, and the type is not one of the pre-release encodings
// that released servers do not load.
func (d *Decoder) rawEligible(typ byte) bool {
	return d.opts.rawLimit > 0 && d.version <= d.opts.rawVersion &&
		typ != rdbTypeHashMetadataPreGA && typ != rdbTypeHashListpackExPreG
}

// decodeRaw records the bytes of the current key's value while decoding it
// for nothing but its validity. If it ends within the raw limit, the
// recorded value goes to h as a DUMP payload and decodeRaw returns true. If
// it grows past the limit, the bytes recorded so far are put back in front
// of the input, so that the caller decodes the value again as usual.
func (d *Decoder) decodeRaw(h RawHandler, typ byte) (bool, error) {
	r := &d.r
	r.rec = append(r.rec[:0], typ)
	r.recording, r.recLimit = true, d.opts.rawLimit
	d.h = BaseHandler{}
	err := d.decodeValue(typ)
	d.h = h
	r.recording = false
	d.b.reset()
	if errors.Is(err, errRawLimit) {
		r.pre = r.rec[1:]
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if bh, ok := h.(RawBodyHandler); ok {
		return true, bh.RawBody(&d.meta, r.rec)
	}
	// The DUMP footer: RDB version (little-endian 16 bits), then the CRC64
	// of everything before it.
	p := binary.LittleEndian.AppendUint16(r.rec, uint16(d.version))
	p = binary.LittleEndian.AppendUint64(p, crc64Update(0, p))
	r.rec = p
	return true, h.RawValue(&d.meta, p)
}

// decodeRawStream is decodeRaw for a handler that takes a value in pieces:
// what is recorded goes on at safe points (reader.safePoint), once it is
// checked, so a value of any size goes whole without being held; only the
// bytes between two safe points (one listpack, one string) are, up to the
// raw limit (ErrTooBigToStream beyond). Streams, whose checks span the
// whole value, do not come this way.
func (d *Decoder) decodeRawStream(h RawStreamHandler, typ byte) error {
	keep, err := h.RawStart(&d.meta)
	if err != nil {
		return err
	}
	r := &d.r
	r.rec = r.rec[:0]
	r.recording, r.recLimit = true, d.opts.rawLimit
	r.sink, r.piece = h.RawPart, streamPiece
	if d.opts.piece > 0 {
		r.piece = d.opts.piece
	}
	if !keep {
		r.sink = func([]byte) error { return nil }
	}
	d.h = BaseHandler{}
	d.streamingKept = keep
	err = d.decodeValue(typ)
	d.h, d.streamingKept = h, false
	r.recording, r.sink = false, nil
	d.b.reset()
	if errors.Is(err, errRawLimit) {
		return fmt.Errorf("%w (more than %d bytes between two checks)", ErrTooBigToStream, d.opts.rawLimit)
	}
	if err != nil || !keep {
		return err
	}
	if err := h.RawPart(r.rec); err != nil {
		return err
	}
	return h.RawEnd(&d.meta)
}

func (d *Decoder) decodeValue(typ byte) error {
	switch typ {
	case rdbTypeString:
		return d.decodeString()
	case rdbTypeList, rdbTypeSet:
		return d.decodeSingles()
	case rdbTypeZSet, rdbTypeZSet2:
		return d.decodeZSet(typ == rdbTypeZSet2)
	case rdbTypeHash:
		return d.decodeHash()
	case rdbTypeHashMetadataPreGA, rdbTypeHashMetadata:
		return d.decodeHashMetadata(typ == rdbTypeHashMetadata)
	case rdbTypeListQuicklist, rdbTypeListQuicklist2:
		return d.decodeQuicklist(typ == rdbTypeListQuicklist2)
	case rdbTypeStreamListpacks, rdbTypeStreamListpacks2, rdbTypeStreamListpacks3:
		return d.decodeStream(typ)
	case rdbTypeHashListpackEx:
		// The listpack is preceded by the hash's smallest field expiry,
		// which is only an index hint.
		if _, err := d.r.readMillis(); err != nil {
			return err
		}
	}
	// The remaining types are one encoded blob.
	if err := d.decodeBlobValue(typ); err != nil {
		return err
	}
	return d.flush()
}

func (d *Decoder) decodeBlobValue(typ byte) error {
	blob, err := d.readBlob()
	if err != nil {
		return err
	}
	switch typ {
	case rdbTypeHashZipmap:
		it, err := newZipmapIter(blob)
		if err != nil {
			return err
		}
		return d.packHash(it, false)
	case rdbTypeListZiplist:
		it, err := newZiplistIter(blob)
		if err != nil {
			return err
		}
		return d.packSingles(it)
	case rdbTypeSetIntset:
		it, err := newIntsetIter(blob)
		if err != nil {
			return err
		}
		return d.packSingles(it)
	case rdbTypeZSetZiplist, rdbTypeZSetListpack:
		it, err := d.packIterFor(typ == rdbTypeZSetListpack, blob)
		if err != nil {
			return err
		}
		return d.packZSet(it)
	case rdbTypeHashZiplist, rdbTypeHashListpack, rdbTypeHashListpackExPreG, rdbTypeHashListpackEx:
		it, err := d.packIterFor(typ != rdbTypeHashZiplist, blob)
		if err != nil {
			return err
		}
		return d.packHash(it, typ == rdbTypeHashListpackExPreG || typ == rdbTypeHashListpackEx)
	case rdbTypeSetListpack:
		it, err := newListpackIter(blob)
		if err != nil {
			return err
		}
		return d.packSingles(it)
	}
	return fmt.Errorf("internal error: no decoder for rdb type %d", typ)
}

func (d *Decoder) packIterFor(listpack bool, blob []byte) (packIter, error) {
	if listpack {
		return newListpackIter(blob)
	}
	return newZiplistIter(blob)
}

func (d *Decoder) readBlob() ([]byte, error) {
	b, err := d.r.appendString(d.blob[:0])
	d.blob = b
	return b, err
}

// flush hands the accumulated chunk to the handler.
func (d *Decoder) flush() error {
	if d.b.empty() {
		return nil
	}
	if err := d.ctx.Err(); err != nil {
		return err
	}
	var err error
	k := &d.meta
	switch k.Type {
	case TypeList:
		err = d.h.ListChunk(k, d.b.viewSingles())
	case TypeSet:
		err = d.h.SetChunk(k, d.b.viewSingles())
	case TypeZSet:
		err = d.h.ZSetChunk(k, d.b.viewZSet())
	case TypeHash:
		err = d.h.HashChunk(k, d.b.viewHash())
	case TypeStream:
		err = d.h.StreamEntries(k, d.b.viewStream())
	}
	d.b.reset()
	return err
}

func (d *Decoder) maybeFlush() error {
	if d.b.full() {
		return d.flush()
	}
	return nil
}
