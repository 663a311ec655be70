package replication

import (
	"context"
	"fmt"
	"net"
	"time"
)

// swapHold keeps the sources' links open while a reload's shadow is swapped
// into the destination. Without it the round ended for the swap and every
// syncer resumed with a PSYNC from the swapped checkpoint, which a busy
// source whose backlog had moved on refused: one more full sync, and with a
// write rate above what the backlog holds during a swap, a reload loop.
//
// Once every source is loaded into the shadow, the destination asks for a
// hold; each syncer's writer stops at its next batch boundary (nothing
// unanswered, no source transaction open), says so, and waits, while its
// reader goes on buffering what the source sends (up to the queue's bound,
// then TCP pushes back on the source). Once all are held the shadow is
// swapped in, and the writers continue into the destination, whose data and
// checkpoints are now the shadow's.
type swapHold struct {
	requested chan struct{} // closed when the destination asks to hold
	arrivals  chan string   // a checkpoint key each time a writer holds

	released chan struct{} // closed once the swap is done
	target   Access        // where the writers continue after the swap
	link     *masterLink   // and the link their transactions take there
	// session is the link session the swapped data holds on (the
	// writers' bound), or noSession when none is known to: the writers
	// then resume from the checkpoints the destination holds.
	session *linkSession
}

// noSession is a bound no link session matches: a writer bound to it
// resumes from the destination's checkpoint at its first batch
// (errLinkChanged).
var noSession = &linkSession{}

// swappedOn is the session writers continue on after a swap: the link's
// session if it was live before the swap (before) and still is, else
// noSession. A different or missing one means the destination's process
// may have restarted during the swap, from an AOF without the swapped data.
func swappedOn(before *linkSession, link *masterLink) *linkSession {
	if link == nil {
		return nil
	}
	if after := link.current(); before != nil && after == before {
		return after
	}
	return noSession
}

func newSwapHold() *swapHold {
	return &swapHold{requested: make(chan struct{}), arrivals: make(chan string, 64), released: make(chan struct{})}
}

func (h *swapHold) request() { close(h.requested) }

// isRequested says whether writers should hold at their next boundary.
func (h *swapHold) isRequested() bool {
	select {
	case <-h.requested:
		return true
	default:
		return false
	}
}

// swapped says whether the swap is done, and where to write since.
func (h *swapHold) swapped() (Access, bool) {
	select {
	case <-h.released:
		return h.target, true
	default:
		return Access{}, false
	}
}

// waitHeld waits until the writers of every key in keys hold, or until ctx
// ends.
func (h *swapHold) waitHeld(ctx context.Context, keys []string) error {
	missing := make(map[string]bool, len(keys))
	for _, k := range keys {
		missing[k] = true
	}
	for len(missing) > 0 {
		select {
		case k := <-h.arrivals:
			delete(missing, k)
		case <-ctx.Done():
			return fmt.Errorf("%d of %d sources did not reach a batch boundary: %w", len(missing), len(keys), ctx.Err())
		}
	}
	return nil
}

// release lets the held writers go on into target. A swap that does not
// happen releases nobody: the round ends, and with it the sessions.
func (h *swapHold) release(target Access, session *linkSession) {
	h.target, h.session = target, session
	close(h.released)
}

// holdTimeout bounds how long the destination waits for every writer to
// reach a boundary (a syncer may be reconnecting, or inside a long source
// transaction); past it, the swap happens the old way, ending the round.
const holdTimeout = 20 * time.Second

// holdForSwap holds the batcher's writer for a swap: it completes what is
// in flight, says it holds, and once released, continues into the swapped
// destination on a new connection.
func (b *batcher) holdForSwap(ctx context.Context) error {
	h := b.s.hold
	b.held = true
	if err := b.drain(ctx); err != nil {
		return err
	}
	b.s.status.setWriter(writerHeld, 0, 0)
	// Never blocks: the destination drains arrivals while it waits for
	// them, and a session that starts after the swap needs no one to hear.
	select {
	case h.arrivals <- b.s.checkpointKey():
	default:
	}
	select {
	case <-h.released:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := b.w.redial(ctx, h.target); err != nil {
		return err
	}
	b.w.link = h.link
	// Not the first session it finds: the destination may restart from an
	// AOF without the swapped data before this writer's next batch.
	b.w.bound = h.session
	b.s.status.progress() // the time held is not a stall
	b.s.status.setWriter(writerIdle, 0, 0)
	return nil
}

// mayHold says whether the batcher is at a boundary where it can hold.
func (b *batcher) mayHold() bool {
	if b.held || b.s.hold == nil || b.loading || b.state != batchEmpty || b.inSourceTx {
		return false
	}
	// A session that starts after the swap already writes to the swapped
	// destination, bound to the link session it read its checkpoint
	// through: holding would bind it to the swap's session, stale once the
	// link has moved on (errLinkChanged at every batch, a reconnect loop).
	_, done := b.s.hold.swapped()
	return !done
}

// redial moves the writer to another server (a shadow swapped in): same
// checkpoint field and source state, a new connection.
func (w *destWriter) redial(ctx context.Context, dest Access) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, dest.Network, dest.Addr)
	if err != nil {
		return fmt.Errorf("connect to destination %s after the swap: %w", dest.Addr, err)
	}
	w.mu.Lock()
	old := w.conn
	w.conn, w.armed = conn, time.Time{}
	w.bw.Reset(conn)
	w.rd = newDestReader(conn)
	w.mu.Unlock()
	old.Close()
	if err := w.do(ctx, "AUTH", dest.Username, dest.Password); err != nil {
		return fmt.Errorf("authenticate to destination %s after the swap: %w", dest.Addr, err)
	}
	return nil
}
