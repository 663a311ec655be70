package replication_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// logDestOnFailure prints the destination's redis-server log if the test
// fails.
func logDestOnFailure(t *testing.T, i *servicetest.Instance, uid int) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("destination's log:\n%s", destLog(t, i, uid))
		}
	})
}

// waitAsyncLoading waits until the destination's INFO says async_loading
// is want ("1": it loads over its link, serving its previous data).
func waitAsyncLoading(t *testing.T, dc *redis.Client, want string) {
	t.Helper()
	redistest.Eventually(t, 30*time.Second, "async_loading:"+want, func() error {
		if v := infoField(t, dc, "persistence", "async_loading"); v != want {
			return fmt.Errorf("async_loading:%s", v)
		}
		return nil
	})
}

// waitServingWhileLoading waits until the destination dc loads over its
// link (async_loading) and meanwhile serves the previous data: a few keys
// written by writeDataset with prefix "one:" read as they do on old.
func waitServingWhileLoading(t *testing.T, dc, old *redis.Client, timeout time.Duration) {
	t.Helper()
	loading := func() bool { return infoField(t, dc, "persistence", "async_loading") == "1" }
	redistest.Eventually(t, timeout, "the destination serves its previous data while it loads over its link", func() error {
		if !loading() {
			return errors.New("not loading")
		}
		// A few keys: while it loads, the destination answers a command
		// per 64 KiB loaded.
		for _, k := range []string{"one:int", "one:str:150", "one:ttl"} {
			want, _ := old.Get(context.Background(), k).Result()
			if got, err := dc.Get(context.Background(), k).Result(); err != nil || got != want {
				return fmt.Errorf("%s: %q, %v; want %q", k, got, err, want)
			}
		}
		if !loading() {
			return errors.New("the load ended meanwhile")
		}
		return nil
	})
}

// startReplicaOf starts an instance with a database of memory bytes that is
// a Replica Of source, and waits until it is in sync; it returns the
// database's client of its database 0 too.
func startReplicaOf(t *testing.T, source string, memory int64) (*servicetest.Instance, *apiClient, api.Database, *redis.Client) {
	t.Helper()
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: memory,
		ReplicaSources: []api.ReplicaSource{{URI: source}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, time.Minute)
	return i, a, dst, destClient(t, dst, 0)
}

// killDestination SIGKILLs the destination's redis-server and waits until
// the service runs a new one.
func killDestination(t *testing.T, i *servicetest.Instance, uid int) {
	t.Helper()
	pid := i.App.Databases().PID(context.Background(), uid)
	require.NotZero(t, pid)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	redistest.Eventually(t, time.Minute, "a new destination process", func() error {
		if p := i.App.Databases().PID(context.Background(), uid); p == 0 || p == pid {
			return fmt.Errorf("pid %d", p)
		}
		return nil
	})
}

// destLog is the destination's redis-server log, for a failing test.
func destLog(t *testing.T, i *servicetest.Instance, uid int) string {
	b, err := os.ReadFile(filepath.Join(i.DataDir, "dbs", strconv.Itoa(uid), "redis.log"))
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// One source's full load goes to the destination as a Redis full sync over
// its master link, which it loads as the data arrives: every type, TTLs,
// several databases, with writes during the load; the stream continues
// from the checkpoint the load carried, across a restart too.
func TestSingleSourceLoadsOverTheLink(t *testing.T) {
	src := redistest.Start(t)
	sc := src.ClientDB(0)
	writeDataset(t, sc, "", 30000)
	writeDataset(t, src.ClientDB(5), "db5:", 100)
	w := startIncrWriter(t, sc, 50)

	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 512 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, 2*time.Minute)
	log := destLog(t, i, dst.UID)
	require.Contains(t, log, "MASTER <-> REPLICA sync: Loading DB in memory", "the destination loaded a full sync from its link")
	w.stop()
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 5), src.ClientDB(5))

	writeDataset(t, sc, "after:", 100)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)
	stats, err := sc.Info(redistest.Ctx(t), "stats").Result()
	require.NoError(t, err)
	assert.Contains(t, stats, "sync_full:1\r\n", "one full sync")
	assert.Equal(t, 1, strings.Count(destLog(t, i, dst.UID), "MASTER <-> REPLICA sync: Finished with success"), "one load")

	i.Restart(t)
	writeDataset(t, sc, "restarted:", 100)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)
	stats, err = sc.Info(redistest.Ctx(t), "stats").Result()
	require.NoError(t, err)
	assert.Contains(t, stats, "sync_full:1\r\n", "no full sync after the restart")
}

