package rdb

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"
)

// ErrNotWritable is returned by a FileWriter for a value it cannot write
// in an RDB file of its version: a stream that did not come whole (too big
// for the raw limit, or from a newer RDB version), hash fields with their
// own expiry. The caller loads that dataset some other way.
var ErrNotWritable = errors.New("value cannot be written to the RDB file")

// ErrTooBigToStream is the ErrNotWritable of a StreamWriter for a value
// too big to hold until it may go on (a value in chunks, until its end; a
// whole one, between two checks): a file could take it.
var ErrTooBigToStream = fmt.Errorf("%w: a value is too big to hold until it can be streamed", ErrNotWritable)

// ErrTooBig is returned by a FileWriter whose output would pass its
// MaxSize.
var ErrTooBig = errors.New("the RDB written passes its size limit")

// FileWriter is a RawHandler that writes what a Decoder finds as an RDB
// file that redis-server loads natively (DEBUG RELOAD, or at start), which
// costs the server far less than the same keys replayed as commands.
//
// Values that come whole (RawValue) are copied as they are. Others come in
// chunks, whose number is unknown when the value starts: they are written
// in the plain encodings every Redis still loads (RDB_TYPE_LIST, _SET,
// _ZSET_2, _HASH, strings) with a 64-bit length that is filled in once the
// value ends, and the checksum is then computed again from the file.
//
// Keep filters what is written: a key for which it returns false is left
// out; an error stops the decoding.
type FileWriter struct {
	BaseHandler
	out     *sink
	version int
	// merge, when set, is the Merger this writer is an input of: it writes
	// each key whole in its turn (turn held).
	merge *Merger
	held  bool

	Keep func(k *KeyMeta) (bool, error)
	// OnAux, when set, sees the payload's AUX fields (they are not
	// written: Redis needs none to load the file).
	OnAux func(key, value []byte) error
	// MaxSize, when positive, bounds the bytes written (file or stream):
	// a write past it fails with ErrTooBig.
	MaxSize int64

	db       int // the current database of the input
	resize   *[2]uint64
	skipping bool // the current key is left out
	// A value written in chunks: where its length is, and how many
	// elements (or bytes, for a string) it has so far.
	lenAt int64
	count uint64
	// A stream cannot fill in a length: a value that comes in chunks is
	// held in spool (at most spoolLimit bytes) until its end.
	spool      []byte
	spooling   bool
	spoolLimit int
}

// NewFileWriter starts an RDB file of the given version (10 for Redis 7.0)
// in f, which must be empty, readable and seekable.
func NewFileWriter(f *os.File, version int) (*FileWriter, error) {
	w := &FileWriter{out: &sink{f: f, bw: bufio.NewWriterSize(f, 1<<20), written: -1}, version: version}
	if err := w.write([]byte(fmt.Sprintf("REDIS%04d", version))); err != nil {
		return nil, err
	}
	return w, nil
}

// NewStreamWriter starts an RDB of the given version written to out as it
// is made, for a reader that loads it as it arrives (a replica's diskless
// load). Nothing written can be changed later: a value that comes in
// chunks, whose length is only known at its end, is held until then, and
// one that takes more than spoolLimit bytes is refused with ErrNotWritable.
// The stream ends with a checksum of 0 (newStreamSink).
func NewStreamWriter(out io.Writer, version, spoolLimit int) (*FileWriter, error) {
	w := &FileWriter{out: newStreamSink(out), version: version, spoolLimit: spoolLimit}
	if err := w.write([]byte(fmt.Sprintf("REDIS%04d", version))); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *FileWriter) write(p []byte) error {
	if w.MaxSize > 0 && w.out.pos+int64(len(w.spool))+int64(len(p)) > w.MaxSize {
		return fmt.Errorf("%w (%d bytes)", ErrTooBig, w.MaxSize)
	}
	if w.spooling {
		if len(w.spool)+len(p) > w.spoolLimit {
			return fmt.Errorf("%w (more than %d bytes)", ErrTooBigToStream, w.spoolLimit)
		}
		w.spool = append(w.spool, p...)
		return nil
	}
	return w.out.write(p)
}

// sink is where a FileWriter's bytes go: its file or stream, or the
// stream that the inputs of a Merger share.
type sink struct {
	f       *os.File // nil for a stream
	bw      *bufio.Writer
	crc     uint64
	pos     int64
	written int // the database the output is in (-1 none)
	// patched: a length was filled in after it was written, so the running
	// checksum is stale.
	patched bool
	// unchecked: the output ends with a checksum of 0, which Redis takes
	// as "saved without a checksum" and loads without that check.
	unchecked bool
	flushed   time.Time // a stream's last flush
}

