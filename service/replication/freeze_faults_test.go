package replication_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// The tests of this file run two at a time (t.Parallel, after the
// package's other tests): each mostly waits for its fault to outlast the
// read timeout, and one after another they took 17 minutes.

// freezeFor is how long the faults of this file last: past the watchdog's
// limits (5 s stuck, 15 s silent) and past the read timeout (60 s) after
// which the service gives a silent connection up and dials again.
const freezeFor = 75 * time.Second

// truthWatch samples a source's status in the background, and records
// each sample that tells something false while a fault the test made
// stands: in-sync, no last_error once the watchdog's limits are past, or
// a lag shorter than the fault's age (with a margin for a loaded
// machine).
type truthWatch struct {
	mu      sync.Mutex
	since   time.Time // when the fault began (zero: none stands)
	lies    []string
	last    api.ReplicaSourceStatus
	samples int
	stop    func()
}

// grace is how long after a fault began the status may still say nothing
// of it (the watchdog's probe, silence and stall limits, on a loaded
// machine).
const grace = 40 * time.Second

// inSyncSlack: in-sync allows a lag of up to a second (a destination
// that stopped answering just now is not known to be behind yet); the rest
// is the sampling's margin.
const inSyncSlack = 3 * time.Second

func watchTruth(t *testing.T, a *apiClient, uid int) *truthWatch {
	return watchSourceTruth(t, a, uid, "")
}

// watchSourceTruth is watchTruth for the source of URI uri of a
// destination of several ("": its only one).
func watchSourceTruth(t *testing.T, a *apiClient, uid int, uri string) *truthWatch {
	w := &truthWatch{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			w.sample(ctx, a, uid, uri)
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond): // the sampling period
			}
		}
	}()
	var once sync.Once
	w.stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(w.stop)
	return w
}

func (w *truthWatch) sample(ctx context.Context, a *apiClient, uid int, uri string) {
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/v1/bdbs/%d", a.base, uid), nil)
	req.SetBasicAuth(a.user, a.pass)
	resp, err := a.http.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	var db api.Database
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&db) != nil {
		return
	}
	i := slices.IndexFunc(db.ReplicaSources, func(s api.ReplicaSourceStatus) bool { return uri == "" || s.URI == uri })
	if i < 0 || (uri == "" && len(db.ReplicaSources) != 1) {
		return
	}
	s := db.ReplicaSources[i]
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last = s
	w.samples++
	if w.since.IsZero() {
		return
	}
	age := time.Since(w.since)
	switch {
	case (s.Status == api.SourceInSync || db.ReplicaSyncStatus == api.SourceInSync) &&
		(age > inSyncSlack || s.Lag > inSyncSlack.Milliseconds()):
		w.lies = append(w.lies, fmt.Sprintf("%s into the fault: in-sync: %+v", age.Round(time.Second), s))
	case age > grace && s.LastError == "":
		w.lies = append(w.lies, fmt.Sprintf("%s into the fault: no last_error: %+v", age.Round(time.Second), s))
	case age > grace && time.Duration(s.Lag)*time.Millisecond < age-grace/2:
		w.lies = append(w.lies, fmt.Sprintf("%s into the fault: a lag of %d ms: %+v", age.Round(time.Second), s.Lag, s))
	}
}

// fault marks the beginning (on) or the end of a fault.
func (w *truthWatch) fault(on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.since = time.Time{}
	if on {
		w.since = time.Now()
	}
}

// hold keeps the fault standing for d, the status sampled meanwhile.
func (w *truthWatch) hold(t *testing.T, d time.Duration) {
	t.Helper()
	w.mu.Lock()
	end := w.since.Add(d)
	w.mu.Unlock()
	redistest.Eventually(t, d+time.Minute, "the fault held", func() error {
		if left := time.Until(end); left > 0 {
			return fmt.Errorf("%s to go", left.Round(time.Second))
		}
		return nil
	})
}

func (w *truthWatch) check(t *testing.T) {
	t.Helper()
	w.stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("%d samples; the last: %+v", w.samples, w.last)
	if len(w.lies) > 8 {
		w.lies = append(w.lies[:4], append([]string{fmt.Sprintf("... %d more ...", len(w.lies)-8)}, w.lies[len(w.lies)-4:]...)...)
	}
	require.Empty(t, w.lies, "the status while the fault stood")
}

