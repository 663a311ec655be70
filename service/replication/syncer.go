package replication

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/layout"
	"github.com/replicad/terraform-provider-redis/internal/rdb"
	"github.com/replicad/terraform-provider-redis/internal/redisurl"
	"github.com/replicad/terraform-provider-redis/internal/replcompress"
	"github.com/replicad/terraform-provider-redis/internal/replproto"
	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// errNeedFullSync ends a round: this source cannot continue from its
// checkpoint, so the destination must be flushed and loaded from every source.
var errNeedFullSync = errors.New("a full resync is needed")

// syncer replicates one source into the destination. It is a Redis replica
// on the wire: the reader goroutine speaks the replication protocol and
// decodes, the writer goroutine applies, and a bounded queue between them
// (queue.go) applies back-pressure to the source.
type syncer struct {
	source api.ReplicaSource
	url    redisurl.Source
	dest   Access // the destination (a shadow, during a reload)
	// hold, during a reload into a shadow: holds the writer while the
	// shadow is swapped in, then moves it to the destination.
	hold *swapHold
	// link: the transactions of the stream go to the destination over its
	// master link (masterlink.go), when it has one and no shadow is loaded.
	link    *masterLink
	tls     *tls.Config // nil: plain text
	status  *sourceStatus
	metrics *sourceMetrics
	log     *slog.Logger

	// maxCommand bounds one command of the stream (see maxStreamCommand);
	// 0: no bound beyond the RESP reader's.
	maxCommand int64

	// checkpoint to resume from; nil when this round must load in full.
	resume *checkpoint
	// loadStarted is set once a full load began writing to the destination:
	// if it fails, the destination holds part of a dataset and must be
	// flushed before anything is loaded again.
	loadStarted bool
	// wireSeen is how many bytes of the current connection the wire
	// metric has counted.
	wireSeen int64
	// file, when set, makes a full load go through an RDB file that the
	// destination loads natively (fileload.go).
	file *fileLoad
	// slots, when set, are the slots of the shard whose RDB goes into a
	// merged load: a key of another slot stops it (mergeload.go).
	slots *slotSet
	// onLoaded, when set, is told once the full load is committed.
	onLoaded func()
	// destRDB is the newest RDB version the destination reads (0: unknown),
	// for the keys of a full load written whole with RESTORE.
	destRDB int
	// fullSession: the current session is a full sync, whose transfer
	// ended at transferEnd (zero while it runs); lastCut: the last full
	// sync was cut by the source (loadcut.go); sourceClosed: the session's
	// connection to the source met the source closing it (a broken pipe
	// from the destination is not a cut by the source).
	fullSession  bool
	sourceClosed bool
	// node: the address the session reads from (a clustered source's
	// shard is read from one of its nodes, not the URL's); srcConn: the
	// session's connection to it.
	node        string
	srcConn     *replproto.Conn
	transferEnd time.Time
	lastCut     error
	// The watchdog's limits (watchdog.go).
	stallTimeout, silenceTimeout time.Duration
	// loadPending counts the pending entries of the streams the load wrote
	// as commands, for the writer to check once the load is applied.
	loadPending *pendingCounter
	// loadSlots bounds the full loads of the instance (Manager.loadSlots);
	// nil: no bound. releaseLoad gives the session's slot back, once: when
	// its load is committed, when it has taken nothing from its source for
	// loadIdle, or when the session ends.
	loadSlots    chan struct{}
	releaseLoad  func()
	loadReleased <-chan struct{} // closed by releaseLoad
	// claim, when set, records the source's replication history for the
	// session and refuses one that another source has (destination.claim).
	claim func(addr, replID string) (func(), error)
	// destRestarts, for a sharded destination, is a channel closed at the
	// next restart of one of its nodes (Manager.DestinationRestarted).
	destRestarts func() <-chan struct{}
	// lineage is told the source's lineage during each handshake, before
	// PSYNC (nil: unknown); an error refuses the source (a replication
	// cycle).
	lineage func([]string) error
	// A shard of a clustered source (cluster.go): key names its checkpoint
	// (the source's address and the shard's slots), and locate finds the
	// node to replicate it from now, which changes when it fails over.
	// Both are empty for a source that is one server.
	key    string
	locate func(ctx context.Context) (string, error)
	// avoid, for a shard read from a replica, has the next locate choose
	// its master for a while when that replica cannot serve the session.
	avoid func(addr string) bool
	// onMigrating is told that keys migrate into the shard (resharding).
	onMigrating func()
	// relocate tells a streaming session to move to a better node (a
	// replica, for a shard read from its master only because no replica
	// was online).
	relocate <-chan struct{}
	// splitNoted: the status says that commands were applied slot by slot
	// into a sharded destination; splitCount counts them.
	splitNoted bool
	splitCount int
	// loadedLink is the link session that followed this session's load
	// over the link; the writer takes it with the load's end item.
	loadedLink *linkSession
	// localDown, when set, says why the replication endpoint of the
	// database of this instance at a source URL does not listen (empty:
	// it listens, or the URL is not of this instance).
	localDown func(uri string) string
	// shared: other sources (or shards) write into the same destination,
	// so a command on whole databases from this one cannot be applied as
	// it is (see isKeyspaceWide).
	shared bool
	// serviceSource: the source is a database of a redis-replicad
	// instance (it answered the lineage question), whose logical database
	// 16 is the service's own (reservedDB).
	serviceSource bool
}

