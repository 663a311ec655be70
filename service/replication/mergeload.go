package replication

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/cluster"
	"github.com/replicad/terraform-provider-redis/internal/rdb"
	"github.com/replicad/terraform-provider-redis/internal/replproto"
)

// The full load of a clustered source (one syncer per shard) into a
// one-server destination goes over its master link as one full sync, as a
// single source's does (linkload.go): each syncer decodes its shard's RDB
// into an input of one rdb.Merger, which writes each key whole in its
// turn, and the destination loads the merged RDB natively as it arrives,
// serving its previous data until it swaps the new one in. The other way
// to put several RDBs into one dataset, commands into a second server
// (shadow.go), costs the destination several times more per key.
//
// Redis aborts on a key that an RDB holds twice, so a merged RDB must hold
// each key once: each shard's keys are those of its slots, and a key of
// another slot (a resharding under way, the shards forked at different
// moments) stops the merge, and the destination loads its shards with
// commands instead. Independent sources of one destination may hold the
// same key; they are not merged.
//
// Every syncer of the round reaches its shard's FULLRESYNC before the
// destination's full sync starts: one that cannot (its node is down)
// would leave the destination's link idle. A shard's payload may come
// well after its FULLRESYNC (a master that saves its RDB to disk first):
// the Merger then writes keepalives, which the destination skips, so that
// it does not end the link after its repl-timeout. The last input to end ends the merged RDB, with
// every shard's checkpoint, and waits for the destination to load it. A
// failure of any input ends the whole load: the destination keeps its
// previous data, and the round starts again.

// maxMergedInputs bounds the shards merged in one load: they all load at
// once (each master forks for it), where separate loads wait for one of
// the instance's load slots.
const maxMergedInputs = 16

// mergeReadyTimeout bounds the wait for every shard of a merged load to
// start its full sync; past it, the destination's loads stop merging.
const mergeReadyTimeout = 30 * time.Second

// mergedLoad is one merged full sync of a destination.
type mergedLoad struct {
	link         *masterLink
	ctx          context.Context // the round's: the load ends with it
	generation   string
	want         []string // the checkpoint keys of the round's units
	readyTimeout time.Duration
	// refuse is told when these datasets cannot be merged (a value the
	// stream cannot take, a key outside its shard, the destination
	// refused the RDB, a shard that did not start): the destination's
	// later loads do not merge.
	refuse func(error)
	onEnd  func() // told once, when the load ends either way
	// moreFields are fields the checkpoint hash holds beside the
	// checkpoints (the nodes of clustered sources, saveNodes).
	moreFields func() map[string]string
	// usedMem sums the memory the shards' RDBs say their masters use: the
	// destination takes them all at once.
	usedMem atomic.Int64

	mu          sync.Mutex
	joined      map[string]bool
	ready       chan struct{} // closed once every unit has its FULLRESYNC
	ld          *linkLoad
	merger      *rdb.Merger
	startErr    error
	started     bool
	checkpoints map[string]string

	done chan struct{} // closed by end
	next *linkSession  // the link's session after the load (nil on err)
	err  error
}

func newMergedLoad(link *masterLink, generation string, units []unit) *mergedLoad {
	m := &mergedLoad{
		link: link, ctx: context.Background(), generation: generation, readyTimeout: mergeReadyTimeout,
		refuse: func(error) {}, onEnd: func() {}, moreFields: func() map[string]string { return nil },
		joined: map[string]bool{}, ready: make(chan struct{}), checkpoints: map[string]string{}, done: make(chan struct{}),
	}
	for _, u := range units {
		m.want = append(m.want, u.key)
	}
	return m
}

// announce records that unit key has its source's FULLRESYNC (its
// payload may come much later: a source that saves its RDB to disk first).
func (m *mergedLoad) announce(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.joined[key] = true
	if len(m.joined) == len(m.want) {
		select {
		case <-m.ready:
		default:
			close(m.ready)
		}
	}
}

