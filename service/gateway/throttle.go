package gateway

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// throttle slows down password guessing on replication endpoints and keeps
// a guesser from filling the log. Per peer address (the IP, not the port)
// and endpoint (a database, or a node of one):
//
//   - the first freeAttempts failures cost nothing (a destination with an
//     old password retries with backoff anyway);
//   - after that, the AUTHs of the peer take turns, one per delay, which
//     doubles per failure up to maxDelay;
//   - an AUTH whose turn would come later than maxWait from now is not
//     queued: its connection is closed (errThrottled), and the client
//     retries later;
//   - failures are logged once per logWindow per peer: the first at once,
//     the rest as a count when the window ends.
//
// A success clears the peer's record. Nobody is locked out for long: turns
// are reserved at most maxWait ahead, so once a burst of guesses ends, a
// correct password is accepted within maxWait and a delay, even when the
// guesser's connections gave up without using their turns; and a burst
// against one endpoint does not slow the destinations of another.
type throttle struct {
	log       *slog.Logger
	now       func() time.Time
	base, max time.Duration // the first delay, and the longest
	maxWait   time.Duration // the furthest ahead a turn is reserved

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

// errThrottled: the peer's turns are taken further ahead than maxWait.
var errThrottled = errors.New("too many failed authentications from this address: try again later")

const (
	freeAttempts = 3
	baseDelay    = 50 * time.Millisecond
	maxDelay     = 2 * time.Second
	// maxWaitAhead, well under the handshake's timeout (30 s), bounds the
	// queue of a peer's AUTHs.
	maxWaitAhead = 5 * time.Second
	// forgetAfter drops the record of a peer that stopped failing.
	forgetAfter = 10 * time.Minute
	logWindow   = time.Minute
)

func newThrottle(log *slog.Logger) *throttle {
	return &throttle{log: log, now: time.Now, base: baseDelay, max: maxDelay, maxWait: maxWaitAhead, peers: map[string]*peerRecord{}}
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

// wait blocks until the peer may try a password again; errThrottled when
// its turn would come later than maxWait.
func (t *throttle) wait(ctx context.Context, peer string) error {
	t.mu.Lock()
	now := t.now()
	var until time.Time
	if r := t.peers[peer]; r != nil && r.failures >= freeAttempts {
		// Reserve a turn: parallel connections of one peer take turns, one
		// attempt per delay, instead of all waking up together.
		until = r.next
		if until.Before(now) {
			until = now
		}
		if until.Sub(now) > t.maxWait {
			t.mu.Unlock()
			return errThrottled
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
			"database", database, "peer", peerOf(peer))
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
		"database", r.database, "peer", peerOf(peer), "attempts", r.suppressed,
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

// peerOf is the address in a throttle key ("address/database/node").
func peerOf(key string) string {
	addr, _, _ := strings.Cut(key, "/")
	return addr
}
