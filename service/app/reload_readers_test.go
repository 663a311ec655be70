package app_test

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// fill writes n keys of size bytes named prefix:<i> and a marker key that
// both datasets share, with a value naming the dataset.
func fill(t *testing.T, c *redis.Client, prefix string, n, size int) {
	t.Helper()
	v := strings.Repeat("v", size)
	for k := 0; k < n; k += 1000 {
		pipe := c.Pipeline()
		for j := k; j < min(n, k+1000); j++ {
			pipe.Set(ctx(t), prefix+":"+strconv.Itoa(j), v, 0)
		}
		_, err := pipe.Exec(ctx(t))
		require.NoError(t, err)
	}
	require.NoError(t, c.Set(ctx(t), "marker", prefix, 0).Err())
}

// pollReader reads the destination without pause until stop: every answer
// must be the whole old dataset or the whole new one, never an error.
type pollReader struct {
	wg       sync.WaitGroup
	stop     chan struct{}
	mu       sync.Mutex
	problems []string
	reads    atomic.Int64
	sawNew   atomic.Bool
}

func startPollReader(t *testing.T, c *redis.Client, sizes map[string]int64) *pollReader {
	r := &pollReader{stop: make(chan struct{})}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			select {
			case <-r.stop:
				return
			default:
			}
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			// One transaction: the marker and the size of one dataset.
			var m *redis.StringCmd
			var n *redis.IntCmd
			_, err := c.TxPipelined(cctx, func(pipe redis.Pipeliner) error {
				m = pipe.Get(cctx, "marker")
				n = pipe.DBSize(cctx)
				return nil
			})
			if err != nil && m.Err() != nil && m.Err() != err {
				err = fmt.Errorf("%w (GET: %v)", err, m.Err())
			}
			cancel()
			r.reads.Add(1)
			var problem string
			switch want, known := sizes[m.Val()]; {
			case err != nil:
				problem = "error: " + err.Error()
			case !known:
				problem = fmt.Sprintf("marker %q", m.Val())
			case n.Val() != want:
				problem = fmt.Sprintf("marker %q with %d keys, not %d", m.Val(), n.Val(), want)
			}
			if m.Val() == "new" && err == nil {
				r.sawNew.Store(true)
			}
			if problem != "" {
				r.mu.Lock()
				if len(r.problems) < 20 {
					r.problems = append(r.problems, problem)
				}
				r.mu.Unlock()
			}
		}
	}()
	t.Cleanup(r.end)
	return r
}

func (r *pollReader) end() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	r.wg.Wait()
}

