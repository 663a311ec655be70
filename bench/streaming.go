package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/api"
)

// Streaming is row 2: a pipelined writer saturates the source.
type Streaming struct {
	Seconds float64    `json:"seconds"`
	Native  StreamSide `json:"native"`
	Ours    StreamSide `json:"ours"`
	Ratio   float64    `json:"ratio"` // our applied rate / native's applied rate

	// The same writer paced at 0.8 of what the source absorbed in the
	// saturating run of ours: does the lag stay bounded?
	SustainedRate   float64    `json:"sustained_cmds_per_sec"`
	SustainedNative StreamSide `json:"sustained_native"`
	SustainedOurs   StreamSide `json:"sustained_ours"`

	// The saturating writer with a destination of 3 shards (a Redis
	// Cluster the service runs), compared with Native.
	Sharded      StreamSide `json:"sharded"`
	ShardedRatio float64    `json:"sharded_ratio"`
}

// StreamSide is one side's figures. Rates are commands per second over the
// load; a command's bytes are the stream's bytes per command at the source.
type StreamSide struct {
	Commands      int64   `json:"commands"`             // written during the load
	SourceRate    float64 `json:"source_cmds_per_sec"`  // what the source absorbed
	AppliedRate   float64 `json:"applied_cmds_per_sec"` // what reached the destination
	Fraction      float64 `json:"applied_fraction"`     // applied / absorbed
	BytesPerCmd   float64 `json:"stream_bytes_per_cmd"`
	MaxBacklog    int64   `json:"max_backlog_bytes"`  // source offset - applied offset
	MaxBehind     float64 `json:"max_behind_seconds"` // max backlog at the source's rate
	Growing       bool    `json:"backlog_growing"`
	Trend         string  `json:"backlog_trend"`
	CatchUp       float64 `json:"catch_up_seconds"` // after the writer stopped
	FullSyncs     int     `json:"full_resyncs"`     // the source dropped the link
	Process       usage   `json:"process"`          // the service (ours) or the native replica
	Destination   usage   `json:"destination,omitempty"`
	WireInPerCmd  float64 `json:"wire_in_bytes_per_cmd,omitempty"`  // service: bytes read (source + destination replies)
	WireOutPerCmd float64 `json:"wire_out_bytes_per_cmd,omitempty"` // service: bytes written (to the destination, acks)
	AvgBatch      float64 `json:"avg_batch_cmds,omitempty"`         // service: commands per batch (MULTI/EXEC)
}

// Lag is row 3: probes at half load, then the same while the destination
// rewrites its AOF.
type Lag struct {
	Rate          float64 `json:"cmds_per_sec"`
	Native        LagSide `json:"native"`
	Ours          LagSide `json:"ours"`
	RewriteNative LagSide `json:"during_rewrite_native"`
	RewriteOurs   LagSide `json:"during_rewrite_ours"`
	// RewriteThreshold is the AOF growth past which both rewrite in the
	// rewrite run: half the memory_size the service is given then.
	RewriteThreshold int64 `json:"rewrite_threshold_bytes"`
	// RewriteSkipped says why the rewrite run was not measured (its AOF
	// had not grown enough since the service last rewrote it).
	RewriteSkipped string `json:"rewrite_skipped,omitempty"`
}

// errNoRewriteDue: the destination's AOF has not grown enough for a
// rewrite to be due.
var errNoRewriteDue = errors.New("no rewrite is due")

// rewriteThreshold picks an AOF growth threshold that the destination c is
// already past, and that leaves it a memory_size (twice the threshold) 32
// MiB above what it uses: the load's key space is bounded, so what it uses
// stays about the same during the row.
func rewriteThreshold(ctx context.Context, c *redis.Client) (int64, error) {
	m, err := info(ctx, c, "persistence", "memory")
	if err != nil {
		return 0, err
	}
	num := func(k string) int64 { return infoInt(m, k) }
	growth, used := num("aof_current_size")-num("aof_base_size"), num("used_memory")
	threshold := max(used/2+16<<20, 64<<20) // the service's floor is 64 MiB
	if growth <= threshold || growth <= num("aof_base_size") {
		return 0, fmt.Errorf("the AOF grew by %d bytes only since its last rewrite (base %d, used memory %d): %w", growth, num("aof_base_size"), used, errNoRewriteDue)
	}
	return threshold, nil
}

