package replication

import (
	"context"
	"fmt"
	"time"
)

// The writer applies the queue to the destination in batches. On the
// stream, a batch is one MULTI/EXEC on the destination that also commits
// the checkpoint of its last item, so a batch is applied whole or not at
// all. A source transaction stays whole inside one batch; one too big for a
// batch (a script's effects, a MULTI of any size) is streamed into the
// destination's open MULTI piece by piece, as a native replica's master
// client queues it: the destination holds it, the service only a piece.
//
// batchState names where the batch being built stands, as replication.c
// names a replica's states.
type batchState uint8

const (
	// batchEmpty: nothing gathered, no transaction open on the destination.
	batchEmpty batchState = iota
	// batchGathering: items gathered, none of them sent yet.
	batchGathering
	// batchStreaming: the destination's MULTI and part of a source
	// transaction are sent; the batch ends (EXEC) after the source's EXEC.
	batchStreaming
)

func (s batchState) String() string {
	switch s {
	case batchEmpty:
		return "empty"
	case batchGathering:
		return "gathering"
	default:
		return "streaming a source transaction"
	}
}

// batcher is the writer goroutine of a session.
type batcher struct {
	s    *syncer
	w    *destWriter
	conn acker
	c    *consumer

	state batchState
	// loading: the items are the RDB's commands, applied without a
	// transaction; the item kindLoadDone ends the load with the first
	// checkpoint. Then the stream follows.
	loading bool
	// loadDone: the gathered items end with kindLoadDone; the batch must
	// be sent before anything else is gathered.
	loadDone bool
	// inSourceTx: the last item gathered is inside a source MULTI, so the
	// batch cannot be committed yet.
	inSourceTx bool
	// held: this batcher held its writer for a swap already (once a session).
	held bool

	items []item // gathered, not sent
	size  int    // bytes of items
	// wide: the arguments of items past their first three, each counted
	// as a command in the watchdog's allowance: one HSET of a million
	// fields runs as long as a million SETs.
	wide int
	// Totals of the batch across its pieces, for metrics and lag.
	txItems, txBytes int
	txWide           int // wide, across the transaction's pieces
	txFirst, lastAt  time.Time
	txQueued         int   // commands queued in the destination's open MULTI
	txHits           []int // of them, those that must answer 1 (sentBatch.hits)

	// inFlight are the sends whose replies are not read yet, oldest first.
	inFlight []sentBatch
}

// maxTrackedHits bounds the commands of one transaction whose answer is
// checked (sentBatch.hits): past it, the rest are not.
const maxTrackedHits = 100000

// lostKeys says that commands changing the expiry of keys found the keys
// missing at the destination: the destination, a plain Redis primary,
// expired them by itself while it lagged, where a native replica waits for
// its master's DEL. What is lost is said, never only logged.
func (s *syncer) lostKeys(n int, sample []string) {
	s.log.Warn("commands changing the expiry of keys found them missing at the destination", "source", s.url.String(), "count", n, "first", sample)
	s.status.set(func(st *sourceStatus) {
		st.lostKeys += n
		for _, c := range sample {
			if len(st.lostSample) < 5 {
				st.lostSample = append(st.lostSample, c)
			}
		}
	})
}

// acker is what the writer tells the source: how far the stream is applied
// (a *replproto.Conn).
type acker interface {
	SetAppliedOffset(offset int64)
	SendAck(offset int64) error
}

func newBatcher(s *syncer, w *destWriter, conn acker, q *queue, loading bool) *batcher {
	return &batcher{s: s, w: w, conn: conn, c: &consumer{q: q}, loading: loading, items: make([]item, 0, maxBatchItems)}
}