// waitRDBTransferred waits until the source's full load has taken at
// least n bytes of its RDB.
func waitRDBTransferred(t *testing.T, a *apiClient, uid int, n int64) {
	t.Helper()
	redistest.Eventually(t, 2*time.Minute, "part of the RDB transferred", func() error {
		s := a.get(uid).ReplicaSources[0]
		if s.RDBTransferred < n {
			return fmt.Errorf("%d bytes of the RDB transferred: %+v", s.RDBTransferred, s)
		}
		return nil
	})
}

// sourceFrozenMidLoad: a source of 20,000 keys whose RDB takes about 20 s
// to produce (rdb-key-save-delay) is frozen (SIGSTOP) in the middle of
// its transfer to a new destination, for longer than the read timeout,
// INCR and RPUSH writers at work before and after. Then end thaws it, or
// kills it (a new empty server on its address). The status never says
// in-sync while the source is frozen, says why, and its lag grows; the
// destination ends equal to the source, every counter and list exact.
func sourceFrozenMidLoad(t *testing.T, hold time.Duration, end func(src *redistest.Server, thaw func())) {
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	fillStrings(t, src.Client(), "k:", 20000, 1000)
	require.NoError(t, src.Client().ConfigSet(redistest.Ctx(t), "rdb-key-save-delay", "1000").Err())
	i := servicetest.Start(t)
	a := newAPI(t, i)
	w := startGeoWriter(t, src.Client())
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	tw := watchTruth(t, a, dst.UID)
	waitRDBTransferred(t, a, dst.UID, 3<<20)

	thaw := freeze(t, src.PID())
	tw.fault(true)
	tw.hold(t, hold)
	t.Logf("the status %s into the freeze: %+v", hold, a.get(dst.UID).ReplicaSources[0])
	tw.fault(false)
	end(src, thaw)
	tw.check(t)

	require.NoError(t, src.Client().ConfigSet(redistest.Ctx(t), "rdb-key-save-delay", "0").Err())
	w.waitAcked(t, 2000)
	w.stop()
	dc := destClient(t, dst, 0)
	eventuallyEqual(t, 3*time.Minute, dc, src.Client())
	db := a.waitInSync(dst.UID, time.Minute)
	require.Empty(t, db.ReplicaSources[0].LastError)
	require.NoError(t, redistest.Diff(redistest.Ctx(t), dc, src.Client()))
}

func TestASourceFrozenMidFullLoadThenThawed(t *testing.T) {
	t.Parallel()
	sourceFrozenMidLoad(t, freezeFor, func(_ *redistest.Server, thaw func()) { thaw() })
}

func TestASourceFrozenMidFullLoadThenKilled(t *testing.T) {
	t.Parallel()
	sourceFrozenMidLoad(t, freezeFor, func(src *redistest.Server, _ func()) { src.Restart() })
}

// Thawed before the read timeout, the source goes on with the same
// transfer.
func TestASourceFrozenMidFullLoadForLessThanTheReadTimeout(t *testing.T) {
	t.Parallel()
	sourceFrozenMidLoad(t, 30*time.Second, func(_ *redistest.Server, thaw func()) { thaw() })
}