// fillStrings writes n random strings of size bytes under prefix.
func fillStrings(t *testing.T, c *redis.Client, prefix string, n, size int) {
	t.Helper()
	ctx := redistest.Ctx(t)
	p := c.Pipeline()
	for k := range n {
		p.Set(ctx, fmt.Sprintf("%s%d", prefix, k), noise(size), 0) // incompressible
		if k%1000 == 999 {
			_, err := p.Exec(ctx)
			require.NoError(t, err)
		}
	}
	_, err := p.Exec(ctx)
	require.NoError(t, err)
}

// infoField is a field of the destination's INFO section, as its
// application user reads it.
func infoField(t *testing.T, c *redis.Client, section, field string) string {
	info, err := c.Info(context.Background(), section).Result()
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// A full load over the link that is cut midway (the new source's link
// fails) leaves the destination with its previous data, readable all
// along, and says so in its status; once the source is back, the load
// starts over and completes.
func TestLinkLoadCutMidwayKeepsThePreviousData(t *testing.T) {
	s1 := redistest.Start(t)
	writeDataset(t, s1.Client(), "one:", 100)
	s2 := redistest.Start(t, "--requirepass", "pw-2")
	fillStrings(t, s2.Client(), "two:", 20000, 200)
	proxy := redistest.StartProxy(t, s2.Addr())

	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: s1.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	eventuallyEqual(t, time.Minute, dc, s1.Client())

	// 4 MB at 1.6 MB/s: the load takes seconds.
	proxy.Slow(8<<10, 5*time.Millisecond)
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: "redis://:pw-2@" + proxy.Addr}}})
	waitServingWhileLoading(t, dc, s1.Client(), 30*time.Second)
	proxy.Down()
	waitAsyncLoading(t, dc, "0")
	require.NoError(t, redistest.Diff(context.Background(), dc, s1.Client()), "the previous data stays")
	redistest.Eventually(t, 30*time.Second, "the status says the source failed", func() error {
		db := a.get(dst.UID)
		if db.ReplicaSyncStatus == api.SourceInSync || db.ReplicaSources[0].LastError == "" {
			return fmt.Errorf("status %s, last error %q", db.ReplicaSyncStatus, db.ReplicaSources[0].LastError)
		}
		return nil
	})

	proxy.Slow(0, 0)
	proxy.Restore()
	a.waitInSync(dst.UID, time.Minute)
	eventuallyEqual(t, time.Minute, dc, s2.Client())
	writeDataset(t, s2.Client(), "after:", 10)
	eventuallyEqual(t, time.Minute, dc, s2.Client())
}

// A destination that is itself the source of another (a chain) loads a new
// source over its link: the other one holds the previous data, and
// resyncs in full to the new data instead of continuing.
func TestChainThroughADestinationThatReloads(t *testing.T) {
	s1 := redistest.Start(t)
	s2 := redistest.Start(t)
	writeDataset(t, s1.Client(), "one:", 100)
	writeDataset(t, s2.Client(), "two:", 100)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	b := a.create(api.CreateDatabaseRequest{Name: "b", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{URI: s1.URL()}}})
	c := a.create(api.CreateDatabaseRequest{Name: "c", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{URI: a.sourceURL(b.UID)}}})
	a.waitInSync(b.UID, time.Minute)
	cc := destClient(t, c, 0)
	eventuallyEqual(t, time.Minute, cc, s1.Client())

	a.update(b.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: s2.URL()}}})
	a.waitInSync(b.UID, time.Minute)
	require.Contains(t, destLog(t, i, b.UID), "MASTER <-> REPLICA sync: Finished with success", "b loaded over its link")
	eventuallyEqual(t, time.Minute, cc, s2.Client())
	require.NoError(t, s2.Client().Incr(redistest.Ctx(t), "two:counter").Err())
	eventuallyEqual(t, time.Minute, cc, s2.Client())
}