// run drains the queue into the destination until the reader stops (nil)
// or the destination fails.
//
// Batches are pipelined: while the destination executes one, the next
// gathers what arrives, and is sent at once while at most one batch is
// unanswered, or when it is full (up to maxInFlight unanswered): a command
// never waits for more than one batch ahead of it to be answered. So an
// idle link sends each command at once, and a busy one sends big batches,
// whose fixed cost (MULTI, checkpoint, EXEC, system calls) is spread thin.
// A batch counts as applied (checkpoint, acks, status) once its replies are
// read.
func (b *batcher) run(ctx context.Context) error {
	defer b.c.release()
	defer b.w.endLink()
	for {
		if _, err := b.destMoved(); err != nil {
			return err
		}
		if b.mayHold() && b.s.hold.isRequested() {
			if err := b.holdForSwap(ctx); err != nil {
				return err
			}
		}
		if closed := b.gather(ctx); closed {
			// The reader stopped. What it sent is applied (its last item
			// may be the offset of the source's last REPLCONF, which a
			// restarted source needs), except a source transaction cut
			// short: the destination discards the open MULTI when the
			// session's connection closes, and the next session resumes
			// from before it. So does an interrupted load; a complete one
			// is committed.
			if b.state != batchEmpty && !b.inSourceTx && (!b.loading || b.loadDone) && ctx.Err() == nil {
				if err := b.send(ctx, true); err != nil {
					return err
				}
			}
			return b.drain(ctx)
		}
		var err error
		switch {
		case b.loadDone && len(b.inFlight) > 0:
			// The load's end is checked alone (see send).
			err = b.complete(ctx)
		case b.mayCommit():
			err = b.send(ctx, true)
		case b.mustStream():
			err = b.send(ctx, false)
		case len(b.inFlight) > 0:
			err = b.complete(ctx)
		}
		if err != nil {
			return err
		}
	}
}

// destMoved says whether the writer, idle, is to end its session because
// the destination may have restarted with less than this writer applied:
// only its checkpoints say where to continue then. Waiting for the next
// batch to notice would leave the status in-sync over a destination that
// lost data, for as long as the source stays idle. It returns the error
// that ends the session, or a channel closed when that may change (nil:
// nothing to watch).
//
// A single server: its master link changed session (see destWriter.bound).
// Only a live session counts: the one a load over the link hands over is
// installed a moment after the writer takes it, and between sessions a
// batch waits anyway. A sharded destination, which has no master link:
// one of its nodes restarted (destWriter.restarted).
func (b *batcher) destMoved() (<-chan struct{}, error) {
	if b.loading || b.state != batchEmpty || len(b.inFlight) > 0 {
		return nil, nil
	}
	switch {
	case b.w.cl != nil && b.w.restarted != nil:
		select {
		case <-b.w.restarted:
			return nil, errDestRestarted
		default:
			return b.w.restarted, nil
		}
	case b.w.cl == nil && b.w.link != nil && b.w.bound != nil:
		cur, ch := b.w.link.watch()
		if cur != nil && cur != b.w.bound {
			return nil, errLinkChanged
		}
		return ch, nil
	}
	return nil, nil
}

// full says that the batch takes no more items.
func (b *batcher) full() bool {
	if b.w.cl != nil && b.inSourceTx && !b.loading {
		return false // a source transaction is gathered whole (sendCluster)
	}
	return b.loadDone || len(b.items) >= maxBatchItems || b.size >= maxBatchBytes
}

