package rdb

import (
	"bytes"
	"context"
	"errors"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// mergeHalves decodes dump twice at once, as two inputs of one Merger that
// each keep the keys of one half (by a hash of the name): the output holds
// the dump's keys once each, like one dataset split over two shards.
func mergeHalves(t *testing.T, dump []byte, spool int, opts ...Option) ([]byte, error) {
	t.Helper()
	var out bytes.Buffer
	m, err := NewStreamMerger(&out, 10, spool)
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		in := m.Input()
		in.Keep = func(k *KeyMeta) (bool, error) {
			h := fnv.New32a()
			h.Write(k.Key)
			return int(h.Sum32()%2) == i, nil
		}
		wg.Go(func() {
			if err := NewDecoder(bytes.NewReader(dump), opts...).Decode(context.Background(), in); err != nil {
				errs[i] = err
				m.Fail(err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	require.NoError(t, m.Close(Extra{DB: 3, Key: "extra", Value: "v"}))
	return out.Bytes(), nil
}

// Two inputs decoded at the same time, values whole (big ones in pieces)
// or in chunks, make one stream that a real redis-server loads with every
// key of both, and each function library once.
func TestMergerLoadsInRedis(t *testing.T) {
	src := startRedis(t)
	loadDataset(t, src)
	c := src.client(2)
	for i := range 20 {
		src.do(c, "RPUSH", "huge", strings.Repeat(strconv.Itoa(i), 8000))
	}
	c.Close()
	// Both inputs carry the dataset's library: it loads once (a second
	// copy would fail the load), and compares equal.
	out, err := mergeHalves(t, src.save(), 1<<20, WithRawValues(1<<20, 10))
	require.NoError(t, err)
	requireLoadsAs(t, out, src)

	deleteStreams(src)
	out, err = mergeHalves(t, src.save(), 8<<20, WithRawValues(1<<20, 9), WithChunkLimits(100, 0))
	require.NoError(t, err)
	requireLoadsAs(t, out, src)
}

// An input that fails in the middle of a key (holding the turn) stops the
// merge: the other input, waiting for its turn, is told instead of waiting
// for good, and so is Close.
func TestMergerFailWakesTheOtherInputs(t *testing.T) {
	var out bytes.Buffer
	m, err := NewStreamMerger(&out, 10, 1<<20)
	require.NoError(t, err)
	a, b := m.Input(), m.Input()
	require.NoError(t, a.BeginKey(&KeyMeta{Key: []byte("big"), Type: TypeList}))
	require.NoError(t, a.ListChunk(nil, [][]byte{[]byte("x")}))
	got := make(chan error, 1)
	go func() { got <- b.RawBody(&KeyMeta{Key: []byte("k")}, []byte{0, 1, 'v'}) }()
	select {
	case err := <-got:
		t.Fatalf("the second input wrote while the first held its turn: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	m.Fail(errors.New("source gone"))
	select {
	case err := <-got:
		require.ErrorContains(t, err, "source gone")
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting input was not told of the failure")
	}
	require.ErrorContains(t, m.Close(), "source gone")
}

// lockedBuffer is a bytes.Buffer that a Merger's keepalives and the test
// may use at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.b.Bytes())
}

// While every input waits for its source (one that saves its RDB to disk
// before it sends it, say), the output gets keepalives, so that a replica
// loading it does not give up on it after its repl-timeout; they load in a
// real redis-server as part of the RDB.
func TestMergerKeepsAnIdleOutputAlive(t *testing.T) {
	src := startRedis(t)
	loadDataset(t, src)
	dump := src.save()
	var out lockedBuffer
	m, err := NewStreamMerger(&out, 10, 1<<20)
	require.NoError(t, err)
	decode := func(half int) {
		in := m.Input()
		in.Keep = func(k *KeyMeta) (bool, error) {
			h := fnv.New32a()
			h.Write(k.Key)
			return int(h.Sum32()%2) == half, nil
		}
		require.NoError(t, NewDecoder(bytes.NewReader(dump), WithRawValues(1<<20, 10)).Decode(context.Background(), in))
	}
	decode(0)
	require.Eventually(t, func() bool { return bytes.Contains(out.Bytes(), keepaliveAux) }, 10*time.Second, 50*time.Millisecond,
		"no keepalive in an idle output")
	decode(1)
	require.NoError(t, m.Close(Extra{DB: 3, Key: "extra", Value: "v"}))
	requireLoadsAs(t, out.Bytes(), src)
}
