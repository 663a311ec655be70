package rdb

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeFile decodes dump into an RDB file written by a FileWriter and
// returns the file's bytes.
func writeFile(t *testing.T, dump []byte, keep func(*KeyMeta) (bool, error), extra []Extra, opts ...Option) ([]byte, error) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "out.rdb"))
	require.NoError(t, err)
	defer f.Close()
	w, err := NewFileWriter(f, 10)
	require.NoError(t, err)
	w.Keep = keep
	if err := NewDecoder(bytes.NewReader(dump), opts...).Decode(context.Background(), w); err != nil {
		return nil, err
	}
	require.NoError(t, w.Close(extra...))
	return os.ReadFile(f.Name())
}

// A file written from a real dump, values whole or in chunks, loads in a
// real redis-server (which checks its checksum) and holds the same data.
func TestFileWriterLoadsInRedis(t *testing.T) {
	src := startRedis(t)
	loadDataset(t, src)

	file, err := writeFile(t, src.save(), nil, nil, WithRawValues(1<<30, 10))
	require.NoError(t, err)
	compareServers(t, src, startRedisWithDump(t, file))

	// In chunks (values over 4 KiB): streams cannot come that way (see
	// below), so they go first.
	for _, db := range []int{0, 1, 7} {
		c := src.client(db)
		keys := src.do(c, "KEYS", "*stream*").([]any)
		for _, k := range keys {
			src.do(c, "DEL", k)
		}
		c.Close()
	}
	file, err = writeFile(t, src.save(), nil, nil, WithRawValues(4096, 10), WithChunkLimits(100, 0))
	require.NoError(t, err)
	compareServers(t, src, startRedisWithDump(t, file))
	// And every value in chunks (no raw values at all).
	file, err = writeFile(t, src.save(), nil, nil, WithChunkLimits(100, 0))
	require.NoError(t, err)
	compareServers(t, src, startRedisWithDump(t, file))
}

// What the writer cannot represent is refused, not written wrong: a
// stream in chunks.
func TestFileWriterRefusesChunkedStreams(t *testing.T) {
	src := startRedis(t)
	c := src.client(0)
	defer c.Close()
	for i := range 200 {
		src.do(c, "XADD", "s", "*", "n", i)
	}
	_, err := writeFile(t, src.save(), nil, nil)
	require.ErrorIs(t, err, ErrNotWritable)
}

// Keep leaves keys out, and the extra keys are added, in their database.
func TestFileWriterKeepAndExtra(t *testing.T) {
	src := startRedis(t)
	c := src.client(0)
	defer c.Close()
	src.do(c, "SET", "kept", "1")
	src.do(c, "SET", "dropped", "2")
	src.do(c, "RPUSH", "list", "a", "b")
	file, err := writeFile(t, src.save(), func(k *KeyMeta) (bool, error) {
		return string(k.Key) != "dropped", nil
	}, []Extra{{DB: 3, Key: "gen", Value: "7"}, {DB: 3, Key: "cps", Fields: map[string]string{"a": "1", "b": "2"}}},
		WithRawValues(1<<20, 10))
	require.NoError(t, err)
	dst := startRedisWithDump(t, file)
	d0, d3 := dst.client(0), dst.client(3)
	defer d0.Close()
	defer d3.Close()
	ctx := context.Background()
	assert.Equal(t, "1", d0.Get(ctx, "kept").Val())
	assert.Equal(t, int64(0), d0.Exists(ctx, "dropped").Val())
	assert.Equal(t, []string{"a", "b"}, d0.LRange(ctx, "list", 0, -1).Val())
	assert.Equal(t, "7", d3.Get(ctx, "gen").Val())
	assert.Equal(t, map[string]string{"a": "1", "b": "2"}, d3.HGetAll(ctx, "cps").Val())
}

func TestFileWriterStreamOverRawLimit(t *testing.T) {
	src := startRedis(t)
	c := src.client(0)
	defer c.Close()
	for i := range 500 {
		src.do(c, "XADD", "s", "*", "n", i, "pad", strconv.FormatUint(rand.Uint64(), 36)+strconv.FormatUint(rand.Uint64(), 36))
	}
	_, err := writeFile(t, src.save(), nil, nil, WithRawValues(4096, 10))
	require.ErrorIs(t, err, ErrNotWritable)
}

// writeStream is writeFile for a StreamWriter holding at most spool bytes
// of a value that comes in chunks.
func writeStream(t *testing.T, dump []byte, spool int, opts ...Option) ([]byte, error) {
	t.Helper()
	var out bytes.Buffer
	w, err := NewStreamWriter(&out, 10, spool)
	require.NoError(t, err)
	if err := NewDecoder(bytes.NewReader(dump), opts...).Decode(context.Background(), w); err != nil {
		return nil, err
	}
	require.NoError(t, w.Close(Extra{DB: 3, Key: "extra", Value: "v"}))
	return out.Bytes(), nil
}

// requireLoadsAs checks that the RDB stream out, written with the extra
// key of writeStream, loads in a real redis-server and holds what src
// holds, functions included.
func requireLoadsAs(t *testing.T, out []byte, src *testRedis) {
	t.Helper()
	dst := startRedisWithDump(t, out)
	c := dst.client(3)
	assert.Equal(t, "v", dst.do(c, "GET", "extra"))
	dst.do(c, "DEL", "extra")
	c.Close()
	compareServers(t, src, dst)
}

// deleteStreams deletes the streams of loadDataset: no version of the
// RDB file can carry a stream that comes in chunks.
func deleteStreams(src *testRedis) {
	for _, db := range []int{0, 1, 7} {
		c := src.client(db)
		for _, k := range src.do(c, "KEYS", "*stream*").([]any) {
			src.do(c, "DEL", k)
		}
		c.Close()
	}
}