type LagSide struct {
	// CPU seconds per million commands at this rate: the service and its
	// redis-server (ours), or the replica (native).
	ServiceCPUPerM float64 `json:"service_cpu_s_per_m_cmds,omitempty"`
	RedisCPUPerM   float64 `json:"redis_cpu_s_per_m_cmds"`
	Probes         int     `json:"probes"`
	Missing        int     `json:"missing"`
	ForkProbes     int     `json:"probes_during_fork"` // sent while the destination's fork child ran
	Achieved       float64 `json:"achieved_cmds_per_sec"`
	P50            float64 `json:"p50_ms"`
	P99            float64 `json:"p99_ms"`
	Max            float64 `json:"max_ms"`
	AvgBatch       float64 `json:"avg_batch_cmds,omitempty"` // service: commands per batch (MULTI/EXEC)
	// Runs pooled into this side (see poolLag), with each run's own p99
	// and CPU per million commands (service and redis-server together).
	Runs       int       `json:"runs,omitempty"`
	RunP99     []float64 `json:"run_p99_ms,omitempty"`
	RunCPUPerM []float64 `json:"run_cpu_s_per_m_cmds,omitempty"`

	lags                 []float64 // every arrived probe's lag, sorted
	cmds                 float64   // commands the source absorbed
	serviceCPU, redisCPU float64   // CPU seconds
}

// poolLag merges runs of one side: percentiles of all their probes, CPU
// over all their commands. Pooling, rather than a median of the runs'
// p99s, lets a stall of one run weigh as much as its probes do.
func poolLag(runs []LagSide) LagSide {
	var p LagSide
	var batches float64
	for _, r := range runs {
		p.Probes += r.Probes
		p.Missing += r.Missing
		p.ForkProbes += r.ForkProbes
		p.Achieved += r.Achieved / float64(len(runs))
		batches += r.AvgBatch / float64(len(runs))
		p.lags = append(p.lags, r.lags...)
		p.cmds += r.cmds
		p.serviceCPU += r.serviceCPU
		p.redisCPU += r.redisCPU
		p.RunP99 = append(p.RunP99, r.P99)
		p.RunCPUPerM = append(p.RunCPUPerM, r.ServiceCPUPerM+r.RedisCPUPerM)
	}
	p.Runs, p.AvgBatch = len(runs), batches
	if p.cmds > 0 {
		p.ServiceCPUPerM, p.RedisCPUPerM = p.serviceCPU/p.cmds*1e6, p.redisCPU/p.cmds*1e6
	}
	sort.Float64s(p.lags)
	p.P50, p.P99, p.Max = percentiles(p.lags)
	return p
}

// percentiles are the p50, p99 and max of sorted lags.
func percentiles(lags []float64) (p50, p99, maxLag float64) {
	if len(lags) == 0 {
		return 0, 0, 0
	}
	pct := func(p float64) float64 { return lags[min(len(lags)-1, int(p*float64(len(lags))))] }
	return pct(0.50), pct(0.99), lags[len(lags)-1]
}

type sample struct {
	at       time.Duration
	src, dst int64
}

