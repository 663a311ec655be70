package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/layout"
	"github.com/replicad/terraform-provider-redis/internal/redisurl"
	"github.com/replicad/terraform-provider-redis/internal/replproto"
	"github.com/replicad/terraform-provider-redis/service/store"
)

// destination runs the syncers of one Replica Of destination. Its loop is a
// sequence of rounds: a round resumes every source from its checkpoint, or,
// when any cannot (no checkpoint, a new generation, a source that answers
// FULLRESYNC), flushes the destination and loads every source in full.
type destination struct {
	m       *Manager
	db      store.Database
	sources []*sourceState
	log     *slog.Logger
	// reloading: a full load of the destination has not completed yet
	// (Loading).
	reloading atomic.Bool
	// inPlace: reloads flush the destination and load it in place, its
	// readers seeing it fill up, since a shadow could not be swapped in.
	inPlace bool
	// noFile: this destination's full loads use commands, not an RDB
	// file (fileload.go), since its source's dataset could not go there.
	noFile atomic.Bool
	// noLinkLoad: this destination's full loads go through a file, not
	// over its master link (linkload.go).
	noLinkLoad atomic.Bool
	// noMerge: this destination's full loads of a clustered source's
	// shards do not go as one full sync (mergeload.go).
	noMerge atomic.Bool

	cancel context.CancelFunc
	done   chan struct{}
	// link makes a single-server destination a replica of the service
	// (masterlink.go); nil for a sharded one, which Redis Cluster does not
	// let replicate from outside.
	link     *masterLink
	linkDone chan struct{}
	// linkFatal carries an error the destination answered over the link
	// to the round, which stops.
	linkFatal chan error
	// roundNote is what the last round that failed before its syncers ran
	// told the sources without an error of their own ("": nothing). Only
	// run's goroutine (run, round) touches it.
	roundNote string

	// histories maps the replication id of each source in session to its
	// address: a source is recognized by what it is, not by the spelling
	// of its address.
	histMu    sync.Mutex
	histories map[string]string

	// restarts is closed and replaced at each restart of one of the
	// destination's processes (Manager.DestinationRestarted).
	restartMu sync.Mutex
	restarts  chan struct{}
}

// restartCh is the channel closed at the destination's next restart.
func (d *destination) restartCh() <-chan struct{} {
	d.restartMu.Lock()
	defer d.restartMu.Unlock()
	if d.restarts == nil {
		d.restarts = make(chan struct{})
	}
	return d.restarts
}

// restarted wakes the writers waiting on restartCh.
func (d *destination) restarted() {
	d.restartMu.Lock()
	defer d.restartMu.Unlock()
	if d.restarts != nil {
		close(d.restarts)
	}
	d.restarts = make(chan struct{})
}

// claim records that the source at addr has the replication history
// replID. The same history under another address is the same server (or
// one of its replicas) reached another way: its writes would be applied
// twice, so it is refused. release forgets the claim.
func (d *destination) claim(addr, replID string) (release func(), err error) {
	d.histMu.Lock()
	defer d.histMu.Unlock()
	if other, ok := d.histories[replID]; ok && other != addr {
		return nil, fatal("sources %s and %s are the same server, or hold the same replication history (replication id %s): each write would be applied twice; keep only one of them", other, addr, replID)
	}
	if d.histories == nil {
		d.histories = map[string]string{}
	}
	d.histories[replID] = addr
	return func() {
		d.histMu.Lock()
		defer d.histMu.Unlock()
		if d.histories[replID] == addr {
			delete(d.histories, replID)
		}
	}, nil
}

type sourceState struct {
	src    api.ReplicaSource
	url    redisurl.Source
	status *sourceStatus
	// cluster is set while the source is a Redis Cluster (cluster.go).
	// It is swapped by the round and read by the API.
	cluster atomic.Pointer[clusterState]
}

func (d *destination) start(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	d.cancel, d.done = cancel, make(chan struct{})
	d.linkFatal = make(chan error, 1)
	if acc := d.m.cfg.Destinations.Access(d.db); !acc.clustered() && !d.m.cfg.NoMasterLink {
		l, err := newMasterLink(d.db.UID, acc, d.log, d.m.cfg.LinkReplTimeout, d.linkFailed)
		if err != nil {
			d.log.Error("the destination expires keys by itself: no master link", "destination", d.db.UID, "err", err)
		} else {
			// Paused and stopped destinations stay replicas too.
			d.link, d.linkDone = l, make(chan struct{})
			go func() {
				defer close(d.linkDone)
				l.run(ctx)
			}()
		}
	}
	go d.run(ctx)
}