// streamFlushEvery: a stream is flushed at the end of a key when it was
// last flushed this long ago, so that what a slow source sends reaches
// the reader (a replica, which gives up on a master that sends nothing
// for its repl-timeout) instead of waiting in the buffer.
const streamFlushEvery = 100 * time.Millisecond

// keyDone is told at the end of each key written whole.
func (o *sink) keyDone() error {
	if o.f != nil || time.Since(o.flushed) < streamFlushEvery {
		return nil
	}
	o.flushed = time.Now()
	if err := o.bw.Flush(); err != nil {
		return fmt.Errorf("write rdb stream: %w", err)
	}
	return nil
}

// newStreamSink is the sink of a stream: a replica loads it as it
// arrives, from the service over a local socket, and the service has
// checked what it decoded (its input's checksum included), so the stream
// carries no checksum of its own. A third of the service's CPU in a full
// sync went into checksums, one of them this one.
func newStreamSink(out io.Writer) *sink {
	return &sink{bw: bufio.NewWriterSize(out, 256<<10), written: -1, unchecked: true, flushed: time.Now()}
}

func (o *sink) write(p []byte) error {
	if !o.patched && !o.unchecked {
		o.crc = crc64Update(o.crc, p)
	}
	n, err := o.bw.Write(p)
	o.pos += int64(n)
	if err != nil {
		return fmt.Errorf("write rdb file: %w", err)
	}
	return nil
}

func (w *FileWriter) byte1(b byte) error { return w.write([]byte{b}) }

// length writes an RDB length in its shortest form.
func (w *FileWriter) length(n uint64) error {
	var b [9]byte
	switch {
	case n < 1<<6:
		b[0] = byte(n)
		return w.write(b[:1])
	case n < 1<<14:
		b[0], b[1] = 0x40|byte(n>>8), byte(n)
		return w.write(b[:2])
	case n <= math.MaxUint32:
		b[0] = 0x80
		binary.BigEndian.PutUint32(b[1:], uint32(n))
		return w.write(b[:5])
	default:
		b[0] = 0x81
		binary.BigEndian.PutUint64(b[1:], n)
		return w.write(b[:9])
	}
}

// lengthLater writes a 64-bit length to be filled in by patchLength.
func (w *FileWriter) lengthLater() error {
	if w.out.f == nil {
		w.spooling, w.spool, w.count = true, w.spool[:0], 0
		return nil
	}
	w.lenAt, w.count = w.out.pos, 0
	return w.write([]byte{0x81, 0, 0, 0, 0, 0, 0, 0, 0})
}

func (w *FileWriter) patchLength() error {
	if w.out.f == nil {
		w.spooling = false
		if err := w.length(w.count); err != nil {
			return err
		}
		err := w.write(w.spool)
		if cap(w.spool) > 1<<20 {
			w.spool = nil // a big value's buffer is not kept
		}
		return err
	}
	if err := w.out.bw.Flush(); err != nil {
		return fmt.Errorf("write rdb file: %w", err)
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], w.count)
	if _, err := w.out.f.WriteAt(b[:], w.lenAt+1); err != nil {
		return fmt.Errorf("write rdb file: %w", err)
	}
	w.out.patched = true
	return nil
}

func (w *FileWriter) str(p []byte) error {
	if err := w.length(uint64(len(p))); err != nil {
		return err
	}
	return w.write(p)
}

func (w *FileWriter) Aux(key, value []byte) error {
	if w.OnAux != nil {
		return w.OnAux(key, value)
	}
	return nil
}

func (w *FileWriter) SelectDB(db int) error {
	w.db, w.resize = db, nil
	return nil
}

func (w *FileWriter) ResizeDB(dbSize, expiresSize uint64) error {
	w.resize = &[2]uint64{dbSize, expiresSize}
	return nil
}

func (w *FileWriter) Function(code []byte) error {
	if w.merge != nil {
		// Every master of a clustered source has the same libraries: a
		// second copy would fail the load ("already exists").
		if !w.merge.firstFunction(code) {
			return nil
		}
		if err := w.take(); err != nil {
			return err
		}
		defer w.give()
	}
	if err := w.byte1(opFunction2); err != nil {
		return err
	}
	return w.str(code)
}