func (b *runner) streaming(ctx context.Context) error {
	src, err := b.startServer(ctx, "stream-source", sourceArgs...)
	if err != nil {
		return err
	}
	defer b.stopServer(src)
	// Some data first, so that the key space exists at both sides.
	if _, err := load(ctx, src.addr(), src.password, 1, func(int) gen {
		g, n := streamGen(1, b.cfg.StreamKeys), 0
		return func(dst []byte) ([]byte, int) {
			if n >= b.cfg.StreamKeys {
				return dst, 0
			}
			n++
			return g(dst)
		}
	}); err != nil {
		return err
	}
	dur := time.Duration(b.cfg.StreamSeconds) * time.Second
	res := Streaming{Seconds: dur.Seconds()}

	// Native.
	b.logf("streaming: native replica under a saturating writer for %s", dur)
	nat, err := b.freshNative(ctx, "stream-native", src)
	if err != nil {
		return err
	}
	res.Native, err = b.saturate(ctx, src, dur, 0, nat.proc.pid(), 0, func(ctx context.Context) (int64, int, error) {
		off, err := replOffset(ctx, nat.c)
		return off, 0, err
	}, nat.c)
	b.stopServer(nat)
	if err != nil {
		return fmt.Errorf("native: %w", err)
	}
	b.logf("streaming: native: source %s cmd/s, applied %s cmd/s (%.2f), max behind %.3fs, %s", kilo(res.Native.SourceRate), kilo(res.Native.AppliedRate), res.Native.Fraction, res.Native.MaxBehind, res.Native.Trend)

	// Ours.
	b.logf("streaming: redis-replicad under a saturating writer for %s", dur)
	db, dc, err := b.freshDestination(ctx, "streaming", src)
	if err != nil {
		return err
	}
	// drop deletes the current destination, once (deferred: the last).
	dropped := false
	drop := func() {
		if !dropped {
			dc.Close()
			_ = b.svc.delete(context.Background(), db.UID)
			dropped = true
		}
	}
	defer drop()
	b.svc.profile(ctx, "start", "streaming")
	m0, _ := b.svc.destMetrics(ctx, db.UID)
	ourApplied := func(ctx context.Context) (int64, int, error) {
		m, err := b.svc.destMetrics(ctx, db.UID)
		return int64(m.applied), int(m.fullSyncs), err
	}
	res.Ours, err = b.saturate(ctx, src, dur, 0, b.svc.pid(), childListening(b.svc.pid(), db.Port), ourApplied, dc)
	b.svc.profile(ctx, "stop", "")
	if err != nil {
		return fmt.Errorf("ours: %w", err)
	}
	if m1, err := b.svc.destMetrics(ctx, db.UID); err == nil && m1.batches > m0.batches {
		res.Ours.AvgBatch = (m1.cmdsApplied - m0.cmdsApplied) / (m1.batches - m0.batches)
	}
	res.Ratio = res.Ours.AppliedRate / res.Native.AppliedRate
	b.res.Streaming = &res
	b.logf("streaming: ours: source %s cmd/s, applied %s cmd/s (%.2f), max behind %.3fs, %s; service CPU %.1fs, peak RSS %s, %.0f commands per batch", kilo(res.Ours.SourceRate), kilo(res.Ours.AppliedRate), res.Ours.Fraction, res.Ours.MaxBehind, res.Ours.Trend, res.Ours.Process.CPUSeconds, mib(res.Ours.Process.PeakRSS), res.Ours.AvgBatch)

	// Sustained: 0.8 of what the source absorbed while we replicated.
	res.SustainedRate = 0.8 * res.Ours.SourceRate
	b.logf("streaming: redis-replicad at %s cmd/s (0.8 of the source's) for %s", kilo(res.SustainedRate), dur)
	res.SustainedOurs, err = b.saturate(ctx, src, dur, res.SustainedRate, b.svc.pid(), childListening(b.svc.pid(), db.Port), ourApplied, dc)
	if err != nil {
		return fmt.Errorf("ours, sustained: %w", err)
	}
	b.logf("streaming: ours sustained: applied %s cmd/s (%.2f), max behind %.3fs, %s", kilo(res.SustainedOurs.AppliedRate), res.SustainedOurs.Fraction, res.SustainedOurs.MaxBehind, res.SustainedOurs.Trend)

	drop()

	// Into a sharded destination, alone with the source.
	b.logf("streaming: redis-replicad into a 3-shard destination under a saturating writer for %s", dur)
	if err := b.streamSharded(ctx, src, dur, &res); err != nil {
		return fmt.Errorf("ours, sharded: %w", err)
	}
	b.logf("streaming: ours, 3 shards: source %s cmd/s, applied %s cmd/s (%.2f), max behind %.3fs, %s", kilo(res.Sharded.SourceRate), kilo(res.Sharded.AppliedRate), res.Sharded.Fraction, res.Sharded.MaxBehind, res.Sharded.Trend)

	// The native replica at the sustained rate, now that ours no longer
	// replicates from the source.
	b.logf("streaming: native replica at %s cmd/s (0.8 of the source's) for %s", kilo(res.SustainedRate), dur)
	if nat, err = b.freshNative(ctx, "stream-native-sustained", src); err != nil {
		return err
	}
	res.SustainedNative, err = b.saturate(ctx, src, dur, res.SustainedRate, nat.proc.pid(), 0, func(ctx context.Context) (int64, int, error) {
		off, err := replOffset(ctx, nat.c)
		return off, 0, err
	}, nat.c)
	b.stopServer(nat)
	if err != nil {
		return fmt.Errorf("native, sustained: %w", err)
	}
	b.logf("streaming: native sustained: applied %s cmd/s (%.2f), max behind %.3fs, %s", kilo(res.SustainedNative.AppliedRate), res.SustainedNative.Fraction, res.SustainedNative.MaxBehind, res.SustainedNative.Trend)

	// Lag at half of what the source absorbed while we replicated.
	lag := Lag{Rate: res.Ours.SourceRate / 2}
	if b.cfg.LagRate > 0 {
		lag.Rate = float64(b.cfg.LagRate)
	}
	err = b.lagRows(ctx, src, &lag)
	if lag.Ours.Runs > 0 && lag.Native.Runs > 0 {
		b.res.Lag = &lag
	}
	return err
}

