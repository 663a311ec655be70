package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/cluster"
)

// clusterShards is the number of masters of the clustered source of the
// cluster full-sync row.
const clusterShards = 3

// clusterFullSync is the full-sync row of a source that is a Redis Cluster
// of 3 masters holding the mixed dataset: the service replicates it shard
// by shard into one destination; the baseline is a native replica of each
// master, the three syncing at once (the time is the slowest one's, the
// cost the three's together).
func (b *runner) clusterFullSync(ctx context.Context) (FullSync, error) {
	keys := b.cfg.MixedKeys
	res := FullSync{Dataset: fmt.Sprintf("mixed types, %s keys, from a %d-shard Redis Cluster", human(keys), clusterShards), Unit: "keys", Items: int64(keys)}
	b.logf("full sync: %s: building the cluster", res.Dataset)
	masters := make([]*server, clusterShards)
	for i := range masters {
		s, err := b.startServer(ctx, fmt.Sprintf("fs-cluster-%d", i), append(sourceArgs, "--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000")...)
		if err != nil {
			return res, err
		}
		defer b.stopServer(s)
		masters[i] = s
	}
	// Master i holds slots [i*Slots/n, (i+1)*Slots/n).
	owner := func(slot int) int {
		for i := range clusterShards {
			if slot < (i+1)*cluster.Slots/clusterShards {
				return i
			}
		}
		return clusterShards - 1
	}
	for i, m := range masters {
		from, to := i*cluster.Slots/clusterShards, (i+1)*cluster.Slots/clusterShards-1
		if owner(from) != i || owner(to) != i {
			return res, fmt.Errorf("slot split: slots %d-%d are not all of master %d", from, to, i)
		}
		if err := m.c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", from, to).Err(); err != nil {
			return res, fmt.Errorf("CLUSTER ADDSLOTSRANGE: %w", err)
		}
		if i > 0 {
			if err := m.c.ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(masters[0].port)).Err(); err != nil {
				return res, fmt.Errorf("CLUSTER MEET: %w", err)
			}
		}
	}
	deadline := time.Now().Add(time.Minute)
	for _, m := range masters {
		for {
			ci, err := m.c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(ci, "cluster_state:ok") && strings.Contains(ci, "cluster_known_nodes:"+strconv.Itoa(clusterShards)) {
				break
			}
			if time.Now().After(deadline) {
				return res, fmt.Errorf("the cluster is not ok after a minute: %v %s", err, ci)
			}
			time.Sleep(50 * time.Millisecond) // poll interval
		}
	}

	// The mixed dataset, each key sent to the master of its slot: every
	// loader runs the whole generator and keeps its master's keys.
	began := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, clusterShards)
	counts := make([]int64, clusterShards)
	for i, m := range masters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			counts[i], errs[i] = load(ctx, m.addr(), m.password, 1, func(int) gen {
				return slotFilter(mixedGen(0, keys), func(slot int) bool { return owner(slot) == i })
			})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("load the cluster: %w", err)
	}
	var total int64
	for i, m := range masters {
		res.Elements += counts[i]
		n, err := m.c.DBSize(ctx).Result()
		if err != nil {
			return res, err
		}
		total += n
		mem, _ := info(ctx, m.c, "memory")
		res.UsedMemory += infoInt(mem, "used_memory")
	}
	res.Keys = total
	b.logf("full sync: %s: the cluster holds %d keys, %s, built in %s", res.Dataset, total, mib(res.UsedMemory), time.Since(began).Round(time.Millisecond))

	memLimit := max(res.UsedMemory*3, 256<<20)
	for run := range b.cfg.Repeat {
		sec, use, err := b.nativeClusterSync(ctx, masters)
		if err != nil {
			return res, err
		}
		res.NativeSeconds = append(res.NativeSeconds, sec)
		res.NativeReplica = use
		b.logf("full sync: %s: native replicas of the %d masters in sync in %.2fs", res.Dataset, clusterShards, sec)

		sec, svc, dst, rdb, check, err := b.oursClusterSync(ctx, masters[0], total, memLimit, run)
		if err != nil {
			return res, err
		}
		res.OursSeconds = append(res.OursSeconds, sec)
		res.RDBBytes, res.Destination = rdb, dst
		peak := max(res.Service.PeakRSS, svc.PeakRSS)
		res.Service = svc
		res.Service.PeakRSS = peak
		res.Checked = check
		b.logf("full sync: %s: redis-replicad in sync in %.2fs (%s)", res.Dataset, sec, check)
	}
	rate := func(v []float64) Rate {
		s := median(v)
		return Rate{Seconds: s, ItemsPerSec: float64(res.Items) / s, MBPerSec: float64(res.RDBBytes) / s / 1e6}
	}
	res.Ours, res.Native = rate(res.OursSeconds), rate(res.NativeSeconds)
	res.Ratio = res.Native.Seconds / res.Ours.Seconds
	return res, nil
}

