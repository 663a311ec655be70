// Package throttle slows down password guessing and keeps a guesser from
// filling the log. It serves the replication endpoints (package gateway) and
// the REST API, per client address (and, on the gateway, per endpoint):
//
//   - the first FreeAttempts failures of a key cost nothing (a client with
//     an old password retries with backoff anyway);
//   - after that, the key's logins take turns, one per delay, which doubles
//     per failure from Base up to Max;
//   - a login whose turn would come later than MaxWait from now is not
//     queued (ErrThrottled): the caller refuses it, and the client retries
//     later;
//   - failures are logged once per LogWindow per key: the first at once,
//     the rest as a count when the window ends (Flush).
//
// A success clears the key's record. Nobody is locked out for long: turns
// are reserved at most MaxWait ahead, so once a burst of guesses ends, a
// correct password is accepted within MaxWait and a delay, even when the
// guesser's connections gave up without using their turns.
package throttle

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// ErrThrottled says that the key's turns are taken further ahead than
// MaxWait.
var ErrThrottled = errors.New("too many failed logins from this address: try again later")

// Defaults of New.
const (
	FreeAttempts = 3
	BaseDelay    = 50 * time.Millisecond
	MaxDelay     = 2 * time.Second
	// MaxWaitAhead, well under the gateway's handshake timeout (30 s),
	// bounds the queue of a key's logins.
	MaxWaitAhead = 5 * time.Second
	// forgetAfter drops the record of a key that stopped failing.
	forgetAfter = 10 * time.Minute
	// LogWindow is how often the failures of one key are logged at most.
	LogWindow = time.Minute
)

// Throttle is safe for concurrent use.
type Throttle struct {
	log  *slog.Logger
	what string // what failed, in the log: "replication session", "API login"
	// Now, Base, Max and MaxWait may be changed before first use (tests).
	Now       func() time.Time
	Base, Max time.Duration // the first delay, and the longest
	MaxWait   time.Duration // the furthest ahead a turn is reserved

	mu   sync.Mutex
	keys map[string]*record
}

type record struct {
	failures   int
	next       time.Time // a login waits until then
	lastFail   time.Time
	loggedAt   time.Time // when the last line about this key was written
	suppressed int       // failures not logged since loggedAt
	attrs      []any     // of the last failure, for the log
}

// New returns a throttle whose log lines say "refused a <what>: wrong user
// name or password".
func New(log *slog.Logger, what string) *Throttle {
	return &Throttle{log: log, what: what, Now: time.Now, Base: BaseDelay, Max: MaxDelay, MaxWait: MaxWaitAhead, keys: map[string]*record{}}
}

// DelayFor is the wait after the n-th consecutive failure.
func (t *Throttle) DelayFor(failures int) time.Duration {
	if failures <= FreeAttempts || t.Base <= 0 {
		return 0
	}
	d := t.Base
	for i := FreeAttempts + 1; i < failures && d < t.Max; i++ {
		d *= 2
	}
	return min(d, t.Max)
}

// Wait blocks until key may try a password again; ErrThrottled when its
// turn would come later than MaxWait.
func (t *Throttle) Wait(ctx context.Context, key string) error {
	t.mu.Lock()
	now := t.Now()
	var until time.Time
	if r := t.keys[key]; r != nil && r.failures >= FreeAttempts {
		// Reserve a turn: parallel connections of one key take turns, one
		// attempt per delay, instead of all waking up together.
		until = r.next
		if until.Before(now) {
			until = now
		}
		if until.Sub(now) > t.MaxWait {
			t.mu.Unlock()
			return ErrThrottled
		}
		r.next = until.Add(t.DelayFor(r.failures + 1))
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

// Succeeded clears key's record.
func (t *Throttle) Succeeded(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.keys[key]; r != nil {
		t.flushLocked(key, r)
		delete(t.keys, key)
	}
}

// Failed records a failed login of key; attrs go on its log line (with
// "peer", the key's address, which the caller passes).
func (t *Throttle) Failed(key string, attrs ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.Now()
	r := t.keys[key]
	if r == nil || now.Sub(r.lastFail) > forgetAfter {
		if len(t.keys) > 4096 {
			t.pruneLocked(now)
		}
		r = &record{}
		t.keys[key] = r
	}
	r.failures++
	r.lastFail = now
	r.attrs = attrs
	if next := now.Add(t.DelayFor(r.failures)); next.After(r.next) {
		r.next = next
	}
	if r.loggedAt.IsZero() {
		r.loggedAt = now
		t.log.Warn("refused a "+t.what+": wrong user name or password", attrs...)
		return
	}
	r.suppressed++
	if now.Sub(r.loggedAt) >= LogWindow {
		t.flushLocked(key, r)
	}
}

// Flush writes the pending counts of every key whose window has ended.
// Owners call it periodically, so a burst is reported even when no further
// failure comes.
func (t *Throttle) Flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.Now()
	for key, r := range t.keys {
		if r.suppressed > 0 && now.Sub(r.loggedAt) >= LogWindow {
			t.flushLocked(key, r)
		}
	}
	t.pruneLocked(now)
}

func (t *Throttle) flushLocked(_ string, r *record) {
	if r.suppressed == 0 {
		return
	}
	attrs := append(append([]any{}, r.attrs...), "attempts", r.suppressed,
		"since", r.loggedAt.UTC().Format(time.RFC3339), "delay_per_attempt", t.DelayFor(r.failures).String())
	t.log.Warn("refused more "+t.what+"s: wrong user name or password", attrs...)
	r.suppressed = 0
	r.loggedAt = t.Now()
}

func (t *Throttle) pruneLocked(now time.Time) {
	for key, r := range t.keys {
		if now.Sub(r.lastFail) > forgetAfter {
			t.flushLocked(key, r)
			delete(t.keys, key)
		}
	}
}