// A reader that polls a destination without pause while its source list
// changes sees the whole old dataset, then the whole new one: never an
// error (LOADING), never an empty or partial dataset. Here the
// destination's memory is more than half used, so the reload cannot hold
// both datasets at once over its link and goes through a file.
func TestReloadThroughAFileIsSeamlessForAPollingReader(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	i := servicetest.Start(t)
	oldSrc, newSrc := redistest.Start(t), redistest.Start(t)
	const oldKeys, newKeys = 40000, 30000
	fill(t, oldSrc.Client(), "old", oldKeys, 200)
	fill(t, newSrc.Client(), "new", newKeys, 200)
	rc := startReloadCase(t, i, "polled", 24<<20, oldSrc)
	r := startPollReader(t, rc.dc, map[string]int64{"old": oldKeys + 1, "new": newKeys + 1})
	rc.update(map[string]any{"replica_sources": sourcesOf(newSrc)})
	eventually(t, 2*time.Minute, "the reader sees the new dataset", func() error {
		if !r.sawNew.Load() {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	r.end()
	require.Empty(t, r.problems, "what the polling reader saw during the reload (%d reads)", r.reads.Load())
	require.NoError(t, redistest.Diff(ctx(t), rc.dc, newSrc.Client()))
}

// The same reader, while a destination of two sources is given two other
// sources (with memory for both datasets: the reload loads beside the
// previous data and is swapped in).
func TestReloadOfSeveralSourcesIsSeamlessForAPollingReader(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	i := servicetest.Start(t)
	old1, old2, new1, new2 := redistest.Start(t), redistest.Start(t), redistest.Start(t), redistest.Start(t)
	fill(t, old1.Client(), "old", 20000, 200)
	fill(t, old2.Client(), "old2", 20000, 200)
	require.NoError(t, old2.Client().Del(ctx(t), "marker").Err())
	fill(t, new1.Client(), "new", 15000, 200)
	fill(t, new2.Client(), "new2", 15000, 200)
	require.NoError(t, new2.Client().Del(ctx(t), "marker").Err())
	rc := startReloadCase(t, i, "polled2", 128<<20, old1, old2)
	r := startPollReader(t, rc.dc, map[string]int64{"old": 40001, "new": 30001})
	rc.update(map[string]any{"replica_sources": sourcesOf(new1, new2)})
	eventually(t, 2*time.Minute, "the reader sees the new dataset", func() error {
		if !r.sawNew.Load() {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	eventually(t, 2*time.Minute, "the destination holds the new sources", func() error {
		return redistest.Diff(ctx(t), rc.dc, new1.Client(), new2.Client())
	})
	r.end()
	require.Empty(t, r.problems, "what the polling reader saw during the reload (%d reads)", r.reads.Load())
}

// reloadLeftovers lists what a reload of the instance's databases left:
// reload servers still running and their files.
func reloadLeftovers(t *testing.T, i *servicetest.Instance) []string {
	t.Helper()
	var left []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), i.DataDir) && strings.Contains(string(b), "reload") {
			left = append(left, "process "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	_ = filepath.WalkDir(i.DataDir, func(path string, e fs.DirEntry, err error) error {
		if err == nil && (e.Name() == "reload" || strings.HasPrefix(e.Name(), "load-") || strings.HasSuffix(e.Name(), "-reload.sock")) {
			left = append(left, path)
		}
		return nil
	})
	return left
}

// reloadCase is a destination of an instance that holds its first sources'
// data, about to be given others: the steps the reload tests share.
type reloadCase struct {
	t   *testing.T
	i   *servicetest.Instance
	dst api.Database
	dc  *redis.Client
	uri string
}

// startReloadCase creates a destination named name of memory bytes with the
// sources old, and waits until it holds their data.
func startReloadCase(t *testing.T, i *servicetest.Instance, name string, memory int64, old ...*redistest.Server) *reloadCase {
	t.Helper()
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: name, MemorySize: memory, ReplicaSources: sourcesOf(old...)})
	rc := &reloadCase{t: t, i: i, dst: dst, dc: dbClient(t, dst, dst.AuthenticationRedisPass), uri: fmt.Sprintf("/v1/bdbs/%d", dst.UID)}
	eventually(t, 2*time.Minute, "the destination holds the old sources", func() error {
		return redistest.Diff(ctx(t), rc.dc, clientsOf(old...)...)
	})
	return rc
}

func sourcesOf(servers ...*redistest.Server) []api.ReplicaSource {
	list := []api.ReplicaSource{}
	for _, s := range servers {
		list = append(list, api.ReplicaSource{URI: s.URL()})
	}
	return list
}

func clientsOf(servers ...*redistest.Server) []*redis.Client {
	var out []*redis.Client
	for _, s := range servers {
		out = append(out, s.Client())
	}
	return out
}

// update PUTs body to the destination and requires it taken.
func (rc *reloadCase) update(body map[string]any) {
	rc.t.Helper()
	code, e := call(rc.t, rc.i, "PUT", rc.uri, body, nil)
	require.Equal(rc.t, http.StatusOK, code, "%v", e)
}

// status reads the destination's status.
func (rc *reloadCase) status() api.Database {
	var got api.Database
	call(rc.t, rc.i, "GET", rc.uri, nil, &got)
	return got
}

// waitLoading waits until the destination's status says loading.
func (rc *reloadCase) waitLoading() {
	rc.t.Helper()
	eventually(rc.t, time.Minute, "the destination says loading", func() error {
		if got := rc.status(); got.Status != api.StatusLoading {
			return fmt.Errorf("status %s", got.Status)
		}
		return nil
	})
}

// waitInSync waits until the destination holds the data of sources, key by
// key, and its status is active and in sync.
func (rc *reloadCase) waitInSync(within time.Duration, sources ...*redis.Client) api.Database {
	rc.t.Helper()
	var got api.Database
	eventually(rc.t, within, "the destination holds the new sources, and is active and in sync", func() error {
		if err := redistest.Diff(ctx(rc.t), rc.dc, sources...); err != nil {
			return err
		}
		if got = rc.status(); got.Status != api.StatusActive || got.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("status %s, sync %s, last_error %q", got.Status, got.ReplicaSyncStatus, got.LastError)
		}
		return nil
	})
	return got
}

// waitNothingLeft waits until no reload server or file is left.
func (rc *reloadCase) waitNothingLeft() {
	rc.t.Helper()
	eventually(rc.t, time.Minute, "nothing of the reload is left", func() error {
		if left := reloadLeftovers(rc.t, rc.i); len(left) > 0 {
			return fmt.Errorf("left: %v", left)
		}
		return nil
	})
}

// frozen stops s (SIGSTOP) until the returned thaw, or the test's end.
func frozen(t *testing.T, s *redistest.Server) (thaw func()) {
	t.Helper()
	require.NoError(t, syscall.Kill(s.PID(), syscall.SIGSTOP))
	thaw = sync.OnceFunc(func() { _ = syscall.Kill(s.PID(), syscall.SIGCONT) })
	t.Cleanup(thaw)
	return thaw
}

// Semantics 8 during a reload: removing Replica Of while a new source list
// is being loaded keeps the data readers had (the previous data, whole),
// makes it writable, and leaves no reload server or file behind.
func TestRemovingReplicaOfDuringAReloadKeepsThePreviousData(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	for _, tc := range []struct {
		name string
		news int
	}{{"one new source", 1}, {"two new sources", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			i := servicetest.Start(t)
			oldSrc := redistest.Start(t)
			fill(t, oldSrc.Client(), "old", 5000, 100)
			rc := startReloadCase(t, i, "left", 64<<20, oldSrc)
			var news []*redistest.Server
			for n := range tc.news {
				s := redistest.Start(t)
				fill(t, s.Client(), "new"+strconv.Itoa(n), 5000, 100)
				news = append(news, s)
			}
			frozen(t, news[len(news)-1]) // the reload cannot end
			rc.update(map[string]any{"replica_sources": sourcesOf(news...)})
			rc.waitLoading()
			rc.update(map[string]any{"replica_sources": []api.ReplicaSource{}})
			eventually(t, time.Minute, "the destination is writable", func() error {
				return rc.dc.Set(ctx(t), "written", "after", 0).Err()
			})
			require.NoError(t, rc.dc.Del(ctx(t), "written").Err())
			require.NoError(t, redistest.Diff(ctx(t), rc.dc, oldSrc.Client()), "the previous data stays, whole")
			rc.waitNothingLeft()
			require.Equal(t, api.StatusActive, rc.status().Status)
		})
	}
}

// A source list changed twice more while its first reload runs: the
// destination ends with the last list's data, key by key; readers see only
// whole datasets meanwhile; no reload server or file is left, and the
// status ends active and in sync.
func TestSourceListChangedDuringAReload(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	i := servicetest.Start(t)
	oldSrc := redistest.Start(t)
	fill(t, oldSrc.Client(), "old", 20000, 100)
	rc := startReloadCase(t, i, "thrice", 128<<20, oldSrc)
	mid1, stuck, mid2 := redistest.Start(t), redistest.Start(t), redistest.Start(t)
	fill(t, mid1.Client(), "mid", 5000, 100)
	fill(t, stuck.Client(), "frozen", 5000, 100)
	fill(t, mid2.Client(), "mid2", 5000, 100)
	new1, new2 := redistest.Start(t), redistest.Start(t)
	fill(t, new1.Client(), "new", 15000, 100)
	fill(t, new2.Client(), "new2", 15000, 100)
	require.NoError(t, new2.Client().Del(ctx(t), "marker").Err())
	frozen(t, stuck)

	// Whole intermediate datasets cannot be told apart by their marker
	// alone; none may be swapped in, since none completes.
	r := startPollReader(t, rc.dc, map[string]int64{"old": 20001, "new": 30001})
	rc.update(map[string]any{"replica_sources": sourcesOf(mid1, stuck)})
	rc.waitLoading()
	rc.update(map[string]any{"replica_sources": sourcesOf(stuck, mid2)})
	rc.waitLoading()
	rc.update(map[string]any{"replica_sources": sourcesOf(new1, new2)})
	got := rc.waitInSync(2*time.Minute, new1.Client(), new2.Client())
	r.end()
	require.Empty(t, r.problems, "what the polling reader saw (%d reads)", r.reads.Load())
	rc.waitNothingLeft()
	for _, s := range got.ReplicaSources {
		require.Empty(t, s.LastError, "source %s", s.URI)
	}
}

// kill -9 of the destination's redis-server, then of one of the new
// sources, while a reload from several sources runs: the destination comes
// back with its previous data, whole, and ends equal to the new sources key
// by key, with nothing of the reload left.
func TestKillsDuringAReload(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	i := servicetest.Start(t)
	oldSrc := redistest.Start(t)
	fill(t, oldSrc.Client(), "old", 20000, 100)
	rc := startReloadCase(t, i, "killed", 128<<20, oldSrc)
	new1, new2 := redistest.Start(t, "--appendonly", "yes"), redistest.Start(t)
	fill(t, new1.Client(), "new", 15000, 100)
	fill(t, new2.Client(), "new2", 15000, 100)
	require.NoError(t, new2.Client().Del(ctx(t), "marker").Err())
	thaw := frozen(t, new2)
	rc.update(map[string]any{"replica_sources": sourcesOf(new1, new2)})
	rc.waitLoading()
	pid := i.App.Databases().PID(ctx(t), rc.dst.UID)
	require.NotZero(t, pid)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	eventually(t, time.Minute, "the restarted destination serves its previous data, whole", func() error {
		if p := i.App.Databases().PID(ctx(t), rc.dst.UID); p == pid || p == 0 {
			return fmt.Errorf("not restarted yet")
		}
		return redistest.Diff(ctx(t), rc.dc, oldSrc.Client())
	})
	new1.Restart()
	thaw()
	rc.waitInSync(3*time.Minute, new1.Client(), new2.Client())
	rc.waitNothingLeft()
}

// A reload paused, then stopped, then enabled again: readers keep the
// previous data, whole, until the reload completes; the status says paused
// and stopped meanwhile; the destination ends equal to its sources.
func TestPauseAndStopDuringAReload(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	i := servicetest.Start(t)
	oldSrc := redistest.Start(t)
	fill(t, oldSrc.Client(), "old", 20000, 100)
	rc := startReloadCase(t, i, "paused", 128<<20, oldSrc)
	new1, new2 := redistest.Start(t), redistest.Start(t)
	fill(t, new1.Client(), "new", 15000, 100)
	fill(t, new2.Client(), "new2", 15000, 100)
	require.NoError(t, new2.Client().Del(ctx(t), "marker").Err())
	thaw := frozen(t, new2)
	r := startPollReader(t, rc.dc, map[string]int64{"old": 20001, "new": 30001})
	rc.update(map[string]any{"replica_sources": sourcesOf(new1, new2)})
	rc.waitLoading()
	var got api.Database
	for _, state := range []string{"paused", "stopped"} {
		rc.update(map[string]any{"replica_sync": state})
		eventually(t, time.Minute, "the sync says "+state, func() error {
			if got = rc.status(); string(got.ReplicaSync) != state {
				return fmt.Errorf("replica_sync %s", got.ReplicaSync)
			}
			return nil
		})
		require.NoError(t, redistest.Diff(ctx(t), rc.dc, oldSrc.Client()), "the previous data while %s", state)
	}
	t.Logf("stopped: status %s, sync %s, sources %+v", got.Status, got.ReplicaSyncStatus, got.ReplicaSources)
	thaw()
	rc.update(map[string]any{"replica_sync": "enabled"})
	rc.waitInSync(2*time.Minute, new1.Client(), new2.Client())
	r.end()
	require.Empty(t, r.problems, "what the polling reader saw (%d reads)", r.reads.Load())
	rc.waitNothingLeft()
}

// New sources whose data cannot fit the destination's memory_size: the
// reload stops, out of memory, saying so; readers keep the previous data,
// whole; nothing of the reload is left.
func TestAReloadTooBigForTheDestinationKeepsThePreviousData(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	for _, tc := range []struct {
		name string
		news int
	}{{"one new source", 1}, {"two new sources", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			i := servicetest.Start(t)
			oldSrc := redistest.Start(t)
			fill(t, oldSrc.Client(), "old", 2000, 100)
			rc := startReloadCase(t, i, "small", 8<<20, oldSrc)
			var news []*redistest.Server
			for n := range tc.news {
				s := redistest.Start(t)
				fill(t, s.Client(), "new"+strconv.Itoa(n), 20000, 1000)
				news = append(news, s)
			}
			r := startPollReader(t, rc.dc, map[string]int64{"old": 2001})
			rc.update(map[string]any{"replica_sources": sourcesOf(news...)})
			var got api.Database
			eventually(t, 2*time.Minute, "the sync stops, out of memory", func() error {
				if got = rc.status(); got.ReplicaSync != "stopped" {
					return fmt.Errorf("replica_sync %s", got.ReplicaSync)
				}
				for _, s := range got.ReplicaSources {
					if strings.Contains(strings.ToLower(s.LastError), "memory") {
						return nil
					}
				}
				return fmt.Errorf("no last_error names the memory: %+v", got.ReplicaSources)
			})
			r.end()
			require.Empty(t, r.problems, "what the polling reader saw (%d reads)", r.reads.Load())
			require.NoError(t, redistest.Diff(ctx(t), rc.dc, oldSrc.Client()), "the previous data, whole")
			rc.waitNothingLeft()
			t.Logf("status %s; sources %+v", got.Status, got.ReplicaSources)
		})
	}
}

// The data directory's disk full during a reload: readers keep the
// previous data, whole; the status says what is wrong; once the disk has
// room, the reload completes, and nothing of it is left.
func TestDiskFullDuringAReload(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	for _, tc := range []struct {
		name string
		news int
	}{{"one new source, through a file", 1}, {"two new sources, through a second server", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			disk := smallDataDisk(t, 96<<20)
			i := servicetest.StartWith(t, func(c *app.Config) { c.DataDir = filepath.Join(disk, "data") })
			oldSrc := redistest.Start(t)
			fill(t, oldSrc.Client(), "old", 40000, 200)
			rc := startReloadCase(t, i, "fulldisk", 24<<20, oldSrc)
			var news []*redistest.Server
			for n := range tc.news {
				s := redistest.Start(t)
				fill(t, s.Client(), "new"+strconv.Itoa(n), 30000, 200)
				if n > 0 {
					require.NoError(t, s.Client().Del(ctx(t), "marker").Err())
				}
				news = append(news, s)
			}
			// The AOF rewrite after the first load is done: the disk is
			// filled now.
			eventually(t, time.Minute, "the destination's AOF is rewritten", func() error {
				if v := infoField(t, i.App.Databases().Client(rc.dst.UID), "persistence", "aof_rewrite_in_progress"); v != "0" {
					return fmt.Errorf("aof_rewrite_in_progress %s", v)
				}
				return nil
			})
			filler := fillDataDisk(t, disk)
			t.Cleanup(func() { _ = os.Remove(filler) })
			r := startPollReader(t, rc.dc, map[string]int64{"old": 40001, "new0": 30000*int64(tc.news) + 1})
			code, e := call(t, i, "PUT", rc.uri, map[string]any{"replica_sources": sourcesOf(news...)}, nil)
			if code != http.StatusOK {
				// The database's files cannot be written (see
				// TestAChangeOfADatabaseWhoseDiskIsFullIsApplied).
				require.Contains(t, e.Description, "the change is recorded and applied to the running redis-server", "%d", code)
			}
			var got api.Database
			eventually(t, time.Minute, "the status says that the disk is full", func() error {
				got = rc.status()
				all := got.LastError
				for _, s := range got.ReplicaSources {
					all += " " + s.LastError
				}
				if !strings.Contains(all, "space") && !strings.Contains(all, "disk") && !strings.Contains(all, "AOF") {
					return fmt.Errorf("status %s, last_error %q, sources %+v", got.Status, got.LastError, got.ReplicaSources)
				}
				return nil
			})
			t.Logf("disk full: status %s, last_error %q, sources %+v", got.Status, got.LastError, got.ReplicaSources)
			require.NoError(t, redistest.Diff(ctx(t), rc.dc, oldSrc.Client()), "the previous data, whole")
			require.NoError(t, os.Remove(filler))
			rc.waitInSync(3*time.Minute, clientsOf(news...)...)
			r.end()
			require.Empty(t, r.problems, "what the polling reader saw (%d reads)", r.reads.Load())
			rc.waitNothingLeft()
		})
	}
}