// bigCommandStalled: a 48 MB SET and an RPUSH of 400,000 elements
// propagated by the source come over a link that holds what the source
// sends (stall) once about half of the SET's bytes went through, for
// longer than the watchdog's limits and the read timeout; then the link
// forwards again (resume). INCR and RPUSH writers run all along. The
// status never says in-sync while the link holds the stream; the
// destination never holds half a command; it ends equal to the source.
func bigCommandStalled(t *testing.T, hold time.Duration, stall func(*redistest.Proxy, *redistest.Server) (resume func())) {
	src := redistest.Start(t, "--repl-backlog-size", "256mb", "--client-output-buffer-limit", "replica 0 0 0")
	proxy := redistest.StartProxy(t, src.Addr())
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 512 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: "redis://" + proxy.Addr}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, time.Minute)
	ctx := redistest.Ctx(t)
	// Paced: the source's backlog holds what it writes during the stall,
	// and the syncer continues where it stopped.
	w := startPacedGeoWriter(t, src.Client(), 10*time.Millisecond)
	w.waitAcked(t, 1000)

	// About 12 MB/s: the SET takes seconds to go through.
	proxy.Slow(64<<10, 5*time.Millisecond)
	tw := watchTruth(t, a, dst.UID)
	before := proxy.Forwarded()
	o := *src.Client().Options()
	o.ReadTimeout = time.Minute
	sc := redis.NewClient(&o)
	t.Cleanup(func() { sc.Close() })
	const size = 48 << 20
	big := noise(size)
	require.NoError(t, sc.Set(ctx, "big", big, 0).Err())
	elems := make([]any, 400_000)
	for n := range elems {
		elems[n] = n
	}
	require.NoError(t, sc.RPush(ctx, "wide", elems...).Err())
	var resume func()
	redistest.Eventually(t, time.Minute, "half of the big SET forwarded", func() error {
		if n := proxy.Forwarded() - before; n < size/2 {
			return fmt.Errorf("%d bytes forwarded", n)
		}
		resume = stall(proxy, src)
		return nil
	})
	tw.fault(true)
	dc := destClient(t, dst, 0)
	// Half of the SET is on the destination's side of the link: nothing of
	// it, nor of the RPUSH behind it, may be applied.
	redistest.Eventually(t, 30*time.Second, "the status tells of the stall", func() error {
		if s := a.get(dst.UID).ReplicaSources[0]; s.LastError == "" {
			return fmt.Errorf("%+v", s)
		}
		return nil
	})
	n, err := dc.Exists(ctx, "big", "wide").Result()
	require.NoError(t, err)
	require.Zero(t, n, "a command whose bytes have not all arrived is applied")
	tw.hold(t, hold)
	t.Logf("the status %s into the stall: %+v", hold, a.get(dst.UID).ReplicaSources[0])
	tw.fault(false)
	resume()
	proxy.Slow(0, 0)
	tw.check(t)

	w.waitAcked(t, 2000)
	w.stop()
	do := *dc.Options()
	do.ReadTimeout = time.Minute
	dcl := redis.NewClient(&do)
	t.Cleanup(func() { dcl.Close() })
	eventuallyEqual(t, 3*time.Minute, dcl, sc)
	db := a.waitInSync(dst.UID, time.Minute)
	require.Empty(t, db.ReplicaSources[0].LastError)
	require.NoError(t, redistest.Diff(ctx, dcl, sc))
}

func TestABigCommandStalledHalfwayOnTheLink(t *testing.T) {
	t.Parallel()
	bigCommandStalled(t, freezeFor, func(p *redistest.Proxy, _ *redistest.Server) func() {
		p.Stall()
		return p.Unstall
	})
}

// Stalled for less than the read timeout, the same connection goes on
// with the rest of the command.
func TestABigCommandStalledHalfwayOnTheLinkForLessThanTheReadTimeout(t *testing.T) {
	t.Parallel()
	bigCommandStalled(t, 35*time.Second, func(p *redistest.Proxy, _ *redistest.Server) func() {
		p.Stall()
		return p.Unstall
	})
}

func TestABigCommandStalledHalfwayBySIGSTOPOfTheSource(t *testing.T) {
	t.Parallel()
	bigCommandStalled(t, freezeFor, func(_ *redistest.Proxy, src *redistest.Server) func() {
		return freeze(t, src.PID())
	})
}