// The destination's redis-server killed (SIGKILL) while it loads over its
// link: the service starts it again and the load starts over, to the end.
func TestLinkLoadDestinationKilledMidway(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-2")
	fillStrings(t, src.Client(), "two:", 20000, 200)
	proxy := redistest.StartProxy(t, src.Addr())
	proxy.Slow(8<<10, 5*time.Millisecond)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: "redis://:pw-2@" + proxy.Addr}}})
	dc := destClient(t, dst, 0)
	waitAsyncLoading(t, dc, "1")
	seen := watchSourceErrors(t, a, dst.UID)
	killDestination(t, i, dst.UID)
	proxy.Slow(0, 0)
	a.waitInSync(dst.UID, time.Minute)
	eventuallyEqual(t, time.Minute, dc, src.Client())
	writeDataset(t, src.Client(), "after:", 10)
	eventuallyEqual(t, time.Minute, dc, src.Client())
	requireSourceNotBlamed(t, seen())
}

// A destination killed after the whole dataset was sent over its link,
// while it loads it, refused nothing: its next load goes over the link
// again. It was taken for a refusal, and every later load of the
// destination went through a file.
func TestLinkLoadDestinationKilledWhileItLoadsIsNoRefusal(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-4")
	fillStrings(t, src.Client(), "k:", 2000, 100)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 128 << 20})
	logDestOnFailure(t, i, dst.UID)
	admin := i.App.Databases().Client(dst.UID)
	t.Cleanup(func() { admin.Close() })
	// 2,000 keys at 5 ms each: the load takes 10 s after the 200 KB of
	// the dataset have been sent (a restart forgets it).
	require.NoError(t, admin.ConfigSet(redistest.Ctx(t), "key-load-delay", "5000").Err())
	pid := i.App.Databases().PID(redistest.Ctx(t), dst.UID) // it does not answer while it loads
	require.NotZero(t, pid)
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: "redis://:pw-4@" + src.Addr()}}})
	dc := destClient(t, dst, 0)
	// An empty destination loads blocking, answering nobody: the logs
	// say where it is.
	redistest.Eventually(t, 30*time.Second, "the whole dataset sent while the destination loads", func() error {
		if !strings.Contains(destLog(t, i, dst.UID), "MASTER <-> REPLICA sync: Loading DB in memory") {
			return errors.New("not loading")
		}
		if !strings.Contains(i.RecentLogs(), "dataset sent over the destination's master link") {
			return errors.New("not sent whole yet")
		}
		return nil
	})
	require.NotContains(t, destLog(t, i, dst.UID), "Done loading RDB", "still loading at the kill")
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	a.waitInSync(dst.UID, time.Minute)
	eventuallyEqual(t, time.Minute, dc, src.Client())
	assert.Equal(t, 2, strings.Count(destLog(t, i, dst.UID), "MASTER <-> REPLICA sync: Loading DB in memory"),
		"the load after the kill went over the link too")
	assert.NotContains(t, i.RecentLogs(), "loads from an RDB file from now on")
}

