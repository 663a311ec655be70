package rdb

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchPayload is about 40 MB: a 200k-member zset, a 200k-element list of
// listpack nodes, a 100k-field hash, 5k strings of 1 KiB and a 20 MB string.
func benchPayload() []byte {
	b := newBuilder(11).selectDB(0)
	b.key(rdbTypeZSet2, "zset").length(200000)
	for i := range 200000 {
		b.str(fmt.Sprintf("member:%d", i)).raw(binaryDouble(float64(i) * 1.5)...)
	}
	b.key(rdbTypeListQuicklist2, "list").length(2000)
	for n := range 2000 {
		elems := make([]any, 100)
		for i := range elems {
			if i%2 == 0 {
				elems[i] = n*100 + i
			} else {
				elems[i] = fmt.Sprintf("element-%d-%d", n, i)
			}
		}
		b.length(qlContainerPacked).blob(listpack(elems...))
	}
	b.key(rdbTypeHash, "hash").length(100000)
	for i := range 100000 {
		b.str(fmt.Sprintf("field:%d", i)).str(fmt.Sprintf("value:%d", i*7))
	}
	val := strings.Repeat("v", 1024)
	for i := range 5000 {
		b.key(rdbTypeString, fmt.Sprintf("str:%d", i)).str(val)
	}
	b.key(rdbTypeString, "huge").str(strings.Repeat("0123456789", 2<<20))
	return b.end()
}

func BenchmarkDecode(b *testing.B) {
	payload := benchPayload()
	b.Run("handler=nop", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			if err := NewDecoder(bytes.NewReader(payload)).Decode(context.Background(), BaseHandler{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("handler=commands", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			n := 0
			w := NewCommandWriter(func(cmd [][]byte) error { n += len(cmd); return nil })
			if err := NewDecoder(bytes.NewReader(payload)).Decode(context.Background(), w); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFileWriter: the payload decoded into an RDB file, values whole
// (as a single source's full load does) or in chunks.
func BenchmarkFileWriter(b *testing.B) {
	payload := benchPayload()
	for _, raw := range []int{64 << 20, 0} {
		b.Run(fmt.Sprintf("raw=%d", raw), func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			dir := b.TempDir()
			for b.Loop() {
				f, err := os.Create(filepath.Join(dir, "out.rdb"))
				if err != nil {
					b.Fatal(err)
				}
				w, err := NewFileWriter(f, 11)
				if err != nil {
					b.Fatal(err)
				}
				if err := NewDecoder(bytes.NewReader(payload), WithRawValues(raw, 11)).Decode(context.Background(), w); err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}
