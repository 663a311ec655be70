package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newTestReader reads s through a bufio.Reader of the given size (16 is the
// minimum bufio allows and forces every slow path: long lines, bulk strings
// that are not buffered).
func newTestReader(s string, bufSize int) *Reader {
	return NewReader(bufio.NewReaderSize(strings.NewReader(s), bufSize))
}

var bufSizes = []int{16, 4096}

func TestReadValueTypes(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		in   string
		want Value
	}{
		{"+OK\r\n", Value{Type: SimpleString, Str: []byte("OK")}},
		{"+\r\n", Value{Type: SimpleString, Str: []byte{}}},
		{"+" + long + "\r\n", Value{Type: SimpleString, Str: []byte(long)}},
		{"-ERR unknown command\r\n", Value{Type: Error, Str: []byte("ERR unknown command")}},
		{":0\r\n", Value{Type: Integer, Int: 0}},
		{":-42\r\n", Value{Type: Integer, Int: -42}},
		{":9223372036854775807\r\n", Value{Type: Integer, Int: 1<<63 - 1}},
		{":-9223372036854775808\r\n", Value{Type: Integer, Int: -1 << 63}},
		{"$5\r\nhello\r\n", Value{Type: BulkString, Str: []byte("hello")}},
		{"$0\r\n\r\n", Value{Type: BulkString, Str: []byte{}}},
		{"$4\r\na\r\nb\r\n", Value{Type: BulkString, Str: []byte("a\r\nb")}}, // binary safe
		{"$100\r\n" + long + "\r\n", Value{Type: BulkString, Str: []byte(long)}},
		{"$-1\r\n", Value{Type: BulkString, Null: true}},
		{"*-1\r\n", Value{Type: Array, Null: true}},
		{"*0\r\n", Value{Type: Array, Elems: []Value{}}},
		{"*3\r\n:1\r\n$-1\r\n*2\r\n+a\r\n*0\r\n", Value{Type: Array, Elems: []Value{
			{Type: Integer, Int: 1},
			{Type: BulkString, Null: true},
			{Type: Array, Elems: []Value{{Type: SimpleString, Str: []byte("a")}, {Type: Array, Elems: []Value{}}}},
		}}},
	}
	for _, tt := range tests {
		for _, size := range bufSizes {
			r := newTestReader(tt.in+"+next\r\n", size)
			got, err := r.ReadValue()
			if err != nil {
				t.Fatalf("ReadValue(%q) [buf %d]: %v", tt.in, size, err)
			}
			if !equalValue(got, tt.want) {
				t.Fatalf("ReadValue(%q) [buf %d] = %v, want %v", tt.in, size, got, tt.want)
			}
			// The value is fully consumed, and nothing more.
			next, err := r.ReadValue()
			if err != nil || string(next.Str) != "next" {
				t.Fatalf("after %q: next value = %v, %v", tt.in, next, err)
			}
			if _, err := r.ReadValue(); err != io.EOF {
				t.Fatalf("after %q: want io.EOF at end, got %v", tt.in, err)
			}
			// Encoding the value back yields the input: the reader is canonical.
			if enc := AppendValue(nil, got); string(enc) != tt.in {
				t.Fatalf("AppendValue(ReadValue(%q)) = %q", tt.in, enc)
			}
		}
	}
}

func TestReadValueOwnsMemory(t *testing.T) {
	r := newTestReader("$3\r\nabc\r\n+def\r\n$3\r\nxyz\r\n", 4096)
	v1, _ := r.ReadValue()
	v2, _ := r.ReadValue()
	v3, _ := r.ReadValue()
	if string(v1.Str) != "abc" || string(v2.Str) != "def" || string(v3.Str) != "xyz" {
		t.Fatalf("values overwritten by later reads: %v %v %v", v1, v2, v3)
	}
}

func TestServerError(t *testing.T) {
	r := newTestReader("-WRONGPASS invalid username-password pair\r\n+OK\r\n", 4096)
	v, err := r.ReadValue()
	if err != nil {
		t.Fatal(err)
	}
	var se *ServerError
	if !v.IsError() || !errors.As(v.Err(), &se) || se.Code() != "WRONGPASS" {
		t.Fatalf("got %v, err %v", v, v.Err())
	}
	ok, _ := r.ReadValue()
	if ok.Err() != nil {
		t.Fatalf("Err() of a non-error = %v", ok.Err())
	}
}