// A destination that dies during two loads over its link in a row (the
// kernel's OOM killer ends a load that holds two datasets, say) loads
// through a file next, one dataset at a time, rather than dying again.
func TestLinkLoadDestinationDyingInLoadsFallsBackToAFile(t *testing.T) {
	bin := servicetest.RequireRedisServer(t)
	wrapper := filepath.Join(t.TempDir(), "redis-server")
	// Every load of this redis-server takes 5 ms a key: 10 s for the
	// dataset below, once sent whole.
	require.NoError(t, os.WriteFile(wrapper, []byte("#!/bin/sh\nexec "+bin+" \"$@\" --key-load-delay 5000\n"), 0o755))
	src := redistest.Start(t, "--requirepass", "pw-5")
	fillStrings(t, src.Client(), "k:", 2000, 100)
	i := servicetest.StartWith(t, func(c *app.Config) { c.RedisServer = wrapper })
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 128 << 20})
	logDestOnFailure(t, i, dst.UID)
	pidRe := regexp.MustCompile(`pid=(\d+), just started`)
	lastPID := func() int {
		m := pidRe.FindAllStringSubmatch(destLog(t, i, dst.UID), -1)
		require.NotEmpty(t, m)
		pid, err := strconv.Atoi(m[len(m)-1][1])
		require.NoError(t, err)
		return pid
	}
	killDuringLoad := func(loads int) {
		t.Helper()
		mark := i.LogMark()
		redistest.Eventually(t, time.Minute, fmt.Sprintf("load %d sent whole while the destination loads it", loads), func() error {
			if n := strings.Count(destLog(t, i, dst.UID), "MASTER <-> REPLICA sync: Loading DB in memory"); n < loads {
				return fmt.Errorf("%d loads begun", n)
			}
			if !strings.Contains(i.LogsSince(mark), "dataset sent over the destination's master link") {
				return errors.New("not sent whole yet")
			}
			return nil
		})
		require.Equal(t, loads-1, strings.Count(destLog(t, i, dst.UID), "Done loading RDB"), "still loading at the kill")
		require.NoError(t, syscall.Kill(lastPID(), syscall.SIGKILL))
	}
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: "redis://:pw-5@" + src.Addr()}}})
	killDuringLoad(1)
	killDuringLoad(2)
	a.waitInSync(dst.UID, 2*time.Minute)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), src.Client())
	assert.Equal(t, 2, strings.Count(destLog(t, i, dst.UID), "MASTER <-> REPLICA sync: Loading DB in memory"),
		"the third load went through a file")
}