// linkFailed stops the sync: the destination answered a replicated
// command with an error. Every source says so, since the link is theirs.
func (d *destination) linkFailed(err error) {
	for _, s := range d.sources {
		s.status.set(func(st *sourceStatus) { st.lastError = err.Error() })
	}
	select {
	case d.linkFatal <- err:
	default:
	}
}

func (d *destination) stop() {
	d.cancel()
	<-d.done
	if d.linkDone != nil {
		<-d.linkDone
	}
}

func (d *destination) run(ctx context.Context) {
	defer close(d.done)
	switch d.db.ReplicaSync {
	case api.SyncPaused, api.SyncStopped:
		ph := phasePaused
		if d.db.ReplicaSync == api.SyncStopped {
			ph = phaseStopped
		}
		for _, s := range d.sources {
			s.status.set(func(st *sourceStatus) { st.phase, st.connected = ph, false })
		}
		d.log.Info("replica sync is "+d.db.ReplicaSync, "destination", d.db.UID)
		return
	}
	backoff := newBackoff()
	var cuts cutBackoff
	cutAttempts := 0
	forceFull := false
	var clientOOMs []time.Time
	reloads := newReloadBackoff()
	for {
		began := time.Now()
		err := d.round(ctx, forceFull)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errSwapped) || errors.Is(err, errNeedFullSync) || errors.Is(err, errFatal) {
			// This round's end says what it says: a stop must not
			// record "retrying" as a source's reason, a reload's wait
			// must not be appended to it. (A round that fails again
			// before its syncers replaces the note below, without a
			// moment of none.)
			d.clearRoundNote()
		}
		if time.Since(began) > reloadCalm {
			backoff.reset()
			reloads.reset()
		}
		if errors.Is(err, errDestClientsOOM) {
			// Reloaded for an OOM blamed on the clients' buffers, once
			// they free it; the second time, the data is the cause after
			// all (close to maxmemory, with a big write on top).
			clientOOMs = append(slices.DeleteFunc(clientOOMs, func(at time.Time) bool { return time.Since(at) > clientOOMWindow }), time.Now())
			if len(clientOOMs) >= maxClientOOMs {
				err = fatal("%s; that is %d times within %s, so the data does not leave room enough: raise the destination's memory_size",
					err, len(clientOOMs), clientOOMWindow)
			} else if d.waitClientsFree(ctx, err) != nil {
				return
			}
		}
		switch {
		case errors.Is(err, errSwapped):
			forceFull = false
			continue
		case errors.Is(err, errNeedFullSync):
			forceFull = true
			// A wait, growing while rounds end soon after they start,
			// so that a source that keeps failing its loads (a stream
			// that breaks right after each) does not make the
			// destination flush and the sources fork in a loop.
			var wait time.Duration
			var cut *loadCutError
			if !errors.As(err, &cut) {
				wait = reloads.next()
			}
			if cut != nil {
				// The source will cut the next load too unless someone
				// changes it: say what to change, and wait longer each
				// time.
				cutAttempts++
				wait = cuts.next()
				note := fmt.Sprintf("%s (full sync attempt %d cut by the source; next attempt in %s)", cut.Error(), cutAttempts, wait.Round(time.Second))
				for _, s := range d.sources {
					if s.url.Addr() == cut.addr {
						s.tell(note)
					}
				}
				d.log.Warn("the source cut the full sync; backing off", "destination", d.db.UID, "source", cut.addr, "node", cut.node, "attempt", cutAttempts, "in", wait.Round(time.Millisecond))
			} else if wait >= 2*time.Second {
				// Reloads that keep coming are spaced out: say when the
				// next one is, beside why.
				d.log.Warn("the destination is loaded again after a wait: its loads keep ending soon after they start", "destination", d.db.UID, "err", err, "in", wait.Round(time.Millisecond))
				until := fmt.Sprintf("%s%s: the loads keep ending soon after they start)", reloadNote, wait.Round(time.Second))
				for _, s := range d.sources {
					s.status.set(func(st *sourceStatus) {
						if st.lastError != "" {
							st.lastError = withoutNotes(st.lastError) + until
						}
					})
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			continue
		case errors.Is(err, errFatal):
			d.log.Error("replica sync stopped", "destination", d.db.UID, "err", err)
			for _, s := range d.sources {
				s.status.set(func(st *sourceStatus) {
					st.phase, st.connected = phaseStopped, false
					if st.lastError == "" {
						st.lastError = "stopped: another source failed: " + err.Error()
					}
				})
			}
			why := map[string]string{}
			for _, s := range d.sources {
				if e := withoutNotes(s.view().LastError); e != "" {
					why[s.url.Addr()] = e
				}
			}
			// A source that refused the password leaves the checkpoints
			// exact: nothing was refused half-way, unlike a batch
			// refused for memory.
			d.m.stopped(d.db, why, errors.Is(err, replproto.ErrAuth))
			return
		}
		wait := backoff.next()
		// A round that fails before its syncers run (the destination
		// cannot be flushed or read) says why to every source without an
		// error of its own, which would otherwise stay "syncing" with no
		// error for as long as it keeps failing. The next round clears it
		// once its syncers start (round).
		prev := d.roundNote
		d.roundNote = "the destination's replication round failed; retrying in " + wait.Round(time.Millisecond).String() + ": " + err.Error()
		for _, s := range d.sources {
			s.status.set(func(st *sourceStatus) {
				if st.lastError == "" || st.lastError == prev {
					st.lastError = d.roundNote
				}
			})
		}
		d.log.Warn("replication round failed; retrying", "destination", d.db.UID, "err", err, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// clearRoundNote takes the note of a failed round (roundNote) out of the
// sources' status: it is stale once a round got its syncers going, or
// ended otherwise.
func (d *destination) clearRoundNote() {
	if d.roundNote == "" {
		return
	}
	for _, s := range d.sources {
		s.status.set(func(st *sourceStatus) {
			if st.lastError == d.roundNote {
				st.lastError = ""
			}
		})
	}
	d.roundNote = ""
}

// reloadCalm is how long a round must last for the next reload of the
// destination to start at once again.
const reloadCalm = time.Minute

// waitClientsFree waits until the destination's clients have freed their
// memory (memoryUse.clientsFreed), after an OOM blamed on them (err): a
// reload before would meet the same. The
// sources' status says what it waits for meanwhile.
func (d *destination) waitClientsFree(ctx context.Context, err error) error {
	node := d.m.cfg.Destinations.Access(d.db)
	var oom *clientsOOMError
	if errors.As(err, &oom) {
		node = oom.node // the shard that refused the write
	}
	c := node.client(0)
	defer c.Close()
	for {
		m, rerr := readMemory(ctx, c)
		if rerr == nil && m.clientsFreed() {
			return nil
		}
		if rerr == nil {
			note := fmt.Sprintf("%s; waiting for its clients to free their %d MiB (it uses %d MiB of %d MiB) before it is loaded again",
				err, m.clients>>20, m.used>>20, m.limit>>20)
			for _, s := range d.sources {
				s.tell(note)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// newReloadBackoff spaces the full reloads of a destination whose rounds
// keep ending: from 250 ms to 30 s (a reload an application asks for, a
// flush of a clustered source's shard, say, waits at most that).
func newReloadBackoff() *backoff {
	return &backoff{base: 250 * time.Millisecond, most: 30 * time.Second}
}

// reloadNote is what the sources' last errors say while a reload waits.
const reloadNote = " (loaded again from every source in "

// withoutNotes is a last error without what the destination added to it
// for its next attempt (a reload's wait, a cut's attempt): what is stored
// as the reason of a stopped sync, which makes no next attempt.
func withoutNotes(msg string) string {
	msg, _, _ = strings.Cut(msg, reloadNote)
	msg, _, _ = strings.Cut(msg, " (full sync attempt ")
	return msg
}

// round runs every source until one needs the destination's attention.
func (d *destination) round(parent context.Context, forceFull bool) error {
	ctx := parent
	dest := d.m.cfg.Destinations.Access(d.db)
	var ckc *redis.Client
	var cps map[string]checkpoint
	var full bool
	if dest.clustered() {
		// A sharded destination keeps its checkpoints per slot and shard
		// (clusterdest.go); ckc is then the master that keeps the nodes
		// of clustered sources (saveNodes).
		var err error
		if cps, full, ckc, err = d.clusterPrep(ctx, dest, forceFull); err != nil {
			return err
		}
	} else {
		ckc = dest.client(layout.CheckpointDB)
		readyCtx, cancel := context.WithTimeout(ctx, time.Minute)
		err := waitReady(readyCtx, ckc)
		cancel()
		if err != nil {
			ckc.Close()
			return fmt.Errorf("destination %d: %w", d.db.UID, err)
		}
		if d.link == nil {
			// No master link could be made: the destination, a read-only
			// replica until one attaches it, would refuse the round's
			// flush and every write (READONLY). It takes the sources as a
			// primary (see syncer.session).
			if err := ckc.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
				ckc.Close()
				return fmt.Errorf("make destination %d a primary (it has no master link): %w", d.db.UID, err)
			}
		}
		var gen string
		if gen, cps, err = readCheckpoints(ctx, ckc); err != nil {
			ckc.Close()
			return err
		}
		marked := gen == generationMark(d.db)
		full = forceFull || !marked
		d.log.Info("destination checkpoints", "destination", d.db.UID, "generation", markGeneration(gen), "want_generation", d.db.ReplicaGeneration,
			"generation_marked", marked, "checkpoints", len(cps), "force_full", forceFull)
	}
	defer ckc.Close()
	// A source that is a Redis Cluster is replicated shard by shard.
	units, err := d.plan(ctx, ckc, cps)
	if err != nil {
		return err
	}
	for _, u := range units {
		if _, ok := cps[u.key]; !ok {
			full = true
		}
	}
	// hintsAt are where the nodes of clustered sources are kept (saveNodes):
	// the destination, and a shadow loading in its place.
	hintsAt := []*redis.Client{ckc}
	var shadow Shadow
	var shadowLink *masterLink
	stopShadowLink := func() {}
	var file *fileLoad
	if full {
		d.reloading.Store(true)
		if file = d.fileLoadFor(units); file == nil && !dest.clustered() {
			if file = d.mergedLoadFor(ctx, units, ckc); file == nil {
				if shadow, err = d.startShadow(ctx, ckc); err != nil {
					// The previous data stays; the round is retried.
					return err
				}
			}
		}
	}
	if file != nil && file.merge != nil {
		// As a file: the destination keeps its data, and its
		// checkpoints, until the merged load is swapped in.
		d.log.Info("loading the clustered source's shards as one full sync over the destination's master link; it serves its previous data meanwhile", "destination", d.db.UID, "generation", d.db.ReplicaGeneration, "shards", len(units))
		cps = map[string]checkpoint{}
	} else if file != nil {
		// The destination keeps its data, and its checkpoints, until the
		// file is loaded in their place: a crash meanwhile loads again.
		d.log.Info("loading the source into a file that the destination then loads; it serves its previous data meanwhile", "destination", d.db.UID, "generation", d.db.ReplicaGeneration)
		cps = map[string]checkpoint{}
	} else if shadow != nil {
		defer shadow.Close()
		// The destination keeps serving its previous data, and its
		// checkpoints, until the shadow is loaded and swapped in: a crash
		// meanwhile starts the reload again.
		dest = shadow.Access()
		sc := dest.client(layout.CheckpointDB)
		defer sc.Close()
		hintsAt = append(hintsAt, sc)
		if d.link != nil {
			// The sources loaded first stream into the shadow while the
			// others load: over a master link of its own, as their
			// master's writes, so that it expires nothing by itself.
			var err error
			if shadowLink, stopShadowLink, err = d.startShadowLink(ctx, dest); err != nil {
				return err
			}
			defer stopShadowLink()
		}
		d.log.Info("loading every source into a second server; the destination serves its previous data meanwhile", "destination", d.db.UID, "generation", d.db.ReplicaGeneration, "sources", len(d.sources))
		if err := flushForGeneration(ctx, sc, generationMark(d.db)); err != nil {
			return err
		}
		if err := d.saveNodes(ctx, sc); err != nil {
			return err
		}
		cps = map[string]checkpoint{}
	} else if full && dest.clustered() {
		// Loaded in place, the AOF on (each master's replica follows it).
		d.log.Info("flushing the sharded destination to load every source", "destination", d.db.UID, "generation", d.db.ReplicaGeneration, "sources", len(d.sources))
		if err := flushClusterDest(ctx, dest, generationMark(d.db)); err != nil {
			return fmt.Errorf("flush destination %d for generation %d: %w", d.db.UID, d.db.ReplicaGeneration, err)
		}
		cps = map[string]checkpoint{}
		if err := d.saveNodes(ctx, ckc); err != nil {
			return err
		}
	} else if full {
		d.log.Info("flushing the destination to load every source", "destination", d.db.UID, "generation", d.db.ReplicaGeneration, "sources", len(d.sources))
		if err := flushForGeneration(ctx, ckc, generationMark(d.db)); err != nil {
			return err
		}
		cps = map[string]checkpoint{}
		// Written while the AOF is on: a restart before the load is
		// persisted still finds a clustered source's nodes.
		if err := d.saveNodes(ctx, ckc); err != nil {
			return err
		}
		// Like a native replica, the destination does not log the load to
		// its AOF command by command: the AOF is rewritten once from the
		// loaded dataset. A crash before that rewrite ends finds the flushed
		// state without checkpoints, and loads everything again.
		if err := ckc.ConfigSet(ctx, "appendonly", "no").Err(); err != nil {
			return fmt.Errorf("pause the AOF of destination %d for the load: %w", d.db.UID, err)
		}
	} else if err := ensureAOF(ctx, ckc); err != nil {
		return err
	} else if err := d.saveNodes(ctx, ckc); err != nil {
		return err
	}

	// The destination is ready for the syncers: what a previous round
	// that failed before them told the sources is stale (the load would
	// say "retrying" until it completes).
	d.clearRoundNote()
	ctx, cancelAll := context.WithCancel(ctx)
	defer cancelAll()
	merged := file != nil && file.merge != nil
	if merged {
		file.merge.ctx = ctx
		if d.m.loadSlots != nil {
			// Its sources load at once: the merged load takes one of
			// the instance's load slots for them all.
			select {
			case d.m.loadSlots <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			release := sync.OnceFunc(func() { <-d.m.loadSlots })
			defer release()
			file.merge.onEnd = release
		}
	}
	errs := make(chan error, 2*len(units)+2)
	var wg sync.WaitGroup
	var loading atomic.Int32
	loading.Store(int32(len(units)))
	var swapReady atomic.Bool
	var hold *swapHold
	keys := make([]string, 0, len(units))
	for _, u := range units {
		keys = append(keys, u.key)
	}
	if shadow != nil {
		hold = newSwapHold()
		hold.link = d.link
	}
	onLoaded := func() {
		if loading.Add(-1) != 0 {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if shadow != nil {
				// Every source is in the shadow: swap it in.
				var swapped bool
				if swapped, err = d.swapUnderHold(ctx, shadow, stopShadowLink, hold, keys); !swapped && err == nil {
					// Not every writer could hold: end the round
					// and swap then, as the links close.
					swapReady.Store(true)
					cancelAll()
					return
				}
			}
			if err == nil && shadow == nil && file == nil && d.link != nil {
				// A replica passes on only its master's stream: its own
				// replicas (a chain) did not see this load, made with a
				// connection of the service's. They resync in full.
				err = newHistory(ctx, ckc)
			}
			if err == nil {
				d.reloading.Store(false)
				err = ensureAOF(ctx, ckc)
			}
			if err != nil && ctx.Err() == nil {
				errs <- err
				cancelAll()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case err := <-d.linkFatal:
			errs <- err
			cancelAll()
		case <-ctx.Done():
		}
	}()
	for _, s := range d.sources {
		if s.cluster.Load() == nil {
			continue
		}
		log := d.log.With("destination", d.db.UID)
		wg.Add(1)
		go func() {
			defer wg.Done()
			keep := func(ctx context.Context) error {
				for _, c := range hintsAt {
					if err := d.saveNodes(ctx, c); err != nil {
						return err
					}
				}
				return nil
			}
			if err := d.watch(ctx, s, log, keep); err != nil && ctx.Err() == nil {
				errs <- err
				cancelAll()
			}
		}()
	}
	for _, u := range units {
		s := u.src
		tlsCfg, err := d.m.sourceTLS(s.src)
		if err != nil {
			// Validated when stored; a certificate that no longer parses
			// is a configuration error that retrying cannot fix.
			return &fatalError{fmt.Errorf("source %s: %w", s.url, err)}
		}
		log := d.log.With("destination", d.db.UID)
		if u.shard != "" {
			log = log.With("shard", u.shard)
		}
		sy := &syncer{
			source: s.src, url: s.url, dest: dest, tls: tlsCfg, maxCommand: maxStreamCommand(d.db.MemorySize),
			status: u.status, metrics: d.m.metrics.forSource(d.db.UID, u.key),
			log:          log,
			stallTimeout: d.m.cfg.StallTimeout, silenceTimeout: d.m.cfg.SilenceTimeout,
			claim: d.claim, loadSlots: d.m.loadSlots,
		}
		if merged {
			sy.loadSlots = nil // the merged load holds one for all
			if sy.slots, err = parseSlots(u.shard); err != nil {
				return &fatalError{err}
			}
		}
		sy.lineage = func(l []string) error { return d.checkLineage(u.key, sy, l) }
		sy.shared = len(units) > 1
		sy.localDown = d.m.cfg.LocalEndpointDown
		if d.db.Clustered() {
			sy.destRestarts = d.restartCh
		}
		sy.locate = u.locate
		if u.shard != "" {
			sy.key, sy.relocate, sy.avoid = u.key, u.relocate, u.avoid
			cl, url := s.cluster.Load(), s.url.String()
			sy.onMigrating = func() { cl.resharding(log, url, "keys migrate into shard "+u.shard) }
		}
		if cp, ok := cps[u.key]; ok {
			sy.resume = &cp
		}
		sy.hold, sy.file = hold, file
		sy.link = d.link
		if shadow != nil {
			sy.link = shadowLink
		}
		if full {
			sy.onLoaded = onLoaded
		}
		if full {
			u.status.set(func(st *sourceStatus) {
				st.rdbSize, st.rdbDone, st.received, st.applied, st.syncNote = 0, 0, 0, 0, ""
				st.lostKeys, st.lostSample = 0, nil
			})
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sy.run(ctx); err != nil && ctx.Err() == nil {
				errs <- err
				cancelAll()
			}
		}()
	}
	wg.Wait()
	close(errs)
	// The first error tells why the round ended; the others are its echoes.
	// An input of a merged load that another input's failure ended
	// (errMergeStopped) may get there first: the cause is what counts (a
	// cut by a source backs off).
	var first error
	for err := range errs {
		if !errors.Is(err, errMergeStopped) {
			return err
		}
		if first == nil {
			first = err
		}
	}
	if first != nil {
		return first
	}
	if swapReady.Load() && parent.Err() == nil {
		stopShadowLink()
		if err := shadow.SwapIn(parent); err != nil {
			d.inPlace = true
			return fmt.Errorf("%w: swap the reloaded data into destination %d (later reloads happen in place): %w", errNeedFullSync, d.db.UID, err)
		}
		d.reloading.Store(false)
		d.log.Info("reloaded data swapped in", "destination", d.db.UID)
		return errSwapped
	}
	return ctx.Err()
}

// swapUnderHold swaps a loaded shadow in while the sources' links stay
// open (see swapHold). It returns false, and no error, when not every
// writer reached a boundary in time: the caller then ends the round and
// swaps as the links close.
func (d *destination) swapUnderHold(ctx context.Context, shadow Shadow, stopShadowLink func(), hold *swapHold, keys []string) (bool, error) {
	hold.request()
	wctx, cancel := context.WithTimeout(ctx, holdTimeout)
	err := hold.waitHeld(wctx, keys)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		d.log.Warn("the sources' writers could not all hold for the swap; swapping as the round ends", "destination", d.db.UID, "err", err)
		return false, nil
	}
	// The writers continue on the link session that saw the swap: one
	// that was live before it and still is after it belongs to the process
	// that loaded the swapped data (DEBUG RELOAD keeps the master link).
	var before *linkSession
	if d.link != nil {
		before = d.link.current()
	}
	// Every writer holds with nothing unacknowledged: the shadow's link
	// has nothing more to carry, and must not reattach the shadow that
	// SwapIn stops.
	stopShadowLink()
	if err := shadow.SwapIn(ctx); err != nil {
		d.inPlace = true
		return false, fmt.Errorf("%w: swap the reloaded data into destination %d (later reloads happen in place): %w", errNeedFullSync, d.db.UID, err)
	}
	d.log.Info("reloaded data swapped in; the sources' links stayed open", "destination", d.db.UID)
	hold.release(d.m.cfg.Destinations.Access(d.db), swappedOn(before, d.link))
	return true, nil
}

// startShadowLink makes the shadow at acc a replica of a master link of its
// own, which the sources' writers use until the swap; stop ends it (once,
// whoever calls it first).
func (d *destination) startShadowLink(ctx context.Context, acc Access) (*masterLink, func(), error) {
	l, err := newMasterLink(d.db.UID, acc, d.log.With("shadow", true), d.m.cfg.LinkReplTimeout, d.linkFailed)
	if err != nil {
		return nil, nil, fmt.Errorf("master link of the reload server: %w", err)
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(lctx)
	}()
	var once sync.Once
	return l, func() { once.Do(func() { cancel(); <-done }) }, nil
}

// errSwapped ends a round whose reload was swapped in: the next round
// continues every source from the checkpoints the swap brought.
var errSwapped = errors.New("the reloaded data was swapped in")

// startShadow starts the server a reload loads while the destination keeps
// serving, or returns nil when the reload is to happen in place: the
// destination holds no data to keep (its first load), a swap failed before,
// or no shadow can run (the host lacks the memory for two copies). A
// shadow that cannot start for another reason (a full disk, a failing
// redis-server) is an error: reloading in place would flush the data that
// readers have for a cause that passes.
func (d *destination) startShadow(ctx context.Context, ckc *redis.Client) (Shadow, error) {
	if d.inPlace {
		return nil, nil
	}
	info, err := ckc.Info(ctx, "keyspace").Result()
	if err != nil || !holdsData(info) {
		return nil, nil
	}
	sh, err := d.m.cfg.Destinations.Shadow(ctx, d.db)
	if errors.Is(err, ErrNoRoomForShadow) {
		d.log.Warn("reloading in place: readers see the destination fill up", "destination", d.db.UID, "err", err)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("start the second server that the reload loads while destination %d serves its previous data: %w", d.db.UID, err)
	}
	return sh, nil
}

// holdsData says whether an INFO keyspace reply shows keys in a database
// of the applications (not only checkpoints).
func holdsData(info string) bool {
	for db := range keyspaceDBs(info) {
		if db != layout.CheckpointDB {
			return true
		}
	}
	return false
}

// keyspaceDBs is the logical databases that an INFO keyspace reply shows
// keys in (it lists those only).
func keyspaceDBs(info string) map[int]bool {
	dbs := map[int]bool{}
	for line := range strings.SplitSeq(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		n, err := strconv.Atoi(strings.TrimPrefix(name, "db"))
		if ok && err == nil && strings.HasPrefix(name, "db") && !strings.HasPrefix(rest, "keys=0,") {
			dbs[n] = true
		}
	}
	return dbs
}

// sameSetup says whether a running destination already matches d, so that a
// change elsewhere in the database (memory, password) leaves it running.
func (d *destination) sameSetup(o store.Database) bool {
	a := d.db
	if a.ReplicaGeneration != o.ReplicaGeneration || a.ReplicaSync != o.ReplicaSync ||
		a.Port != o.Port || a.InternalPassword != o.InternalPassword || len(a.ReplicaSources) != len(o.ReplicaSources) {
		return false
	}
	for _, s := range o.ReplicaSources {
		if !slices.Contains(a.ReplicaSources, s) {
			return false
		}
	}
	return true
}

// ensureAOF turns the destination's AOF back on (which rewrites it from the
// dataset) when a load turned it off, retrying while a rewrite cannot start.
func ensureAOF(ctx context.Context, c *redis.Client) error {
	for {
		on, err := c.ConfigGet(ctx, "appendonly").Result()
		if err == nil && on["appendonly"] == "yes" {
			return nil
		}
		if err == nil {
			if err = c.ConfigSet(ctx, "appendonly", "yes").Err(); err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("turn the destination's AOF back on: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// newHistory starts a new replication history on the destination and
// disconnects its replicas, which then resync in full.
func newHistory(ctx context.Context, c *redis.Client) error {
	if err := c.Do(ctx, "DEBUG", "CHANGE-REPL-ID").Err(); err != nil {
		return fmt.Errorf("start a new replication history for the destination's replicas: %w", err)
	}
	if err := c.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err(); err != nil {
		return fmt.Errorf("disconnect the destination's replicas: %w", err)
	}
	return nil
}
