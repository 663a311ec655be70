package replication_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// Several sources loaded at once go to their one-server destination as one
// full sync over its master link (one load of the destination, natively,
// not their keys as commands): every type, TTLs, several databases, the
// same function library from each source once, writes during the load;
// each source's stream then continues from the checkpoint the load
// carried, across a restart of the service too.
func TestSeveralSourcesLoadAsOneFullSync(t *testing.T) {
	var srcs []*redistest.Server
	var clients []*redis.Client
	for n := range 3 {
		s := redistest.Start(t)
		writeDataset(t, s.ClientDB(0), fmt.Sprintf("s%d:", n), 20000)
		writeDataset(t, s.ClientDB(4), fmt.Sprintf("s%d:db4:", n), 10)
		require.NoError(t, s.ClientDB(0).FunctionLoad(redistest.Ctx(t), "#!lua name=app\nredis.register_function('one', function() return 1 end)").Err())
		srcs, clients = append(srcs, s), append(clients, s.ClientDB(0))
	}
	w := startIncrWriter(t, clients[1], 50)

	i := servicetest.Start(t)
	a := newAPI(t, i)
	var sources []api.ReplicaSource
	for _, s := range srcs {
		sources = append(sources, api.ReplicaSource{URI: s.URL()})
	}
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 512 << 20, ReplicaSources: sources})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, 2*time.Minute)
	assert.Equal(t, 1, strings.Count(destLog(t, i, dst.UID), "MASTER <-> REPLICA sync: Finished with success"), "the sources' datasets were loaded as one full sync")
	w.stop()
	dc := destClient(t, dst, 0)
	eventuallyEqual(t, time.Minute, dc, clients...)
	var db4 []*redis.Client
	for _, s := range srcs {
		db4 = append(db4, s.ClientDB(4))
	}
	eventuallyEqual(t, time.Minute, destClient(t, dst, 4), db4...)
	libs, err := dc.FunctionList(redistest.Ctx(t), redis.FunctionListQuery{}).Result()
	require.NoError(t, err)
	require.Len(t, libs, 1)
	assert.Equal(t, "app", libs[0].Name)

	for n, c := range clients {
		writeDataset(t, c, fmt.Sprintf("after%d:", n), 10)
	}
	eventuallyEqual(t, time.Minute, dc, clients...)
	i.Restart(t)
	for n, c := range clients {
		writeDataset(t, c, fmt.Sprintf("restarted%d:", n), 10)
	}
	eventuallyEqual(t, time.Minute, dc, clients...)
	for _, c := range clients {
		stats, err := c.Info(redistest.Ctx(t), "stats").Result()
		require.NoError(t, err)
		assert.Contains(t, stats, "sync_full:1\r\n", "one full sync of each source, none after the restart")
	}
}

// A merged load cut midway (one source's link fails) leaves the
// destination with its previous data, readable all along, and its status
// says so; once the source is back, the destination loads every source
// and ends equal to them all.
func TestAMergedLoadCutMidwayKeepsThePreviousData(t *testing.T) {
	s1 := redistest.Start(t)
	writeDataset(t, s1.Client(), "one:", 100)
	s2 := redistest.Start(t, "--requirepass", "pw-2")
	fillStrings(t, s2.Client(), "two:", 20000, 200)
	s3 := redistest.Start(t)
	fillStrings(t, s3.Client(), "three:", 5000, 200)
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
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{
		{URI: s1.URL()}, {URI: "redis://:pw-2@" + proxy.Addr}, {URI: s3.URL()}}})
	loading := func() bool { return infoField(t, dc, "persistence", "async_loading") == "1" }
	redistest.Eventually(t, 30*time.Second, "the destination serves its previous data while it loads over its link", func() error {
		if !loading() {
			return errors.New("not loading")
		}
		for _, k := range []string{"one:int", "one:str:150", "one:ttl"} {
			want, _ := s1.Client().Get(context.Background(), k).Result()
			if got, err := dc.Get(context.Background(), k).Result(); err != nil || got != want {
				return fmt.Errorf("%s: %q, %v; want %q", k, got, err, want)
			}
		}
		if !loading() {
			return errors.New("the load ended meanwhile")
		}
		return nil
	})
	proxy.Down()
	waitAsyncLoading(t, dc, "0")
	require.NoError(t, redistest.Diff(context.Background(), dc, s1.Client()), "the previous data stays")
	redistest.Eventually(t, 30*time.Second, "the status says the source failed", func() error {
		db := a.get(dst.UID)
		if db.ReplicaSyncStatus == api.SourceInSync || db.ReplicaSources[1].LastError == "" {
			return fmt.Errorf("status %s, last error %q", db.ReplicaSyncStatus, db.ReplicaSources[1].LastError)
		}
		return nil
	})

	proxy.Slow(0, 0)
	proxy.Restore()
	a.waitInSync(dst.UID, 2*time.Minute)
	eventuallyEqual(t, time.Minute, dc, s1.Client(), s2.Client(), s3.Client())
	writeDataset(t, s2.Client(), "after:", 10)
	eventuallyEqual(t, time.Minute, dc, s1.Client(), s2.Client(), s3.Client())
}

// Two sources holding different code under one library name cannot be
// merged into one RDB (Redis refuses the second library): the destination
// drops that load, keeps what it had, and loads its sources one by one,
// ending in sync with every key and the library of one of them.
func TestAMergedLoadTheDestinationRefusesFallsBack(t *testing.T) {
	s1, s2 := redistest.Start(t), redistest.Start(t)
	ctx := redistest.Ctx(t)
	for n, c := range []*redis.Client{s1.Client(), s2.Client()} {
		code := fmt.Sprintf("#!lua name=app\nredis.register_function('f%d', function() return %d end)", n, n)
		require.NoError(t, c.FunctionLoad(ctx, code).Err())
		fillStrings(t, c, fmt.Sprintf("s%d:", n), 1000, 50)
	}
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: s1.URL()}, {URI: s2.URL()}}})
	logDestOnFailure(t, i, dst.UID)
	a.waitInSync(dst.UID, 2*time.Minute)
	dc := destClient(t, dst, 0)
	eventuallyEqual(t, time.Minute, dc, s1.Client(), s2.Client())
	libs, err := dc.FunctionList(ctx, redis.FunctionListQuery{}).Result()
	require.NoError(t, err)
	require.Len(t, libs, 1)
	assert.Equal(t, "app", libs[0].Name)
	assert.Contains(t, destLog(t, i, dst.UID), "Library 'app' already exists", "the merged load was tried and refused")
}