// destAccess is where the syncer writes: its destination, or the one a
// reload's shadow was swapped into during the round.
// destLink is the master link of the server the syncer writes to: the
// shadow's own while it writes to a reload's shadow, the destination's
// after the swap.
func (s *syncer) destLink() *masterLink {
	if s.hold != nil {
		if _, ok := s.hold.swapped(); ok {
			return s.hold.link
		}
	}
	return s.link // the shadow's own link until the swap
}

func (s *syncer) destAccess() Access {
	if s.hold != nil {
		if target, ok := s.hold.swapped(); ok {
			return target
		}
	}
	return s.dest
}

// checkpointKey is the field of this syncer's checkpoint in the destination.
func (s *syncer) checkpointKey() string {
	if s.key != "" {
		return s.key
	}
	return s.url.Addr()
}

// from names the source in errors: with the node read from, when the URL
// names another (a clustered source's shard). The URL prints redacted.
func (s *syncer) from() string {
	if s.node == "" || s.node == s.url.Addr() {
		return s.url.String()
	}
	return fmt.Sprintf("%s (node %s)", s.url, s.node)
}

// linkWait records that the writer waits for the master link, which
// another source's writer holds (heldBy names it).
func (s *syncer) linkWait(heldBy func() (string, time.Time)) {
	s.status.set(func(st *sourceStatus) { st.writerAt, st.linkHeldBy = writerWaitingLink, heldBy })
}

// linkGot records that the writer has the master link after a wait, behind
// an EXEC of executesAhead commands that the destination may still run.
// The wait was the holder's time: the stall clock starts now, once that
// EXEC has had its allowance.
func (s *syncer) linkGot(executesAhead int64) {
	s.status.set(func(st *sourceStatus) {
		if st.writerAt == writerWaitingLink {
			st.writerAt, st.linkHeldBy = writerSending, nil
		}
		st.handedAt = time.Now().Add(time.Duration(executesAhead) * execAllowance)
	})
}

// tellDestinationQuiet has the status say, with for how long, that the
// destination has not answered what a new session asks it first (its
// checkpoint, say), once that is longer than the stall limit; until the
// returned function is called, which takes the note back. A session
// restarted by the watchdog because the destination stopped answering
// (a redis-server stopped with SIGSTOP) waits here: the stuck note it
// ended with was no longer news, its durations frozen.
func (s *syncer) tellDestinationQuiet() (answered func()) {
	limit := s.stallTimeout
	if limit <= 0 {
		limit = DefaultStallTimeout
	}
	began := time.Now()
	done, finished := make(chan struct{}), make(chan struct{})
	// told: the note as told last; before: what the status said when the
	// wait began (the last session's end). Guarded by the status's lock.
	var told, before string
	s.status.mu.Lock()
	before = s.status.lastError
	s.status.mu.Unlock()
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if waited := time.Since(began); waited > limit {
				note := fmt.Sprintf("the destination has not answered for %s (is its redis-server stopped, or too busy?): the sync continues from its checkpoint once it does",
					waited.Round(time.Second))
				s.status.set(func(st *sourceStatus) {
					// What another part told meanwhile stands.
					if st.lastError == "" || st.lastError == told || st.lastError == before {
						st.lastError, told = note, note
					}
				})
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-finished
			s.status.mu.Lock()
			standing := told != "" && s.status.lastError == told
			s.status.mu.Unlock()
			if standing {
				s.status.set(func(st *sourceStatus) {
					if st.lastError == told {
						st.lastError = ""
					}
				})
			}
		})
	}
}

// handshakeQuiet is how long a source may take to answer the handshake
// before the status says it has not.
const handshakeQuiet = 15 * time.Second

// asCut returns err as a loadCutError when it ends a full session whose
// source closed the link (closed) during the transfer or within cutWindow
// of its end, and records it as the last cut; other errors as they are.
// A source that refuses connections right after is no cut: it died.
func (s *syncer) asCut(ctx context.Context, err error, closed bool) error {
	if errors.Is(err, errLoadCut) || !s.fullSession || !closed || !closedByPeer(err) ||
		(!s.transferEnd.IsZero() && time.Since(s.transferEnd) >= cutWindow) {
		return err
	}
	addr := s.node
	if addr == "" {
		addr = s.url.Addr()
	}
	derr := dialBack(ctx, addr)
	if errors.Is(derr, syscall.ECONNREFUSED) {
		return fmt.Errorf("the source closed the replication link and has refused connections since: it stopped, or is restarting: %w", err)
	}
	cut := &loadCutError{addr: s.url.Addr(), node: s.node, err: err, accepting: derr == nil}
	s.lastCut = cut
	return cut
}

