package replication_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// The writer gathers a batch's plain SETs into MSETs and moves them past
// commands on other keys. A pipelined mix of SETs and commands that read,
// overwrite, rename, expire or delete the same few keys must leave the
// destination equal to the source, key by key, with their TTLs.
func TestStreamedSetsGatheredIntoMSETKeepEveryKeysOrder(t *testing.T) {
	src := redistest.Start(t)
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "mixed", MemorySize: 128 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)

	ctx := redistest.Ctx(t)
	sc := src.Client()
	r := rand.New(rand.NewPCG(1, 2))
	key := func() string { return fmt.Sprint("k", r.IntN(12)) }
	for round := range 40 {
		pipe := sc.Pipeline()
		if round%4 == 0 {
			pipe = sc.TxPipeline()
		}
		for range 500 {
			k := key()
			switch r.IntN(12) {
			case 0, 1, 2, 3:
				pipe.Set(ctx, k, fmt.Sprint(r.IntN(1000)), 0)
			case 4:
				pipe.Incr(ctx, k) // fails on a non-integer or a hash, at both sides
			case 5:
				pipe.Append(ctx, k, "x")
			case 6:
				pipe.HSet(ctx, k, "f", r.IntN(10))
			case 7:
				pipe.Expire(ctx, k, time.Duration(1+r.IntN(1000))*time.Second)
			case 8:
				pipe.Set(ctx, k, "ttl", time.Duration(1+r.IntN(1000))*time.Second)
			case 9:
				pipe.Rename(ctx, k, key())
			case 10:
				pipe.Del(ctx, k, key())
			case 11:
				pipe.Do(ctx, "SELECT", r.IntN(2))
			}
		}
		_, _ = pipe.Exec(ctx) // some commands fail at the source too (INCR of "x", RENAME of nothing)
	}
	for db := range 2 {
		dc, sdb := destClient(t, dst, db), src.ClientDB(db)
		eventuallyEqual(t, time.Minute, dc, sdb)
	}
	// And the MSET path was taken.
	stats := destClient(t, dst, 0).Info(ctx, "commandstats").Val()
	if !strings.Contains(stats, "cmdstat_mset:") {
		t.Fatalf("the destination ran no MSET:\n%s", stats)
	}
}
