package replication

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// fakeDestination answers what a syncer's writer sends as redis-server
// does inside and outside MULTI, and records the transactions it ran.
type fakeDestination struct {
	mu    sync.Mutex
	execs []int    // commands queued by each EXEC
	hsets []string // the checkpoints written
}

func (f *fakeDestination) serve(c net.Conn) {
	br := bufio.NewReader(c)
	rd := resp.NewReader(br)
	bw := bufio.NewWriter(c)
	inMulti, queued := false, 0
	var results []string // of the commands queued in MULTI
	for {
		args, _, err := rd.ReadCommand()
		if err != nil {
			return
		}
		name := strings.ToUpper(string(args[0]))
		switch {
		case name == "MULTI":
			inMulti, queued, results = true, 0, results[:0]
			bw.WriteString("+OK\r\n")
		case name == "EXEC":
			f.mu.Lock()
			f.execs = append(f.execs, queued)
			f.mu.Unlock()
			bw.WriteString("*" + strconv.Itoa(queued) + "\r\n" + strings.Join(results, ""))
			inMulti = false
		case inMulti:
			queued++
			switch {
			case name == "PERSIST" && string(args[1]) == "gone":
				results = append(results, ":0\r\n") // a key the destination no longer has
			case name == "PERSIST":
				results = append(results, ":1\r\n")
			default:
				results = append(results, "+OK\r\n")
			}
			if name == "HSET" {
				f.mu.Lock()
				f.hsets = append(f.hsets, string(args[3]))
				f.mu.Unlock()
			}
			bw.WriteString("+QUEUED\r\n")
		default:
			bw.WriteString("+OK\r\n")
		}
		if br.Buffered() == 0 && bw.Flush() != nil {
			return
		}
	}
}

type nopAcker struct{ applied int64 }

func (a *nopAcker) SetAppliedOffset(o int64) { a.applied = o }
func (a *nopAcker) SendAck(o int64) error    { a.applied = o; return nil }

// TestBatcherStreamsABigSourceTransaction: a source transaction of more
// commands than the queue holds is streamed into one MULTI of the
// destination, piece by piece, and committed once, with the checkpoint of
// the source's EXEC. Before, the writer waited for the EXEC while holding
// every block of the queue, and the reader for a free block: forever (this
// test then hangs until its deadline).
func TestBatcherStreamsABigSourceTransaction(t *testing.T) {
	// A socket, not net.Pipe: the writer sends while replies wait to be
	// read, as the kernel's buffers allow.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	f := &fakeDestination{}
	go func() {
		if c, err := ln.Accept(); err == nil {
			f.serve(c)
		}
	}()
	c1, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c1.Close()
	w := &destWriter{conn: c1, bw: bufio.NewWriter(c1), rd: resp.NewReader(bufio.NewReader(c1)), source: "src", replID: strings.Repeat("a", 40)}
	s := &syncer{status: &sourceStatus{phase: phaseStreaming}, metrics: newMetrics(prometheus.NewRegistry()).forSource(1, "src"),
		log: slog.New(slog.DiscardHandler)}
	q := newQueue()
	ack := &nopAcker{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	n := 2 * queueBlocks * blockItems // more commands than the queue holds
	done := make(chan error, 1)
	go func() { done <- newBatcher(s, w, ack, q, false).run(ctx) }()
	p := &producer{q: q}
	var off int64
	add := func(args ...string) {
		off += 10
		var a [][]byte
		for _, x := range args {
			a = append(a, []byte(x))
		}
		it, enc := classify(a, off, time.Now())
		require.NoError(t, p.add(ctx, it, enc))
	}
	add("MULTI")
	for i := range n {
		add("INCR", "k")
		if i == 5 {
			add("PERSIST", "gone") // in the first piece
		}
		if i == n/2 {
			add("PERSIST", "here")
		}
	}
	add("PERSIST", "gone") // in the send that commits
	add("EXEC")
	add("SET", "after", "1")
	require.NoError(t, p.flush(ctx))
	p.close()
	require.NoError(t, <-done)

	f.mu.Lock()
	defer f.mu.Unlock()
	var total int
	for _, e := range f.execs {
		total += e
	}
	// Each EXEC also runs SELECTs and the checkpoint's HSET.
	assert.GreaterOrEqual(t, f.execs[0], n, "the source transaction is in one destination transaction")
	assert.GreaterOrEqual(t, total, n+1)
	assert.Equal(t, int64(off), ack.applied, "the last checkpoint is the last item's offset")
	assert.Contains(t, f.hsets[len(f.hsets)-1], " "+strconv.FormatInt(off, 10)+" ")
	assert.Equal(t, 2, s.status.lostKeys, "the PERSISTs of a key the destination no longer has, found by their place in EXEC's results")
	assert.Contains(t, s.status.lostSample, `PERSIST "gone"`, "the one in the send that commits is named (earlier pieces' bytes are gone)")
}