func TestReadValueProtocolErrors(t *testing.T) {
	tests := []string{
		"\r\n",                     // empty line
		"OK\r\n",                   // no type byte
		"%1\r\n",                   // RESP3 map: not RESP2
		"+OK\n",                    // LF without CR
		"+OK\rX\n",                 // CR not right before LF
		":\r\n",                    // empty integer
		":01\r\n",                  // leading zero
		":-0\r\n",                  // negative zero
		":+1\r\n",                  // explicit plus
		":1a\r\n",                  // junk digit
		":9223372036854775808\r\n", // overflow
		":-9223372036854775809\r\n",
		":99999999999999999999\r\n",
		"$-2\r\n",
		"$abc\r\n",
		"$3\r\nabcd\r\n",   // payload longer than announced
		"$3\r\nab\r\n\r\n", // shorter
		"$3\r\nabc\n\n",
		"$536870913\r\n", // over the default bulk limit
		"*-2\r\n",
		"*1048577\r\n", // over the default array limit
		"*1\r\nfoo\r\n",
		"*2\r\n:1\r\n!\r\n",
		"+" + strings.Repeat("a", maxLineLen+1) + "\r\n", // line too long
	}
	for _, in := range tests {
		for _, size := range bufSizes {
			_, err := newTestReader(in, size).ReadValue()
			if !errors.Is(err, ErrProtocol) {
				t.Errorf("ReadValue(%.40q) [buf %d]: err = %v, want ErrProtocol", in, size, err)
			}
		}
	}
}

func TestReadValueDepthLimit(t *testing.T) {
	deep := strings.Repeat("*1\r\n", DefaultMaxDepth) + ":1\r\n"
	if _, err := newTestReader(deep, 4096).ReadValue(); err != nil {
		t.Fatalf("depth %d should be accepted: %v", DefaultMaxDepth, err)
	}
	tooDeep := strings.Repeat("*1\r\n", DefaultMaxDepth+1) + ":1\r\n"
	if _, err := newTestReader(tooDeep, 4096).ReadValue(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("depth %d: err = %v, want ErrProtocol", DefaultMaxDepth+1, err)
	}
}

func TestConfigurableLimits(t *testing.T) {
	r := newTestReader("$5\r\nhello\r\n", 4096)
	r.MaxBulkLen = 4
	if _, err := r.ReadValue(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("bulk over MaxBulkLen: %v", err)
	}
	r = newTestReader("*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", 4096)
	r.MaxArrayLen = 2
	if _, _, err := r.ReadCommand(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("array over MaxArrayLen: %v", err)
	}
	r = newTestReader("*1\r\n*1\r\n:1\r\n", 4096)
	r.MaxDepth = 1
	if _, err := r.ReadValue(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("nesting over MaxDepth: %v", err)
	}
}

func TestTruncation(t *testing.T) {
	full := []string{
		"+OK\r\n",
		":123\r\n",
		"$5\r\nhello\r\n",
		"*2\r\n$3\r\nSET\r\n$1\r\nk\r\n",
		"*2\r\n*1\r\n:1\r\n$-1\r\n",
	}
	for _, in := range full {
		for cut := 0; cut < len(in); cut++ {
			for _, size := range bufSizes {
				_, err := newTestReader(in[:cut], size).ReadValue()
				want := io.ErrUnexpectedEOF
				if cut == 0 {
					want = io.EOF
				}
				if err != want {
					t.Fatalf("ReadValue(%q) [buf %d]: err = %v, want %v", in[:cut], size, err, want)
				}
			}
		}
	}
	cmd := "*2\r\n$3\r\nGET\r\n$100\r\n" + strings.Repeat("v", 100) + "\r\n"
	for cut := 0; cut < len(cmd); cut++ {
		_, _, err := newTestReader(cmd[:cut], 16).ReadCommand()
		want := io.ErrUnexpectedEOF
		if cut == 0 {
			want = io.EOF
		}
		if err != want {
			t.Fatalf("ReadCommand(%q): err = %v, want %v", cmd[:cut], err, want)
		}
	}
}