// watchSourceErrors polls the status of destination uid every 20 ms until
// the test ends, and returns a function giving every source error seen.
func watchSourceErrors(t *testing.T, a *apiClient, uid int) func() []string {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var db api.Database
			if code, _ := a.do("GET", fmt.Sprintf("/v1/bdbs/%d", uid), nil, &db); code == 200 {
				mu.Lock()
				for _, s := range db.ReplicaSources {
					if s.LastError != "" && !slices.Contains(seen, s.LastError) {
						seen = append(seen, s.LastError)
					}
				}
				mu.Unlock()
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	stop := func() { once.Do(func() { close(done); <-stopped }) }
	t.Cleanup(stop)
	return func() []string {
		stop()
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

// requireSourceNotBlamed fails if a status blamed the source for what its
// destination did (it was killed, or it closed the link).
func requireSourceNotBlamed(t *testing.T, seen []string) {
	t.Helper()
	for _, e := range seen {
		require.NotContains(t, e, "closed the replication link during the full sync", "the destination failed, not the source")
	}
	t.Logf("source errors seen: %q", seen)
}

// A destination that uses more than half its memory could not hold the new
// dataset beside its current one while it loads over its link: the load
// goes through a file instead (one copy in memory at a time), and the
// result is the same.
func TestLinkLoadNeedsHalfTheMemoryFree(t *testing.T) {
	s1 := redistest.Start(t)
	fillStrings(t, s1.Client(), "one:", 4000, 10<<10) // 40 MiB
	s2 := redistest.Start(t)
	writeDataset(t, s2.Client(), "two:", 100)
	i, a, dst, dc := startReplicaOf(t, s1.URL(), 64<<20)
	eventuallyEqual(t, time.Minute, dc, s1.Client())
	require.Equal(t, 1, strings.Count(destLog(t, i, dst.UID), "MASTER <-> REPLICA sync: Finished with success"), "the first load went over the link")

	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: s2.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	eventuallyEqual(t, time.Minute, dc, s2.Client())
	assert.Equal(t, 1, strings.Count(destLog(t, i, dst.UID), "MASTER <-> REPLICA sync: Finished with success"), "the second went through a file")
	assert.Contains(t, destLog(t, i, dst.UID), "DB reloaded by DEBUG RELOAD", "the destination loaded a file")
}

// Any local process can connect to a destination's master link. A flood of
// idle connections to it is bounded (the oldest are closed), and keeps
// neither the destination out nor the stream from flowing, across a
// restart of the destination's redis-server in the middle of the flood.
func TestLinkFloodOfIdleConnectionsKeepsTheDestinationIn(t *testing.T) {
	src := redistest.Start(t)
	writeDataset(t, src.Client(), "", 500)
	i, a, dst, dc := startReplicaOf(t, src.URL(), 128<<20)
	port := infoField(t, dc, "replication", "master_port")
	require.NotEmpty(t, port, "the destination names its master link")
	linkAddr := net.JoinHostPort("127.0.0.1", port)

	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	dial := func() {
		c, err := net.Dial("tcp", linkAddr)
		require.NoError(t, err)
		conns = append(conns, c)
	}
	for range 300 {
		dial()
	}
	// The link closes the oldest at once (not at the end of the
	// handshake's 10 s): the first 200 read the end.
	for n, c := range conns[:200] {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, err := c.Read(make([]byte, 1))
		require.ErrorIs(t, err, io.EOF, "connection %d of the flood is closed by the link", n)
	}
	writeDataset(t, src.Client(), "during:", 100)
	eventuallyEqual(t, time.Minute, dc, src.Client())

	// The destination restarts while the flood goes on: it gets back in.
	stop := make(chan struct{})
	flooded := make(chan struct{})
	go func() {
		defer close(flooded)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var held []net.Conn // the newest 100, idle
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if c, err := net.Dial("tcp", linkAddr); err == nil {
				held = append(held, c)
			}
			if len(held) > 100 {
				held[0].Close()
				held = held[1:]
			}
		}
	}()
	killDestination(t, i, dst.UID)
	writeDataset(t, src.Client(), "restarted:", 100)
	eventuallyEqual(t, time.Minute, dc, src.Client())
	a.waitInSync(dst.UID, time.Minute)
	close(stop)
	<-flooded
}

// The destination's redis-server killed (SIGKILL) after a load over its
// link, before its AOF holds the load (the rewrite that follows a load is
// slowed down here), while the syncer is idle: the restarted destination
// has its data of before the load, so the syncer may not go on from where
// it was. It loads everything again, and then continues.
func TestLinkLoadDestinationKilledBeforeTheLoadIsPersisted(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-3")
	fillStrings(t, src.Client(), "k:", 2000, 100)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 128 << 20})
	logDestOnFailure(t, i, dst.UID)
	ctx := redistest.Ctx(t)
	admin := i.App.Databases().Client(dst.UID)
	t.Cleanup(func() { admin.Close() })
	// 2,000 keys at 5 ms each: the rewrite after the load takes 10 s,
	// time enough for the checks before the kill on a busy machine.
	require.NoError(t, admin.ConfigSet(ctx, "rdb-key-save-delay", "5000").Err())

	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: "redis://:pw-3@" + src.Addr()}}})
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	eventuallyEqual(t, time.Minute, dc, src.Client())
	require.Equal(t, "1", infoField(t, dc, "persistence", "aof_rewrite_in_progress"), "the load is not in the AOF yet")
	require.NoError(t, src.Client().Incr(ctx, "counter").Err())
	eventuallyEqual(t, time.Minute, dc, src.Client())

	killDestination(t, i, dst.UID)
	require.NoError(t, src.Client().Incr(ctx, "counter").Err())
	eventuallyEqual(t, time.Minute, dc, src.Client())
	require.Equal(t, "2", dc.Get(ctx, "counter").Val())
	a.waitInSync(dst.UID, time.Minute)
	m := a.metrics()
	assert.Equal(t, 2.0, metric(m, "replicad_replica_full_syncs_total"), "loaded again after the restart:\n%s", grep(m, "syncs_total"))
}