// join waits until every unit has its source's FULLRESYNC, and returns
// this unit's input into the merged RDB, once its payload starts; the
// first to get there starts the destination's full sync.
func (m *mergedLoad) join(ctx context.Context, key string, version, spoolLimit int) (*rdb.FileWriter, error) {
	m.announce(key)
	timer := time.NewTimer(m.readyTimeout)
	defer timer.Stop()
	select {
	case <-m.ready:
	case <-m.done:
		return nil, m.stoppedErr()
	case <-ctx.Done():
		m.end(nil, ctx.Err())
		return nil, ctx.Err()
	case <-timer.C:
		// Not this shard's doing: errMergeStopped, and the shard that did
		// not start reports its own trouble.
		err := fmt.Errorf("%w: %w: the shards did not all start their full sync within %s (waiting for %s); the destination loads them with commands from now on",
			errNeedFullSync, errMergeStopped, m.readyTimeout, strings.Join(m.missing(), ", "))
		m.refuse(err)
		m.end(nil, err)
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.started {
		m.started = true
		m.startErr = m.startLocked(version, spoolLimit)
	}
	if m.startErr != nil {
		return nil, m.startErr
	}
	select {
	case <-m.done:
		return nil, m.stoppedErr()
	default:
	}
	return m.merger.Input(), nil
}

// stoppedErr is the error of an input that finds the load ended.
func (m *mergedLoad) stoppedErr() error {
	if m.err == nil {
		return fmt.Errorf("%w: %w: it ended before this shard joined", errNeedFullSync, errMergeStopped)
	}
	return echo(m.err)
}

// startLocked asks the destination for a full sync over its link and
// starts the merged RDB there.
func (m *mergedLoad) startLocked(version, spoolLimit int) error {
	select {
	case <-m.done:
		return m.stoppedErr()
	default:
	}
	ld, err := m.link.fullSync(m.ctx)
	if err != nil {
		return fmt.Errorf("start the merged load over the destination's master link: %w", err)
	}
	mg, err := rdb.NewStreamMerger(ld, version, spoolLimit)
	if err != nil {
		ld.abort()
		return fmt.Errorf("start the merged load over the destination's master link: %w", err)
	}
	m.ld, m.merger = ld, mg
	return nil
}

// missing names the units that have not joined.
func (m *mergedLoad) missing() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, k := range m.want {
		if !m.joined[k] {
			out = append(out, k) // an address, or an address and a shard
		}
	}
	return out
}

// inputDone records that key's RDB is in the merged one, with the
// checkpoint it resumes from, and waits for the destination to load the
// whole: the last input ends the RDB. It returns the link's session that
// follows the load.
func (m *mergedLoad) inputDone(ctx context.Context, key string, cp checkpoint, src *replproto.Conn) (*linkSession, error) {
	m.mu.Lock()
	m.checkpoints[key] = cp.String()
	last := len(m.checkpoints) == len(m.want)
	fields := maps.Clone(m.checkpoints)
	ld, merger := m.ld, m.merger
	m.mu.Unlock()
	if last {
		maps.Copy(fields, m.moreFields())
		marks := loadMarks(m.generation, fields)
		var next *linkSession
		err := merger.Close(marks...)
		if err != nil {
			err = fmt.Errorf("end the merged dataset: %w", err)
		} else if next, err = ld.finish(m.ctx); errors.Is(err, errLinkLoadRefused) {
			// A payload our decoder accepts and Redis does not: the
			// loads that do not merge report it, or use commands.
			m.refuse(err)
			err = fmt.Errorf("%w: %w", errNeedFullSync, err)
		}
		m.end(next, err)
	}
	var srcDone <-chan struct{}
	if src != nil {
		srcDone = src.Done()
	}
	select {
	case <-m.done:
		if m.err != nil {
			// Another shard's doing, or the destination's (the last
			// input's too: it only ends the RDB and waits for the load).
			return nil, echo(m.err)
		}
		return m.next, nil
	case <-ctx.Done():
		m.end(nil, ctx.Err())
		return nil, ctx.Err()
	case <-srcDone:
		if ctx.Err() != nil {
			m.end(nil, ctx.Err())
			return nil, ctx.Err()
		}
		if !src.ClosedByPeer() {
			// Closed on this side (a failed ACK, say).
			err := fmt.Errorf("%w: the link of shard %s to its source closed while it waited for the other shards of a merged full sync", errNeedFullSync, key)
			m.end(nil, err)
			return nil, err
		}
		// Nothing reads this shard's stream until every shard is loaded:
		// its master buffers the writes meanwhile, and may cut the link
		// over its output buffer limit. Each merged load would meet the
		// same; loads with commands stream each shard as soon as it is
		// loaded.
		err := fmt.Errorf("%w: the source's node closed the link of shard %s while it waited for the other shards of a merged full sync (over its client-output-buffer-limit for replicas, likely); the destination loads this source's shards with commands from now on, which stream each shard once it is loaded",
			errNeedFullSync, key)
		m.refuse(err)
		m.end(nil, err)
		return nil, err
	}
}