// lagRows measures row 3 (and the CPU at half load): LagRuns runs of each
// side, ours and the native replica alternating, each into a fresh
// destination (the database of the saturating runs carries their AOF
// growth, and at full scale its scheduler rewrote the AOF in the middle of
// a lag run), so that both sides meet the shared machine in the same states;
// the runs of a side are pooled. After the last runs, the rewrite runs.
func (b *runner) lagRows(ctx context.Context, src *server, lag *Lag) error {
	ldur := time.Duration(b.cfg.LagSeconds) * time.Second
	var ours, native []LagSide
	pool := func() {
		if len(ours) > 0 {
			lag.Ours = poolLag(ours)
		}
		if len(native) > 0 {
			lag.Native = poolLag(native)
		}
	}
	defer pool()
	for run := range b.cfg.LagRuns {
		last := run == b.cfg.LagRuns-1
		side, err := b.lagOurs(ctx, src, lag, run, ldur, last)
		if err != nil {
			return err
		}
		ours = append(ours, side)
		if side, err = b.lagNative(ctx, src, lag, run, ldur, last); err != nil {
			return err
		}
		native = append(native, side)
	}
	return nil
}

// lagOurs is one lag run of ours into a fresh database, and with rewrite
// the rewrite run after it.
func (b *runner) lagOurs(ctx context.Context, src *server, lag *Lag, run int, ldur time.Duration, rewrite bool) (LagSide, error) {
	db, dc, err := b.freshDestination(ctx, fmt.Sprintf("lag-%d", run), src)
	if err != nil {
		return LagSide{}, err
	}
	defer func() {
		dc.Close()
		_ = b.svc.delete(context.Background(), db.UID)
	}()
	b.logf("lag: redis-replicad at %s cmd/s for %s (run %d of %d)", kilo(lag.Rate), ldur, run+1, b.cfg.LagRuns)
	b.svc.profile(ctx, "start", fmt.Sprintf("lag-%d", run))
	redisPid := childListening(b.svc.pid(), db.Port)
	m0, _ := b.svc.destMetrics(ctx, db.UID)
	side, err := b.probeLag(ctx, fmt.Sprintf("ours-%d", run), src, dc, b.svc.pid(), redisPid, lag.Rate, ldur, nil)
	b.svc.profile(ctx, "stop", "")
	if err != nil {
		return side, fmt.Errorf("lag, ours: %w", err)
	}
	if m1, err := b.svc.destMetrics(ctx, db.UID); err == nil && m1.batches > m0.batches {
		side.AvgBatch = (m1.cmdsApplied - m0.cmdsApplied) / (m1.batches - m0.batches)
	}
	b.logf("lag: ours: p50 %.2f ms, p99 %.2f ms, max %.2f ms; CPU per M commands: service %.2f s, its redis-server %.2f s; %.0f commands per batch", side.P50, side.P99, side.Max, side.ServiceCPUPerM, side.RedisCPUPerM, side.AvgBatch)
	if !rewrite {
		return side, nil
	}
	// The same with an AOF rewrite of the destination: a smaller
	// memory_size lowers the service's threshold below what the AOF has
	// grown by, so its scheduler starts one. At a low rate the lag run may
	// not have grown it enough: the load goes on until it has.
	if err := b.growAOF(ctx, src, dc, lag.Rate, time.Minute); err != nil {
		return side, fmt.Errorf("grow the AOF for the rewrite run: %w", err)
	}
	rdur := max(8*time.Second, ldur/2)
	b.logf("lag: redis-replicad at %s cmd/s for %s, with an AOF rewrite of the destination", kilo(lag.Rate), rdur)
	lag.RewriteOurs, err = b.probeLag(ctx, "ours-rewrite", src, dc, b.svc.pid(), redisPid, lag.Rate, rdur, func(ctx context.Context) error {
		threshold, err := rewriteThreshold(ctx, dc)
		if err != nil {
			return err
		}
		lag.RewriteThreshold = threshold
		mem := 2 * threshold
		_, err = b.svc.update(ctx, db.UID, api.UpdateDatabaseRequest{MemorySize: &mem})
		return err
	})
	switch {
	case errors.Is(err, errNoRewriteDue):
		// The service rewrote the AOF shortly before (its own
		// scheduler, during the longer runs of a full-scale bench).
		lag.RewriteOurs, lag.RewriteSkipped = LagSide{}, err.Error()
		b.logf("lag: the rewrite row is not measured: %v", err)
	case err != nil:
		return side, fmt.Errorf("lag during a rewrite, ours: %w", err)
	default:
		b.logf("lag: ours during a rewrite: p50 %.2f ms, p99 %.2f ms, max %.2f ms; %d probes while the fork ran", lag.RewriteOurs.P50, lag.RewriteOurs.P99, lag.RewriteOurs.Max, lag.RewriteOurs.ForkProbes)
	}
	return side, nil
}

