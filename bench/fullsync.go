package bench

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

// FullSync is row 1 for one dataset.
type FullSync struct {
	Dataset       string    `json:"dataset"`
	Keys          int64     `json:"keys"`
	Items         int64     `json:"items"`         // keys, or the members of the one sorted set
	Unit          string    `json:"unit"`          // what Items counts
	Elements      int64     `json:"load_commands"` // commands that built the source
	RDBBytes      int64     `json:"rdb_bytes"`
	UsedMemory    int64     `json:"source_used_memory_bytes"`
	OursSeconds   []float64 `json:"ours_seconds"`
	NativeSeconds []float64 `json:"native_seconds"`
	Ours          Rate      `json:"ours"`
	Native        Rate      `json:"native"`
	Ratio         float64   `json:"ratio"`          // native time / our time: our rate as a fraction of native's
	Service       usage     `json:"service"`        // the service process during our (last) run; peak over all runs
	Destination   usage     `json:"destination"`    // the destination's redis-server during our last run
	NativeReplica usage     `json:"native_replica"` // the native replica's redis-server during its last run
	Checked       string    `json:"checked"`
}

// Rate is the median of one side.
type Rate struct {
	Seconds     float64 `json:"seconds"`
	ItemsPerSec float64 `json:"items_per_sec"` // keys/s, or members/s
	MBPerSec    float64 `json:"mb_per_sec"`
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (b *runner) fullSyncs(ctx context.Context) error {
	if b.cfg.MixedKeys > 0 {
		r, err := b.fullSync(ctx, fmt.Sprintf("mixed types, %s keys", human(b.cfg.MixedKeys)), "keys", int64(b.cfg.MixedKeys), func(ctx context.Context, src *server) (int64, error) {
			parts := 2
			step := (b.cfg.MixedKeys + parts - 1) / parts
			return load(ctx, src.addr(), src.password, parts, func(i int) gen {
				return mixedGen(i*step, min((i+1)*step, b.cfg.MixedKeys))
			})
		})
		if err != nil {
			return fmt.Errorf("full sync of the mixed dataset: %w", err)
		}
		b.res.FullSync = append(b.res.FullSync, r)
	}
	if b.cfg.MixedKeys > 0 {
		r, err := b.clusterFullSync(ctx)
		if err != nil {
			return fmt.Errorf("full sync of the clustered source: %w", err)
		}
		b.res.FullSync = append(b.res.FullSync, r)
	}
	if b.cfg.ZSetMembers > 0 {
		r, err := b.fullSync(ctx, fmt.Sprintf("one sorted set of %s members", human(b.cfg.ZSetMembers)), "members", int64(b.cfg.ZSetMembers), func(ctx context.Context, src *server) (int64, error) {
			return load(ctx, src.addr(), src.password, 1, func(int) gen { return zsetGen("big:zset", b.cfg.ZSetMembers) })
		})
		if err != nil {
			return fmt.Errorf("full sync of the sorted set: %w", err)
		}
		b.res.FullSync = append(b.res.FullSync, r)
	}
	return nil
}

func (b *runner) fullSync(ctx context.Context, name, unit string, items int64, fill func(context.Context, *server) (int64, error)) (FullSync, error) {
	res := FullSync{Dataset: name, Unit: unit, Items: items}
	b.logf("full sync: %s: loading the source", name)
	src, err := b.startServer(ctx, "fs-source", sourceArgs...)
	if err != nil {
		return res, err
	}
	defer b.stopServer(src)
	began := time.Now()
	if res.Elements, err = fill(ctx, src); err != nil {
		return res, err
	}
	res.Keys, _ = src.c.DBSize(ctx).Result()
	mem, _ := info(ctx, src.c, "memory")
	res.UsedMemory = infoInt(mem, "used_memory")
	b.logf("full sync: %s: source holds %d keys, %s, built in %s", name, res.Keys, mib(res.UsedMemory), time.Since(began).Round(time.Millisecond))

	// The service's destinations have a memory limit; leave room.
	memLimit := max(res.UsedMemory*3, 256<<20)
	var checked []string
	for run := range b.cfg.Repeat {
		// Native first, then ours, each on a fresh destination.
		sec, use, check, err := b.nativeFullSync(ctx, src, res.Keys, run == 0)
		if err != nil {
			return res, err
		}
		res.NativeSeconds = append(res.NativeSeconds, sec)
		res.NativeReplica = use
		b.logf("full sync: %s: native replica in sync in %.2fs (%s)", name, sec, check)
		if run == 0 {
			checked = append(checked, "native: "+check)
		}

		sec, svc, dst, rdbBytes, check, err := b.oursFullSync(ctx, src, res.Keys, memLimit, run, run == 0, name)
		if err != nil {
			return res, err
		}
		res.OursSeconds = append(res.OursSeconds, sec)
		res.RDBBytes = rdbBytes
		res.Destination = dst
		peak := max(res.Service.PeakRSS, svc.PeakRSS)
		res.Service = svc
		res.Service.PeakRSS = peak
		b.logf("full sync: %s: redis-replicad in sync in %.2fs, service peak RSS %s, CPU %.1fs (%s)", name, sec, mib(svc.PeakRSS), svc.CPUSeconds, check)
		if run == 0 {
			checked = append(checked, "ours: "+check)
		}
	}
	rate := func(v []float64) Rate {
		s := median(v)
		return Rate{Seconds: s, ItemsPerSec: float64(res.Items) / s, MBPerSec: float64(res.RDBBytes) / s / 1e6}
	}
	res.Ours, res.Native = rate(res.OursSeconds), rate(res.NativeSeconds)
	res.Ratio = res.Native.Seconds / res.Ours.Seconds
	res.Checked = fmt.Sprint(checked)
	return res, nil
}

func (b *runner) nativeFullSync(ctx context.Context, src *server, keys int64, check bool) (float64, usage, string, error) {
	r, err := b.startServer(ctx, "fs-native", replicaArgs...)
	if err != nil {
		return 0, usage{}, "", err
	}
	defer b.stopServer(r)
	m := startMeter(r.proc.pid())
	sctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	d, err := replicaOf(sctx, r, src, 10*time.Millisecond)
	use := m.stop()
	if err != nil {
		return 0, use, "", err
	}
	verdict, err := compare(ctx, r.c, src.c, keys, check)
	return d.Seconds(), use, verdict, err
}

func (b *runner) oursFullSync(ctx context.Context, src *server, keys, memLimit int64, run int, check bool, name string) (float64, usage, usage, int64, string, error) {
	db, err := b.svc.create(ctx, api.CreateDatabaseRequest{Name: fmt.Sprintf("fullsync-%d-%d", len(b.res.FullSync), run), MemorySize: memLimit})
	if err != nil {
		return 0, usage{}, usage{}, 0, "", err
	}
	defer b.svc.delete(context.Background(), db.UID)
	dm := startMeter(childListening(b.svc.pid(), db.Port))
	sm := startMeter(b.svc.pid())
	b.svc.profile(ctx, "start", fmt.Sprintf("fullsync-%d-%d", len(b.res.FullSync), run))
	began := time.Now()
	sources := []api.ReplicaSource{{URI: src.url()}}
	if _, err := b.svc.update(ctx, db.UID, api.UpdateDatabaseRequest{ReplicaSources: &sources}); err != nil {
		return 0, usage{}, usage{}, 0, "", err
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	db, err = b.svc.waitInSync(sctx, db.UID, 10*time.Millisecond)
	d := time.Since(began)
	b.svc.profile(ctx, "stop", "")
	svc, dst := sm.stop(), dm.stop()
	if err != nil {
		return 0, svc, dst, 0, "", err
	}
	c := dbClient(db)
	defer c.Close()
	verdict, err := compare(ctx, c, src.c, keys, check)
	return d.Seconds(), svc, dst, db.ReplicaSources[0].RDBSize, verdict, err
}

// compare checks that dst holds as many keys as src and, when sample is
// set, that 200 random keys of src read the same at dst.
func compare(ctx context.Context, dst, src *redis.Client, keys int64, sample bool) (string, error) {
	n, err := dst.DBSize(ctx).Result()
	if err != nil {
		return "", err
	}
	if n != keys {
		return "", fmt.Errorf("the destination holds %d keys, the source %d", n, keys)
	}
	if !sample {
		return fmt.Sprintf("%d keys", n), nil
	}
	seen := map[string]bool{}
	for range 200 {
		k, err := src.RandomKey(ctx).Result()
		if err != nil {
			return "", err
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		a, err1 := redistest.Read(ctx, src, k)
		z, err2 := redistest.Read(ctx, dst, k)
		if err1 != nil || err2 != nil {
			return "", fmt.Errorf("read %s: %v %v", k, err1, err2)
		}
		if a.Type != z.Type || a.Value != z.Value || math.Abs(float64(a.PTTL-z.PTTL)) > 60_000 {
			return "", fmt.Errorf("key %s differs: source %s %.80q ttl %d, destination %s %.80q ttl %d", k, a.Type, a.Value, a.PTTL, z.Type, z.Value, z.PTTL)
		}
	}
	return fmt.Sprintf("%d keys, %d sampled keys equal", n, len(seen)), nil
}