// run syncs until ctx ends or an error that needs the destination's
// attention: errNeedFullSync, or a fatal error. Connection errors are retried
// here with jittered backoff, resuming from the applied checkpoint.
func (s *syncer) run(ctx context.Context) error {
	backoff, quick := newBackoff(), newBackoff()
	var lastQuick time.Time
	var retries retryLog
	for {
		began := time.Now()
		err := s.session(ctx)
		if time.Since(began) > 30*time.Second {
			backoff.reset() // the link was healthy for a while
			retries = retryLog{}
		}
		if time.Since(began) > cutWindow {
			s.lastCut = nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.metrics.errors.Inc()
		if errors.Is(err, errRelocated) || errors.Is(err, errDestRestarted) || errors.Is(err, errLinkChanged) {
			// Reconnect at once: a better node to read from, or a
			// destination that moved on. Not in a loop, though: a
			// session that ends that way within a second of the last
			// waits, growing, as for a connection error.
			switch {
			case errors.Is(err, errDestRestarted):
				s.log.Info("a node of the destination restarted; continuing from the checkpoints it holds", "source", s.url.String())
			case errors.Is(err, errLinkChanged):
				s.log.Info("the destination's master link started a new session; continuing from the destination's checkpoint", "source", s.url.String())
			}
			if time.Since(lastQuick) < time.Second {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(quick.next()):
				}
			} else {
				quick.reset()
			}
			lastQuick = time.Now()
			continue
		}
		err = s.asCut(ctx, explain(err), s.sourceClosed)
		var oom *destOOMError
		if errors.As(err, &oom) {
			err = classifyOOM(ctx, s.destAccess(), oom)
		}
		s.status.set(func(st *sourceStatus) { st.connected, st.compressionOK, st.lastError = false, false, err.Error() })
		if errors.Is(err, errNeedFullSync) || errors.Is(err, errFatal) {
			return err
		}
		if s.resume == nil && s.loadStarted {
			if errors.Is(err, errLoadCut) {
				return fmt.Errorf("%w: %w", errNeedFullSync, err)
			}
			s.log.Warn("the full load was interrupted; the destination will be flushed and loaded again", "source", s.url.String(), "err", err)
			return fmt.Errorf("%w: the full load was interrupted: %v", errNeedFullSync, err)
		}
		if errors.Is(err, replproto.ErrAuth) {
			if why := s.localSourceDown(); why != "" {
				// Whoever holds the port of a source of this instance
				// whose endpoint does not listen refused the password:
				// not the source. Retried until the endpoint listens.
				err = fmt.Errorf("the source is a database of this instance, and %s; the program on its port refused the password: %w", why, err)
				s.status.set(func(st *sourceStatus) { st.lastError = err.Error() })
			} else {
				return &fatalError{fmt.Errorf("authentication to source %s failed: %w", s.url, err)}
			}
		}
		wait := backoff.next()
		attrs := []any{"source", s.url.String(), "err", err, "in", wait.Round(time.Millisecond)}
		if repeats, ok := retries.warn(err.Error(), time.Now()); !ok {
			s.log.Debug("replication link failed; retrying", attrs...)
		} else if repeats > 0 {
			s.log.Warn("replication link failed; retrying", append(attrs, "failed_the_same_way_since_the_last_warning", repeats)...)
		} else {
			s.log.Warn("replication link failed; retrying", attrs...)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// session is one connection: handshake, the RDB if the source sends one, then
// the stream until an error.
func (s *syncer) session(ctx context.Context) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s.relocate != nil {
		defer s.watchRelocate(ctx, cancel)(&err)
	}
	// What the last session saw of its source is not this one's: an
	// error before it connects is not a cut of the last one's full sync,
	// and the payload a broken load had received does not make this
	// one's keepalives count for nothing (releaseLoadWhenIdle).
	s.status.set(func(st *sourceStatus) { st.phase, st.rdbLive = phaseConnecting, nil })
	s.fullSession, s.sourceClosed, s.transferEnd, s.loadedLink = false, false, time.Time{}, nil
	var restarted <-chan struct{}
	if s.destRestarts != nil {
		restarted = s.destRestarts() // before the checkpoints are read
	}
	// The destination first: one that does not answer (stopped, say)
	// must not hold a full-load slot that the instance's other
	// destinations wait for.
	destAnswered := s.tellDestinationQuiet()
	w, err := dialDestination(ctx, s.destAccess(), s.checkpointKey())
	destAnswered()
	if err != nil {
		return err
	}
	defer w.Close()
	w.restarted = restarted
	w.onLinkWait, w.onLinkGot = s.linkWait, s.linkGot
	if s.destLink() == nil && !s.destAccess().clustered() {
		// No master link could be made: the destination, configured a
		// read-only replica until one attaches it (of port 0, which
		// refuses it), would refuse every write (READONLY). It takes the
		// stream as a primary then, written as a client's commands, and
		// expires keys by itself. A restart configures it a replica
		// again: each session says it anew.
		if err := w.do(ctx, "REPLICAOF", "NO", "ONE"); err != nil {
			return fmt.Errorf("make destination %s a primary (it has no master link): %w", s.destAccess().Addr, err)
		}
	}
	s.wireSeen = 0
	stopW := context.AfterFunc(ctx, func() { w.Close() })
	defer stopW()
	if s.resume == nil && s.loadSlots != nil {
		// A full load: wait for a slot before the source forks for it.
		select {
		case s.loadSlots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		var once sync.Once
		released := make(chan struct{})
		s.releaseLoad = func() { once.Do(func() { <-s.loadSlots; close(released) }) }
		s.loadReleased = released
		defer s.releaseLoad()
	}
	addr := s.url.Addr()
	if s.locate != nil {
		var err error
		if addr, err = s.locate(ctx); err != nil {
			return err
		}
	}
	s.node = addr
	// A cycle is refused before PSYNC (the source forks for nothing
	// otherwise), and said in its own words, not as a connection error.
	var cycle error
	s.serviceSource = false
	onLineage := func(l []string) error {
		s.serviceSource = l != nil // only the service's endpoints answer
		if s.lineage != nil {
			cycle = s.lineage(l)
		}
		return cycle
	}
	conn, err := replproto.Dial(ctx, replproto.Options{
		Addr: addr, Username: s.url.Username, Password: s.url.Password, TLSConfig: s.tls,
		Compression: s.source.Compression, AskLineage: true, OnLineage: onLineage,
		DialTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second, Logger: s.log,
		MaxCommandBytes: s.maxCommand,
	})
	if err != nil {
		if s.avoid != nil && s.avoid(addr) {
			return fmt.Errorf("%w: the shard's replica %s does not answer: %w", errRelocated, addr, err)
		}
		return err
	}
	defer conn.Close()
	s.srcConn = conn
	defer func() { s.sourceClosed, s.srcConn = conn.ClosedByPeer(), nil }()
	// ctx ending must unblock reads.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if s.resume == nil && s.loadSlots != nil {
		defer s.releaseLoadWhenIdle(ctx, conn.WireBytes)()
	}

	destAnswered = s.tellDestinationQuiet()
	defer destAnswered()
	if l := s.destLink(); l != nil {
		// What an earlier session committed over the link is applied
		// before the checkpoint is read.
		w.link = l
		if w.bound, err = l.barrier(ctx); err != nil {
			return err
		}
	}
	// The destination is the truth about what was applied: a batch whose
	// EXEC ran but whose reply was lost is in it, and must not be applied
	// again. So every session resumes from the checkpoint stored there.
	if s.resume != nil {
		cp, ok, err := w.readCheckpoint(ctx)
		if err != nil {
			return err
		}
		if !ok {
			s.log.Warn("the destination lost this source's checkpoint; full resync", "source", s.url.String())
			return fmt.Errorf("%w: the destination lost this source's checkpoint", errNeedFullSync)
		}
		s.resume = &cp
	}
	if s.destRDB, err = w.rdbVersion(ctx); err != nil {
		return err
	}
	destAnswered()
	replID, offset := "", int64(-1)
	if s.resume != nil {
		replID, offset = s.resume.ReplID, s.resume.Offset
	}
	// A source that accepts and does not answer is waited for up to the
	// read timeout; the status says so meanwhile.
	quiet := fmt.Sprintf("the source (%s) accepted the connection but has not answered the replication handshake for %s: "+
		"is it a Redis server, and is it busy? (a full sync may also wait for a save in progress, or for repl-diskless-sync-delay)", addr, handshakeQuiet)
	var answered atomic.Bool
	told := time.AfterFunc(handshakeQuiet, func() {
		s.status.set(func(st *sourceStatus) {
			if !answered.Load() { // checked under the status's lock, as below
				st.lastError = quiet
			}
		})
	})
	syn, err := conn.Handshake(ctx, replID, offset)
	told.Stop()
	s.status.set(func(st *sourceStatus) {
		answered.Store(true)
		if st.lastError == quiet {
			st.lastError = ""
		}
	})
	if cycle != nil {
		return cycle
	}
	if err != nil {
		if errors.Is(err, replproto.ErrSource) && s.avoid != nil && s.avoid(addr) {
			// A shard's replica that refuses to serve (its own master
			// link is down: NOMASTERLINK) is read around for a while,
			// as one that does not answer.
			return fmt.Errorf("%w: the shard's replica %s refused to serve its syncer: %w", errRelocated, addr, err)
		}
		return err
	}
	if s.claim != nil {
		release, err := s.claim(s.checkpointKey(), syn.ReplID)
		if err != nil {
			return err
		}
		defer release()
	}
	if syn.Full && s.resume != nil && s.avoid != nil && s.avoid(addr) {
		// A replica that resynced itself cannot continue from before
		// that; its master may.
		s.log.Info("the shard's replica cannot continue from the checkpoint; trying its master", "source", s.url.String(), "replica", addr, "checkpoint", s.resume.String())
		return fmt.Errorf("%w: replica %s cannot continue from the checkpoint", errRelocated, addr)
	}
	if syn.Full && s.resume != nil {
		s.log.Info("source cannot continue from the checkpoint; full resync of the destination", "source", s.url.String(), "checkpoint", s.resume.String())
		if s.lastCut != nil && syn.ReplID == s.resume.ReplID {
			// The full sync before was cut, and the source has the same
			// history: this one will likely be cut too. (A source with
			// another history restarted, or failed over: that closed
			// the link, not its output buffer limit.)
			return fmt.Errorf("%w: %w", errNeedFullSync, s.lastCut)
		}
		s.lastCut = nil
		return fmt.Errorf("%w: the source cannot continue from the checkpoint (%s)", errNeedFullSync, s.resume)
	}
	s.status.set(func(st *sourceStatus) {
		st.connected = true
		st.node = addr
		if syn.Full {
			st.fullSyncs++
		} else {
			st.partialSyncs++
		}
		st.compressionOK, st.codec = conn.Compressed(), conn.Codec()
		st.compressionNote = ""
		if s.source.Compression > 0 && !conn.Compressed() {
			st.compressionNote = "the source cannot compress (it is not a redis-replicad replication endpoint); replicating without compression"
		}
	})
	if s.source.Compression > 0 && !conn.Compressed() {
		s.log.Warn("compression asked but the source cannot compress", "source", s.url.String())
	} else if conn.Compressed() {
		s.log.Info("the source compresses", "source", s.url.String(), "codec", conn.Codec(), "compression_level", s.source.Compression)
	}

	q := newQueue()
	var wg, wdWG sync.WaitGroup
	var writeErr, stallErr error
	wdCtx, wdCancel := context.WithCancel(ctx)
	defer wdCancel()
	wg.Add(1)
	wdWG.Add(1)
	go func() {
		defer wdWG.Done()
		s.watchdog(wdCtx, conn, func(err error) {
			// Out of sync before anything else moves: the session's end
			// would otherwise show in-sync for a moment.
			s.status.set(func(st *sourceStatus) { st.connected, st.lastError = false, err.Error() })
			stallErr = err
			cancel()
		})
	}()
	go func() {
		defer wg.Done()
		writeErr = newBatcher(s, w, conn, q, syn.Full).run(ctx)
		if writeErr != nil {
			cancel()
		}
	}()

	p := &producer{q: q}
	var readErr error
	if syn.Full {
		s.metrics.fullSyncs.Inc()
		s.loadStarted, s.fullSession = true, true
		readErr = s.load(ctx, conn, p, syn)
		s.transferEnd = time.Now()
	} else {
		s.metrics.partialSyncs.Inc()
		s.log.Info("partial resync", "source", s.url.String(), "offset", offset)
		w.db, w.replID, w.last = s.resume.DB, syn.ReplID, s.resume.Offset
		// Not in sync before stream has looked at the backlog the
		// source resumes with (it sets caughtUp at once).
		s.status.set(func(st *sourceStatus) {
			st.phase, st.lastError, st.caughtUp = phaseStreaming, "", func(time.Time) bool { return false }
			// The session resumes at its checkpoint and has received
			// nothing yet: what an earlier session received and did not
			// apply is not pending here, or the watchdog would time this
			// session's writer from that session's wait, and take it for
			// stuck at once, session after session.
			st.applied, st.received = s.resume.Offset, s.resume.Offset
		})
	}
	if readErr == nil {
		db := 0
		if !syn.Full {
			db = s.resume.DB
		}
		readErr = s.stream(ctx, conn, p, db)
	}
	p.close()
	wg.Wait()
	wdCancel() // the watchdog's work ends with the writer's
	wdWG.Wait()
	if stallErr != nil {
		return stallErr
	}
	if writeErr != nil {
		return writeErr
	}
	return readErr
}

// load reads the RDB payload and queues it as commands, then the item that
// commits the checkpoint at the FULLRESYNC offset.
func (s *syncer) load(ctx context.Context, conn *replproto.Conn, p *producer, syn replproto.Sync) error {
	s.log.Info("full sync: loading the source's dataset", "source", s.url.String(), "replid", syn.ReplID, "offset", syn.Offset)
	if s.file != nil && s.file.merge != nil {
		// The merged load's barrier is the FULLRESYNC, not the payload:
		// a source that saves its RDB to disk first sends it later.
		s.file.merge.announce(s.checkpointKey())
	}
	payload, err := conn.RDB(ctx)
	if err != nil {
		return err
	}
	s.status.set(func(st *sourceStatus) {
		st.phase = phaseLoading
		st.rdbLive = func() (int64, int64) { return payload.Size(), payload.Transferred() }
	})
	var br *bufio.Reader = payload.Bufio()
	if s.file != nil && (s.destRDB > 0 || s.file.merge != nil) {
		if err := s.loadFile(ctx, syn, payload, br); err != nil {
			return err
		}
		return s.loadDone(ctx, conn, p, syn, payload, nil)
	}
	// Keys written in chunks are built under a name of this source's and
	// renamed once whole (see rdb.WithStaging), under stagingPrefix, which
	// holds a nonce of this process: see there.
	staging := []byte(string(stagingPrefix) + s.url.Addr() + ":")
	db := 0
	emit := func(cmd [][]byte) error {
		if len(cmd) == 2 && equalFold(cmd[0], "SELECT") {
			db, _ = strconv.Atoi(string(cmd[1]))
			if db == layout.CheckpointDB {
				return nil // the checkpoints of a source that is a destination too
			}
			if err := checkDB(db); err != nil {
				return err
			}
		}
		if db == layout.CheckpointDB {
			if isCheckpointCommand(cmd) || isCheckpointCommand(unstaged(cmd, staging)) {
				return nil // they never leave the instance that owns them
			}
			if s.serviceSource {
				s.status.set(func(st *sourceStatus) { st.reserved++ })
				return nil // see reservedDB
			}
			return checkDB(db)
		}
		return p.add(ctx, item{kind: kindCommand}, cmd)
	}
	p.onSend = func(b *block) { s.metrics.commandsIn.Add(float64(len(b.items))) }
	// Keys small enough go whole, with RESTORE, when the destination reads
	// the source's RDB version.
	var opts []rdb.Option
	if s.destRDB > 0 {
		opts = append(opts, rdb.WithRawValues(rawValueLimit, s.destRDB))
	}
	pending := newPendingCounter(rdb.NewCommandWriter(emit, rdb.WithReplaceKeys(), rdb.WithStaging(staging)))
	if err := rdb.NewDecoder(br, opts...).Decode(ctx, pending); err != nil {
		if errors.Is(err, rdb.ErrUnsupported) {
			return &fatalError{fmt.Errorf("load the dataset of %s: %w", s.from(), err)}
		}
		return fmt.Errorf("load the dataset of %s: %w", s.from(), err)
	}
	if err := payload.Close(); err != nil {
		return fmt.Errorf("load the dataset of %s: %w", s.from(), err)
	}
	return s.loadDone(ctx, conn, p, syn, payload, pending)
}

// loadDone records the end of the RDB's transfer and queues the item that
// commits the load.
func (s *syncer) loadDone(ctx context.Context, conn *replproto.Conn, p *producer, syn replproto.Sync, payload *replproto.RDBReader, pending *pendingCounter) error {
	size, done := payload.Size(), payload.Transferred()
	if size < 0 {
		size = done
	}
	s.metrics.bytesIn.Add(float64(done))
	s.wireSeen = conn.WireBytes()
	s.metrics.wireIn.Add(float64(s.wireSeen))
	s.status.set(func(st *sourceStatus) { st.rdbLive, st.rdbSize, st.rdbDone = nil, size, done })
	s.loadPending = pending // the writer reads it once it has the item below
	if err := p.add(ctx, item{kind: kindLoadDone, offset: syn.Offset, replID: syn.ReplID}, nil); err != nil {
		return err
	}
	return p.flush(ctx)
}

// stream reads the command stream and queues it. Commands go to the writer
// in blocks of what the connection has already received, so a block never
// waits for more input: at low rates a block is one command.
func (s *syncer) stream(ctx context.Context, conn *replproto.Conn, p *producer, db int) error {
	// In sync once the reader has caught up with what the source sent: a
	// resumed stream may start with a backlog of seconds, which the
	// applied offset cannot show until it is received.
	since := time.Now()
	s.status.set(func(st *sourceStatus) { st.caughtUp = func(now time.Time) bool { return conn.CaughtUp(since, now) } })
	defer s.status.set(func(st *sourceStatus) { st.caughtUp = nil })
	last := conn.Offset()
	if s.wireSeen > conn.WireBytes() {
		s.wireSeen = 0 // a new connection
	}
	p.onSend = func(b *block) {
		first, end := b.items[0], b.items[len(b.items)-1]
		s.metrics.bytesIn.Add(float64(end.offset - last))
		if wire := conn.WireBytes(); wire != s.wireSeen {
			s.metrics.wireIn.Add(float64(wire - s.wireSeen))
			s.wireSeen = wire
		}
		s.metrics.commandsIn.Add(float64(len(b.items)))
		last = end.offset
		s.status.mu.Lock()
		s.status.handOverLocked(first.at, end.offset, time.Now())
		s.status.mu.Unlock()
	}
	now := time.Now()
	returned, inTx := conn.Offset(), false
	conn.OnIdle(func() { _ = p.flush(ctx) })
	defer conn.OnIdle(nil)
	for {
		// A command already buffered arrived with the previous one: only
		// a read from the network needs a new time.
		fresh := conn.Buffered() == 0
		cmd, err := conn.ReadCommand(ctx)
		if err != nil {
			// Every byte of the stream counts, the REPLCONF GETACK a
			// source sends as it shuts down included: its offset must
			// be the checkpoint's, or the restarted source refuses to
			// continue (its RDB says where it stopped).
			if off := conn.Offset(); off > returned && !inTx && ctx.Err() == nil {
				if p.add(ctx, item{kind: kindOffset, offset: off, at: now}, nil) == nil {
					_ = p.flush(ctx)
				}
			}
			return err
		}
		before := returned
		returned = cmd.Offset
		if s.shared && s.key == "" && isKeyspaceWide(cmd.Args) {
			if inTx || !s.emptyAtDestination(ctx, p, cmd.Args, db, before) {
				return fmt.Errorf("source %s ran %s, which would also empty or move what the destination's other sources wrote there: the destination is re-replicated from every source: %w",
					s.url, strings.ToUpper(string(cmd.Args[0])), errNeedFullSync)
			}
			// Nothing of this source there to empty or move: a no-op
			// that another source's keys must not pay for.
			s.log.Info("a source's flush found nothing of it at the destination; not applied", "source", s.url.String(), "command", strings.ToUpper(string(cmd.Args[0])))
			cmd.Args, cmd.Raw = nil, nil
		}
		if s.serviceSource {
			if db == layout.CheckpointDB && movesOut(cmd.Args) {
				return fmt.Errorf("source %s: an application moved or copied a key out of logical database %d, which the service does not replicate: the destination is re-replicated: %w",
					s.url, layout.CheckpointDB, errNeedFullSync)
			}
			if adapted, drop := reservedDBCommand(cmd.Args); drop {
				s.status.set(func(st *sourceStatus) { st.reserved++ })
				cmd.Args, cmd.Raw = nil, nil
			} else if adapted != nil {
				cmd.Args, cmd.Raw = adapted, nil
			}
		}
		if len(cmd.Args) == 0 {
			// Nothing to apply: only its offset counts. What came before
			// it goes now if nothing more is buffered, as after any
			// command.
			if fresh {
				now = time.Now()
			}
			if err := p.add(ctx, item{kind: kindOffset, offset: cmd.Offset, at: now}, nil); err != nil {
				return err
			}
			if conn.Buffered() == 0 {
				if err := p.flush(ctx); err != nil {
					return err
				}
			}
			continue
		}
		if s.shared || s.key != "" {
			adapted, err := sharedFunctionCommand(cmd.Args)
			if err != nil {
				return fmt.Errorf("source %s: %w", s.url, err)
			}
			if adapted != nil {
				cmd.Args, cmd.Raw = adapted, nil
			}
		}
		if s.key != "" {
			sharded, err := s.shardCommand(cmd.Args)
			if err != nil {
				return err
			}
			if len(sharded) == 0 || len(sharded) != len(cmd.Args) || &sharded[0] != &cmd.Args[0] {
				cmd.Raw = nil // rewritten: encoded anew
			}
			cmd.Args = sharded
		}
		if fresh {
			now = time.Now()
		}
		it, args := classify(cmd.Args, cmd.Offset, now)
		switch it.kind {
		case kindTxBegin:
			inTx = true
		case kindTxEnd:
			inTx = false
		case kindSelect:
			db = it.db
		case kindCommand:
			if db == layout.CheckpointDB && (isCheckpointCommand(cmd.Args) || s.serviceSource) {
				// A source that is a destination too (a chain) writes its
				// own checkpoints: they never leave the instance that owns
				// them, only their offset counts. Anything else there is
				// an application's misuse of the service's database.
				if !isCheckpointCommand(cmd.Args) {
					s.status.set(func(st *sourceStatus) { st.reserved++ })
				}
				it, args = item{kind: kindOffset, offset: cmd.Offset, at: now}, nil
			}
		}
		if done, err := s.restoreAsCommands(ctx, p, cmd.Args, cmd.Offset, now, inTx); err != nil {
			return err
		} else if !done {
			enc := cmd.Raw
			if args == nil {
				enc = nil
			}
			if err := p.addEncoded(ctx, it, args, enc); err != nil {
				return err
			}
		}
		if conn.Buffered() == 0 {
			if err := p.flush(ctx); err != nil {
				return err
			}
		}
	}
}

// emptyAtDestination says whether keyspace-wide command args (FLUSHDB,
// FLUSHALL, SWAPDB), run by this source in logical database db after the
// stream offset before, finds the databases it acts on empty at the
// destination once everything before it is applied: then this source has
// nothing there for it to act on, and the other sources' keys, which it
// would act on too, are not its to touch. Any doubt (a sharded
// destination, a wait too long, an error) says no, and the destination is
// reloaded as before.
func (s *syncer) emptyAtDestination(ctx context.Context, p *producer, args [][]byte, db int, before int64) bool {
	dest := s.destAccess()
	if dest.clustered() || p.flush(ctx) != nil {
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		s.status.mu.Lock()
		applied := s.status.applied
		s.status.mu.Unlock()
		if applied >= before {
			break
		}
		select {
		case <-wctx.Done():
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
	c := dest.client(0)
	defer c.Close()
	info, err := c.Info(wctx, "keyspace").Result()
	if err != nil {
		return false
	}
	holds := keyspaceDBs(info)
	switch strings.ToUpper(string(args[0])) {
	case "FLUSHALL":
		return !holdsData(info)
	case "FLUSHDB":
		return db != layout.CheckpointDB && !holds[db]
	case "SWAPDB":
		if len(args) != 3 {
			return false
		}
		a, err1 := strconv.Atoi(string(args[1]))
		b, err2 := strconv.Atoi(string(args[2]))
		return err1 == nil && err2 == nil && a != layout.CheckpointDB && b != layout.CheckpointDB && !holds[a] && !holds[b]
	}
	return false
}

// backoff is exponential with jitter: each wait is between half and all
// of its ceiling, which starts at base and doubles up to most.
type backoff struct {
	base, most time.Duration
	n          int
}

// retryWarnEvery: the same failure of a source's link, retried for as long
// as the source is down, is a warning once in this long; the status says
// it at each retry.
const retryWarnEvery = time.Minute

// retryLog decides which failed retries of a link are warnings: a new
// failure, or the same one again once retryWarnEvery has passed (with how
// many retries it stood for meanwhile). A source down for a night wrote a
// warning every few seconds.
type retryLog struct {
	last     string
	warnedAt time.Time
	repeats  int
}

// warn records a failure and says whether to warn of it, with the times it
// failed the same way since the last warning.
func (r *retryLog) warn(err string, now time.Time) (repeats int, ok bool) {
	err = withoutLocalPorts(err)
	if err == r.last && now.Sub(r.warnedAt) < retryWarnEvery {
		r.repeats++
		return 0, false
	}
	repeats = r.repeats
	r.last, r.warnedAt, r.repeats = err, now, 0
	return repeats, true
}

// localEndpoint is the local address Go's net errors name before the
// remote one ("read tcp 127.0.0.1:41392->10.0.0.1:6379: ..."): its port is
// a new ephemeral one at each connection.
var localEndpoint = regexp.MustCompile(`[0-9A-Za-z.:\[\]%]+:[0-9]+->`)

// withoutLocalPorts is a failure's text without the local endpoints, so
// that the same failure of two connections reads the same.
func withoutLocalPorts(err string) string { return localEndpoint.ReplaceAllString(err, "->") }

// newBackoff is the backoff of connection errors: from 100 ms to 10 s.
func newBackoff() *backoff { return &backoff{base: 100 * time.Millisecond, most: 10 * time.Second} }

func (b *backoff) reset() { b.n = 0 }

func (b *backoff) next() time.Duration {
	ceil := min(b.base<<b.n, b.most)
	if ceil < b.most {
		b.n++
	}
	return ceil/2 + rand.N(ceil/2+1)
}

// explain adds what a user can do about the errors whose cause is not plain
// from the protocol's words (replproto classifies them).
func explain(err error) error {
	switch {
	case errors.Is(err, resp.ErrCommandTooBig):
		// The source would send it again after a reconnect: retrying
		// cannot help, and each try would make this instance read it.
		return &fatalError{fmt.Errorf("the source sent a command bigger than twice the destination's memory_size (plus 64 MiB), which the destination could not hold; nothing of it was applied and the sync stops: %w", err)}
	case errors.Is(err, replcompress.ErrCorrupt):
		return fmt.Errorf("the source's compressed stream does not decode: something on the way alters it (encryption protects it), or what answers is not a replication endpoint that compresses as it said; nothing past the damage is applied, and the syncer reconnects: %w", err)
	case errors.Is(err, replproto.ErrClientCertRejected):
		return fmt.Errorf("the source refused this instance's TLS client certificate (add the instance's syncer_cert to the source database's client_certificates): %w", err)
	case errors.Is(err, replproto.ErrNoTLSAnswer):
		return fmt.Errorf("the source does not speak TLS, it seems (it answered nothing to the TLS handshake, as a plain-text port does): set encryption = false, or enable TLS on the source: %w", err)
	case errors.Is(err, replproto.ErrClosedAtFirstCommand):
		return fmt.Errorf("the source closed the connection at the first command, as a TLS port does to a plain-text client: if it serves TLS, set encryption = true with its server_cert: %w", err)
	case errors.Is(err, replproto.ErrNotTLS):
		return fmt.Errorf("the source does not speak TLS: set encryption = false, or enable TLS on the source: %w", err)
	}
	return err
}

// localSourceDown says why the source, when it is a database of this
// instance, cannot be reached at its replication endpoint.
func (s *syncer) localSourceDown() string {
	if s.localDown == nil {
		return ""
	}
	return s.localDown(s.source.URI)
}

// loadIdle is how long a full load may take nothing from its source, with
// its destination answering nothing either, before it gives its slot back:
// one stalled by a destination that does not answer (stopped, say: the
// syncer waits to write, and reads nothing) or by its source spends no
// CPU, and must not hold back the instance's other loads. A source
// preparing its RDB on disk sends a newline a second until the payload
// begins: that counts, as the load's CPU is still to come (see
// loadMinProgress for what counts once the payload flows).
// A destination that loads a file (DEBUG RELOAD) answers nothing either: a
// load of more than 10 s gives its slot back too, and the next load may
// start beside it.
const loadIdle = 10 * time.Second

// loadMinProgress is what a full load must take from its source within
// loadIdle to count as moving once its payload flows: a source that
// trickles its RDB (a byte a second, from a broken or hostile server)
// would otherwise hold a slot for ever, and two of them every load of the
// instance. Before the payload, a slot given back would not be taken
// again when it flows, and loads past the bound would run at once.
const loadMinProgress = 64 << 10

// releaseLoadWhenIdle gives the session's load slot back once wire (the
// bytes read from the source) has moved less than loadMinProgress in
// loadIdle, while the destination answered nothing. The load goes on
// without a slot. The returned func stops the watch.
func (s *syncer) releaseLoadWhenIdle(ctx context.Context, wire func() int64) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	release, released := s.releaseLoad, s.loadReleased
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		progress := func() time.Time {
			s.status.mu.Lock()
			defer s.status.mu.Unlock()
			return s.status.lastProgress
		}
		payloadFlows := func() bool {
			s.status.mu.Lock()
			live := s.status.rdbLive
			s.status.mu.Unlock()
			if live == nil {
				return false
			}
			_, n := live()
			return n > 0
		}
		last, answered, since := wire(), progress(), time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case <-released: // the stream began, or the session ends
				return
			case now := <-tick.C:
				// A destination that applies (answers) is working even
				// when the source waits for it.
				need := int64(1)
				if payloadFlows() {
					need = loadMinProgress
				}
				if n, a := wire(), progress(); n-last >= need || !a.Equal(answered) {
					last, answered, since = n, a, now
				} else if now.Sub(since) >= loadIdle {
					s.log.Info("the full load has taken next to nothing from its source for a while; its slot goes to the instance's other loads", "source", s.url.String(), "idle", now.Sub(since).Round(time.Second))
					release()
					return
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}