// A corrupt length prefix must not allocate what it announces: memory is
// only committed as payload bytes actually arrive.
func TestNoAllocationFromLengthPrefix(t *testing.T) {
	inputs := []struct {
		in      string
		command bool // read with ReadCommand rather than ReadValue
	}{
		{"*1\r\n$536870912\r\nabc", true},
		{"$536870912\r\nabc", false},
		{"*1048576\r\n:1\r\n", false},
		{"*1048576\r\n$1\r\na\r\n", true},
	}
	for _, tt := range inputs {
		in := tt.in
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		r := newTestReader(in, 4096)
		var err error
		if tt.command {
			_, _, err = r.ReadCommand()
		} else {
			_, err = r.ReadValue()
		}
		runtime.ReadMemStats(&after)
		if err != io.ErrUnexpectedEOF {
			t.Errorf("%q: err = %v, want io.ErrUnexpectedEOF", in, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
			t.Errorf("%q: allocated %d bytes for a %d-byte input", in, alloc, len(in))
		}
	}
}

func TestReadCommand(t *testing.T) {
	stream := "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n" +
		"*1\r\n$4\r\nPING\r\n" +
		"*0\r\n" +
		"*-1\r\n" +
		"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n" +
		"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$4\r\n\x00\r\n\xff\r\n"
	want := []struct {
		args []string
		n    int64
	}{
		{[]string{"SET", "key", "value"}, 33},
		{[]string{"PING"}, 14},
		{nil, 4},
		{nil, 5},
		{[]string{"SELECT", "3"}, 23},
		{[]string{"SET", "", "\x00\r\n\xff"}, 29},
	}
	for _, size := range bufSizes {
		r := newTestReader(stream, size)
		var total int64
		for i, w := range want {
			args, n, err := r.ReadCommand()
			if err != nil {
				t.Fatalf("[buf %d] command %d: %v", size, i, err)
			}
			if n != w.n || !equalArgs(args, w.args) {
				t.Fatalf("[buf %d] command %d = %q (%d bytes), want %q (%d bytes)", size, i, args, n, w.args, w.n)
			}
			total += n
		}
		if total != int64(len(stream)) {
			t.Fatalf("byte counts sum to %d, stream is %d bytes", total, len(stream))
		}
		if _, _, err := r.ReadCommand(); err != io.EOF {
			t.Fatalf("at end: %v, want io.EOF", err)
		}
	}
}

func TestReadCommandProtocolErrors(t *testing.T) {
	tests := []string{
		"PING\r\n", // inline command
		"\n",       // keepalive newline: handled above this layer
		"+OK\r\n",
		"*1\r\n:1\r\n",       // argument not a bulk string
		"*1\r\n$-1\r\n",      // null argument
		"*1\r\n$01\r\na\r\n", // non-canonical length
		"*01\r\n$1\r\na\r\n", // non-canonical count
		"*-2\r\n",            // negative count other than -1
		"*1\r\n$1\r\nab\r\n", // payload longer than announced
		"*1\r\n$2\r\na\r\n\r\n",
		"*2000000\r\n",         // over the array limit
		"*1\r\n$600000000\r\n", // over the bulk limit
	}
	for _, in := range tests {
		for _, size := range bufSizes {
			_, _, err := newTestReader(in, size).ReadCommand()
			if !errors.Is(err, ErrProtocol) {
				t.Errorf("ReadCommand(%q) [buf %d]: err = %v, want ErrProtocol", in, size, err)
			}
		}
	}
}

func TestReadCommandOwnership(t *testing.T) {
	r := newTestReader("*2\r\n$1\r\na\r\n$1\r\nb\r\n*1\r\n$1\r\nc\r\n", 4096)
	args, _, err := r.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	// Appending to one argument must not clobber its neighbour.
	_ = append(args[0], 'X')
	if string(args[1]) != "b" {
		t.Fatalf("append to args[0] overwrote args[1]: %q", args[1])
	}
	kept := bytes.Clone(args[0])
	if _, _, err := r.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	if string(kept) != "a" {
		t.Fatal("copied argument changed")
	}
}

// One huge value must not pin its buffer: the next command releases it.
func TestReadCommandReleasesLargeBuffer(t *testing.T) {
	big := strings.Repeat("v", 4<<20)
	in := string(AppendCommandStrings(nil, "SET", "k", big)) + string(AppendCommandStrings(nil, "PING"))
	r := newTestReader(in, 4096)
	args, _, err := r.ReadCommand()
	if err != nil || len(args[2]) != len(big) {
		t.Fatalf("big command: %v", err)
	}
	if _, _, err := r.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	if cap(r.buf) > retainBuf {
		t.Fatalf("buffer of %d bytes retained after a small command", cap(r.buf))
	}
}

func TestRoundTripAppendCommand(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var stream []byte
	var cmds [][][]byte
	for range 300 {
		args := make([][]byte, 1+rng.IntN(6))
		for i := range args {
			n := rng.IntN(40)
			if rng.IntN(20) == 0 {
				n = rng.IntN(70000) // larger than any bufio buffer here
			}
			args[i] = make([]byte, n)
			for j := range args[i] {
				args[i][j] = byte(rng.IntN(256))
			}
		}
		cmds = append(cmds, args)
		stream = AppendCommand(stream, args...)
	}
	for _, size := range bufSizes {
		r := NewReader(bufio.NewReaderSize(bytes.NewReader(stream), size))
		var total int64
		for i, want := range cmds {
			got, n, err := r.ReadCommand()
			if err != nil {
				t.Fatalf("[buf %d] command %d: %v", size, i, err)
			}
			if !bytes.Equal(AppendCommand(nil, got...), stream[total:total+n]) {
				t.Fatalf("[buf %d] command %d: byte count %d does not delimit its encoding", size, i, n)
			}
			if len(got) != len(want) {
				t.Fatalf("[buf %d] command %d: %d args, want %d", size, i, len(got), len(want))
			}
			for j := range want {
				if !bytes.Equal(got[j], want[j]) {
					t.Fatalf("[buf %d] command %d arg %d differs", size, i, j)
				}
			}
			total += n
		}
		if total != int64(len(stream)) {
			t.Fatalf("counted %d bytes, stream has %d", total, len(stream))
		}
	}
}

func TestAppendCommandStrings(t *testing.T) {
	got := string(AppendCommandStrings([]byte("x"), "SET", "k", ""))
	want := "x*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if b := string(AppendCommand(nil, []byte("SET"), []byte("k"), []byte{})); b != want[1:] {
		t.Fatalf("AppendCommand = %q", b)
	}
	if b := string(AppendCommand(nil)); b != "*0\r\n" {
		t.Fatalf("empty command = %q", b)
	}
}