// gather takes what the reader has ready, waiting only when there is
// nothing else to do: nothing to send, nothing to complete. It returns true
// once the reader stopped and everything it sent was taken.
func (b *batcher) gather(ctx context.Context) bool {
	for !b.full() {
		wait := len(b.inFlight) == 0 && (len(b.items) == 0 || b.inSourceTx)
		if wait {
			b.s.status.setWriter(writerIdle, 0, 0)
		}
		var wake, moved <-chan struct{}
		if b.mayHold() && len(b.items) == 0 && len(b.inFlight) == 0 {
			wake = b.s.hold.requested
		}
		if wait {
			var err error
			if moved, err = b.destMoved(); err != nil {
				return false // run ends the session
			}
		}
		it, ok, closed := b.c.next(ctx, wait, wake, moved)
		if closed {
			return true
		}
		if !ok {
			return false
		}
		b.items = append(b.items, it)
		b.size += len(it.raw)
		b.wide += wideArgs(it.raw)
		b.lastAt = it.at
		if b.state == batchEmpty {
			b.state = batchGathering
		}
		switch it.kind {
		case kindTxBegin:
			b.inSourceTx = true
		case kindTxEnd:
			b.inSourceTx = false
		case kindLoadDone:
			b.loadDone = true
			// Queued after the reader set it: the queue orders the two.
			if l := b.s.loadedLink; l != nil {
				b.w.bound, b.s.loadedLink = l, nil
			}
		}
	}
	return false
}

// mayCommit says whether to send the batch now, ending it.
func (b *batcher) mayCommit() bool {
	if b.state == batchEmpty || b.inSourceTx || len(b.inFlight) >= maxInFlight {
		return false
	}
	return b.full() || len(b.inFlight) < 2
}

// mustStream says whether to send the gathered part of a source
// transaction into the destination's open MULTI, to free its memory.
func (b *batcher) mustStream() bool {
	return b.inSourceTx && !b.loading && b.full() && len(b.inFlight) < maxInFlight && b.w.cl == nil
}

// send encodes the gathered items and sends them: the whole batch (commit),
// or a piece of a source transaction.
func (b *batcher) send(ctx context.Context, commit bool) error {
	if b.w.cl != nil {
		return b.sendCluster(ctx)
	}
	viaLink := b.w.link != nil && !b.loading
	var sb sentBatch
	switch {
	case b.loading:
		var err error
		if sb, err = b.w.encodeLoad(b.items); err != nil {
			return err
		}
		sb.loadDone, b.loading = b.loadDone, !b.loadDone
		sb.items, sb.bytes = len(b.items), b.size
		sb.first, sb.last = b.items[0].at, b.lastAt
	default:
		opens := b.state != batchStreaming
		if opens {
			b.w.openTx()
			b.txQueued = 0
			b.txItems, b.txBytes, b.txWide, b.txFirst = 0, 0, 0, b.items[0].at
		}
		b.w.hits = b.w.hits[:0]
		if err := b.w.encodeItems(b.items); err != nil {
			return err
		}
		for _, pos := range b.w.hits {
			if opens {
				pos-- // the MULTI has no result in EXEC's
			}
			if len(b.txHits) < maxTrackedHits {
				b.txHits = append(b.txHits, b.txQueued+pos)
			}
		}
		b.txItems += len(b.items)
		b.txBytes += b.size
		b.txWide += b.wide
		if commit {
			sb = b.w.commitTx()
			sb.executes = b.txQueued + b.w.queued + b.txWide
			sb.hits, b.txHits = b.txHits, nil
			sb.items, sb.bytes, sb.first, sb.last = b.txItems, b.txBytes, b.txFirst, b.lastAt
		}
		sb.opens, sb.before = opens, b.txQueued
	}
	b.c.release() // the items' bytes are in w.buf now
	clear(b.items)
	b.items, b.size, b.wide, b.loadDone = b.items[:0], 0, 0, false
	if commit {
		b.state = batchEmpty
	} else {
		b.state = batchStreaming
	}
	b.s.status.setWriter(writerSending, len(b.inFlight), 0)
	var err error
	if viaLink {
		// A master gets no replies: nothing to check command by command.
		sb.hits = nil
		sb.link, sb.linkEnd, sb.replies, sb.sent, err = b.w.sendLink(ctx, commit, sb.executes)
	} else {
		sb.replies, sb.sent, err = b.w.sendKeep(ctx)
	}
	if err != nil {
		return err
	}
	if sb.opens {
		b.txQueued += sb.replies - 1
	} else {
		b.txQueued += sb.replies
	}
	b.s.metrics.batches.Inc()
	b.inFlight = append(b.inFlight, sb)
	if sb.loadDone {
		return b.checkLoad(ctx)
	}
	return nil
}

