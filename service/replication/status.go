package replication

import (
	"fmt"
	"github.com/replicad/terraform-provider-redis/internal/layout"
	"strings"
	"sync"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/api"
)

// phase is where a syncer stands.
type phase int

const (
	phaseConnecting phase = iota
	phaseLoading
	phaseStreaming
	phaseStopped
	phasePaused
)

// sourceStatus is the live status of one source; the API reads it.
type sourceStatus struct {
	mu        sync.Mutex
	phase     phase
	connected bool
	// caughtUp, while a stream is read, says whether its reader has
	// consumed what the source sent (replproto.Conn.CaughtUp).
	caughtUp   func(now time.Time) bool
	lastError  string
	lastUpdate time.Time
	rdbSize    int64
	rdbDone    int64
	rdbLive    func() (int64, int64) // size, transferred while loading
	// Lag: received and applied offsets, and when the oldest received but
	// unapplied item arrived.
	received        int64
	applied         int64
	pendingSince    time.Time
	lastLag         time.Duration
	compressionOK   bool
	codec           string // what the source compresses with
	compressionNote string // why compression asked for is not active
	// node is the address of the server replicated from (a clustered
	// source's shard moves between nodes); the syncs it took, full or
	// partial, count since the Replica Of was configured.
	node                    string
	fullSyncs, partialSyncs int
	syncNote                string // what of the source the last load could not reproduce
	// lostKeys counts the commands that changed the expiry of a key the
	// destination had already expired by itself; lostSample names some.
	lostKeys   int
	lostSample []string
	// reserved counts what a source that is a redis-replicad database held
	// or ran in its logical database 16, which the service keeps for
	// itself (checkpoints): not replicated (reservedDB).
	reserved int

	// What the watchdog (watchdog.go) reads: what the writer is doing, and
	// when it last had a send answered.
	writerAt   writerActivity
	unanswered int
	// executing: commands the destination runs for the send the writer
	// awaits (an EXEC of a big transaction takes a while).
	executing    int
	lastProgress time.Time
	// handedAt: when the writer was last given commands while it had none
	// pending. The writer cannot be stuck on what it has not been given:
	// a batch that waited for the end of a big command arriving over a
	// slow link holds commands received long before.
	handedAt time.Time
	// watchdogNote says why the watchdog holds the source out of sync
	// (a stuck syncer, a silent source); empty when it does not.
	watchdogNote string
	// followedAt is when the source was last known to be followed: in
	// sync, or, for a source gone silent, when it last sent something.
	// While it is not in sync (its link down, silent, a load under way,
	// the sync paused or stopped), the lag counts from then: the
	// destination misses whatever the source did since (the watchdog and
	// each change of the status record it). Until the source is first in
	// sync it is when the status was made (newSourceStatus: the source
	// configured, or found by this run of the service): nothing of the
	// source was followed before, and a lag of 0 would say the destination
	// misses nothing of a source slow or down from the start.
	followedAt time.Time
	// loadWriting, during a load over the master link, is when the write
	// to the destination under way began (zero when none is).
	loadWriting func() time.Time
	// linkHeldBy names the source whose transaction holds the master link
	// while the writer waits for it (writerWaitingLink).
	linkHeldBy func() (string, time.Time)
}

// newSourceStatus is the status of a source not followed yet: its lag
// counts from now until it is first in sync.
func newSourceStatus() *sourceStatus { return &sourceStatus{followedAt: time.Now()} }

// writerActivity is what a syncer's writer is doing.
type writerActivity uint8

const (
	writerIdle        writerActivity = iota // waiting for commands from the source
	writerSending                           // writing a batch to the destination
	writerReceiving                         // reading the destination's replies
	writerHeld                              // held while a reload is swapped in
	writerWaitingLink                       // waiting for the master link another source's transaction holds
)

func (a writerActivity) String() string {
	switch a {
	case writerSending:
		return "writing a batch to the destination"
	case writerReceiving:
		return "waiting for the destination to answer"
	case writerHeld:
		return "held while the reloaded data is swapped in"
	case writerWaitingLink:
		return "waiting for the destination's master link, which another source's transaction holds"
	default:
		return "waiting for commands from the source"
	}
}

// setWriter records what the writer does now, and how many of its sends
// are unanswered.
func (s *sourceStatus) setWriter(a writerActivity, unanswered, executing int) {
	s.mu.Lock()
	s.writerAt, s.unanswered, s.executing = a, unanswered, executing
	s.mu.Unlock()
}

// handOverLocked records that the commands received from receivedAt on,
// up to offset end, go to the writer now.
func (s *sourceStatus) handOverLocked(receivedAt time.Time, end int64, now time.Time) {
	if s.applied >= s.received {
		s.pendingSince, s.handedAt = receivedAt, now
	}
	s.received = end
}

