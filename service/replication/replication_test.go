package replication_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// writeDataset writes every type, with and without TTLs, into db n.
func writeDataset(t *testing.T, c *redis.Client, prefix string, big int) {
	t.Helper()
	ctx := redistest.Ctx(t)
	p := c.Pipeline()
	for i := range 200 {
		p.Set(ctx, fmt.Sprintf("%sstr:%d", prefix, i), strings.Repeat("v", i), 0)
	}
	p.Set(ctx, prefix+"int", 12345, 0)
	p.Set(ctx, prefix+"ttl", "expires", time.Hour)
	p.RPush(ctx, prefix+"list", "a", "b", "c")
	p.SAdd(ctx, prefix+"intset", 1, 2, 3)
	p.SAdd(ctx, prefix+"set", "x", "y")
	p.ZAdd(ctx, prefix+"zset", redis.Z{Score: 1.5, Member: "m1"}, redis.Z{Score: -2, Member: "m2"})
	p.HSet(ctx, prefix+"hash", "f1", "v1", "f2", "v2")
	p.Expire(ctx, prefix+"hash", 30*time.Minute)
	p.XAdd(ctx, &redis.XAddArgs{Stream: prefix + "stream", ID: "1-1", Values: []string{"a", "1"}})
	p.XAdd(ctx, &redis.XAddArgs{Stream: prefix + "stream", ID: "2-1", Values: []string{"b", "2"}})
	p.XGroupCreate(ctx, prefix+"stream", "g1", "0")
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g1", Consumer: "c1", Streams: []string{prefix + "stream", ">"}, Count: 1}).Err(); err != nil {
		t.Fatal(err)
	}
	// Big collections, to force the non-compact encodings and chunked writes.
	for start := 0; start < big; start += 10000 {
		p := c.Pipeline()
		var zs []redis.Z
		var hs []any
		var ls []any
		for i := start; i < min(start+10000, big); i++ {
			zs = append(zs, redis.Z{Score: float64(i) / 3, Member: fmt.Sprint("member-", i)})
			hs = append(hs, fmt.Sprint("field-", i), i)
			ls = append(ls, i)
		}
		p.ZAdd(ctx, prefix+"bigzset", zs...)
		p.HSet(ctx, prefix+"bighash", hs...)
		p.RPush(ctx, prefix+"biglist", ls...)
		p.SAdd(ctx, prefix+"bigset", ls...)
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReplicaOfOpenSourceRedis(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "source-secret")
	writeDataset(t, src.ClientDB(0), "", 20000)
	writeDataset(t, src.ClientDB(3), "db3:", 100)

	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 512 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	db := a.waitInSync(dst.UID, time.Minute)
	if db.ReplicaSources[0].RDBSize <= 0 || db.ReplicaSources[0].RDBTransferred != db.ReplicaSources[0].RDBSize {
		t.Errorf("rdb size/transferred not reported: %+v", db.ReplicaSources[0])
	}

	// Writes during the stream, in both databases, with a transaction.
	sc := src.ClientDB(0)
	ctx := redistest.Ctx(t)
	writeDataset(t, sc, "later:", 100)
	tx := sc.TxPipeline()
	tx.Incr(ctx, "counter")
	tx.LPush(ctx, "list", "z")
	tx.Del(ctx, "str:5")
	if _, err := tx.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	src.ClientDB(3).Set(ctx, "db3:new", "v", 0)
	sc.Expire(ctx, "str:7", 10*time.Minute)

	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 3), src.ClientDB(3))

	// Applications may read the destination but not write to it.
	dc := destClient(t, dst, 0)
	if err := dc.Set(ctx, "app-write", "x", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("an application write to a replica: %v, want NOPERM", err)
	}
	if v := dc.Get(ctx, "int").Val(); v != "12345" {
		t.Fatalf("read on the replica: %q", v)
	}
	m := a.metrics()
	if metric(m, "replicad_replica_full_syncs_total", `destination="1"`) != 1 || metric(m, "replicad_replica_commands_applied_total", `destination="1"`) <= 0 {
		t.Errorf("metrics do not show the sync:\n%s", grep(m, "replicad_replica"))
	}
	if strings.Contains(m, "source-secret") {
		t.Fatal("metrics show the source password")
	}

	// Removing Replica Of keeps the data and makes the database writable.
	empty := []api.ReplicaSource{}
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &empty})
	if err := dc.Set(ctx, "app-write", "x", 0).Err(); err != nil {
		t.Fatalf("write after removing replica of: %v", err)
	}
	if n := dc.Exists(ctx, "bigzset", "int").Val(); n != 2 {
		t.Fatalf("data gone after removing replica of")
	}
	// And the source's writes stop arriving.
	sc.Set(ctx, "after-removal", "x", 0)
	if err := sc.Do(ctx, "WAIT", 0, 200).Err(); err != nil {
		t.Fatal(err)
	}
	if dc.Exists(ctx, "after-removal").Val() != 0 {
		t.Fatal("a write reached the destination after replica of was removed")
	}
}

func grep(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
