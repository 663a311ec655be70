package replication

import (
	"bufio"
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// encodeOf runs commands through the producer and encodeStream, as the
// syncer does, and returns the commands sent to the destination.
func encodeOf(t *testing.T, cmds ...[]string) [][]string {
	t.Helper()
	q := newQueue()
	p := &producer{q: q}
	ctx := context.Background()
	for i, c := range cmds {
		args := make([][]byte, len(c))
		for j, a := range c {
			args[j] = []byte(a)
		}
		it, enc := classify(args, int64(i+1), time.Now())
		if err := p.add(ctx, it, enc); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.flush(ctx); err != nil {
		t.Fatal(err)
	}
	b := <-q.full
	w := &destWriter{source: "src"}
	if _, err := w.encodeStream(b.items); err != nil {
		t.Fatal(err)
	}
	rd := resp.NewReader(bufio.NewReader(bytes.NewReader(w.buf)))
	var out [][]string
	for range w.queued {
		c, _, err := rd.ReadCommand()
		if err != nil {
			t.Fatalf("read back command %d of %d: %v", len(out), w.queued, err)
		}
		var s []string
		for _, a := range c {
			s = append(s, string(a))
		}
		out = append(out, s)
	}
	return out
}

func TestPlainSetsBecomeOneMSET(t *testing.T) {
	got := encodeOf(t,
		[]string{"set", "a", "1"},
		[]string{"HSET", "h", "f", "v"},
		[]string{"SET", "b", "2"},
		[]string{"SET", "a", "3"}, // same key twice: the last value wins in MSET too
		[]string{"SET", "c", "4", "PXAT", "99999999999999"},
		[]string{"INCR", "a"}, // reads a: the SETs of a go first
		[]string{"SET", "d", "5"},
		[]string{"DEL", "x", "y"}, // keys not known: a barrier
		[]string{"SET", "e", "6"},
		[]string{"SELECT", "3"},
		[]string{"SET", "f", "7"},
	)
	want := [][]string{
		{"MULTI"}, {"SELECT", "0"},
		{"HSET", "h", "f", "v"},
		{"SET", "c", "4", "PXAT", "99999999999999"},
		{"MSET", "a", "1", "b", "2", "a", "3"},
		{"INCR", "a"},
		{"SET", "d", "5"},
		{"DEL", "x", "y"},
		{"SET", "e", "6"},
		{"SELECT", "3"},
		{"SET", "f", "7"},
		{"SELECT", "16"}, {"HSET", checkpointKey, "src", checkpoint{Offset: 11, DB: 3}.String()}, {"EXEC"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d commands, want %d:\n%q", len(got), len(want), got)
	}
	for i := range want {
		if !equalStrings(got[i], want[i]) {
			t.Errorf("command %d: got %q, want %q", i, got[i], want[i])
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestKeysOf(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want keyInfo
	}{
		{[]string{"SET", "k", "v"}, keysPlainSet},
		{[]string{"set", "k", "v"}, keysPlainSet},
		{[]string{"SET", "k", "v", "KEEPTTL"}, keysFirst},
		{[]string{"hset", "k", "f", "v"}, keysFirst},
		{[]string{"DEL", "a"}, keysUnknown},
		{[]string{"RENAME", "a", "b"}, keysUnknown},
		{[]string{"EVAL", "return 1", "0"}, keysUnknown},
		{[]string{"SET"}, keysUnknown},
		{[]string{"AVERYLONGCOMMANDNAMEINDEED", "k"}, keysUnknown},
	} {
		args := make([][]byte, len(tc.args))
		for i, a := range tc.args {
			args[i] = []byte(a)
		}
		if got := keysOf(args); got != tc.want {
			t.Errorf("keysOf(%q) = %d, want %d", tc.args, got, tc.want)
		}
	}
}

func TestLocateKey(t *testing.T) {
	key := bytes.Repeat([]byte("k"), 123) // a length of three digits
	for _, args := range [][][]byte{
		{[]byte("SET"), key, bytes.Repeat([]byte("v"), 1000)},
		{[]byte("set"), []byte("a"), []byte("b")},
		{[]byte("HSET"), key, []byte("f"), []byte("v"), []byte("f2"), []byte("v2"), []byte("f3"), []byte("v3"), []byte("f4"), []byte("v4")},
	} {
		raw := resp.AppendCommand(nil, args...)
		keys := keysOf(args)
		k, at := locateKey(raw, args, keys)
		if !bytes.Equal(k, args[1]) {
			t.Errorf("%s: key %q, want %q", args[0], k, args[1])
		}
		if keys == keysPlainSet && !bytes.Equal(raw[at:], resp.AppendCommand(nil, args[1:]...)[4:]) {
			t.Errorf("%s: arguments at %d are %q", args[0], at, raw[at:])
		}
	}
}

// A SET bigger than maxMSETSet is not gathered into an MSET: gathering
// would copy its value twice more.
func TestABigSetIsNotGathered(t *testing.T) {
	small := [][]byte{[]byte("SET"), []byte("k"), []byte("v")}
	_, setArgs := locateKey(resp.AppendCommand(nil, small...), small, keysPlainSet)
	assert.Positive(t, setArgs)
	big := [][]byte{[]byte("SET"), []byte("k"), bytes.Repeat([]byte("v"), maxMSETSet)}
	key, setArgs := locateKey(resp.AppendCommand(nil, big...), big, keysPlainSet)
	assert.Zero(t, setArgs)
	assert.Equal(t, "k", string(key), "its key is still known")
}