// A reload into a shadow (several sources) is swapped in while the
// sources' writers hold, and they continue into the destination. Until the
// destination's AOF is rewritten from the swapped data, a SIGKILL brings
// back the AOF of before the reload: the writers, idle at the kill, must
// not go on from where the swap left them on top of that older data.
func TestSwapDestinationKilledBeforeTheSwapIsPersisted(t *testing.T) {
	// No PINGs from the sources (their every 10 s would be writes).
	idle := []string{"--repl-ping-replica-period", "3600"}
	oldSrc, srcA, srcB := redistest.Start(t), redistest.Start(t, idle...), redistest.Start(t, idle...)
	fillStrings(t, oldSrc.Client(), "old:", 100, 20)
	fillStrings(t, srcA.Client(), "a:", 1000, 100)
	fillStrings(t, srcB.Client(), "b:", 1000, 100)
	// Loaded through a shadow, not merged into one full sync.
	i := servicetest.StartWith(t, func(c *app.Config) { c.NoMergedLoad = true })
	a := newAPI(t, i)
	dst, dc := destinationHolding(t, i, a, oldSrc)
	redistest.Eventually(t, time.Minute, "the first load is in the AOF", func() error {
		if v := infoField(t, dc, "persistence", "aof_rewrite_in_progress"); v != "0" {
			return fmt.Errorf("aof_rewrite_in_progress %q", v)
		}
		return nil
	})

	ctx := redistest.Ctx(t)
	admin := i.App.Databases().Client(dst.UID)
	t.Cleanup(func() { admin.Close() })
	// About 2,000 keys at 10 ms each: the rewrite after the swap takes 20 s,
	// time enough for the checks before the kill on a busy machine.
	require.NoError(t, admin.ConfigSet(ctx, "rdb-key-save-delay", "10000").Err())
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: srcA.URL()}, {URI: srcB.URL()}}})
	eventuallyEqual(t, time.Minute, dc, srcA.Client(), srcB.Client())
	a.waitInSync(dst.UID, time.Minute)
	require.Contains(t, destLog(t, i, dst.UID), "DB reloaded by DEBUG RELOAD", "the reload was swapped in")
	require.Equal(t, "1", infoField(t, dc, "persistence", "aof_rewrite_in_progress"), "the swapped data is not in the AOF yet")

	killDestination(t, i, dst.UID)
	// The sources stay idle: nothing is in flight when it restarts.
	redistest.Eventually(t, time.Minute, "the restarted destination is attached to its master link", func() error {
		if v := infoField(t, dc, "replication", "master_link_status"); v != "up" {
			return fmt.Errorf("master_link_status %q", v)
		}
		return nil
	})
	// Idle sources: the writers must notice by themselves (45 s: before
	// the sources' read timeout, 60 s, would end the wait).
	eventuallyEqual(t, 45*time.Second, dc, srcA.Client(), srcB.Client())
	require.NoError(t, srcA.Client().Incr(ctx, "counter").Err())
	eventuallyEqual(t, time.Minute, dc, srcA.Client(), srcB.Client())
	a.waitInSync(dst.UID, time.Minute)
}

// While a reload loads several sources into a second server (the shadow),
// the sources loaded first stream into it. The shadow must expire nothing by
// itself, as the destination does not: a write that reaches it after a
// key's TTL passed there, but that the source ran while the key lived, must
// find the key. Written with a normal connection, a writable replica deletes
// an expired key that a write touches; the source's writes reach the shadow
// as its master's, as they reach the destination.
func TestShadowExpiresNothingByItself(t *testing.T) {
	oldSrc, fast, slow := redistest.Start(t), redistest.Start(t), redistest.Start(t)
	fillStrings(t, oldSrc.Client(), "old:", 100, 20)
	fillStrings(t, slow.Client(), "slow:", 1000, 100)
	// Loaded through a shadow, not merged into one full sync.
	i := servicetest.StartWith(t, func(c *app.Config) { c.NoMergedLoad = true })
	a := newAPI(t, i)
	dst, dc := destinationHolding(t, i, a, oldSrc)

	ctx := redistest.Ctx(t)
	// The slow source takes 10 s to write its dataset (1,000 keys at
	// 10 ms): the fast one streams into the shadow meanwhile.
	require.NoError(t, slow.Client().ConfigSet(ctx, "rdb-key-save-delay", "10000").Err())
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: fast.URL()}, {URI: slow.URL()}}})
	fc := fast.Client()
	redistest.Eventually(t, time.Minute, "the fast source streams into the shadow", func() error {
		if err := fc.Incr(ctx, "tick").Err(); err != nil {
			return err
		}
		if n := metric(a.metrics(), "replicad_replica_batches_total", `source="`+fast.Addr()+`"`); n < 1 {
			return fmt.Errorf("%v batches", n)
		}
		return nil
	})
	require.FileExists(t, filepath.Join(i.DataDir, "dbs", strconv.Itoa(dst.UID), "reload", "redis.conf"), "the reload goes through a shadow")
	require.Equal(t, api.StatusLoading, a.get(dst.UID).Status, "the slow source still loads")

	// The source runs the script at once; its effects (a list and a set
	// given a 1 ms TTL, then moved into keys without one) reach the shadow
	// some 50 ms later, after the TTL passed there.
	const script = `
redis.call('rpush', 'lq', 'x', 'y'); redis.call('pexpire', 'lq', 1)
redis.call('sadd', 'sk', 'a', 'b'); redis.call('pexpire', 'sk', 1)
redis.call('set', 'gone', 'v', 'px', 1)
local n = 0; for i = 1, 3000000 do n = n + i end
redis.call('lmove', 'lq', 'lout', 'left', 'left')
redis.call('sunionstore', 'sout', 'sk')
redis.call('persist', 'gone')
return n`
	require.NoError(t, fc.Eval(ctx, script, nil).Err())
	require.Equal(t, "list", fc.Type(ctx, "lout").Val())
	require.Equal(t, time.Duration(-1), fc.PTTL(ctx, "gone").Val(), "the source saved the key")

	eventuallyEqual(t, 2*time.Minute, dc, fc, slow.Client())
	db := a.waitInSync(dst.UID, time.Minute)
	for _, s := range db.ReplicaSources {
		assert.Empty(t, s.SyncNote, "the destination lost no key: %s", s.URI)
	}
}