// destinationFrozen: the destination's redis-server is frozen (SIGSTOP)
// for longer than the watchdog's limits and the read timeout, while INCR
// and RPUSH writers go on at the source, during the stream or during a
// full load; then it runs again. The status never says in-sync while it
// is frozen, says why, and its lag grows; the destination ends equal to
// the source, with no write lost or applied twice.
func destinationFrozen(t *testing.T, midLoad bool, hold time.Duration) {
	src := redistest.Start(t, "--repl-backlog-size", "256mb")
	if midLoad {
		fillStrings(t, src.Client(), "k:", 20000, 1000)
		require.NoError(t, src.Client().ConfigSet(redistest.Ctx(t), "rdb-key-save-delay", "500").Err())
	}
	i := servicetest.Start(t)
	a := newAPI(t, i)
	w := startGeoWriter(t, src.Client())
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	tw := watchTruth(t, a, dst.UID)
	if midLoad {
		waitRDBTransferred(t, a, dst.UID, 3<<20)
	} else {
		a.waitInSync(dst.UID, 2*time.Minute)
		w.waitAcked(t, 2000)
	}
	pid := i.App.Databases().PID(context.Background(), dst.UID)
	var acked atomic.Int64
	acked.Store(w.acked.Load())
	thaw := freeze(t, pid)
	tw.fault(true)
	tw.hold(t, hold)
	s := a.get(dst.UID).ReplicaSources[0]
	t.Logf("the status %s into the freeze: %+v", hold, s)
	if !midLoad {
		// The watchdog restarted the syncer, whose next session waits for
		// the destination: the status says so now, not what the watchdog
		// saw 5 s into the freeze.
		require.Contains(t, s.LastError, "has not answered for", "last_error %s into the freeze", hold)
	}
	tw.fault(false)
	thaw()
	tw.check(t)
	require.Greater(t, w.acked.Load(), acked.Load(), "the source took writes while the destination was frozen")

	require.NoError(t, src.Client().ConfigSet(redistest.Ctx(t), "rdb-key-save-delay", "0").Err())
	w.waitAcked(t, 2000)
	w.stop()
	dc := destClient(t, dst, 0)
	eventuallyEqual(t, 3*time.Minute, dc, src.Client())
	db := a.waitInSync(dst.UID, time.Minute)
	require.Empty(t, db.ReplicaSources[0].LastError)
	require.NoError(t, redistest.Diff(redistest.Ctx(t), dc, src.Client()))
}

func TestADestinationFrozenWhileStreaming(t *testing.T) {
	t.Parallel()
	destinationFrozen(t, false, freezeFor)
}
func TestADestinationFrozenMidFullLoad(t *testing.T) {
	t.Parallel()
	destinationFrozen(t, true, freezeFor)
}

// Frozen past the stall limit but not the read timeout: the syncer
// restarts from its checkpoint while the destination may still hold
// batches sent before, unread.
func TestADestinationFrozenWhileStreamingForLessThanTheReadTimeout(t *testing.T) {
	t.Parallel()
	destinationFrozen(t, false, 25*time.Second)
}

// A source killed soon after a full sync (and not back) closes the link as
// one that cuts its replicas over their output buffer limit does, but
// refuses connections from then on: a cut by the limit would let the
// next connection in. The status says what is known, the link closed by
// the source that refuses connections now, and does not send the user to
// raise a limit that had nothing to do with it. Back with a new history,
// the source is loaded again.
func TestASourceKilledSoonAfterAFullSyncIsNotBlamedOnItsBufferLimit(t *testing.T) {
	t.Parallel()
	src := redistest.Start(t)
	fillStrings(t, src.Client(), "k:", 200, 20)
	_, a, dst, dc := startReplicaOf(t, src.URL(), 64<<20)
	eventuallyEqual(t, time.Minute, dc, src.Client())
	seen := watchSourceErrors(t, a, dst.UID)
	src.Stop() // SIGKILL
	var s api.ReplicaSourceStatus
	redistest.Eventually(t, time.Minute, "the status tells that the source refuses connections", func() error {
		s = a.get(dst.UID).ReplicaSources[0]
		if s.Status == api.SourceInSync || !strings.Contains(s.LastError, "refused") {
			return fmt.Errorf("%+v", s)
		}
		return nil
	})
	errs := seen()
	t.Logf("last_error, in turn: %q", errs)
	for _, e := range errs {
		require.NotContains(t, e, "client-output-buffer-limit", "a source that died was said to cut the sync over its output buffer limit")
	}
	src.Restart()
	fillStrings(t, src.Client(), "new:", 100, 20)
	eventuallyEqual(t, time.Minute, dc, src.Client())
	a.waitInSync(dst.UID, time.Minute)
}

