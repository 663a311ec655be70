package replication_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// Rows of the fault matrix of issue 12 that no other test covers. Each runs
// at a scale that fits CI; REDIS_REPLICAD_MATRIX_SCALE=full runs them
// larger (datasets ten times the size).

func matrixScale(ciKeys int) int {
	if os.Getenv("REDIS_REPLICAD_MATRIX_SCALE") == "full" {
		return 10 * ciKeys
	}
	return ciKeys
}

// TestMatrixKill9DuringFullLoad kills the service (SIGKILL) twice while it
// loads a large dataset, under a steady INCR load on the source: once it is
// back, the destination equals the source, every counter included.
func TestMatrixKill9DuringFullLoad(t *testing.T) {
	keys := matrixScale(150000)
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	sc := src.Client()
	loadKeys(t, src, keys)
	p := servicetest.StartProcess(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service log:\n%s", p.Log())
		}
	})
	inst := &servicetest.Instance{URL: p.URL, Username: "admin", Password: p.Password(t), CACert: p.CACert(t)}
	a := newAPI(t, inst)
	w := startIncrWriter(t, sc, 20)

	dst := a.create(api.CreateDatabaseRequest{Name: "loading", MemorySize: 512 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	for round := range 2 {
		redistest.Eventually(t, 2*time.Minute, "the full load is under way", func() error {
			db := a.get(dst.UID)
			if len(db.ReplicaSources) != 1 || db.ReplicaSources[0].RDBTransferred == 0 || db.Status != api.StatusLoading {
				return fmt.Errorf("status %s, sources %+v", db.Status, db.ReplicaSources)
			}
			return nil
		})
		t.Logf("round %d: killing the service during the load", round)
		p.Kill(t)
		p.Start(t)
	}
	a.waitInSync(dst.UID, 3*time.Minute)
	w.stop()
	require.NotZero(t, w.written.Load(), "nothing was written")
	eventuallyEqual(t, 2*time.Minute, destClient(t, dst, 0), sc)
}

// TestMatrixDestinationRedisKilledUnderLoad kills the destination's
// redis-server (SIGKILL) twice while INCRs stream in: the service restarts it,
// and the syncer resumes from the checkpoint the destination kept.
func TestMatrixDestinationRedisKilledUnderLoad(t *testing.T) {
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "victim", MemorySize: 128 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	w := startIncrWriter(t, src.Client(), 20)
	for round := range 2 {
		base := w.written.Load()
		redistest.Eventually(t, time.Minute, "the stream is being applied", func() error {
			if w.written.Load() < base+5000 {
				return fmt.Errorf("written %d", w.written.Load()-base)
			}
			if db := a.get(dst.UID); db.ReplicaSyncStatus != api.SourceInSync {
				return fmt.Errorf("status %s", db.ReplicaSyncStatus)
			}
			return nil
		})
		pid := i.App.Databases().PID(context.Background(), dst.UID)
		require.NotZero(t, pid)
		t.Logf("round %d: killing the destination's redis-server %d", round, pid)
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		redistest.Eventually(t, time.Minute, "a new destination process", func() error {
			if p := i.App.Databases().PID(context.Background(), dst.UID); p == 0 || p == pid {
				return fmt.Errorf("pid %d", p)
			}
			return nil
		})
	}
	w.stop()
	eventuallyEqual(t, 2*time.Minute, destClient(t, dst, 0), src.Client())
}

// TestMatrixDestinationRestartsWithLessThanItApplied restarts the
// destination's redis-server from a disk that holds less than it had
// applied (here its AOF stopped by hand; in life, appendfsync everysec and
// a SIGKILL, or a host that lost power), while its syncer is idle: the
// syncer must not go on from where it was, but from the checkpoint the
// restarted destination holds, and apply again what the disk lost.
func TestMatrixDestinationRestartsWithLessThanItApplied(t *testing.T) {
	// No PING from the source (its every 10 s would be a write).
	src := redistest.Start(t, "--repl-backlog-size", "64mb", "--repl-ping-replica-period", "3600")
	i, a, dst, dc := startReplicaOf(t, src.URL(), 64<<20)
	ctx := redistest.Ctx(t)
	sc := src.Client()
	require.NoError(t, sc.Set(ctx, "before", "1", 0).Err())
	eventuallyEqual(t, time.Minute, dc, sc)

	// From here the destination applies writes in memory only.
	admin := i.App.Databases().Client(dst.UID)
	t.Cleanup(func() { admin.Close() })
	require.NoError(t, admin.ConfigSet(ctx, "appendonly", "no").Err())
	for range 100 {
		require.NoError(t, sc.Incr(ctx, "counter").Err())
	}
	eventuallyEqual(t, time.Minute, dc, sc)
	a.waitInSync(dst.UID, time.Minute)

	killDestination(t, i, dst.UID)
	redistest.Eventually(t, time.Minute, "the restarted destination answers", func() error {
		return dc.Ping(ctx).Err()
	})
	// The source is idle: the writer must notice the restart by itself,
	// not at the next write, or the status says in-sync over lost data
	// (30 s: before the source's read timeout, 60 s, would end the wait).
	eventuallyEqual(t, 30*time.Second, dc, sc)
	require.NoError(t, sc.Incr(ctx, "counter").Err())
	eventuallyEqual(t, time.Minute, dc, sc)
	v, err := dc.Get(ctx, "counter").Result()
	require.NoError(t, err)
	require.Equal(t, "101", v)
}

// TestMatrixRestartWhileSourceListChanges kills the service right after a
// change of the source list was accepted (the reload it starts is under
// way or not begun): once back, the destination holds exactly both
// sources, counters included.
func TestMatrixRestartWhileSourceListChanges(t *testing.T) {
	keys := matrixScale(50000)
	src1 := redistest.Start(t, "--repl-backlog-size", "64mb")
	src2 := redistest.Start(t, "--repl-backlog-size", "64mb")
	loadKeys(t, src2, keys)
	p := servicetest.StartProcess(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service log:\n%s", p.Log())
		}
	})
	inst := &servicetest.Instance{URL: p.URL, Username: "admin", Password: p.Password(t), CACert: p.CACert(t)}
	a := newAPI(t, inst)
	dst := a.create(api.CreateDatabaseRequest{Name: "changing", MemorySize: 256 << 20, ReplicaSources: []api.ReplicaSource{{URI: src1.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	w := startIncrWriter(t, src1.Client(), 20)

	both := []api.ReplicaSource{{URI: src1.URL()}, {URI: src2.URL()}}
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &both})
	p.Kill(t)
	p.Start(t)

	db := a.waitInSync(dst.UID, 3*time.Minute)
	require.Len(t, db.ReplicaSources, 2, "the change survived the crash")
	w.stop()
	eventuallyEqual(t, 2*time.Minute, destClient(t, dst, 0), src1.Client(), src2.Client())
}

// loadKeys writes n string keys of 100 bytes ("data:<n>") to s.
func loadKeys(t *testing.T, s *redistest.Server, n int) {
	t.Helper()
	c := s.Client()
	value := strings.Repeat("v", 100)
	for k := 0; k < n; k += 1000 {
		pipe := c.Pipeline()
		for j := k; j < min(k+1000, n); j++ {
			pipe.Set(context.Background(), "data:"+strconv.Itoa(j), value, 0)
		}
		_, err := pipe.Exec(context.Background())
		require.NoError(t, err)
	}
}

// TestMatrixLinkDownLongerThanBacklog holds the link to the source down
// while the source writes far more than its backlog holds: the destination
// cannot continue, resyncs in full, and ends equal, counters included.
func TestMatrixLinkDownLongerThanBacklog(t *testing.T) {
	src := redistest.Start(t, "--repl-backlog-size", "16kb")
	proxy := redistest.StartProxy(t, src.Addr())
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "far-behind", MemorySize: 128 << 20, ReplicaSources: []api.ReplicaSource{{URI: "redis://" + proxy.Addr}}})
	a.waitInSync(dst.UID, time.Minute)
	fullBefore := metric(a.metrics(), "replicad_replica_full_syncs_total")
	w := startIncrWriter(t, src.Client(), 20)

	proxy.Down()
	base := w.written.Load()
	redistest.Eventually(t, time.Minute, "the source wrote past its backlog", func() error {
		if n := w.written.Load() - base; n < 20000 { // about 600 KB of stream, the backlog holds 16 KB
			return fmt.Errorf("written %d", n)
		}
		return nil
	})
	proxy.Restore()
	a.waitInSync(dst.UID, 2*time.Minute)
	w.stop()
	eventuallyEqual(t, 2*time.Minute, destClient(t, dst, 0), src.Client())
	require.Greater(t, metric(a.metrics(), "replicad_replica_full_syncs_total"), fullBefore, "the destination resynced in full")
}

