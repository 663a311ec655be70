package gateway

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// throttle slows down password guessing on replication endpoints and keeps
// a guesser from filling the log. Per peer address (the IP, not the port):
//
//   - the first freeAttempts failures cost nothing (a destination with an
//     old password retries with backoff anyway);
//   - after that, each AUTH of the peer waits until the previous failure's
//     delay has passed; the delay doubles per failure up to maxDelay;
//   - failures are logged once per logWindow per peer: the first at once,
//     the rest as a count when the window ends.
//
// A success clears the peer's record. Nobody is locked out: a correct
// password is accepted after the delay, so a guesser sharing an address with
// a real destination slows it down but does not stop it.
type throttle struct {
	log       *slog.Logger
	now       func() time.Time
	base, max time.Duration // the first delay, and the longest

	mu    sync.Mutex
	peers map[string]*peerRecord
}

type peerRecord struct {
	failures   int
	next       time.Time // an AUTH waits until then
	lastFail   time.Time
	loggedAt   time.Time // when the last line about this peer was written
	suppressed int       // failures not logged since loggedAt
	database   int       // the database of the last failure, for the log
}

const (
	freeAttempts = 3
	baseDelay    = 50 * time.Millisecond
	maxDelay     = 2 * time.Second
	// forgetAfter drops the record of a peer that stopped failing.
	forgetAfter = 10 * time.Minute
	logWindow   = time.Minute
)

func newThrottle(log *slog.Logger) *throttle {
	return &throttle{log: log, now: time.Now, base: baseDelay, max: maxDelay, peers: map[string]*peerRecord{}}
}

// delayFor is the wait after the n-th consecutive failure.
func (t *throttle) delayFor(failures int) time.Duration {
	if failures <= freeAttempts || t.base <= 0 {
		return 0
	}
	d := t.base
	for i := freeAttempts + 1; i < failures && d < t.max; i++ {
		d *= 2
	}
	return min(d, t.max)
}

// wait blocks until the peer may try a password again.
func (t *throttle) wait(ctx context.Context, peer string) error {
	t.mu.Lock()
	now := t.now()
	var until time.Time
	if r := t.peers[peer]; r != nil && r.failures >= freeAttempts {
		// Reserve a slot: parallel connections of one peer take turns, one
		// attempt per delay, instead of all waking up together.
		until = r.next
		if until.Before(now) {
			until = now
		}
		r.next = until.Add(t.delayFor(r.failures + 1))
	}
	t.mu.Unlock()
	d := until.Sub(now)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *throttle) succeeded(peer string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.peers[peer]; r != nil {
		t.flushLocked(peer, r)
		delete(t.peers, peer)
	}
}

func (t *throttle) failed(peer string, database int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	r := t.peers[peer]
	if r == nil || now.Sub(r.lastFail) > forgetAfter {
		if len(t.peers) > 4096 {
			t.pruneLocked(now)
		}
		r = &peerRecord{}
		t.peers[peer] = r
	}
	r.failures++
	r.lastFail = now
	r.database = database
	if next := now.Add(t.delayFor(r.failures)); next.After(r.next) {
		r.next = next
	}
	if r.loggedAt.IsZero() {
		r.loggedAt = now
		t.log.Warn("refused a replication session: wrong user name or password",
			"database", database, "peer", peer)
		return
	}
	r.suppressed++
	if now.Sub(r.loggedAt) >= logWindow {
		t.flushLocked(peer, r)
	}
}

// flush writes the pending counts of every peer whose window has ended.
// The gateway calls it periodically, so a burst is reported even when no
// further failure comes.
func (t *throttle) flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for peer, r := range t.peers {
		if r.suppressed > 0 && now.Sub(r.loggedAt) >= logWindow {
			t.flushLocked(peer, r)
		}
	}
	t.pruneLocked(now)
}

func (t *throttle) flushLocked(peer string, r *peerRecord) {
	if r.suppressed == 0 {
		return
	}
	t.log.Warn("refused more replication sessions: wrong user name or password",
		"database", r.database, "peer", peer, "attempts", r.suppressed,
		"since", r.loggedAt.UTC().Format(time.RFC3339), "delay_per_attempt", t.delayFor(r.failures).String())
	r.suppressed = 0
	r.loggedAt = t.now()
}

func (t *throttle) pruneLocked(now time.Time) {
	for peer, r := range t.peers {
		if now.Sub(r.lastFail) > forgetAfter {
			t.flushLocked(peer, r)
			delete(t.peers, peer)
		}
	}
}