func TestWriter(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(bufio.NewWriterSize(&out, 16))
	if err := w.WriteCommand([]byte("SET"), []byte("key"), bytes.Repeat([]byte("v"), 100)); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteCommandStrings("PING"); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := AppendCommandStrings(nil, "SET", "key", strings.Repeat("v", 100))
	want = AppendCommandStrings(want, "PING")
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("wrote %q, want %q", out.Bytes(), want)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("boom") }

func TestWriterError(t *testing.T) {
	w := NewWriter(bufio.NewWriterSize(failingWriter{}, 16))
	err := w.WriteCommandStrings("SET", "key", strings.Repeat("v", 100))
	if err == nil || err.Error() != "boom" {
		t.Fatalf("WriteCommand on a failing writer: %v", err)
	}
	if err := w.WriteCommandStrings("PING"); err == nil {
		t.Fatal("error not sticky")
	}
}

func TestParseInt(t *testing.T) {
	good := map[string]int64{"0": 0, "1": 1, "-1": -1, "10": 10, "9223372036854775807": 1<<63 - 1, "-9223372036854775808": -1 << 63}
	for s, want := range good {
		if got, ok := parseInt([]byte(s)); !ok || got != want {
			t.Errorf("parseInt(%q) = %d, %v", s, got, ok)
		}
	}
	for _, s := range []string{"", "-", "00", "01", "-0", "+1", " 1", "1 ", "1.0", "9223372036854775808", "-9223372036854775809", "18446744073709551616", "123456789012345678901"} {
		if got, ok := parseInt([]byte(s)); ok {
			t.Errorf("parseInt(%q) = %d, want rejection", s, got)
		}
	}
}

func TestValueString(t *testing.T) {
	v := Value{Type: Array, Elems: []Value{{Type: BulkString, Str: []byte("a")}, {Type: BulkString, Null: true}, {Type: Integer, Int: 3}}}
	if got := v.String(); got != `["a", (nil), :3]` {
		t.Fatalf("String() = %s", got)
	}
}

func equalArgs(got [][]byte, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if string(got[i]) != want[i] {
			return false
		}
	}
	return true
}

func equalValue(a, b Value) bool {
	if a.Type != b.Type || a.Null != b.Null || a.Int != b.Int || !bytes.Equal(a.Str, b.Str) || len(a.Elems) != len(b.Elems) {
		return false
	}
	if (a.Type == BulkString || a.Type == SimpleString || a.Type == Error) && !a.Null && a.Str == nil {
		return false // non-null strings must be non-nil so callers can tell them from null
	}
	for i := range a.Elems {
		if !equalValue(a.Elems[i], b.Elems[i]) {
			return false
		}
	}
	return true
}