// take waits for this input's turn to write to a Merger's output; a
// writer of its own has it always.
func (w *FileWriter) take() error {
	if w.merge == nil || w.held {
		return nil
	}
	if err := w.merge.take(); err != nil {
		return err
	}
	w.held = true
	return nil
}

// keyEnd is the end of a key written whole: the stream may be flushed,
// and a Merger's input gives its turn back.
func (w *FileWriter) keyEnd() error {
	err := w.out.keyDone()
	w.give()
	return err
}

// give ends the turn that take began, once a key is written whole.
func (w *FileWriter) give() {
	if w.held {
		w.held = false
		w.merge.give()
	}
}

// keyHeader decides whether k is written and writes what precedes its
// value: the database switch if any, the expiry, the type and the name.
func (w *FileWriter) keyHeader(k *KeyMeta, typ byte) (bool, error) {
	if w.Keep != nil {
		keep, err := w.Keep(k)
		if err != nil || !keep {
			return false, err
		}
	}
	if err := w.take(); err != nil {
		return false, err
	}
	if w.out.written != k.DB {
		if err := w.byte1(opSelectDB); err != nil {
			return false, err
		}
		if err := w.length(uint64(k.DB)); err != nil {
			return false, err
		}
		if w.resize != nil {
			if err := w.byte1(opResizeDB); err != nil {
				return false, err
			}
			if err := w.length(w.resize[0]); err != nil {
				return false, err
			}
			if err := w.length(w.resize[1]); err != nil {
				return false, err
			}
		}
		w.out.written = k.DB
	}
	if k.ExpireAtMs != 0 {
		var b [9]byte
		b[0] = opExpireTimeMs
		binary.LittleEndian.PutUint64(b[1:], uint64(k.ExpireAtMs))
		if err := w.write(b[:]); err != nil {
			return false, err
		}
	}
	if err := w.byte1(typ); err != nil {
		return false, err
	}
	return true, w.str(k.Key)
}

// StreamsRaw: a stream takes values in pieces, as they are read (a file
// holds them whole, and writes those over the raw limit from their chunks).
func (w *FileWriter) StreamsRaw() bool { return w.out.f == nil }

// RawStart writes what precedes a value that comes in pieces.
func (w *FileWriter) RawStart(k *KeyMeta) (bool, error) {
	keep, err := w.keyHeader(k, k.Encoding)
	w.skipping = !keep
	return keep, err
}

// RawPart writes a piece of the value RawStart began.
func (w *FileWriter) RawPart(p []byte) error { return w.write(p) }

// RawEnd ends the value RawStart began.
func (w *FileWriter) RawEnd(*KeyMeta) error { return w.keyEnd() }

// RawValue copies a whole value: the DUMP payload is the type byte, the
// value, then a 10-byte footer (version, checksum) that the file does not
// have.
func (w *FileWriter) RawValue(k *KeyMeta, payload []byte) error {
	if len(payload) < 11 {
		return fmt.Errorf("raw value of %s: payload of %d bytes", quoteKey(k.Key), len(payload))
	}
	return w.RawBody(k, payload[:len(payload)-10])
}

// RawBody copies a whole value given as its type byte and its encoding.
func (w *FileWriter) RawBody(k *KeyMeta, body []byte) error {
	if len(body) < 1 {
		return fmt.Errorf("raw value of %s: empty", quoteKey(k.Key))
	}
	keep, err := w.keyHeader(k, body[0])
	if err != nil || !keep {
		return err
	}
	if err := w.write(body[1:]); err != nil {
		return err
	}
	return w.keyEnd()
}

func (w *FileWriter) BeginKey(k *KeyMeta) error {
	var typ byte
	switch k.Type {
	case TypeString:
		typ = rdbTypeString
	case TypeList:
		typ = rdbTypeList
	case TypeSet:
		typ = rdbTypeSet
	case TypeZSet:
		typ = rdbTypeZSet2
	case TypeHash:
		typ = rdbTypeHash
	default:
		if w.Keep != nil {
			if keep, err := w.Keep(k); err != nil || !keep {
				w.skipping = true
				return err
			}
		}
		return fmt.Errorf("%w: %s %s came in chunks", ErrNotWritable, k.Type, quoteKey(k.Key))
	}
	keep, err := w.keyHeader(k, typ)
	if err != nil {
		return err
	}
	w.skipping = !keep
	if !keep {
		return nil
	}
	return w.lengthLater()
}