// growAOF keeps a paced load on src until dst's AOF has grown enough for
// rewriteThreshold, or for at most limit (the rewrite run then says so).
func (b *runner) growAOF(ctx context.Context, src *server, dst *redis.Client, rate float64, limit time.Duration) error {
	due := func() bool {
		_, err := rewriteThreshold(ctx, dst)
		return !errors.Is(err, errNoRewriteDue)
	}
	if due() {
		return nil
	}
	p, err := dialPipe(ctx, src.addr(), src.password, 8192)
	if err != nil {
		return err
	}
	defer p.close()
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- p.run(ctx, streamGen(uint64(time.Now().UnixNano()), b.cfg.StreamKeys), rate, stop) }()
	deadline := time.Now().Add(limit)
	for !due() && time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	close(stop)
	if err := <-done; err != nil {
		return err
	}
	return ctx.Err()
}

// lagNative is one lag run of a fresh native replica, and with rewrite
// (unless ours skipped its rewrite run) the rewrite run after it.
func (b *runner) lagNative(ctx context.Context, src *server, lag *Lag, run int, ldur time.Duration, rewrite bool) (LagSide, error) {
	b.logf("lag: native replica at %s cmd/s for %s (run %d of %d)", kilo(lag.Rate), ldur, run+1, b.cfg.LagRuns)
	nat, err := b.freshNative(ctx, fmt.Sprintf("lag-native-%d", run), src)
	if err != nil {
		return LagSide{}, err
	}
	defer b.stopServer(nat)
	side, err := b.probeLag(ctx, fmt.Sprintf("native-%d", run), src, nat.c, 0, nat.proc.pid(), lag.Rate, ldur, nil)
	if err != nil {
		return side, fmt.Errorf("lag, native: %w", err)
	}
	b.logf("lag: native: p50 %.2f ms, p99 %.2f ms, max %.2f ms; CPU per M commands: replica %.2f s", side.P50, side.P99, side.Max, side.RedisCPUPerM)
	if !rewrite || lag.RewriteSkipped != "" {
		return side, nil
	}
	rdur := max(8*time.Second, ldur/2)
	b.logf("lag: native replica at %s cmd/s for %s, with an AOF rewrite", kilo(lag.Rate), rdur)
	lag.RewriteNative, err = b.probeLag(ctx, "native-rewrite", src, nat.c, 0, nat.proc.pid(), lag.Rate, rdur, func(ctx context.Context) error {
		// Redis's own trigger, with the threshold the service used.
		return nat.c.ConfigSet(ctx, "auto-aof-rewrite-min-size", strconv.FormatInt(lag.RewriteThreshold, 10)).Err()
	})
	if err != nil {
		return side, fmt.Errorf("lag during a rewrite, native: %w", err)
	}
	b.logf("lag: native during a rewrite: p50 %.2f ms, p99 %.2f ms, max %.2f ms; %d probes while the fork ran", lag.RewriteNative.P50, lag.RewriteNative.P99, lag.RewriteNative.Max, lag.RewriteNative.ForkProbes)
	return side, nil
}

// streamSharded measures the saturating writer with a destination of 3
// shards.
func (b *runner) streamSharded(ctx context.Context, src *server, dur time.Duration, res *Streaming) error {
	db, err := b.svc.create(ctx, api.CreateDatabaseRequest{Name: "streaming-sharded", MemorySize: 3 << 30, ShardsCount: 3,
		ReplicaSources: []api.ReplicaSource{{URI: src.url()}}})
	if err != nil {
		return err
	}
	defer b.svc.delete(context.Background(), db.UID)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	db, err = b.svc.waitInSync(wctx, db.UID, 20*time.Millisecond)
	cancel()
	if err != nil {
		return err
	}
	dc := dbClient(db)
	defer dc.Close()
	var masters []*redis.Client
	for _, ep := range db.Endpoints {
		if ep.Role == "master" {
			c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", ep.Port), Password: db.AuthenticationRedisPass, MaxRetries: -1, ReadTimeout: time.Minute})
			defer c.Close()
			masters = append(masters, c)
		}
	}
	// The application's keys: every master's, without the service's
	// checkpoint keys (replicad:{tag}:..., database 0 of a cluster).
	keys := func(ctx context.Context) *redis.IntCmd {
		cmd := redis.NewIntCmd(ctx)
		var n int64
		for _, c := range masters {
			size, err := c.DBSize(ctx).Result()
			if err != nil {
				cmd.SetErr(err)
				return cmd
			}
			n += size
			iter := c.Scan(ctx, 0, "replicad:*", 10000).Iterator()
			for iter.Next(ctx) {
				n--
			}
			if err := iter.Err(); err != nil {
				cmd.SetErr(err)
				return cmd
			}
		}
		cmd.SetVal(n)
		return cmd
	}
	res.Sharded, err = b.saturateInto(ctx, src, dur, 0, b.svc.pid(), 0, func(ctx context.Context) (int64, int, error) {
		m, err := b.svc.destMetrics(ctx, db.UID)
		return int64(m.applied), int(m.fullSyncs), err
	}, dc, keys)
	if err == nil && res.Native.AppliedRate > 0 {
		res.ShardedRatio = res.Sharded.AppliedRate / res.Native.AppliedRate
	}
	return err
}

