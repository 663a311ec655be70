package rdb

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the decoder: it must return (nil or
// an error) without panicking, hanging or allocating wildly. The seeds are
// valid payloads of every encoding, built by hand, plus dumps written by
// redis-server in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, p := range fuzzSeeds() {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Checksums off so mutated payloads reach the inner decoders;
		// small limits so chunking paths are exercised.
		d := NewDecoder(bytes.NewReader(data), WithChecksum(false), WithChunkLimits(3, 64), WithMaxStringSize(1<<20))
		emitted := 0
		err := d.Decode(context.Background(), NewCommandWriter(func(cmd [][]byte) error {
			if len(cmd) == 0 {
				t.Fatal("empty command")
			}
			emitted++
			return nil
		}))
		if d.Offset() > int64(len(data)) {
			t.Fatalf("offset %d past the %d input bytes", d.Offset(), len(data))
		}
		if err == nil && d.Version() == 0 {
			t.Fatal("success without a header")
		}
		// The recorder path must agree with the command path.
		r := newRecorder()
		err2 := NewDecoder(bytes.NewReader(data), WithChecksum(false), WithChunkLimits(3, 64), WithMaxStringSize(1<<20)).Decode(context.Background(), r)
		if (err == nil) != (err2 == nil) && !strings.Contains(errString(err), "NaN") && !strings.Contains(errString(err), "XADD") {
			t.Fatalf("command writer: %v, recorder: %v", err, err2)
		}
		if r.maxChunk > 3 {
			t.Fatalf("chunk of %d elements", r.maxChunk)
		}
		// So must raw values, whether they fit (whole) or not (recorded,
		// then decoded again from the recorded bytes).
		d3 := NewDecoder(bytes.NewReader(data), WithChecksum(false), WithChunkLimits(3, 64), WithMaxStringSize(1<<20), WithRawValues(40, maxSupportedVersion))
		err3 := d3.Decode(context.Background(), NewCommandWriter(func(cmd [][]byte) error { return nil }, WithReplaceKeys()))
		if (err == nil) != (err3 == nil) && !strings.Contains(errString(err), "NaN") && !strings.Contains(errString(err), "XADD") {
			t.Fatalf("command writer: %v, with raw values: %v", err, err3)
		}
		if d3.Offset() != d.Offset() && err == nil {
			t.Fatalf("offset %d with raw values, %d without", d3.Offset(), d.Offset())
		}
		// An RDB file written from it, values whole or in chunks, decodes
		// to the same content; so does a stream, values in pieces (of 16
		// bytes at safe points) or held until their end.
		if err == nil {
			f, err := os.Create(filepath.Join(t.TempDir(), "out.rdb"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fw, err := NewFileWriter(f, maxSupportedVersion)
			if err != nil {
				t.Fatal(err)
			}
			fuzzRoundTrip(t, "file", data, r, fw, func() ([]byte, error) { return os.ReadFile(f.Name()) }, WithRawValues(40, maxSupportedVersion))
			var out bytes.Buffer
			sw, err := NewStreamWriter(&out, maxSupportedVersion, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			fuzzRoundTrip(t, "stream", data, r, sw, func() ([]byte, error) { return out.Bytes(), nil }, WithRawValues(1<<20, maxSupportedVersion), withPiece(16))
			fuzzMerge(t, data, r)
		}
	})
}

// fuzzRoundTrip decodes data into w and checks that what w wrote (read
// back by written) decodes to want's content.
func fuzzRoundTrip(t *testing.T, what string, data []byte, want *recorder, w *FileWriter, written func() ([]byte, error), opts ...Option) {
	opts = append([]Option{WithChecksum(false), WithChunkLimits(3, 64), WithMaxStringSize(1 << 20)}, opts...)
	err := NewDecoder(bytes.NewReader(data), opts...).Decode(context.Background(), w)
	if errors.Is(err, ErrNotWritable) {
		return
	}
	if err != nil {
		if strings.Contains(err.Error(), "NaN") {
			return
		}
		t.Fatalf("decode into a %s: %v", what, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := written()
	if err != nil {
		t.Fatal(err)
	}
	got := newRecorder()
	if err := NewDecoder(bytes.NewReader(out), WithChunkLimits(3, 64), WithMaxStringSize(1<<20)).Decode(context.Background(), got); err != nil {
		t.Fatalf("decode the written %s: %v", what, err)
	}
	if a, b := canonical(want), canonical(got); !slices.Equal(a, b) {
		t.Fatalf("the written %s decodes to other content:\n%v\n%v", what, a, b)
	}
}

// fuzzMerge decodes data as two inputs of one Merger, each keeping half
// the keys, and checks that the merged stream decodes to want's content
// plus the Merger's extra key.
func fuzzMerge(t *testing.T, data []byte, want *recorder) {
	merged, err := mergeHalves(t, data, 1<<20, WithChecksum(false), WithChunkLimits(3, 64), WithMaxStringSize(1<<20),
		WithRawValues(1<<20, maxSupportedVersion), withPiece(16))
	if errors.Is(err, ErrNotWritable) || (err != nil && strings.Contains(err.Error(), "NaN")) {
		return
	}
	if err != nil {
		t.Fatalf("merge: %v", err)
	}
	got := newRecorder()
	if err := NewDecoder(bytes.NewReader(merged), WithChunkLimits(3, 64), WithMaxStringSize(1<<20)).Decode(context.Background(), got); err != nil {
		t.Fatalf("decode the merged stream: %v", err)
	}
	var extra []string
	for _, l := range canonical(got) {
		if !strings.HasPrefix(l, `3|"extra"|`) {
			extra = append(extra, l)
		}
	}
	if a := canonical(want); !slices.Equal(a, extra) {
		t.Fatalf("the merged stream decodes to other content:\n%v\n%v", a, extra)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func fuzzSeeds() [][]byte {
	seeds := [][]byte{richPayload(), bigZSetPayload(20)}
	b := newBuilder(12)
	b.key(rdbTypeHashMetadataPreGA, "h").length(1).length(5).str("f").str("v")
	b.key(rdbTypeHashListpackExPreG, "h2").blob(listpack("f", "v", 7))
	b.key(rdbTypeListZiplist, "zl").blob(ziplist(int64(1)<<40, -100000, 70000, "s", strings.Repeat("y", 70)))
	b.key(rdbTypeHashZipmap, "zm").blob(zipmap(3, "k", strings.Repeat("v", 300)))
	b.key(rdbTypeSetIntset, "i").blob(intset(8, -1, 1<<40))
	b.key(rdbTypeString, "big").len32(70).raw(bytes.Repeat([]byte{'b'}, 70)...)
	seeds = append(seeds, b.end())
	for _, typ := range []byte{rdbTypeStreamListpacks, rdbTypeStreamListpacks2} {
		sb := newBuilder(10)
		writeTestStream(sb, typ, "s")
		seeds = append(seeds, sb.end())
	}
	return seeds
}

// The seeds must be valid payloads (checksum included), or the fuzzer
// starts from garbage.
func TestFuzzSeedsAreValid(t *testing.T) {
	seeds := fuzzSeeds()
	files, err := filepath.Glob("testdata/fuzz/FuzzDecode/*")
	if err != nil || len(files) < 2 {
		t.Fatalf("corpus files: %v %v", files, err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitN(strings.TrimSpace(string(raw)), "\n", 2)
		lit, ok := strings.CutPrefix(lines[1], "[]byte(")
		if lines[0] != "go test fuzz v1" || !ok {
			t.Fatalf("%s: not a fuzz corpus file", f)
		}
		s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		seeds = append(seeds, []byte(s))
	}
	for i, s := range seeds {
		if _, err := tryDecodeCmds(s); err != nil {
			t.Errorf("seed %d: %v", i, err)
		}
	}
}