// prefixedWriter INCRs prefix:0..9 on c until stopped, so that several
// sources of one destination never write the same key.
func prefixedWriter(t *testing.T, c *redis.Client, prefix string) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 0; ctx.Err() == nil; n++ {
			pipe := c.Pipeline()
			for k := range 10 {
				pipe.Incr(ctx, prefix+strconv.Itoa((n+k)%10))
			}
			_, _ = pipe.Exec(ctx)
		}
	}()
	stop := sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	return stop
}

// TestMatrixFanInAndFanOutUnderLoad replicates 32 sources into one
// destination, and one source into 16 destinations, while every source
// takes INCRs: each destination ends equal to its sources.
func TestMatrixFanInAndFanOutUnderLoad(t *testing.T) {
	keys := matrixScale(500)
	i := servicetest.Start(t)
	a := newAPI(t, i)

	var srcs []*redistest.Server
	var clients []*redis.Client
	var sources []api.ReplicaSource
	var stops []func()
	for n := range api.MaxReplicaSources {
		s := redistest.Start(t)
		writeDataset(t, s.Client(), fmt.Sprintf("s%d:", n), keys)
		srcs = append(srcs, s)
		clients = append(clients, s.Client())
		sources = append(sources, api.ReplicaSource{URI: s.URL()})
	}
	for n, s := range srcs {
		stops = append(stops, prefixedWriter(t, s.Client(), fmt.Sprintf("s%d:counter:", n)))
	}
	fanIn := a.create(api.CreateDatabaseRequest{Name: "fan-in", MemorySize: 512 << 20, ReplicaSources: sources})
	var fanOut []api.Database
	for n := range 16 {
		fanOut = append(fanOut, a.create(api.CreateDatabaseRequest{Name: fmt.Sprintf("fan-out-%d", n), MemorySize: 64 << 20,
			ReplicaSources: []api.ReplicaSource{{URI: srcs[0].URL()}}}))
	}
	a.waitInSync(fanIn.UID, 5*time.Minute)
	for _, d := range fanOut {
		a.waitInSync(d.UID, 5*time.Minute)
	}
	for _, stop := range stops {
		stop()
	}
	eventuallyEqual(t, 3*time.Minute, destClient(t, fanIn, 0), clients...)
	for _, d := range fanOut {
		eventuallyEqual(t, 2*time.Minute, destClient(t, d, 0), clients[0])
	}
}
