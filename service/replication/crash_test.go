package replication_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// TestExactlyOnceAcrossKill9 writes INCRs at full speed on the source while
// the service is killed with SIGKILL and started again, several times. Every
// counter of the destination must equal the source's: nothing lost, nothing
// applied twice. Each restart must resume with a partial sync.
func TestExactlyOnceAcrossKill9(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456", "--repl-backlog-size", "256mb")
	p := servicetest.StartProcess(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service log:\n%s", p.Log())
		}
	})
	inst := &servicetest.Instance{URL: p.URL, Username: "admin", Password: p.Password(t), CACert: p.CACert(t)}
	a := newAPI(t, inst)
	dst := a.create(api.CreateDatabaseRequest{Name: "counters", MemorySize: 128 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)

	dc := destClient(t, dst, 0)
	// A kill before the load is persisted loads everything again.
	waitLoadPersisted(t, dc)
	w := startIncrWriter(t, src.Client(), 50)

	for round := range 5 {
		// Let the destination apply some of the stream, then crash it.
		base := w.written.Load()
		redistest.Eventually(t, time.Minute, "the stream is being applied", func() error {
			if w.written.Load() < base+20000 {
				return fmt.Errorf("written %d", w.written.Load()-base)
			}
			if db := a.get(dst.UID); db.ReplicaSyncStatus != api.SourceInSync {
				return fmt.Errorf("status %s", db.ReplicaSyncStatus)
			}
			return nil
		})
		t.Logf("round %d: killing the service after %d writes", round, w.written.Load())
		p.Kill(t)
		p.Start(t)
	}
	w.stop()
	if w.written.Load() == 0 {
		t.Fatal("nothing was written")
	}
	redistest.Eventually(t, 2*time.Minute, "every counter equals the source's", func() error {
		return redistest.Diff(context.Background(), dc, src.Client())
	})
	m := a.metrics()
	if full, partial := metric(m, "replicad_replica_full_syncs_total"), metric(m, "replicad_replica_partial_syncs_total"); full != 0 || partial < 1 {
		t.Fatalf("after the last restart: full syncs %v, partial %v; want a partial sync only\n%s\n%s", full, partial, grep(m, "syncs_total"), p.Log())
	}
}

// TestLargeCollections loads 500,000-member sorted set and hash (written in
// chunks) and compares them member by member.
func TestLargeCollections(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	ctx := redistest.Ctx(t)
	c := src.Client()
	const n = 500000
	for start := 0; start < n; start += 20000 {
		pipe := c.Pipeline()
		zs := make([]redis.Z, 0, 20000)
		hs := make([]any, 0, 40000)
		for i := start; i < start+20000; i++ {
			zs = append(zs, redis.Z{Score: float64(i) * 1.25, Member: fmt.Sprint("m", i)})
			hs = append(hs, fmt.Sprint("f", i), i)
		}
		pipe.ZAdd(ctx, "big:zset", zs...)
		pipe.HSet(ctx, "big:hash", hs...)
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c.Expire(ctx, "big:zset", time.Hour)
	// Writes go on while the destination loads: they reach it through the
	// stream that follows the RDB.
	wctx, stopWriting := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; wctx.Err() == nil; n++ {
			pipe := c.Pipeline()
			pipe.ZAdd(wctx, "big:zset", redis.Z{Score: float64(n), Member: fmt.Sprint("during-", n)})
			pipe.HSet(wctx, "big:hash", fmt.Sprint("f", n%1000), fmt.Sprint("changed-", n))
			pipe.RPush(wctx, "during:list", n)
			pipe.Exec(wctx)
		}
	}()
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "big", MemorySize: 1 << 30, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, 3*time.Minute)
	stopWriting()
	wg.Wait()
	during := c.LLen(ctx, "during:list").Val()
	if during == 0 {
		t.Fatal("no write happened during the load")
	}
	t.Logf("%d writes during the load", during)
	// Writes to the big keys during the stream.
	c.ZAdd(ctx, "big:zset", redis.Z{Score: -1, Member: "new"})
	c.HDel(ctx, "big:hash", "f7")
	dc := destClient(t, dst, 0)
	redistest.Eventually(t, time.Minute, "big keys equal", func() error {
		if got, want := dc.ZCard(ctx, "big:zset").Val(), c.ZCard(ctx, "big:zset").Val(); got != want || want < n+1 {
			return fmt.Errorf("zcard %d, want %d", got, want)
		}
		return redistest.Diff(ctx, dc, c)
	})
}