// Connections held across a reload's swap are not dropped: a subscriber
// keeps its subscription and gets messages after it, and a transaction
// opened before it executes after it, on the new data.
func TestConnectionsHeldAcrossAReloadSurvive(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	i := servicetest.Start(t)
	oldSrc, newSrc := redistest.Start(t), redistest.Start(t)
	fill(t, oldSrc.Client(), "old", 40000, 200)
	fill(t, newSrc.Client(), "new", 30000, 200)
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "held", MemorySize: 24 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: oldSrc.URL()}}})
	dc := dbClient(t, dst, dst.AuthenticationRedisPass)
	eventually(t, 2*time.Minute, "the destination holds the old source", func() error {
		return redistest.Diff(ctx(t), dc, oldSrc.Client())
	})
	sub := dc.Subscribe(ctx(t), "news")
	defer sub.Close()
	_, err := sub.Receive(ctx(t))
	require.NoError(t, err)
	conn := dc.Conn()
	defer conn.Close()
	require.NoError(t, conn.Do(ctx(t), "MULTI").Err())
	require.NoError(t, conn.Do(ctx(t), "GET", "marker").Err())

	code, e := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", dst.UID), map[string]any{"replica_sources": []api.ReplicaSource{{URI: newSrc.URL()}}}, nil)
	require.Equal(t, http.StatusOK, code, "%v", e)
	eventually(t, 2*time.Minute, "the destination holds the new source", func() error {
		return redistest.Diff(ctx(t), dc, newSrc.Client())
	})
	got, err := conn.Do(ctx(t), "EXEC").Slice()
	require.NoError(t, err, "the transaction opened before the reload")
	require.Equal(t, []any{"new"}, got)
	require.NoError(t, dc.Publish(ctx(t), "news", "after").Err())
	msg, err := sub.ReceiveMessage(ctx(t))
	require.NoError(t, err, "the subscription held across the reload")
	require.Equal(t, "after", msg.Payload)
}