// A stream, which cannot fill in a length later, takes whole values in
// pieces as they are read, and holds a value that comes in chunks until
// its end: both, and the extra keys, load in a real redis-server (the
// stream's checksum is 0, which Redis does not check). A piece bigger than
// the raw limit, or a value in chunks bigger than the spool limit, is
// refused.
func TestStreamWriterLoadsInRedis(t *testing.T) {
	src := startRedis(t)
	loadDataset(t, src)
	check := func(out []byte) { t.Helper(); requireLoadsAs(t, out, src) }
	// Whole values, in pieces of 64 KiB at most: one big value takes
	// several.
	c := src.client(2)
	src.do(c, "DEL", "huge")
	for i := range 20 {
		src.do(c, "RPUSH", "huge", strings.Repeat(strconv.Itoa(i), 8000))
	}
	c.Close()
	out, err := writeStream(t, src.save(), 1<<20, WithRawValues(1<<20, 10))
	require.NoError(t, err)
	check(out)

	// Values in chunks (the raw values' version is too old for this
	// payload), held until their end.
	deleteStreams(src)
	out, err = writeStream(t, src.save(), 8<<20, WithRawValues(1<<20, 9), WithChunkLimits(100, 0))
	require.NoError(t, err)
	check(out)

	_, err = writeStream(t, src.save(), 1024, WithRawValues(1<<20, 9), WithChunkLimits(100, 0))
	require.ErrorIs(t, err, ErrTooBigToStream)
	_, err = writeStream(t, src.save(), 8<<20, WithRawValues(4096, 10))
	require.ErrorIs(t, err, ErrTooBigToStream)
}

// A set, hash or sorted set that streams in pieces goes on with its
// declared count, which the loading server allocates a hash table for
// before it reads an entry: a source that declares 2^32 members and sends
// a few made a destination of 64 MiB allocate 32 GiB. Past the limit of
// WithMaxStreamedEntries such a value is refused (ErrTooBigToStream: the
// load goes through a file, whose count is that of the entries read)
// before its count is written; within it, it streams as before.
func TestStreamWriterRefusesAHugeDeclaredCount(t *testing.T) {
	set := func(declared uint64, members int, typ byte) []byte {
		b := newBuilder(10).selectDB(0).key(typ, "big").length(declared)
		for i := range members {
			b.str("member-" + strconv.Itoa(i))
			if typ == rdbTypeHash {
				b.str("v")
			}
			if typ == rdbTypeZSet2 {
				b.raw(make([]byte, 8)...)
			}
		}
		return b.end()
	}
	opts := func(limit int64) []Option {
		return []Option{WithRawValues(1<<20, 10), WithMaxStreamedEntries(limit), withPiece(64)}
	}
	for _, typ := range []byte{rdbTypeSet, rdbTypeHash, rdbTypeZSet2} {
		// A lie: 2^32-1 members declared, 300 sent, then the payload ends.
		lie := set(math.MaxUint32, 300, typ)
		lie = lie[:len(lie)-9]
		var out bytes.Buffer
		w, err := NewStreamWriter(&out, 10, 1<<20)
		require.NoError(t, err)
		err = NewDecoder(bytes.NewReader(lie), opts(1000)...).Decode(context.Background(), w)
		require.ErrorIs(t, err, ErrTooBigToStream, "type %d", typ)
		require.NotContains(t, out.String(), "\x80\xff\xff\xff\xff", "type %d: the declared count reached the stream", typ)

		// An honest value past the limit is refused too; within it, it
		// streams.
		_, err = writeStream(t, set(300, 300, typ), 1<<20, opts(200)...)
		require.ErrorIs(t, err, ErrTooBigToStream, "type %d", typ)
		_, err = writeStream(t, set(300, 300, typ), 1<<20, opts(300)...)
		require.NoError(t, err, "type %d", typ)
	}
	// A list has no hash table: its count is not limited.
	_, err := writeStream(t, set(300, 300, rdbTypeList), 1<<20, opts(200)...)
	require.NoError(t, err)
}

// MaxSize bounds what a FileWriter writes, to a file or a stream: a source
// that sends a value without end (declared as 2^32 members, say) filled the
// disk beside a destination of 64 MiB at 170 MB/s.
func TestFileWriterMaxSize(t *testing.T) {
	b := newBuilder(10).selectDB(0).key(rdbTypeSet, "big").length(math.MaxUint32)
	for i := range 20000 {
		b.str("member-" + strconv.Itoa(i))
	}
	endless := b.buf.Bytes() // the payload goes on past what is here
	f, err := os.Create(filepath.Join(t.TempDir(), "out.rdb"))
	require.NoError(t, err)
	defer f.Close()
	w, err := NewFileWriter(f, 10)
	require.NoError(t, err)
	w.MaxSize = 64 << 10
	err = NewDecoder(bytes.NewReader(endless)).Decode(context.Background(), w)
	require.ErrorIs(t, err, ErrTooBig)
	st, err := f.Stat()
	require.NoError(t, err)
	require.LessOrEqual(t, st.Size(), int64(64<<10))

	var out bytes.Buffer
	sw, err := NewStreamWriter(&out, 10, 1<<20)
	require.NoError(t, err)
	sw.MaxSize = 64 << 10
	err = NewDecoder(bytes.NewReader(endless), WithRawValues(1<<20, 10)).Decode(context.Background(), sw)
	require.ErrorIs(t, err, ErrTooBig)
	require.LessOrEqual(t, out.Len(), 64<<10)
}