// stallSinceLocked is when the writer's wait for the destination began, as
// far as the watchdog is concerned: the latest of when the oldest pending
// command was received, when a send was last answered, and when the writer
// was last given commands with none pending. The lag counts from receipt;
// this does not, since a command may wait in its batch for the end of a
// big one arriving slowly, which is not the writer's doing.
func (s *sourceStatus) stallSinceLocked() time.Time {
	since := s.pendingSince
	if s.lastProgress.After(since) {
		since = s.lastProgress
	}
	if s.handedAt.After(since) {
		since = s.handedAt
	}
	return since
}

// progress records that the destination answered a send.
func (s *sourceStatus) progress() {
	s.mu.Lock()
	s.lastProgress = time.Now()
	s.mu.Unlock()
}

func (s *sourceStatus) set(f func(s *sourceStatus)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.followedLocked(now) {
		// A change may end the sync (a session that fails): it was
		// followed until now. (The watchdog records it while it lasts.)
		s.followedAt = now
	}
	f(s)
	s.lastUpdate = now.UTC()
}

// inSyncMaxLag: a source whose oldest unapplied command has waited longer
// is catching up (syncing), not in sync: a destination that was stopped for
// a while resumes with a backlog its reader has already received.
const inSyncMaxLag = time.Second

// lag is how long the oldest received but unapplied command has waited.
func (s *sourceStatus) lagLocked(now time.Time) time.Duration {
	if s.applied >= s.received || s.pendingSince.IsZero() {
		return 0
	}
	return now.Sub(s.pendingSince)
}

// inSyncLocked says whether the applied offset follows the source's now.
func (s *sourceStatus) inSyncLocked(now time.Time) bool {
	return s.phase == phaseStreaming && s.connected && s.watchdogNote == "" &&
		(s.caughtUp == nil || s.caughtUp(now)) && s.lagLocked(now) <= inSyncMaxLag
}

// followedLocked says whether the source is known to be followed now: in
// sync while its stream's reader runs. A session that ends looks in sync
// for an instant (its reader gone, the watchdog's note cleared): that is
// no news of the source.
func (s *sourceStatus) followedLocked(now time.Time) bool {
	return s.caughtUp != nil && s.inSyncLocked(now)
}

func (s *sourceStatus) view(src api.ReplicaSource) api.ReplicaSourceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := api.ReplicaSourceStatus{
		ReplicaSource: src, LastError: s.lastError, LastUpdate: s.lastUpdate, CompressionNote: s.compressionNote, SyncNote: s.noteLocked(),
		RDBSize: s.rdbSize, RDBTransferred: s.rdbDone, CompressionActive: s.compressionOK, CompressionCodec: s.codec,
	}
	if s.phase == phaseLoading && s.rdbLive != nil {
		out.RDBSize, out.RDBTransferred = s.rdbLive()
	}
	now := time.Now()
	inSync := s.inSyncLocked(now)
	if inSync && s.caughtUp != nil {
		// Said in sync now: the lag counts from here once it is not.
		// The watchdog's ticks alone missed an in-sync shorter than
		// their period, and the lag of a link that slowed down right
		// after stayed 0 while the destination fell behind.
		s.followedAt = now
	}
	lag := s.lagLocked(now)
	if !inSync && !s.followedAt.IsZero() { // zero only in tests' statuses
		// Not only what was received and waits: what the source did since
		// it was last followed is missing too.
		lag = max(lag, now.Sub(s.followedAt))
	}
	out.Lag = lag.Milliseconds()
	if out.LastError == "" {
		out.LastError = s.watchdogNote
	}
	switch {
	case inSync:
		out.Status = api.SourceInSync
	case s.phase == phaseStopped || s.phase == phasePaused || s.lastError != "" || s.watchdogNote != "":
		out.Status = api.SourceOutOfSync
	default:
		out.Status = api.SourceSyncing
	}
	return out
}

// noteLocked is the sync note: what of the source the destination does not
// reproduce.
func (s *sourceStatus) noteLocked() string {
	note := s.syncNote
	if s.reserved > 0 {
		if note != "" {
			note += "; "
		}
		note += fmt.Sprintf("%d keys or writes of the source's applications in logical database %d, which redis-replicad keeps for its own use, are not replicated", s.reserved, layout.CheckpointDB)
	}
	if s.lostKeys > 0 {
		if note != "" {
			note += "; "
		}
		note += fmt.Sprintf("%d replicated commands changed the expiry of keys the destination no longer has: it expired them by itself while it lagged, before the source extended or removed their TTL (%s); they are missing until the next full resync",
			s.lostKeys, strings.Join(s.lostSample, ", "))
	}
	return note
}