// saturate runs the saturating writer against src for dur while sampling
// the source's offset and the replica's applied offset, then waits for the
// replica to catch up.
//
// rate, unless 0, paces the writer at that many commands per second.
func (b *runner) saturate(ctx context.Context, src *server, dur time.Duration, rate float64, pid, destPid int,
	applied func(context.Context) (int64, int, error), dst *redis.Client) (StreamSide, error) {
	return b.saturateInto(ctx, src, dur, rate, pid, destPid, applied, dst, dst.DBSize)
}

// saturateInto is saturate with the destination's key count given by
// dstKeys (a sharded destination's is the sum over its masters).
func (b *runner) saturateInto(ctx context.Context, src *server, dur time.Duration, rate float64, pid, destPid int,
	applied func(context.Context) (int64, int, error), dst *redis.Client, dstKeys func(context.Context) *redis.IntCmd) (StreamSide, error) {
	var side StreamSide
	quiesce(ctx, src.c, dst)
	p, err := dialPipe(ctx, src.addr(), src.password, 8192)
	if err != nil {
		return side, err
	}
	defer p.close()
	// Start from a replica that has applied everything, with an applied
	// offset that has moved since its load.
	if err := src.c.Set(ctx, "bench:settle", time.Now().UnixNano(), 0).Err(); err != nil {
		return side, err
	}
	src0, err := replOffset(ctx, src.c)
	if err != nil {
		return side, err
	}
	var dst0 int64
	var fs0 int
	settle, cancelSettle := context.WithTimeout(ctx, time.Minute)
	defer cancelSettle()
	for {
		dst0, fs0, err = applied(settle)
		if err == nil && dst0 >= src0 {
			break
		}
		if settle.Err() != nil {
			return side, fmt.Errorf("the replica does not reach the source's offset %d before the load (at %d): %v", src0, dst0, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	src0, dst0 = min(src0, dst0), min(src0, dst0)
	pm, dm := startMeter(pid), startMeter(destPid)
	stop := make(chan struct{})
	var samples []sample
	var sampleErr error
	var wg sync.WaitGroup
	began := time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			so, err1 := replOffset(ctx, src.c)
			do, _, err2 := applied(ctx)
			if err1 != nil || err2 != nil {
				sampleErr = fmt.Errorf("sample offsets: %v %v", err1, err2)
				continue
			}
			samples = append(samples, sample{time.Since(began), so - src0, do - dst0})
		}
	}()
	timer := time.AfterFunc(dur, func() { close(stop) })
	defer timer.Stop()
	err = p.run(ctx, streamGen(uint64(time.Now().UnixNano()), b.cfg.StreamKeys), rate, stop)
	elapsed := time.Since(began)
	wg.Wait()
	if err != nil {
		return side, err
	}
	if err := p.errSummary(); err != nil {
		return side, err
	}
	cmds := p.acked.Load()
	src1, err := replOffset(ctx, src.c)
	if err != nil {
		return side, err
	}
	dst1, _, err := applied(ctx)
	if err != nil {
		return side, err
	}
	// Catch up: the replica reaches the source's offset at the stop.
	caught := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		do, _, err := applied(cctx)
		if err == nil && do >= src1 {
			break
		}
		if cctx.Err() != nil {
			return side, fmt.Errorf("the replica did not catch up with offset %d in 3 minutes (at %d)", src1, do)
		}
		time.Sleep(10 * time.Millisecond)
	}
	side.CatchUp = time.Since(caught).Seconds()
	use, duse := pm.stop(), dm.stop()
	_, fs1, _ := applied(ctx)
	side.FullSyncs = fs1 - fs0
	if sampleErr != nil && len(samples) == 0 {
		return side, sampleErr
	}

	secs := elapsed.Seconds()
	side.Commands = cmds
	side.SourceRate = float64(cmds) / secs
	side.BytesPerCmd = float64(src1-src0) / float64(cmds)
	side.AppliedRate = float64(dst1-dst0) / side.BytesPerCmd / secs
	side.Fraction = side.AppliedRate / side.SourceRate
	srcBytesPerSec := float64(src1-src0) / secs
	for _, s := range samples {
		side.MaxBacklog = max(side.MaxBacklog, s.src-s.dst)
	}
	side.MaxBehind = float64(side.MaxBacklog) / srcBytesPerSec
	side.Growing, side.Trend = trend(samples, srcBytesPerSec)
	side.Process = use
	side.Destination = duse
	if destPid != 0 {
		side.WireInPerCmd = float64(use.ReadBytes) / float64(cmds)
		side.WireOutPerCmd = float64(use.WriteBytes) / float64(cmds)
	}
	// Everything the source executed is at the destination: same key count.
	want, err1 := src.c.DBSize(ctx).Result()
	got, err2 := dstKeys(ctx).Result()
	if err1 != nil || err2 != nil || want != got {
		return side, fmt.Errorf("after catching up the destination holds %d keys, the source %d (%v %v)", got, want, err1, err2)
	}
	return side, nil
}

