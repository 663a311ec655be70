package rdb

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
)

// decodeCmds decodes payload with a CommandWriter and returns the commands,
// each rendered as its arguments joined by spaces.
func decodeCmds(t *testing.T, payload []byte, opts ...Option) []string {
	t.Helper()
	cmds, err := tryDecodeCmds(payload, opts...)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return cmds
}

func tryDecodeCmds(payload []byte, opts ...Option) ([]string, error) {
	var out []string
	w := NewCommandWriter(func(cmd [][]byte) error {
		parts := make([]string, len(cmd))
		for i, a := range cmd {
			parts[i] = string(a)
		}
		out = append(out, strings.Join(parts, " "))
		return nil
	})
	err := NewDecoder(bytes.NewReader(payload), opts...).Decode(context.Background(), w)
	return out, err
}

func wantCmds(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("commands differ\n got:\n  %s\nwant:\n  %s", strings.Join(cut(got), "\n  "), strings.Join(cut(want), "\n  "))
	}
}

// recorder is a Handler that keeps a copy of everything, and the size of
// the biggest chunk it was handed.
type recorder struct {
	BaseHandler
	aux       map[string]string
	functions []string
	keys      []*recKey
	cur       *recKey
	maxChunk  int // elements
	maxPart   int // bytes of a string part
	chunks    int
	slotInfo  [][3]uint64
	resize    [][2]uint64
}

type recKey struct {
	meta    KeyMeta
	str     []byte
	elems   []string
	zset    []ZMember
	hash    []HashField
	entries []StreamEntry
	smeta   StreamMeta
	groups  []StreamGroup
	cons    []string // group/consumer
	pending []string // group/consumer/id/time/count
	ended   bool
}

func newRecorder() *recorder { return &recorder{aux: map[string]string{}} }

func cp(b []byte) []byte { return append([]byte{}, b...) }

func (r *recorder) chunk(n int) {
	r.chunks++
	r.maxChunk = max(r.maxChunk, n)
}

func (r *recorder) Aux(k, v []byte) error { r.aux[string(k)] = string(v); return nil }
func (r *recorder) Function(code []byte) error {
	r.functions = append(r.functions, string(code))
	return nil
}
func (r *recorder) ResizeDB(a, b uint64) error {
	r.resize = append(r.resize, [2]uint64{a, b})
	return nil
}
func (r *recorder) SlotInfo(a, b, c uint64) error {
	r.slotInfo = append(r.slotInfo, [3]uint64{a, b, c})
	return nil
}
func (r *recorder) BeginKey(k *KeyMeta) error {
	m := *k
	m.Key = cp(k.Key)
	r.cur = &recKey{meta: m}
	r.keys = append(r.keys, r.cur)
	return nil
}
func (r *recorder) StringPart(k *KeyMeta, p []byte, last bool) error {
	r.maxPart = max(r.maxPart, len(p))
	r.cur.str = append(r.cur.str, p...)
	return nil
}
func (r *recorder) ListChunk(k *KeyMeta, e [][]byte) error {
	r.chunk(len(e))
	for _, x := range e {
		r.cur.elems = append(r.cur.elems, string(x))
	}
	return nil
}
func (r *recorder) SetChunk(k *KeyMeta, e [][]byte) error { return r.ListChunk(k, e) }
func (r *recorder) ZSetChunk(k *KeyMeta, m []ZMember) error {
	r.chunk(len(m))
	for _, x := range m {
		r.cur.zset = append(r.cur.zset, ZMember{cp(x.Member), x.Score})
	}
	return nil
}
func (r *recorder) HashChunk(k *KeyMeta, f []HashField) error {
	r.chunk(len(f))
	for _, x := range f {
		r.cur.hash = append(r.cur.hash, HashField{cp(x.Field), cp(x.Value), x.ExpireAtMs})
	}
	return nil
}
func (r *recorder) StreamEntries(k *KeyMeta, e []StreamEntry) error {
	r.chunk(len(e))
	for _, x := range e {
		c := StreamEntry{ID: x.ID, Deleted: x.Deleted}
		for _, f := range x.Fields {
			c.Fields = append(c.Fields, cp(f))
		}
		r.cur.entries = append(r.cur.entries, c)
	}
	return nil
}
func (r *recorder) StreamMeta(k *KeyMeta, m *StreamMeta) error { r.cur.smeta = *m; return nil }
func (r *recorder) StreamGroup(k *KeyMeta, g *StreamGroup) error {
	c := *g
	c.Name = cp(g.Name)
	r.cur.groups = append(r.cur.groups, c)
	return nil
}
func (r *recorder) StreamConsumer(k *KeyMeta, g []byte, c *StreamConsumer) error {
	r.cur.cons = append(r.cur.cons, string(g)+"/"+string(c.Name))
	return nil
}
func (r *recorder) StreamPending(k *KeyMeta, g, c []byte, p []PendingEntry) error {
	r.chunk(len(p))
	for _, e := range p {
		r.cur.pending = append(r.cur.pending, string(g)+"/"+string(c)+"/"+e.ID.String())
	}
	return nil
}
func (r *recorder) EndKey(k *KeyMeta) error { r.cur.ended = true; return nil }

func record(t *testing.T, payload []byte, opts ...Option) *recorder {
	t.Helper()
	r := newRecorder()
	if err := NewDecoder(bufio.NewReader(bytes.NewReader(payload)), opts...).Decode(context.Background(), r); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return r
}

// cut shortens long commands for failure messages.
func cut(cmds []string) []string {
	out := make([]string, len(cmds))
	for i, c := range cmds {
		if len(c) > 200 {
			c = fmt.Sprintf("%s...(%d bytes)", c[:200], len(c))
		}
		out[i] = c
	}
	return out
}