// destinationHolding creates a destination of src, and waits until it holds
// src's data: a later change of its sources is then a reload.
func destinationHolding(t *testing.T, i *servicetest.Instance, a *apiClient, src *redistest.Server) (api.Database, *redis.Client) {
	t.Helper()
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 128 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	eventuallyEqual(t, time.Minute, dc, src.Client())
	return dst, dc
}

// A destination stopped (SIGSTOP) while it loads over its link takes none
// of the data: the source's status says so (it said syncing, with no
// error), and the load goes on once the destination runs again.
func TestLinkLoadIntoAStoppedDestinationSaysSo(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-2")
	fillStrings(t, src.Client(), "two:", 4000, 10<<10) // 40 MB
	proxy := redistest.StartProxy(t, src.Addr())
	proxy.Slow(64<<10, 5*time.Millisecond) // about 12 MB/s: a load of seconds
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: "redis://:pw-2@" + proxy.Addr}}})
	logDestOnFailure(t, i, dst.UID)
	dc := destClient(t, dst, 0)
	waitAsyncLoading(t, dc, "1")
	pid := i.App.Databases().PID(context.Background(), dst.UID)
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	stopped := true
	defer func() {
		if stopped {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	redistest.Eventually(t, time.Minute, "the status says the destination takes nothing", func() error {
		s := a.get(dst.UID).ReplicaSources[0]
		if s.Status == api.SourceInSync || !strings.Contains(s.LastError, "has taken none of the full load") {
			return fmt.Errorf("%s: %q", s.Status, s.LastError)
		}
		return nil
	})
	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
	stopped = false
	proxy.Slow(0, 0)
	a.waitInSync(dst.UID, 2*time.Minute)
	eventuallyEqual(t, time.Minute, dc, src.Client())
}

// After a reload swapped in (several sources), a new session of the
// destination's master link (its redis-server killed and restarted) made
// every syncer of the round hold for the swap again, bound to the link's
// session of the swap: each batch found the link moved on, and the
// syncers reconnected hundreds of times a second, applying nothing, while
// the status said syncing. They continue once, from the checkpoint.
func TestALinkSessionAfterASwapIsNotHeldForIt(t *testing.T) {
	srcA, srcB := redistest.Start(t), redistest.Start(t)
	fillStrings(t, srcA.Client(), "a:", 200, 20)
	fillStrings(t, srcB.Client(), "b:", 200, 20)
	i := servicetest.StartWith(t, func(c *app.Config) { c.NoMergedLoad = true })
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: srcA.URL()}, {URI: srcB.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	ctx := redistest.Ctx(t)

	// A FLUSHALL on one source reloads the destination from both, through
	// a second server swapped in.
	require.NoError(t, srcA.Client().FlushAll(ctx).Err())
	fillStrings(t, srcA.Client(), "a2:", 50, 20)
	redistest.Eventually(t, time.Minute, "the reload is swapped in", func() error {
		if !strings.Contains(destLog(t, i, dst.UID), "DB reloaded by DEBUG RELOAD") {
			return errors.New("not yet")
		}
		return nil
	})
	eventuallyEqual(t, time.Minute, dc, srcA.Client(), srcB.Client())
	a.waitInSync(dst.UID, time.Minute)

	syncs := func() int {
		n := 0
		for _, f := range []string{"sync_full", "sync_partial_ok", "sync_partial_err"} {
			v, err := strconv.Atoi(infoField(t, srcA.Client(), "stats", f))
			require.NoError(t, err)
			n += v
		}
		return n
	}
	before := syncs()
	killDestination(t, i, dst.UID)
	require.NoError(t, srcA.Client().Set(ctx, "after", "1", 0).Err())
	require.NoError(t, srcB.Client().Set(ctx, "after-b", "1", 0).Err())
	eventuallyEqual(t, time.Minute, dc, srcA.Client(), srcB.Client())
	a.waitInSync(dst.UID, time.Minute)
	assert.LessOrEqual(t, syncs()-before, 10, "the syncers reconnected in a loop")
}

// A source restarted without its data soon after a full sync closes the
// link as one that cuts its replicas over their output buffer limit does;
// but its new history shows it was not that: the destination loads it
// again at once, without the cut's backoff and its advice.
func TestASourceRestartedSoonAfterAFullSyncIsNoCut(t *testing.T) {
	src := redistest.Start(t)
	fillStrings(t, src.Client(), "k:", 200, 20)
	_, a, dst, dc := startReplicaOf(t, src.URL(), 64<<20)
	eventuallyEqual(t, time.Minute, dc, src.Client())
	seen := watchSourceErrors(t, a, dst.UID)
	src.Restart() // no persistence: empty, another replication id
	fillStrings(t, src.Client(), "new:", 100, 20)
	eventuallyEqual(t, time.Minute, dc, src.Client())
	a.waitInSync(dst.UID, time.Minute)
	for _, e := range seen() {
		require.NotContains(t, e, "cut by the source", "a restart was taken for a cut")
	}
}

// One of several sources flushing a logical database where the
// destination holds nothing (an application's routine FLUSHDB of an empty
// database, every few seconds) reloaded the destination from every source
// each time. A flush that finds nothing at the destination is a no-op; one
// that finds keys still reloads it, since they may be another source's.
func TestAFlushOfNothingDoesNotReloadTheOtherSources(t *testing.T) {
	srcA, srcB := redistest.Start(t), redistest.Start(t)
	fillStrings(t, srcA.Client(), "a:", 100, 20)
	fillStrings(t, srcB.Client(), "b:", 100, 20)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: srcA.URL()}, {URI: srcB.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	eventuallyEqual(t, time.Minute, dc, srcA.Client(), srcB.Client())
	ctx := redistest.Ctx(t)
	fullSyncs := func() string { return infoField(t, srcB.Client(), "stats", "sync_full") }
	before := fullSyncs()

	for range 3 {
		require.NoError(t, srcA.ClientDB(9).FlushDB(ctx).Err())
	}
	require.NoError(t, srcA.Client().Do(ctx, "SWAPDB", 7, 8).Err())
	require.NoError(t, srcA.Client().Set(ctx, "after", "1", 0).Err())
	eventuallyEqual(t, time.Minute, dc, srcA.Client(), srcB.Client())
	a.waitInSync(dst.UID, time.Minute)
	assert.Equal(t, before, fullSyncs(), "the other source was loaded again")

	// A flush of a database that holds keys (this source's, here) still
	// reloads: the destination cannot tell whose they are.
	require.NoError(t, srcA.ClientDB(9).Set(ctx, "nine", "9", 0).Err())
	redistest.Eventually(t, time.Minute, "the key reaches database 9", func() error {
		return destClient(t, dst, 9).Get(ctx, "nine").Err()
	})
	require.NoError(t, srcA.ClientDB(9).FlushDB(ctx).Err())
	redistest.Eventually(t, 2*time.Minute, "reloaded, without the flushed key", func() error {
		if n := destClient(t, dst, 9).Exists(ctx, "nine").Val(); n != 0 {
			return errors.New("the key is still there")
		}
		if fullSyncs() == before {
			return errors.New("no reload")
		}
		return nil
	})
	eventuallyEqual(t, time.Minute, dc, srcA.Client(), srcB.Client())
}