// end ends the load, once: with the session that follows it, or with err,
// when the destination drops what it was sent and keeps its data. Under
// mu, so that a full sync started by join is either seen here and aborted
// or never started.
func (m *mergedLoad) end(next *linkSession, err error) {
	m.mu.Lock()
	select {
	case <-m.done:
		m.mu.Unlock()
		return
	default:
	}
	m.next, m.err = next, err
	ld, merger := m.ld, m.merger
	close(m.done)
	m.mu.Unlock()
	if err != nil {
		if merger != nil {
			merger.Fail(err)
		}
		if ld != nil {
			ld.abort()
		}
	}
	m.onEnd()
}

// ended reports whether the load ended, and its error.
func (m *mergedLoad) ended() (bool, error) {
	select {
	case <-m.done:
		return true, m.err
	default:
		return false, nil
	}
}

// errMergeStopped is what the inputs of a merged load get when another
// input (another shard, or the destination) ended it: not this shard's
// source's doing, so its status and the cut backoff do not blame it.
var errMergeStopped = errors.New("the merged full sync stopped")

// echo is the error of an input whose load another ended with cause. A
// cut by the source stays one (the destination backs off before the next
// load, whichever input's error reaches it first); other causes are only
// told, not wrapped, since they are about the input that met them (an
// errRelocated would make this one reconnect, say).
func echo(cause error) error {
	if errors.Is(cause, errFatal) {
		return &fatalError{fmt.Errorf("%w: %s", errMergeStopped, cause)}
	}
	var cut *loadCutError
	if errors.As(cause, &cut) {
		return fmt.Errorf("%w: %w: %w", errNeedFullSync, errMergeStopped, cut)
	}
	return fmt.Errorf("%w: %w: %s", errNeedFullSync, errMergeStopped, cause)
}