// The chunks of a stream left out are ignored (BaseHandler); the others
// are written.

func (w *FileWriter) StringPart(k *KeyMeta, part []byte, last bool) error {
	if w.skipping {
		return nil
	}
	w.count += uint64(len(part))
	return w.write(part)
}

func (w *FileWriter) singles(elems [][]byte) error {
	if w.skipping {
		return nil
	}
	for _, e := range elems {
		if err := w.str(e); err != nil {
			return err
		}
	}
	w.count += uint64(len(elems))
	return nil
}

func (w *FileWriter) ListChunk(k *KeyMeta, elems [][]byte) error  { return w.singles(elems) }
func (w *FileWriter) SetChunk(k *KeyMeta, members [][]byte) error { return w.singles(members) }

func (w *FileWriter) ZSetChunk(k *KeyMeta, members []ZMember) error {
	if w.skipping {
		return nil
	}
	var b [8]byte
	for _, m := range members {
		if err := w.str(m.Member); err != nil {
			return err
		}
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(m.Score))
		if err := w.write(b[:]); err != nil {
			return err
		}
	}
	w.count += uint64(len(members))
	return nil
}

func (w *FileWriter) HashChunk(k *KeyMeta, fields []HashField) error {
	if w.skipping {
		return nil
	}
	for _, f := range fields {
		if f.ExpireAtMs != 0 {
			return fmt.Errorf("%w: hash %s has fields with their own expiry", ErrNotWritable, quoteKey(k.Key))
		}
		if err := w.str(f.Field); err != nil {
			return err
		}
		if err := w.str(f.Value); err != nil {
			return err
		}
	}
	w.count += uint64(len(fields))
	return nil
}

func (w *FileWriter) EndKey(k *KeyMeta) error {
	if w.skipping {
		w.skipping = false
		return nil
	}
	if err := w.patchLength(); err != nil {
		return err
	}
	return w.keyEnd()
}

// Extra is a key the caller adds after the decoded dataset (the service's
// own bookkeeping): a string, or a hash when Fields is set.
type Extra struct {
	DB     int
	Key    string
	Value  string
	Fields map[string]string
}

// Close writes the extra keys, the end of the file and its checksum. It
// does not sync the file: a load reads it at once, from the page cache, and
// a crash before the load makes the load start over. The file stays open:
// the caller closes it.
func (w *FileWriter) Close(extra ...Extra) error {
	for _, e := range extra {
		k := &KeyMeta{DB: e.DB, Key: []byte(e.Key)}
		typ := byte(rdbTypeString)
		if e.Fields != nil {
			typ = rdbTypeHash
		}
		w.Keep = nil
		if _, err := w.keyHeader(k, typ); err != nil {
			return err
		}
		if e.Fields == nil {
			if err := w.str([]byte(e.Value)); err != nil {
				return err
			}
			continue
		}
		if err := w.length(uint64(len(e.Fields))); err != nil {
			return err
		}
		for f, v := range e.Fields {
			if err := w.str([]byte(f)); err != nil {
				return err
			}
			if err := w.str([]byte(v)); err != nil {
				return err
			}
		}
	}
	if err := w.byte1(opEOF); err != nil {
		return err
	}
	o := w.out
	if o.f == nil {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], o.crc)
		if _, err := o.bw.Write(b[:]); err != nil {
			return fmt.Errorf("write rdb stream: %w", err)
		}
		if err := o.bw.Flush(); err != nil {
			return fmt.Errorf("write rdb stream: %w", err)
		}
		return nil
	}
	if err := o.bw.Flush(); err != nil {
		return fmt.Errorf("write rdb file: %w", err)
	}
	if o.patched {
		// Lengths were filled in: the checksum is of the file as it is.
		crc, err := fileCRC(o.f, o.pos)
		if err != nil {
			return err
		}
		o.crc = crc
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], o.crc)
	if _, err := o.f.WriteAt(b[:], o.pos); err != nil {
		return fmt.Errorf("write rdb file: %w", err)
	}
	return nil
}

func fileCRC(f *os.File, size int64) (uint64, error) {
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 1<<20)
	buf := make([]byte, 1<<20)
	var crc uint64
	for {
		n, err := r.Read(buf)
		crc = crc64Update(crc, buf[:n])
		if err == io.EOF {
			return crc, nil
		}
		if err != nil {
			return 0, fmt.Errorf("checksum rdb file: %w", err)
		}
	}
}