// slotFilter passes on the commands of g whose key's slot keep says yes
// to. Each call of g appends the commands of one key.
func slotFilter(g gen, keep func(slot int) bool) gen {
	var scratch []byte
	return func(dst []byte) ([]byte, int) {
		for {
			var n int
			scratch, n = g(scratch[:0])
			if n == 0 {
				return dst, 0
			}
			if key, ok := firstKey(scratch); ok && keep(cluster.KeySlot(key)) {
				return append(dst, scratch...), n
			}
		}
	}
}

// firstKey is the second argument of the first RESP command in b.
func firstKey(b []byte) ([]byte, bool) {
	line := func() ([]byte, bool) {
		i := bytes.Index(b, []byte("\r\n"))
		if i < 0 {
			return nil, false
		}
		l := b[:i]
		b = b[i+2:]
		return l, true
	}
	bulk := func() ([]byte, bool) {
		l, ok := line()
		if !ok || len(l) < 2 || l[0] != '$' {
			return nil, false
		}
		n, err := strconv.Atoi(string(l[1:]))
		if err != nil || n < 0 || n+2 > len(b) {
			return nil, false
		}
		v := b[:n]
		b = b[n+2:]
		return v, true
	}
	// *<n>\r\n $<len>\r\n <name>\r\n $<len>\r\n <key>\r\n
	if l, ok := line(); !ok || len(l) == 0 || l[0] != '*' {
		return nil, false
	}
	if _, ok := bulk(); !ok {
		return nil, false
	}
	return bulk()
}

// nativeClusterSync makes a native replica of each master, all at once,
// and returns the time until the last is in sync.
func (b *runner) nativeClusterSync(ctx context.Context, masters []*server) (float64, usage, error) {
	replicas := make([]*server, len(masters))
	for i := range masters {
		r, err := b.startServer(ctx, fmt.Sprintf("fs-cluster-native-%d", i), replicaArgs...)
		if err != nil {
			return 0, usage{}, err
		}
		defer b.stopServer(r)
		replicas[i] = r
	}
	// The cost is the three replicas' together: CPU and I/O summed, and
	// the sum of their peaks.
	meters := make([]*meter, len(replicas))
	for i, r := range replicas {
		meters[i] = startMeter(r.proc.pid())
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	durs := make([]time.Duration, len(masters))
	errs := make([]error, len(masters))
	for i := range masters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			durs[i], errs[i] = replicaOf(sctx, replicas[i], masters[i], 10*time.Millisecond)
		}()
	}
	wg.Wait()
	var use usage
	for _, m := range meters {
		u := m.stop()
		use.PeakRSS += u.PeakRSS
		use.CPUSeconds += u.CPUSeconds
		use.ReadBytes += u.ReadBytes
		use.WriteBytes += u.WriteBytes
	}
	if err := errors.Join(errs...); err != nil {
		return 0, use, err
	}
	slowest := time.Duration(0)
	for i, r := range replicas {
		slowest = max(slowest, durs[i])
		want, _ := masters[i].c.DBSize(ctx).Result()
		if got, err := r.c.DBSize(ctx).Result(); err != nil || got != want {
			return 0, use, fmt.Errorf("native replica of master %d holds %d keys, want %d (%v)", i, got, want, err)
		}
	}
	return slowest.Seconds(), use, nil
}

// oursClusterSync makes a new destination a Replica Of the cluster, named
// by one of its masters, and returns the time until it is in sync.
func (b *runner) oursClusterSync(ctx context.Context, node *server, keys, memLimit int64, run int) (float64, usage, usage, int64, string, error) {
	db, err := b.svc.create(ctx, api.CreateDatabaseRequest{Name: fmt.Sprintf("fullsync-cluster-%d", run), MemorySize: memLimit})
	if err != nil {
		return 0, usage{}, usage{}, 0, "", err
	}
	defer b.svc.delete(context.Background(), db.UID)
	dm := startMeter(childListening(b.svc.pid(), db.Port))
	sm := startMeter(b.svc.pid())
	b.svc.profile(ctx, "start", fmt.Sprintf("fullsync-cluster-%d", run))
	began := time.Now()
	sources := []api.ReplicaSource{{URI: node.url()}}
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
	if n := len(db.ReplicaSources[0].Shards); n != clusterShards {
		return 0, svc, dst, 0, "", fmt.Errorf("the source has %d shards in its status, want %d", n, clusterShards)
	}
	c := dbClient(db)
	defer c.Close()
	n, err := c.DBSize(ctx).Result()
	if err != nil {
		return 0, svc, dst, 0, "", err
	}
	if n != keys {
		return 0, svc, dst, 0, "", fmt.Errorf("the destination holds %d keys, the cluster %d", n, keys)
	}
	return d.Seconds(), svc, dst, db.ReplicaSources[0].RDBSize, fmt.Sprintf("%d keys, %d shards", n, clusterShards), nil
}