// loadMerged is loadFile's path for a merged load.
func (s *syncer) loadMerged(ctx context.Context, syn replproto.Sync, payload *replproto.RDBReader, br *bufio.Reader) error {
	m := s.file.merge
	if s.destRDB <= 0 {
		err := fmt.Errorf("%w: the destination did not tell its RDB version; it loads the shards with commands", errNeedFullSync)
		m.refuse(err)
		m.end(nil, err)
		return err
	}
	in, err := m.join(ctx, s.checkpointKey(), s.destRDB, s.file.rawLimit)
	if err != nil {
		return err
	}
	m.mu.Lock()
	ld := m.ld
	m.mu.Unlock()
	defer s.watchLoadWrites(ld)()
	if err := s.decodeDataset(ctx, in, payload, br); err != nil {
		if done, cause := m.ended(); done && cause != nil {
			return echo(cause) // another ended it: this source did nothing wrong
		}
		// A cut is told here, not only by run once the session is over:
		// the other shards echo the load's error to the round, and the
		// first error there decides whether the next load backs off.
		err = s.asCut(ctx, err, s.srcConn != nil && s.srcConn.ClosedByPeer())
		if errors.Is(err, rdb.ErrNotWritable) || errors.Is(err, errOutsideShard) {
			// A value the stream cannot take (ErrTooBigToStream), or
			// that no RDB of this version can; a key of another
			// shard's slots.
			m.refuse(err)
			err = fmt.Errorf("%w: %w", errNeedFullSync, err)
		}
		m.end(nil, err)
		return err
	}
	s.log.Info("dataset sent into the destination's merged full sync", "source", s.url.String(), "bytes", payload.Transferred())
	next, err := m.inputDone(ctx, s.checkpointKey(), checkpoint{ReplID: syn.ReplID, Offset: syn.Offset, DB: 0}, s.srcConn)
	if err != nil {
		return err
	}
	s.loadedLink = next // the writer continues there (see destWriter.bound)
	return s.checkLoadedMemory(ctx)
}

// mergedLoadFor is the merged load of a full round of units, or nil when
// they load some other way: anything but the shards of one clustered
// source, too many shards to load at once, a sharded destination (no
// master link), or one whose memory cannot hold its current data and the
// new at once.
func (d *destination) mergedLoadFor(ctx context.Context, units []unit, ckc *redis.Client) *fileLoad {
	if len(units) < 2 || len(units) > maxMergedInputs || d.link == nil || d.db.Clustered() ||
		d.noMerge.Load() || d.noLinkLoad.Load() || d.m.cfg.NoLinkLoad || d.m.cfg.NoMergedLoad {
		return nil
	}
	for _, u := range units {
		if u.shard == "" || u.src != units[0].src {
			return nil // independent sources may hold the same key
		}
	}
	if !halfMemoryFree(ctx, ckc) {
		return nil
	}
	limit := d.m.cfg.FileLoadRawLimit
	if limit <= 0 {
		limit = defaultFileRawLimit
	}
	m := newMergedLoad(d.link, generationMark(d.db), units)
	if t := d.m.cfg.MergeReadyTimeout; t > 0 {
		m.readyTimeout = t
	}
	m.moreFields = d.nodeFields
	var once sync.Once
	m.refuse = func(err error) {
		once.Do(func() {
			d.noMerge.Store(true)
			d.log.Warn("the shards' datasets cannot be loaded as one full sync; this destination loads them with commands from now on", "destination", d.db.UID, "err", err)
		})
	}
	return &fileLoad{db: d.db, generation: m.generation, rawLimit: limit, link: d.link, merge: m, refuse: m.refuse, refuseLink: m.refuse}
}

// errOutsideShard: a shard's RDB holds a key of a slot the shard does not
// own (as the round found the cluster), which its merged RDB cannot take.
var errOutsideShard = errors.New("a key outside the shard's slots (a resharding under way?)")

// slotSet is the slots of a shard.
type slotSet [cluster.Slots / 64]uint64

// parseSlots reads a shard's slots as cluster.Shard.Key writes them
// ("0-5460", "0-99,200-300,7000").
func parseSlots(key string) (*slotSet, error) {
	var set slotSet
	for part := range strings.SplitSeq(key, ",") {
		lo, hi, found := strings.Cut(part, "-")
		if !found {
			hi = lo
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || a < 0 || b < a || b >= cluster.Slots {
			return nil, fmt.Errorf("slots %q: not a list of slot ranges", key)
		}
		for slot := a; slot <= b; slot++ {
			set[slot/64] |= 1 << (slot % 64)
		}
	}
	return &set, nil
}

func (s *slotSet) has(slot int) bool { return s[slot/64]&(1<<(slot%64)) != 0 }