// trend says whether the backlog grows over the load: it compares the mean
// backlog of the second quarter with that of the last, in seconds of the
// source's output. A backlog that stays under 50 ms of output is bounded.
func trend(s []sample, bytesPerSec float64) (bool, string) {
	if len(s) < 8 {
		return false, "too short to tell"
	}
	mean := func(v []sample) float64 {
		t := 0.0
		for _, x := range v {
			t += float64(x.src - x.dst)
		}
		return t / float64(len(v)) / bytesPerSec
	}
	q := len(s) / 4
	early, late := mean(s[q:2*q]), mean(s[3*q:])
	desc := fmt.Sprintf("mean backlog %.0f ms then %.0f ms", early*1000, late*1000)
	return late > 0.05 && late > 1.5*early, desc
}

// freshDestination creates a database of the service (2 GiB) that is a
// Replica Of src, and waits until it is in sync.
func (b *runner) freshDestination(ctx context.Context, name string, src *server) (api.Database, *redis.Client, error) {
	db, err := b.svc.create(ctx, api.CreateDatabaseRequest{Name: name, MemorySize: 2 << 30, ReplicaSources: []api.ReplicaSource{{URI: src.url()}}})
	if err != nil {
		return db, nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	uid := db.UID
	if db, err = b.svc.waitInSync(wctx, uid, 20*time.Millisecond); err != nil {
		_ = b.svc.delete(context.Background(), uid)
		return db, nil, err
	}
	return db, dbClient(db), nil
}

// freshNative starts a native replica of src and waits until it is in
// sync; the caller stops it.
func (b *runner) freshNative(ctx context.Context, name string, src *server) (*server, error) {
	nat, err := b.startServer(ctx, name, replicaArgs...)
	if err != nil {
		return nil, err
	}
	if _, err := replicaOf(ctx, nat, src, 10*time.Millisecond); err != nil {
		b.stopServer(nat)
		return nil, err
	}
	return nat, nil
}

// quiesce waits (at most a minute) until none of the servers runs a fork:
// an AOF rewrite, or the RDB of a full sync, so that a measurement starts
// without one in its way (it may still meet the ones its load causes).
func quiesce(ctx context.Context, clients ...*redis.Client) {
	deadline := time.Now().Add(time.Minute)
	for _, c := range clients {
		for time.Now().Before(deadline) && ctx.Err() == nil {
			m, err := info(ctx, c, "persistence")
			if err != nil || m["aof_rewrite_in_progress"] != "1" && m["aof_rewrite_scheduled"] != "1" && m["rdb_bgsave_in_progress"] != "1" {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// probeLag writes at rate commands/s to src for dur while a probe key is
// written every 5 ms; the destination dst reports each probe's arrival by
// client-tracking invalidation (see watchKeys), the moment it becomes
// readable there.
//
// trigger, unless nil, runs a second into the measurement (to start a
// rewrite), which begins after lagWarmUp of load.
// lagWarmUp is how long probeLag loads before it measures.
const lagWarmUp = time.Second

func (b *runner) probeLag(ctx context.Context, name string, src *server, dst *redis.Client, svcPid, redisPid int, rate float64, dur time.Duration, trigger func(context.Context) error) (LagSide, error) {
	var side LagSide
	quiesce(ctx, src.c, dst)
	if !settle(ctx, 15*time.Second) {
		b.logf("lag: the machine did not settle before the %s run (more than a fifth of its CPU busy)", name)
	}
	probes, err := watchProbes(ctx, dst)
	if err != nil {
		return side, err
	}
	defer probes.Close()

	p, err := dialPipe(ctx, src.addr(), src.password, 8192)
	if err != nil {
		return side, err
	}
	defer p.close()
	stop := make(chan struct{})
	loadErr := make(chan error, 1)
	go func() { loadErr <- p.run(ctx, streamGen(uint64(time.Now().UnixNano()), b.cfg.StreamKeys), rate, stop) }()
	// A second of load before anything is measured: from a quiet machine
	// (settle), the first few hundred milliseconds of load put both sides
	// tens of milliseconds behind, which is the start, not the steady state.
	select {
	case <-ctx.Done():
		close(stop)
		return side, ctx.Err()
	case err := <-loadErr:
		if err == nil {
			err = errors.New("it ended before the measurement")
		}
		return side, fmt.Errorf("load: %w", err)
	case <-time.After(lagWarmUp):
	}
	acked0 := p.acked.Load()
	sm, rm := startMeter(svcPid), startMeter(redisPid)
	began := time.Now()
	// The start of lag-<name>.csv's clock, to line it up with other traces.
	b.logf("lag: %s probes from %s", name, began.UTC().Format("15:04:05.000"))
	forks := watchForks(ctx, dst, began)

	prober := redis.NewClient(&redis.Options{Addr: src.addr(), Password: src.password, PoolSize: 1})
	defer prober.Close()
	var sent []time.Time
	triggerAt := time.After(time.Second)
	if trigger == nil {
		triggerAt = nil
	}
	tick := time.NewTicker(5 * time.Millisecond)
	end := time.After(dur)
probe:
	for {
		select {
		case <-ctx.Done():
			close(stop)
			return side, ctx.Err()
		case <-end:
			break probe
		case <-triggerAt:
			if err := trigger(ctx); err != nil {
				close(stop)
				return side, fmt.Errorf("start a rewrite: %w", err)
			}
			continue
		case <-tick.C:
		}
		seq := len(sent)
		sent = append(sent, time.Now())
		if err := prober.Set(ctx, probePrefix+strconv.Itoa(seq), seq, 0).Err(); err != nil {
			close(stop)
			return side, err
		}
	}
	tick.Stop()
	close(stop)
	rewriting := forks.stop()
	if err := <-loadErr; err != nil {
		return side, err
	}
	side.cmds = float64(p.acked.Load() - acked0)
	side.Achieved = side.cmds / time.Since(began).Seconds()
	side.serviceCPU, side.redisCPU = sm.stop().CPUSeconds, rm.stop().CPUSeconds
	if side.cmds > 0 {
		side.ServiceCPUPerM = side.serviceCPU / side.cmds * 1e6
		side.RedisCPUPerM = side.redisCPU / side.cmds * 1e6
	}
	// Wait for the last probes (bounded).
	arrived := probes.waitFor(len(sent), time.Now().Add(30*time.Second))
	var lags []float64
	// Every probe's lag, for a look at when the slow ones happen.
	var csv strings.Builder
	csv.WriteString("sent_ms,lag_ms,dst_fork\n")
	for i, t := range sent {
		if a, ok := arrived[i]; ok {
			lags = append(lags, float64(a.Sub(t).Microseconds())/1000)
			fork := 0
			if rewriting(t.Sub(began)) {
				fork = 1
				side.ForkProbes++
			}
			fmt.Fprintf(&csv, "%d,%.3f,%d\n", t.Sub(began).Milliseconds(), lags[len(lags)-1], fork)
		}
	}
	_ = os.WriteFile(filepath.Join(b.runDir, "lag-"+name+".csv"), []byte(csv.String()), 0o644)
	side.Probes, side.Missing = len(sent), len(sent)-len(lags)
	if len(lags) == 0 {
		return side, fmt.Errorf("no probe arrived")
	}
	sort.Float64s(lags)
	side.lags = lags
	side.P50, side.P99, side.Max = percentiles(lags)
	return side, nil
}

// forkWatch samples whether a server runs a fork (AOF rewrite or RDB), so
// that each probe's lag can be set beside it.
type forkWatch struct {
	done  chan struct{}
	ended chan struct{}
	at    []time.Duration // sample times since began
	fork  []bool
}

func watchForks(ctx context.Context, c *redis.Client, began time.Time) *forkWatch {
	w := &forkWatch{done: make(chan struct{}), ended: make(chan struct{})}
	go func() {
		defer close(w.ended)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			m, err := info(ctx, c, "persistence")
			if err != nil {
				continue
			}
			w.at = append(w.at, time.Since(began))
			w.fork = append(w.fork, m["aof_rewrite_in_progress"] == "1" || m["rdb_bgsave_in_progress"] == "1")
		}
	}()
	return w
}

// stop ends the sampling and returns whether a fork ran at a moment (as of
// the last sample before it).
func (w *forkWatch) stop() func(time.Duration) bool {
	close(w.done)
	<-w.ended
	return func(d time.Duration) bool {
		i := sort.Search(len(w.at), func(i int) bool { return w.at[i] > d })
		return i > 0 && w.fork[i-1]
	}
}