// --- fuzzing ---

// consumed returns how many bytes of data the reader has taken, given the
// unread remainder of the underlying reader.
func consumed(data []byte, rest *bytes.Reader, br *bufio.Reader) int {
	return len(data) - rest.Len() - br.Buffered()
}

func fuzzSeeds(f *testing.F) {
	for _, s := range []string{
		"+OK\r\n", "-ERR x\r\n", ":-12\r\n", "$3\r\nabc\r\n", "$-1\r\n", "*-1\r\n", "*0\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
		"*2\r\n*1\r\n:1\r\n$-1\r\n",
		"*1\r\n$4\r\nPING\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n",
		"*1\r\n$536870912\r\n", "$01\r\na\r\n", "*3\r\n", "PING\r\n", "\n", "",
	} {
		f.Add([]byte(s))
	}
}

func FuzzReadValue(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		rest := bytes.NewReader(data)
		br := bufio.NewReaderSize(rest, 16)
		r := NewReader(br)
		r.MaxBulkLen = 1 << 16
		r.MaxArrayLen = 1 << 10
		r.MaxDepth = 8
		start := 0
		for {
			v, err := r.ReadValue()
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.Is(err, ErrProtocol) {
					t.Fatalf("unexpected error type: %v", err)
				}
				if err == io.EOF && start != len(data) {
					t.Fatalf("io.EOF with %d bytes unread", len(data)-start)
				}
				return
			}
			end := consumed(data, rest, br)
			// Parsing is canonical: re-encoding gives back exactly the bytes read.
			if enc := AppendValue(nil, v); !bytes.Equal(enc, data[start:end]) {
				t.Fatalf("re-encoded %q, read %q", enc, data[start:end])
			}
			start = end
		}
	})
}

func FuzzReadCommand(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		// A small buffer reads most commands line by line, a big one
		// whole from the buffer (readBuffered): both agree with the bytes.
		for _, size := range bufSizes {
			rest := bytes.NewReader(data)
			br := bufio.NewReaderSize(rest, size)
			r := NewReader(br)
			r.MaxBulkLen = 1 << 16
			r.MaxArrayLen = 1 << 10
			start := 0
			for {
				args, n, err := r.ReadCommand()
				if err != nil {
					if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.Is(err, ErrProtocol) {
						t.Fatalf("unexpected error type: %v", err)
					}
					break
				}
				end := consumed(data, rest, br)
				if int64(end-start) != n {
					t.Fatalf("reported %d bytes, consumed %d", n, end-start)
				}
				got := data[start:end]
				// Except for the "*-1" spelling of an empty command, the
				// arguments re-encode to exactly the bytes counted.
				if string(got) != "*-1\r\n" {
					if enc := AppendCommand(nil, args...); !bytes.Equal(enc, got) {
						t.Fatalf("re-encoded %q, read %q", enc, got)
					}
				}
				if raw := r.Raw(); raw != nil && !bytes.Equal(raw, got) {
					t.Fatalf("Raw %q, read %q", raw, got)
				}
				start = end
			}
		}
	})
}

// A stream whose commands are buffered whole is read in one pass per
// command, and Raw gives each command's bytes without re-encoding; a
// command bigger than the buffer is read line by line, and has no Raw.
func TestReadCommandBufferedWhole(t *testing.T) {
	var stream []byte
	stream = AppendCommandStrings(stream, "SET", "k1", "v1")
	stream = AppendCommandStrings(stream, "HSET", "h", "f", strings.Repeat("x", 100))
	stream = AppendCommandStrings(stream, "SET", "big", strings.Repeat("y", 5000))
	stream = AppendCommandStrings(stream, "DEL", "k1")
	r := newTestReader(string(stream), 4096)
	want := [][]string{{"SET", "k1", "v1"}, {"HSET", "h", "f", strings.Repeat("x", 100)}, {"SET", "big", strings.Repeat("y", 5000)}, {"DEL", "k1"}}
	for i, w := range want {
		args, n, err := r.ReadCommand()
		require.NoError(t, err)
		got := make([]string, len(args))
		for j, a := range args {
			got[j] = string(a)
			assert.Equal(t, len(a), cap(a), "argument %d's capacity is clipped", j)
		}
		assert.Equal(t, w, got)
		enc := AppendCommandStrings(nil, w...)
		assert.Equal(t, int64(len(enc)), n)
		if i == 2 {
			assert.Nil(t, r.Raw(), "a command bigger than the buffer is read line by line")
		} else {
			assert.Equal(t, enc, r.Raw(), "command %d was buffered whole", i)
		}
	}
	_, _, err := r.ReadCommand()
	assert.ErrorIs(t, err, io.EOF)
}