// checkLoad runs once the load's end is sent, alone: it completes it, then
// checks, before any command of the stream runs, what the load could not
// reproduce, and notes it in the status.
func (b *batcher) checkLoad(ctx context.Context) error {
	if err := b.drain(ctx); err != nil {
		return err
	}
	note, err := b.w.checkPending(ctx, b.s.loadPending)
	b.s.loadPending = nil
	if err != nil {
		return err
	}
	if note != "" {
		b.s.log.Warn("the destination differs from the source", "source", b.s.url.String(), "note", note)
	}
	b.s.status.set(func(st *sourceStatus) { st.syncNote = note })
	return nil
}

// drain completes every send in flight.
func (b *batcher) drain(ctx context.Context) error {
	for len(b.inFlight) > 0 {
		if err := b.complete(ctx); err != nil {
			return err
		}
	}
	return nil
}

// complete reads the replies of the oldest send and records what it
// applied.
func (b *batcher) complete(ctx context.Context) error {
	sb := b.inFlight[0]
	b.inFlight = b.inFlight[1:]
	// A big value takes the destination time to read and store too: a
	// thousand bytes count as one command (50 MB/s at execAllowance).
	b.s.status.setWriter(writerReceiving, len(b.inFlight)+1, sb.executes+sb.bytes/1000)
	_, err := b.w.receive(ctx, sb)
	b.w.recycle(sb.sent)
	if err != nil {
		if sb.commit {
			return fmt.Errorf("commit checkpoint: %w", err)
		}
		return err
	}
	b.s.status.progress()
	if b.w.lost > 0 {
		b.s.lostKeys(b.w.lost, b.w.lostSample)
		b.w.lost, b.w.lostSample = 0, b.w.lostSample[:0]
	}
	return b.s.applied(sb, b.conn)
}

// applied records a completed send: metrics, and for a commit, the
// checkpoint, the acknowledgement to the source and the status.
func (s *syncer) applied(b sentBatch, conn acker) error {
	s.metrics.commandsApplied.Add(float64(b.items))
	s.metrics.bytesApplied.Add(float64(b.bytes))
	if !b.commit {
		return nil // part of the initial load, or of a streamed transaction
	}
	cp := b.cp
	s.resume = &cp
	conn.SetAppliedOffset(cp.Offset)
	s.metrics.appliedOffset.Set(float64(cp.Offset))
	if b.loadDone {
		s.log.Info("full sync complete; streaming", "source", s.url.String(), "offset", cp.Offset)
		if s.onLoaded != nil {
			s.onLoaded()
			s.onLoaded = nil
		}

		_ = conn.SendAck(cp.Offset)
		s.status.set(func(st *sourceStatus) {
			st.phase = phaseStreaming
			st.lastError = ""
			st.applied = cp.Offset
			if st.received < st.applied {
				st.received = st.applied
			}
		})
		if s.releaseLoad != nil {
			s.releaseLoad() // the stream needs no slot
		}
		return nil
	}
	now := time.Now()
	s.status.mu.Lock()
	s.status.applied = cp.Offset
	s.status.lastLag = now.Sub(b.first)
	if s.status.applied < s.status.received {
		// What arrived after this batch's last item is still pending.
		s.status.pendingSince = b.last
	}
	s.status.mu.Unlock()
	s.metrics.lag.Set(s.status.lastLag.Seconds())
	return nil
}

// wideArgs is how many arguments the command encoded in raw has past its
// first three (0 for anything else).
func wideArgs(raw []byte) int {
	if len(raw) < 2 || raw[0] != '*' {
		return 0
	}
	n := 0
	for _, c := range raw[1:] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
		if n > 1<<31 {
			return 0 // not a command's header
		}
	}
	return max(n-3, 0)
}
