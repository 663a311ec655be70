package resp

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestSkipValue(t *testing.T) {
	in := "+QUEUED\r\n-ERR top\r\n:12\r\n$3\r\nabc\r\n$-1\r\n*-1\r\n" +
		"*4\r\n+OK\r\n-WRONGTYPE a\r\n*2\r\n-ERR b\r\n$0\r\n\r\n:1\r\n" +
		"$" + "70000" + "\r\n" + strings.Repeat("x", 70000) + "\r\n"
	for _, size := range bufSizes {
		r := newTestReader(in, size)
		var nested []string
		var tops []string
		for {
			msg, err := r.SkipValue(func(m []byte) { nested = append(nested, string(m)) })
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("buffer %d: %v", size, err)
			}
			if msg != nil {
				tops = append(tops, string(msg))
			}
		}
		if strings.Join(tops, "|") != "ERR top" || strings.Join(nested, "|") != "WRONGTYPE a|ERR b" {
			t.Errorf("buffer %d: top %q nested %q", size, tops, nested)
		}
	}
	for _, bad := range []string{"*2\r\n+OK\r\n", "$5\r\nab\r\n", "$2\r\nabXY", "?\r\n", ":x\r\n"} {
		if _, err := newTestReader(bad, 16).SkipValue(nil); err == nil || err == io.EOF {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// nestedErrors counts the errors inside v's arrays.
func nestedErrors(v Value, depth int) int {
	n := 0
	if v.Type == Error && depth > 0 {
		n++
	}
	for _, e := range v.Elems {
		n += nestedErrors(e, depth+1)
	}
	return n
}

// FuzzSkipValue: skipping reads exactly what ReadValue reads and finds the
// same errors.
func FuzzSkipValue(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		limits := func(r *Reader) *Reader {
			r.MaxBulkLen, r.MaxArrayLen, r.MaxDepth = 1<<16, 1<<10, 8
			return r
		}
		r1 := limits(NewReader(bufio.NewReaderSize(bytes.NewReader(data), 16)))
		rest := bytes.NewReader(data)
		br := bufio.NewReaderSize(rest, 16)
		r2 := limits(NewReader(br))
		start := 0
		for {
			v, err1 := r1.ReadValue()
			nested := 0
			msg, err2 := r2.SkipValue(func([]byte) { nested++ })
			if (err1 == nil) != (err2 == nil) {
				t.Fatalf("ReadValue: %v, SkipValue: %v", err1, err2)
			}
			if err1 != nil {
				return
			}
			if v.Type == Error != (msg != nil) || msg != nil && !bytes.Equal(msg, v.Str) {
				t.Fatalf("value %v, skipped error %q", v, msg)
			}
			if want := nestedErrors(v, 0); nested != want {
				t.Fatalf("value %v: %d nested errors, skipped %d", v, want, nested)
			}
			end := consumed(data, rest, br)
			if enc := AppendValue(nil, v); !bytes.Equal(enc, data[start:end]) {
				t.Fatalf("skipped %q, read %q", data[start:end], enc)
			}
			start = end
		}
	})
}