// --- benchmarks ---

func BenchmarkReadCommandSet(b *testing.B) {
	for _, valueSize := range []int{16, 256, 4096} {
		b.Run(fmt.Sprintf("value=%d", valueSize), func(b *testing.B) {
			const perRound = 1000
			var stream []byte
			val := bytes.Repeat([]byte("v"), valueSize)
			for i := range perRound {
				stream = AppendCommand(stream, []byte("SET"), fmt.Appendf(nil, "key:%08d", i), val)
			}
			src := bytes.NewReader(stream)
			br := bufio.NewReaderSize(src, 64<<10)
			r := NewReader(br)
			b.SetBytes(int64(len(stream) / perRound))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%perRound == 0 {
					src.Reset(stream)
					br.Reset(src)
				}
				if _, _, err := r.ReadCommand(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// errAfter returns its data, then err on every read after it.
type errAfter struct {
	data []byte
	err  error
	n    int // reads after the data
}

func (e *errAfter) Read(p []byte) (int, error) {
	if len(e.data) > 0 {
		n := copy(p, e.data)
		e.data = e.data[n:]
		return n, nil
	}
	e.n++
	return 0, e.err
}

// A read error is returned as the read returned it, once: waiting for the
// next command reads the connection once, not again to find the error.
func TestReadCommandReturnsTheReadError(t *testing.T) {
	cut := errors.New("connection reset by peer")
	src := &errAfter{data: AppendCommandStrings(nil, "SET", "k", "v"), err: cut}
	r := NewReader(bufio.NewReaderSize(src, 4096))
	_, _, err := r.ReadCommand()
	require.NoError(t, err)
	_, _, err = r.ReadCommand()
	assert.ErrorIs(t, err, cut)
	assert.Equal(t, 1, src.n, "one read after the data")
}

// MaxCommandBytes bounds a command's arguments added up, whether the
// command is buffered whole or arrives piece by piece; the error wraps
// ErrCommandTooBig and ErrProtocol. Commands within it are read.
func TestMaxCommandBytes(t *testing.T) {
	in := string(AppendCommandStrings(nil, "SET", "k", "0123456789")) + string(AppendCommandStrings(nil, "SET", "k", strings.Repeat("x", 100)))
	for name, br := range map[string]*bufio.Reader{
		"buffered":       bufio.NewReader(strings.NewReader(in)),
		"piece by piece": bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(in)), 16),
	} {
		t.Run(name, func(t *testing.T) {
			r := NewReader(br)
			r.MaxCommandBytes = 20 + 3*ArgOverhead
			args, _, err := r.ReadCommand()
			require.NoError(t, err)
			require.Len(t, args, 3)
			_, _, err = r.ReadCommand()
			require.ErrorIs(t, err, ErrCommandTooBig)
			require.ErrorIs(t, err, ErrProtocol)
			require.Contains(t, err.Error(), fmt.Sprintf("exceed %d bytes (argument 3 of 3)", 20+3*ArgOverhead))
		})
	}
}

// MaxCommandBytes counts each argument's bookkeeping too: a command of
// many empty arguments, which the array limit no longer bounds on a
// replication stream, is refused at the byte bound like a big one.
func TestMaxCommandBytesCountsEachArgument(t *testing.T) {
	args := make([]string, 1001)
	args[0] = "SADD"
	in := string(AppendCommandStrings(nil, args...))
	for name, br := range map[string]*bufio.Reader{
		"buffered":       bufio.NewReaderSize(strings.NewReader(in), 64<<10),
		"piece by piece": bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(in)), 16),
	} {
		t.Run(name, func(t *testing.T) {
			r := NewReader(br)
			r.MaxArrayLen = 1 << 30
			r.MaxCommandBytes = 500 * ArgOverhead
			_, _, err := r.ReadCommand()
			require.ErrorIs(t, err, ErrCommandTooBig)
		})
	}
}