// One of two sources frozen (SIGSTOP) in the middle of a full load of
// both, for longer than the read timeout, then thawed: the frozen one is
// not in sync and says why (the other, loaded, streams meanwhile), and
// the destination ends equal to both.
func TestOneOfTwoSourcesFrozenMidFullLoad(t *testing.T) {
	t.Parallel()
	srcA, srcB := redistest.Start(t, "--repl-backlog-size", "64mb"), redistest.Start(t, "--repl-backlog-size", "64mb")
	fillStrings(t, srcA.Client(), "a:", 20000, 1000)
	fillStrings(t, srcB.Client(), "b:", 2000, 1000)
	require.NoError(t, srcA.Client().ConfigSet(redistest.Ctx(t), "rdb-key-save-delay", "1000").Err())
	i := servicetest.Start(t)
	a := newAPI(t, i)
	wA, wB := startPacedGeoWriter(t, srcA.Client(), 10*time.Millisecond), startIncrWriter(t, srcB.Client(), 10)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: srcA.URL()}, {URI: srcB.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	twA := watchSourceTruth(t, a, dst.UID, srcA.URL())
	redistest.Eventually(t, 2*time.Minute, "part of A's RDB transferred", func() error {
		for _, s := range a.get(dst.UID).ReplicaSources {
			if s.URI == srcA.URL() && s.RDBTransferred >= 3<<20 {
				return nil
			}
		}
		return fmt.Errorf("%+v", a.get(dst.UID).ReplicaSources)
	})
	thaw := freeze(t, srcA.PID())
	twA.fault(true)
	twA.hold(t, freezeFor)
	t.Logf("the status %s into the freeze: %+v", freezeFor, a.get(dst.UID).ReplicaSources)
	twA.fault(false)
	thaw()
	twA.check(t)

	require.NoError(t, srcA.Client().ConfigSet(redistest.Ctx(t), "rdb-key-save-delay", "0").Err())
	wA.waitAcked(t, 2000)
	wA.stop()
	wB.stop()
	dc := destClient(t, dst, 0)
	eventuallyEqual(t, 3*time.Minute, dc, srcA.Client(), srcB.Client())
	a.waitInSync(dst.UID, time.Minute)
	require.NoError(t, redistest.Diff(redistest.Ctx(t), dc, srcA.Client(), srcB.Client()))
}

// The destination of two sources frozen (SIGSTOP) while both stream
// transactions of INCRs and RPUSHes, past the stall limit, then thawed:
// neither source says in-sync while it is frozen, both say why with a lag
// that grows, and the destination ends equal to both, nothing lost or
// applied twice.
func TestADestinationOfTwoSourcesFrozenWhileStreaming(t *testing.T) {
	t.Parallel()
	srcA, srcB := redistest.Start(t, "--repl-backlog-size", "256mb"), redistest.Start(t, "--repl-backlog-size", "256mb")
	i := servicetest.Start(t)
	a := newAPI(t, i)
	wA, wB := startPacedGeoWriter(t, srcA.Client(), time.Millisecond), startIncrWriter(t, srcB.Client(), 10)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: srcA.URL()}, {URI: srcB.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, 2*time.Minute)
	wA.waitAcked(t, 2000)
	twA := watchSourceTruth(t, a, dst.UID, srcA.URL())
	twB := watchSourceTruth(t, a, dst.UID, srcB.URL())
	thaw := freeze(t, i.App.Databases().PID(context.Background(), dst.UID))
	twA.fault(true)
	twB.fault(true)
	twA.hold(t, 45*time.Second)
	t.Logf("the status 45s into the freeze: %+v", a.get(dst.UID).ReplicaSources)
	twA.fault(false)
	twB.fault(false)
	thaw()
	twA.check(t)
	twB.check(t)

	wA.waitAcked(t, 2000)
	wA.stop()
	wB.stop()
	dc := destClient(t, dst, 0)
	eventuallyEqual(t, 3*time.Minute, dc, srcA.Client(), srcB.Client())
	a.waitInSync(dst.UID, time.Minute)
	require.NoError(t, redistest.Diff(redistest.Ctx(t), dc, srcA.Client(), srcB.Client()))
}
