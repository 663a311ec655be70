package replication

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/replproto"
)

// Defaults of the watchdog's limits (Config.StallTimeout, SilenceTimeout).
const (
	// DefaultStallTimeout: a syncer with commands pending whose writer had
	// nothing answered by the destination for this long is stuck.
	DefaultStallTimeout = 5 * time.Second
	// DefaultSilenceTimeout: a source sends a PING every
	// repl-ping-replica-period (10 s by default); nothing at all for
	// longer than that plus a margin means it is frozen or the link is.
	DefaultSilenceTimeout = 15 * time.Second
)

// execAllowance is how long the watchdog allows per command of an EXEC
// the writer awaits, on top of the stall limit (50,000 commands a second;
// a destination runs millions).
const execAllowance = 20 * time.Microsecond

// errStalled ends a session whose syncer is stuck; the next one resumes
// from the checkpoint.
var errStalled = errors.New("the syncer is stuck")

// stallError is errStalled with what the watchdog saw (its message starts
// with errStalled's).
type stallError struct{ note string }

func (e stallError) Error() string { return e.note }
func (e stallError) Unwrap() error { return errStalled }

// watchdog keeps a session's status honest: "in-sync" means that the
// applied offset follows the source now. It runs beside the reader and the
// writer of a streaming session and checks, a few times a second:
//   - that the writer makes progress while commands are pending: if not,
//     whatever the cause (a destination that stopped answering, a writer
//     blocked on a full pipe, a bug), the source is out of sync, with where
//     the writer is stuck, and the session is restarted from its
//     checkpoint (stop is called with the reason);
//   - that the source sends something, data or ping: if not, the source is
//     out of sync until it does (the read timeout reconnects later).
func (s *syncer) watchdog(ctx context.Context, conn *replproto.Conn, stop func(error)) {
	tick := min(s.stallTimeout, s.silenceTimeout) / 10
	t := time.NewTicker(max(tick, 10*time.Millisecond))
	defer t.Stop()
	lastWire, lastData := conn.WireBytes(), time.Now()
	defer s.status.set(func(st *sourceStatus) { st.watchdogNote = "" })
	// Once the session ends, nothing holds the source stalled: a sync
	// paused or stopped meanwhile kept the gauge at 1 for as long as it was.
	// A stuck session is the exception: it ends stalled, and the next
	// one's watchdog says whether it still is.
	stalledAtEnd := false
	defer func() {
		if !stalledAtEnd {
			s.metrics.stalled.Set(0)
		}
	}()
	// logged is the kind of the last note logged: a note's text changes
	// every second (it says for how long), its log line only when its kind
	// does, not once a second for as long as a source is silent.
	logged := ""
	// A question on a second connection (sourceprobe.go) tells a frozen
	// source or link from a quiet source before the silence limit.
	var prober sourceProber
	// The server this session reads (a clustered source's shard node),
	// not the address of the URL.
	probed := s.url
	if host, port, err := net.SplitHostPort(s.node); err == nil {
		if p, err := strconv.Atoi(port); err == nil {
			probed.Host, probed.Port = host, p
		}
	}
	probeCtx, stopProbe := context.WithCancel(ctx)
	proberDone := make(chan struct{})
	go func() {
		defer close(proberDone)
		prober.run(probeCtx, probed, s.tls, s.log.Debug)
	}()
	defer func() { stopProbe(); <-proberDone }()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		if w := conn.WireBytes(); w != lastWire {
			lastWire, lastData = w, now
		}
		silentSince := prober.unansweredSince()
		st := s.status
		st.mu.Lock()
		streaming := st.phase == phaseStreaming
		pending := st.received > st.applied
		since := st.stallSinceLocked()
		stuckFor := now.Sub(since)
		where, unanswered, applied, received := st.writerAt, st.unanswered, st.applied, st.received
		// An EXEC of a big transaction runs for a while: the limit grows
		// with it, at a pace far below what a destination manages.
		limit := s.stallTimeout + time.Duration(st.executing)*execAllowance
		// Waiting behind another source's transaction, which holds the
		// master link until its EXEC arrives, is that source's time: this
		// one is behind, and says why, but is not stuck.
		waiting := where == writerWaitingLink && st.linkHeldBy != nil
		stuck := pending && where != writerHeld && !waiting && !since.IsZero() && stuckFor > limit
		note, kind := "", ""
		var writingSince time.Time
		if st.phase == phaseLoading && st.loadWriting != nil {
			writingSince = st.loadWriting()
		}
		switch {
		case !writingSince.IsZero() && now.Sub(writingSince) > s.stallTimeout:
			// Not stuck: the load goes on once the destination reads.
			kind = "load waits"
			note = fmt.Sprintf("the destination has taken none of the full load's data for %s (is its redis-server stopped, or too busy to read?): the load waits for it",
				now.Sub(writingSince).Round(time.Second))
		case !streaming && conn.ReadWaiting(now) > s.silenceTimeout:
			// A load, or the wait for it, reads the source without pause
			// unless the destination holds it back (then no read waits).
			// A source sends newlines while it prepares the RDB, and the
			// RDB at the link's pace: a read that waits this long waits
			// for a source or a link that is frozen, on a connection still
			// open (the read timeout ends it later).
			kind = "silent"
			note = fmt.Sprintf("nothing received from the source for %s during the full sync, not even the newlines a source sends while it prepares its RDB: the source or the link is frozen; the load waits for it",
				conn.ReadWaiting(now).Round(time.Second))
		case !streaming:
		case waiting && pending && !since.IsZero() && stuckFor > limit:
			holder, heldSince := st.linkHeldBy()
			if holder == "" {
				break // let go just now
			}
			kind = "behind"
			note = fmt.Sprintf("behind: its writes wait for the destination's master link, which source %s holds for a transaction that it has been receiving for %s (a transaction goes to the destination as it arrives, whole, from its MULTI to its EXEC); they follow once it is applied",
				holder, now.Sub(heldSince).Round(time.Second))
		case stuck:
			kind = "stuck"
			note = fmt.Sprintf("%s: its writer is %s (%d of its sends unanswered) and applied nothing for %s; applied offset %d, received %d; restarting from the checkpoint",
				errStalled, where, unanswered, stuckFor.Round(time.Second), applied, received)
		case now.Sub(lastData) > s.silenceTimeout && !prober.quietAt(now, probeEvery+probeTimeout, conn.ReplID(), conn.Offset()):
			// A source that answered the probe just now, at an offset the
			// session has received, is quiet, not frozen: a source blocked
			// for a while (DEBUG SLEEP, a long script) sends its next ping
			// late. A link that holds the stream fails this as soon as the
			// source pings (Redis propagates its pings into the stream, so
			// its offset moves past what arrived).
			kind = "silent"
			note = fmt.Sprintf("nothing received from the source for %s, not even its ping (sent every repl-ping-replica-period, 10 s by default): the source or the link is frozen", now.Sub(lastData).Round(time.Second))
		case !silentSince.IsZero() && lastData.Before(silentSince) && conn.ReadWaiting(now) > 0:
			kind = "silent" // as below, sooner
			note = fmt.Sprintf("the source has not answered a question on a second connection (INFO replication) for %s, and nothing of its stream has arrived since: the source or the link is frozen",
				now.Sub(silentSince).Round(time.Second))
		}
		changed := note != st.watchdogNote
		st.watchdogNote = note
		if changed {
			st.lastUpdate = now.UTC()
		}
		switch {
		case st.followedLocked(now):
			st.followedAt = now
		case kind == "silent" && lastData.Before(st.followedAt):
			// In sync until the silence was noticed, as far as the status
			// could tell; followed only until the source last sent.
			st.followedAt = lastData
		}
		st.mu.Unlock()
		if kind != logged && note != "" {
			s.log.Warn("replication watchdog", "source", s.url.String(), "note", note)
		}
		logged = kind
		// Whatever the note, the source is out of sync while it stands
		// (sourceStatus.view): the gauge says so too.
		s.metrics.stalled.Set(bool01(note != ""))
		if stuck && streaming {
			stalledAtEnd = true
			s.metrics.stalls.Inc()
			stop(stallError{note})
			return
		}
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
