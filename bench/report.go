package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Results is what a run writes to results.json.
type Results struct {
	Machine  Machine    `json:"machine"`
	Params   Params     `json:"params"`
	Started  time.Time  `json:"started"`
	Seconds  float64    `json:"seconds"`
	FullSync []FullSync `json:"full_sync,omitempty"`
	// Compression is row 6: full sync between two instances with and
	// without compression.
	Compression []Compression `json:"compression,omitempty"`
	Streaming   *Streaming    `json:"streaming,omitempty"`
	Lag         *Lag          `json:"lag,omitempty"`
	Terraform   *Terraform    `json:"terraform,omitempty"`
	// ManyToOne is rows 7 and 8: 32 sources into one destination.
	ManyToOne *ManyToOne `json:"many_to_one,omitempty"`
	Errors    []string   `json:"errors,omitempty"`
}

type Params struct {
	Scale         string `json:"scale"`
	MixedKeys     int    `json:"mixed_keys"`
	ZSetMembers   int    `json:"zset_members"`
	Repeat        int    `json:"repeat"`
	StreamSeconds int    `json:"stream_seconds"`
	LagSeconds    int    `json:"lag_seconds"`
	LagRuns       int    `json:"lag_runs,omitempty"`
	StreamKeys    int    `json:"stream_keys"`
	TFDatabases   int    `json:"tf_databases"`
	CompressKeys  int    `json:"compress_keys,omitempty"`
	Profile       bool   `json:"profile"`
}

type Machine struct {
	CPU       string  `json:"cpu"`
	Cores     int     `json:"cores"`
	MemoryGiB float64 `json:"memory_gib"`
	Kernel    string  `json:"kernel"`
	Go        string  `json:"go"`
	Redis     string  `json:"redis"`
	Terraform string  `json:"terraform"`
	Commit    string  `json:"commit"`
	// Load average when the run started and ended: other work on the
	// machine competes for its cores.
	LoadBefore string `json:"loadavg_before"`
	LoadAfter  string `json:"loadavg_after"`
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func machine(root, redisServer string) Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %g kB", &kb)
		m.MemoryGiB = float64(int(kb/1024/1024*10)) / 10
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	out := func(name string, args ...string) string {
		cmd := exec.Command(name, args...)
		cmd.Dir = root
		b, _ := cmd.Output()
		return strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	}
	m.Redis = out(redisServer, "--version")
	m.Terraform = out("terraform", "version")
	m.LoadBefore = loadavg()
	m.Commit = out("git", "rev-parse", "--short", "HEAD")
	if out("git", "status", "--porcelain", "--untracked-files=no") != "" {
		m.Commit += " (with local changes)"
	}
	return m
}

// row of the summary table.
type row struct {
	figure, ours, native, ratio, target, met string
}

// perBatch says how many commands a batch of the service held, when known.
// lagRuns describes the runs pooled into a lag side, when more than one.
func lagRuns(s LagSide, seconds int) string {
	if s.Runs < 2 {
		return ""
	}
	return fmt.Sprintf(", %d runs of %d s of each side, alternating, pooled", s.Runs, seconds)
}

// eachRun lists each run's figure of a pooled side, when more than one.
func eachRun(what string, figures []float64, format string) string {
	if len(figures) < 2 {
		return ""
	}
	parts := make([]string, len(figures))
	for i, f := range figures {
		parts[i] = fmt.Sprintf(format, f)
	}
	if what != "" {
		what += " "
	}
	return fmt.Sprintf(" (each run: %s%s)", what, strings.Join(parts, ", "))
}

func perBatch(n float64) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf("; %.0f commands per batch", n)
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func (r *Results) rows() []row {
	var rows []row
	for i, f := range r.FullSync {
		target := "≥ 1.0x native"
		rows = append(rows, row{
			figure: "1. Full sync, " + f.Dataset + " (" + mib(f.RDBBytes) + " RDB): time to in-sync",
			ours:   fmt.Sprintf("%.2f s, %s %s/s, %.0f MB/s", f.Ours.Seconds, kilo(f.Ours.ItemsPerSec), f.Unit, f.Ours.MBPerSec),
			native: fmt.Sprintf("%.2f s, %s %s/s, %.0f MB/s", f.Native.Seconds, kilo(f.Native.ItemsPerSec), f.Unit, f.Native.MBPerSec),
			ratio:  fmt.Sprintf("%.2fx", f.Ratio), target: target, met: yes(f.Ratio >= 1.0),
		})
		_ = i
	}
	if s := r.Streaming; s != nil {
		o, n := s.Ours, s.Native
		bound := func(x StreamSide) string {
			if x.Growing {
				return "growing"
			}
			return "bounded"
		}
		rows = append(rows, row{
			figure: fmt.Sprintf("2. Streaming, saturating pipelined writer (%.0f s): commands/s applied (of what the source absorbed); backlog", s.Seconds),
			ours:   fmt.Sprintf("%s/s (%.2f of %s/s); max %.0f ms behind, %s", kilo(o.AppliedRate), o.Fraction, kilo(o.SourceRate), o.MaxBehind*1000, bound(o)),
			native: fmt.Sprintf("%s/s (%.2f of %s/s); max %.0f ms behind, %s", kilo(n.AppliedRate), n.Fraction, kilo(n.SourceRate), n.MaxBehind*1000, bound(n)),
			ratio:  fmt.Sprintf("%.2fx", s.Ratio),
			target: "≥ 0.8x of the source", met: yes(o.Fraction >= 0.8),
		})
		if sh := s.Sharded; sh.SourceRate > 0 {
			rows = append(rows, row{
				figure: fmt.Sprintf("2. Streaming into a destination of 3 shards, saturating pipelined writer (%.0f s): commands/s applied (of what the source absorbed); backlog", s.Seconds),
				ours:   fmt.Sprintf("%s/s (%.2f of %s/s); max %.0f ms behind, %s", kilo(sh.AppliedRate), sh.Fraction, kilo(sh.SourceRate), sh.MaxBehind*1000, bound(sh)),
				native: fmt.Sprintf("one server: %s/s (%.2f of %s/s)", kilo(n.AppliedRate), n.Fraction, kilo(n.SourceRate)),
				ratio:  fmt.Sprintf("%.2fx", s.ShardedRatio),
			})
		}
		if so, sn := s.SustainedOurs, s.SustainedNative; so.SourceRate > 0 {
			side := func(x StreamSide) string {
				return fmt.Sprintf("%s/s applied (%.2f); max %.0f ms behind, %s (%s)", kilo(x.AppliedRate), x.Fraction, x.MaxBehind*1000, bound(x), x.Trend)
			}
			rows = append(rows, row{
				figure: fmt.Sprintf("2. Streaming at 0.8 of what the source absorbed in (2), %s commands/s (%.0f s): applied; backlog", kilo(s.SustainedRate), s.Seconds),
				ours:   side(so), native: side(sn),
				ratio:  fmt.Sprintf("%.2fx", so.AppliedRate/sn.AppliedRate),
				target: "lag not growing", met: yes(!so.Growing && so.FullSyncs == 0),
			})
		}
	}
	if l := r.Lag; l != nil {
		rows = append(rows, row{
			figure: fmt.Sprintf("3. Lag at half load (%s commands/s), probes every 5 ms%s: p50 / p99 / max", kilo(l.Rate), lagRuns(l.Ours, r.Params.LagSeconds)),
			ours:   fmt.Sprintf("%.2f / %.2f / %.1f ms%s", l.Ours.P50, l.Ours.P99, l.Ours.Max, eachRun("p99", l.Ours.RunP99, "%.1f ms")),
			native: fmt.Sprintf("%.2f / %.2f / %.1f ms%s", l.Native.P50, l.Native.P99, l.Native.Max, eachRun("p99", l.Native.RunP99, "%.1f ms")),
			ratio:  fmt.Sprintf("%.1fx (p99)", l.Ours.P99/l.Native.P99),
			target: "p99 ≤ native's", met: yes(l.Ours.P99 <= l.Native.P99 && l.Ours.Missing == 0),
		})
		if l.RewriteSkipped != "" {
			rows = append(rows, row{
				figure: "3. Lag at half load while the destination rewrites its AOF",
				ours:   "not measured: " + l.RewriteSkipped,
			})
		}
		if o, n := l.RewriteOurs, l.RewriteNative; o.Probes > 0 && n.Probes > 0 {
			side := func(s LagSide) string {
				return fmt.Sprintf("%.2f / %.2f / %.1f ms (%d of %d probes sent while the fork ran)", s.P50, s.P99, s.Max, s.ForkProbes, s.Probes)
			}
			rows = append(rows, row{
				figure: fmt.Sprintf("3. Lag at half load while the destination rewrites its AOF (threshold %s), probes every 5 ms: p50 / p99 / max", mib(l.RewriteThreshold)),
				ours:   side(o), native: side(n),
				ratio: fmt.Sprintf("%.1fx (p99)", o.P99/n.P99),
			})
		}
	}
	for _, f := range r.FullSync {
		target, met := "", ""
		if strings.Contains(f.Dataset, "sorted set") {
			target, met = "≤ 128 MiB", yes(f.Service.PeakRSS <= 128<<20)
		}
		rows = append(rows, row{
			figure: "4. Cost of the full sync of " + f.Dataset + ": peak RSS, CPU time",
			ours:   fmt.Sprintf("service %s, %.1f s CPU; its redis-server %.1f s CPU", mib(f.Service.PeakRSS), f.Service.CPUSeconds, f.Destination.CPUSeconds),
			native: fmt.Sprintf("replica %s, %.1f s CPU", mib(f.NativeReplica.PeakRSS), f.NativeReplica.CPUSeconds),
			ratio:  "", target: target, met: met,
		})
	}
	if s := r.Streaming; s != nil {
		o, n := s.Ours, s.Native
		rows = append(rows, row{
			figure: "4. Cost of streaming: peak RSS, CPU time per million commands, bytes on the wire per applied command",
			ours: fmt.Sprintf("service %s, %.1f s CPU/M cmds (its redis-server %.1f s); %.0f B in (stream + replies), %.0f B out",
				mib(o.Process.PeakRSS), perM(o.Process.CPUSeconds, o), perM(o.Destination.CPUSeconds, o), o.WireInPerCmd, o.WireOutPerCmd),
			native: fmt.Sprintf("replica %s, %.1f s CPU/M cmds; %.0f B in", mib(n.Process.PeakRSS), perM(n.Process.CPUSeconds, n), n.BytesPerCmd),
			ratio:  fmt.Sprintf("%.1fx B out", o.WireOutPerCmd/n.BytesPerCmd),
		})
	}
	if l := r.Lag; l != nil && l.Native.RedisCPUPerM > 0 {
		o := l.Ours.ServiceCPUPerM + l.Ours.RedisCPUPerM
		rows = append(rows, row{
			figure: fmt.Sprintf("4. Cost at half load (%s commands/s)%s: CPU time per million commands", kilo(l.Rate), lagRuns(l.Ours, r.Params.LagSeconds)),
			ours:   fmt.Sprintf("%.2f s: service %.2f s + its redis-server %.2f s%s%s", o, l.Ours.ServiceCPUPerM, l.Ours.RedisCPUPerM, perBatch(l.Ours.AvgBatch), eachRun("", l.Ours.RunCPUPerM, "%.2f s")),
			native: fmt.Sprintf("%.2f s: replica%s", l.Native.RedisCPUPerM, eachRun("", l.Native.RunCPUPerM, "%.2f s")),
			ratio:  fmt.Sprintf("%.2fx", o/l.Native.RedisCPUPerM),
			target: "≤ 1.1x", met: yes(o/l.Native.RedisCPUPerM <= 1.1),
		})
	}
	if t := r.Terraform; t != nil {
		what := fmt.Sprintf("%d redis_database + %d redis_replica_of", t.Databases, t.ReplicaOf)
		rows = append(rows, row{
			figure: "5. Terraform, " + what + ": apply; no-change plan",
			ours:   fmt.Sprintf("apply %.1f s; plan %.2f s (exit %d)", t.Apply, t.Plan, t.PlanExitCode),
			target: "plan < 5 s", met: yes(t.Plan < 5 && t.PlanExitCode == 0),
		})
	}
	for _, c := range r.Compression {
		if len(c.Levels) == 0 || c.Levels[0].Level != 0 {
			continue
		}
		off := c.Levels[0]
		side := func(l CompressionLevel) string {
			ratio := ""
			if l.Level > 0 {
				ratio = fmt.Sprintf(", ratio %.2f", l.Ratio)
			}
			return fmt.Sprintf("%.2f s, %.0f MB/s; %s on the wire (%.0f MB/s)%s; CPU: source instance %.1f s, destination instance %.1f s",
				l.Rate.Seconds, l.Rate.MBPerSec, mib(l.GatewaySentWire), l.WireMBPerSec, ratio, l.SourceInstance.CPUSeconds, l.DestinationInstance.CPUSeconds)
		}
		for i, l := range c.Levels[1:] {
			bytesRatio := float64(l.GatewaySentWire) / float64(max(off.GatewaySentWire, 1))
			target, met := "", ""
			if i == 0 && strings.HasPrefix(c.Dataset, "JSON") {
				target, met = "≥ 0.9x throughput, ≤ 0.25x bytes", yes(l.Throughput >= 0.9 && bytesRatio <= 0.25)
			}
			rows = append(rows, row{
				figure: fmt.Sprintf("6. Replication between two instances, full sync of %s (%s RDB), compression %d (%s) (ours) vs 0 (right): time to in-sync, MB/s of RDB; bytes on the wire, compression ratio", c.Dataset, mib(c.RDBBytes), l.Level, l.Codec),
				ours:   side(l),
				native: "without compression: " + side(off),
				ratio:  fmt.Sprintf("%.2fx throughput, %.2fx bytes", l.Throughput, bytesRatio),
				target: target, met: met,
			})
		}
		if len(c.Link) == 2 {
			l, off := c.Link[1], c.Link[0]
			rows = append(rows, row{
				figure: fmt.Sprintf("6. The same full sync of %s through a 100 Mbit/s link (a rate-limited proxy on loopback), compression %d (%s) (ours) vs 0 (right)", c.Dataset, l.Level, l.Codec),
				ours:   side(l),
				native: "without compression: " + side(off),
				ratio:  fmt.Sprintf("%.2fx faster", l.Throughput),
				target: "≥ 2x faster", met: yes(l.Throughput >= 2),
			})
		}
	}
	if m := r.ManyToOne; m != nil {
		worst, ok := 0.0, true
		var parts []string
		for _, e := range m.API {
			worst = max(worst, e.P99)
			ok = ok && e.Errors == 0 && e.P99 < 100
			parts = append(parts, fmt.Sprintf("%s: %.1f / %.1f / %.1f ms (%d requests, %d errors)", e.Endpoint, e.P50, e.P99, e.Max, e.Requests, e.Errors))
		}
		rows = append(rows, row{
			figure: fmt.Sprintf("7. API latency while %d sources (%s keys together) load into one destination (in sync in %.1f s), a request every 20 ms per endpoint: p50 / p99 / max", m.Sources, human(int(m.Keys)), m.LoadSeconds),
			ours:   strings.Join(parts, "; "),
			ratio:  fmt.Sprintf("p99 %.1f ms", worst),
			target: "p99 < 100 ms", met: yes(ok),
		})
		nat := ""
		if l := r.Lag; l != nil {
			nat = fmt.Sprintf("one source: %.2f / %.2f / %.1f ms", l.Native.P50, l.Native.P99, l.Native.Max)
		}
		rows = append(rows, row{
			figure: fmt.Sprintf("8. Many-to-one: %d sources at a combined half load (%s commands/s), a probe every 5 ms to each source in turn: lag p50 / p99 / max; per source, the worst p99 and max; CPU time per million commands", m.Sources, kilo(m.Rate)),
			ours: fmt.Sprintf("%.2f / %.2f / %.1f ms (%d probes, %d missing); worst source p99 %.2f ms, max %.1f ms; service %.2f s + its redis-server %.2f s",
				m.Lag.P50, m.Lag.P99, m.Lag.Max, m.Lag.Probes, m.Lag.Missing, maxOf(m.PerP99), maxOf(m.PerMax), m.Lag.ServiceCPUPerM, m.Lag.RedisCPUPerM),
			native: nat,
		})
	}
	return rows
}

// perM is CPU seconds per million commands absorbed by the source.
func perM(cpu float64, s StreamSide) float64 {
	if s.Commands == 0 {
		return 0
	}
	return cpu / float64(s.Commands) * 1e6
}

func (r *Results) markdown() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "# redis-replicad benchmark\n\n")
	fmt.Fprintf(&b, "Generated by `make bench` (`BENCH_SCALE=%s`) on %s; do not edit by hand. Raw figures: [results.json](results.json).\n\n", r.Params.Scale, r.Started.Format("2006-01-02"))
	fmt.Fprintf(&b, "Machine: %s, %d cores, %.1f GiB, Linux %s; %s; %s; %s; commit %s. The run took %.0f s; load average %s before, %s after.\n\n",
		m.CPU, m.Cores, m.MemoryGiB, m.Kernel, m.Go, m.Redis, m.Terraform, m.Commit, r.Seconds, m.LoadBefore, m.LoadAfter)
	fmt.Fprintf(&b, "Every figure of redis-replicad is measured in the same run as its baseline, a fresh `redis-server` doing `REPLICAOF` of the same source, configured like the service's databases (AOF, fsync every second). Everything runs on this one machine, which is shared and noisy: compare ratios rather than absolute figures across runs.\n\n")
	fmt.Fprintf(&b, "| Figure | redis-replicad | native replica | ratio | target | met |\n|---|---|---|---|---|---|\n")
	for _, x := range r.rows() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", x.figure, x.ours, x.native, x.ratio, x.target, x.met)
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(&b, "\nErrors:\n\n")
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "- %s\n", strings.ReplaceAll(e, "\n", " "))
		}
	}
	b.WriteString(methodology)
	return b.String()
}

const methodology = `
## How each figure is measured

1. **Full sync.** A source ` + "`redis-server`" + ` is filled (mixed types: 40% strings of 8 B to 8 KB, 10% of them with a TTL; 15% hashes, 15% lists, 10% sets, 15% sorted sets, 5% streams; 1% of the collections are big, 200 to 2,000 elements; or one sorted set of random scores). The native replica is a fresh ` + "`redis-server`" + `; the time runs from ` + "`REPLICAOF`" + ` until ` + "`master_link_status:up`" + ` with no sync in progress. Ours is a fresh database of the service; the time runs from the ` + "`PUT /v1/bdbs/{uid}`" + ` that sets its ` + "`replica_sources`" + ` until its status is ` + "`in-sync`" + ` (both polled every 10 ms). Both sides are checked afterwards: same key count, and 200 random keys read the same. MB/s is the RDB payload's size over the time. With BENCH_REPEAT > 1 the sides alternate and the median is reported.
   The row "from a 3-shard Redis Cluster" holds the same mixed dataset in a Redis Cluster of 3 masters (each key on the master of its slot): the service replicates it into one destination, one syncer per shard, named by one node of the cluster; the baseline is a native replica of each master, the three syncing at once (the time is the slowest one's, the cost the three's together).
2. **Streaming.** One pipelined connection (8,192 commands in flight) writes as fast as the source accepts: 50% SET, 20% HSET, 10% INCR, 10% SADD, 10% ZADD over a bounded key space. The native replica and ours are measured one after the other, each alone with the source. Applied commands are the replica's applied replication offset (` + "`slave_repl_offset`" + `, ` + "`replicad_replica_applied_offset`" + `) divided by the stream's bytes per command; the backlog is the source's offset minus the applied offset, sampled every 200 ms. "Growing" means the mean backlog of the last quarter of the load exceeds 1.5 times that of the second quarter and 50 ms of the source's output. Then the same writer is paced at 0.8 of what the source absorbed in our saturating run, for the same time, with ours and then with a fresh native replica: a replica that keeps up has a backlog that does not grow. The row "into a destination of 3 shards" runs the saturating writer once more, with a fresh database of the service with ` + "`shards_count = 3`" + ` (a Redis Cluster it runs, no replicas) as the source's only replica; its applied offset is ` + "`replicad_replica_applied_offset`" + ` as above, and it is compared with the native replica of the first run (Redis has no replica that is a cluster).
3. **Lag.** The same writer, paced at half of what the source absorbed in (2) while we replicated (or at BENCH_LAG_RATE), into a fresh database of the service and a fresh native replica (both in sync, neither forking when it starts), plus, after a second of load (a warm-up: from a quiet machine, the first few hundred milliseconds put both sides tens of milliseconds behind), a probe ` + "`SET probe:<n>`" + ` every 5 ms on its own connection. Each run starts once the machine is quiet (under a fifth of its CPU busy for 200 ms). The destination reports each probe by keyspace notification (` + "`notify-keyspace-events K$`" + `), which it emits when the write is applied, i.e. when the value becomes readable; the lag is that moment minus the moment the probe was sent. The runs alternate, ours then native, BENCH_LAG_RUNS times (3), each into a fresh destination, so that both sides meet this shared, noisy machine in the same states; a side's figures pool the probes of all its runs (the CPU at half load of (4) is measured in the same runs, over all their commands), and each run's own figure is given beside them. Every probe's lag is in bench/out/run/lag-*.csv, with whether the destination's fork child (AOF rewrite) ran when it was sent. The second row does the same for a shorter time, after the last runs, with a rewrite of the destination's AOF a second in (on our side, the paced load first goes on until the AOF has grown past the threshold, which the lag run does not always reach at a low rate): the service is given a smaller ` + "`memory_size`" + `, so that its scheduler finds the AOF past its threshold and starts one; the native replica is given the same threshold as ` + "`auto-aof-rewrite-min-size`" + `, so that Redis starts one.
4. **Cost.** The service runs as its own process; its peak RSS is sampled from /proc every 20 ms (and VmHWM, reset at the start of each phase), its CPU time is utime + stime, and its bytes on the wire are /proc/<pid>/io rchar and wchar (all its reads and writes: the source's stream and the destination's replies in; commands, MULTI/EXEC and checkpoints to the destination, and acks out), divided by the commands the source absorbed. The CPU time of the destination's ` + "`redis-server`" + ` is reported beside it.
5. **Terraform.** A configuration of N ` + "`redis_database`" + ` and N ` + "`redis_replica_of`" + ` (each database a Replica Of one open-source ` + "`redis-server`" + ` holding 1,000 keys), with the provider built from this tree through ` + "`dev_overrides`" + `: wall time of ` + "`terraform apply`" + ` (which waits for every destination to be in sync), then of ` + "`terraform plan -detailed-exitcode`" + ` three times (median; exit code 0 means no change).
6. **Compression.** A second instance of the service is started (B). A database of the first (A) is filled: JSON-like order records (strings of 300 B to 2 KB: repeated field names, values from a small vocabulary, numbers, dates, ids), and separately the mixed dataset of (1) with half as many keys (its values are random letters and digits, which compress poorly). For each level (0, then 3, then 6), a fresh database of B gets A's database's ` + "`source_url`" + ` (its replication gateway) as its one replica source with that ` + "`compression`" + `; the time runs from the ` + "`PUT`" + ` until ` + "`in-sync`" + `, and the destination is checked against the source as in (1), with ` + "`compression_active`" + ` as asked. Bytes before and after compression are the deltas of A's ` + "`replicad_gateway_sent_bytes_total`" + ` and ` + "`replicad_gateway_sent_wire_bytes_total`" + ` for the source database (B's ` + "`replicad_replica_bytes_received_total`" + ` and ` + "`replicad_replica_wire_bytes_received_total`" + ` are in results.json); the ratio is the first over the second. MB/s is the RDB payload over the time, as in (1); CPU is the time of each instance's process. The gateway compresses the RDB as Redis produces it; the service's databases write it without Redis's LZF compression of strings (` + "`rdbcompression no`" + `), so the uncompressed baseline carries the values as they are. Both instances run on this machine over loopback, where the network costs nothing: those rows show what compression costs in time and saves in bytes. The link row does the same full sync (JSON-like, level 0 then 3) with the destination given the source URL of a TCP proxy in the harness that forwards to A's gateway at most 12.5 MB/s each way (100 Mbit/s, no added latency): there the time is mostly the bytes on the wire over the link's bandwidth.
7. **The API under load.** 32 ` + "`redis-server`" + ` sources (sources of (1)), each filled with 1/32 of the mixed dataset of (1), become the sources of one fresh database of the service in one ` + "`PUT`" + `. From the ` + "`PUT`" + ` until every source is in sync, three clients of the harness each request one endpoint every 20 ms over a kept-alive HTTPS connection (` + "`GET /v1/bdbs/{uid}`" + ` of that database, ` + "`GET /v1/bdbs`" + `, ` + "`GET /healthz`" + `); the latency is from sending the request to reading the whole body. The destination is then checked to hold every key.
8. **Many-to-one lag.** The same 32 sources, each with a paced writer of (2) at 1/32 of the half load of (3), and a probe every 5 ms sent to each source in turn (so each source is probed every 160 ms), reported by the destination as in (3); every probe's lag is in bench/out/run/lag-many-to-one.csv. The native replica's figure beside it is (3)'s, one source, for reference: Redis has no many-to-one replication.


## What limits the figures

Found with the CPU profiles of BENCH_PROFILE=1 (the service under pprof, profiles in bench/out/profiles) and perf on the redis-server processes.

- **Full sync** of one source goes the native replica's way, one step better: the service sends the source's RDB on to the destination as a Redis master's full sync over its master link, checked as it arrives (structure, LZF, the payload's checksum, so that a corrupt or hostile payload never reaches the destination), and the destination (` + "`repl-diskless-load swapdb`" + `) loads it as it arrives, where the native replica writes it to disk and loads it after. perf on the whole machine (` + "`perf record -a`" + `) during the mixed row shows what is left: the source's fork child, which writes the RDB, is the critical path (about 2 s of one core for 141 MiB, for us and the native replica alike), and the service (0.6 to 0.7 s of CPU in this run's profile: a fifth of it the CRC-64 of the source's payload, a sixth system calls, a quarter walking the listpacks to check them; the stream it sends on carries no checksum of its own, which Redis loads without that check, since a second CRC pass was another sixth), the source's parent relaying the RDB and the destination's load share the other core and take some of the child's. A big value goes on in pieces of 64 KiB as it is checked, so the destination loads the 1,000,000-member sorted set while the source still writes it: that row is faster than native. A clustered source (one syncer per shard) now loads the same way: the three syncers put their shards' RDBs, each key whole in its turn, into one merged RDB that goes to the destination as one full sync over its link (before, the shards loaded with RESTORE commands into a second server, 0.80x to 0.87x). The row is then bound as the native one is, by the three sources' fork children writing their RDBs (the service's log shows the three RDBs ending within a millisecond of each other and the destination done 20 ms later), on 2 cores that the three fork children, the service's three decoders (0.7 s of CPU) and the destination's load share, where the native side's three replicas take 0.6 s: from run to run of this row the ratio moved between 0.92x and 1.02x.
- **Streaming** is bounded by CPU: source, writer, service and destination share 2 cores. The stream reaches the destination over its master link as its master's writes (no replies, no ACL check), in MULTI/EXEC batches that carry their checkpoint, and each batch's plain SETs (half of this load) go as one MSET, placed after any command on another key and before any command on the same key or with keys it cannot name: per applied command the destination's redis-server then needs less CPU than the native replica (2.2 to 2.7 s per million commands against 2.2 to 3.2 s). The service adds about 0.6 s of CPU per million commands at saturation and about 1.05 to 1.15 s at half load (see CPU at half load).
- **Lag** at half load is about 2 ms at the median; the tail is the noise of 2 busy cores, and at half load they are most of the way to saturated. In a run at 180k commands/s (CPU time of each process, sampled from /proc), the source's redis-server took 0.65 of a core and the harness 0.22; the native replica took 0.6, ours 0.8 (its redis-server 0.65, the service 0.15 to 0.2): 73% and 85% of the machine. Both sides have the same episodes, a few hundred milliseconds at 20 to 50 ms of lag (every probe is in the CSV files); waiting for a CPU grows steeply near saturation, so ours last longer. The lag p99 cannot be safely below the native replica's while the service adds a fifth to a third of its CPU (see CPU at half load). Each run starts on a quiet machine and measures after a second of load, and the runs of the two sides alternate: from one run to the next, either side's p99 moves by a factor of 2 or more. The big stalls come from forks: when a redis-server rewrites its AOF, the fork and then the copy-on-write of every page the parent touches stall it for a few hundred milliseconds (the second lag row), natives and ours alike. Redis's own trigger (the AOF doubled and is past 64 MB) forks every few seconds at these write rates, so the service triggers rewrites itself: once an AOF has grown by half the database's ` + "`memory_size`" + ` (and by its base size), one rewrite at a time per instance, with the fork child at nice 19 so that it only takes CPU nobody else wants. The native baseline is given the same threshold (` + "`auto-aof-rewrite-min-size 1gb`" + ` for the 2 GiB streaming database), so neither forks in the first lag row.
- **Memory**: the service's queue between reader and writer is bounded in bytes (64 blocks of about 64 KiB, or one bigger item), the decoder holds one chunk, and at most 3 batches of at most 1 MiB are in flight, whatever the biggest key.
- **Compression** costs CPU on both sides, which over loopback is all it costs, and the uncompressed sync already keeps both cores busy (the source's fork child, the two instances, the destination's load). The source instance's gateway compresses with zstd's fastest level (levels 1 to 3), flushing at every chunk it relays from redis-server so that the stream never waits in the compressor; the destination instance decompresses in its syncer's reader, ahead of the RDB decoder. Measured on the JSON-like orders in 64 KiB flushes (a Go benchmark of the codecs on this machine): zstd's fastest level compresses at about 250 MB/s of one core and decodes at about 700 MB/s, 0.8 s of CPU for the 153 MiB of this row, which on 2 saturated cores costs at least 0.4 s on a sync that takes 1.1 to 1.4 s uncompressed: 0.9x is out of reach here with zstd. S2 (klauspost/compress/s2) is twice as fast (550 and 1,500 MB/s) but compresses these records 3.6x, which misses the bytes target (0.28x, not 0.25x). Level 6 (zstd's better compression, about its level 7) costs about twice the CPU of level 3 for 15% fewer bytes. The RDB carries values without Redis's LZF (` + "`rdbcompression no`" + ` on the service's databases): zstd then compresses the JSON-like orders 5.5x whole, against 2.4x when LZF has already compressed each value; random letters and digits (the mixed dataset) compress little beyond their 6 bits of entropy per byte. Through the 100 Mbit/s link the time is the bytes on the wire over the bandwidth: the compressed sync sends a fifth of the bytes.
- **The API under load** was slow because of CPU, not I/O: status reads only read memory (the destinations' map has a lock of its own that nothing holds across a wait), but with 32 sources loading at once, 64 busy goroutines of the service and 33 busy redis-servers queued every request behind them (p99 about 1 s, ` + "`/healthz`" + ` included, in a run before the bound below). At most as many full loads as the service has CPUs (at least 2) now run at once in an instance; the others wait for a slot before they ask their source for a full sync, which takes about as long in all.
- **Many-to-one**: at a combined 100k commands/s the 32 sources keep a median lag of about 2 ms; at the half load of (3), 180k to 190k, they fall behind. perf on the whole machine (` + "`perf record -a`" + `, 190k commands/s) shows why: the machine is saturated (under 1% idle), the 32 sources' redis-servers take 54% of it (each source's paced writes come in small pipelines, and each source feeds a replica), the harness's writers and probes 10%, the destination's redis-server 20% and the service 7%; the service and its destination spend 1.0 and 1.9 s per million commands, less than with one source at half load. Grouping the 32 writers' batches into one write and one GETACK on the shared master link was tried and changed nothing measurable, so it was not kept. Each source has its own syncer and MULTI/EXEC batches with its own checkpoint; they share the destination's master link only from a MULTI to its EXEC.
- **CPU at half load** (profiles of the lag phase, BENCH_PROFILE=1, ` + "`strace -c`" + ` and perf, at a fixed 180k commands/s with BENCH_LAG_RATE): the service spent 1.7 to 1.9 s per million commands until two changes. (1) A third of it was Go's runtime waking its monitor thread (sysmon): when every P of the process is idle, sysmon sleeps until woken, and the next system call wakes it with a futex; a syncer at a steady load goes idle and wakes thousands of times a second (2,700 reads of the source a second, each source sending its stream once per turn of its event loop). ` + "`redis-replicad serve`" + ` now keeps sysmon out of that sleep (it runs with ` + "`GODEBUG=schedtrace=2147483647`" + `, see the README), which took the service from 1.77 to 1.14 s per million commands in the same conditions. (2) A command that arrives buffered whole is parsed in one pass and passed on as it came, instead of line by line and encoded again: about 5% more. What is left (about 1.05 s per million): a quarter system calls (reads of the source, writes of the batches to the master link, epoll), a sixth Go's scheduler finding the next goroutine, under a tenth parsing, and the rest batching, encoding and queueing. The service's redis-server spends 2.8 to 3.2 s, about what the native replica does (3.0 to 3.8 s: perf shows both spending most of it finding keys, dictFind and dictSdsKeyCompare, and allocating), so the ratio is at 1.1x give or take the native replica's spread from run to run. Most of the service's CPU is per wake-up (a read of the source, a batch, an acknowledgement), not per command: per million commands it spends 0.5 to 0.6 s at saturation, about 1.1 s at 180k commands/s and 1.4 s at 138k, where batches are smaller. On this virtual machine, waking a goroutine on the other CPU costs an interprocessor interrupt: with one P (` + "`GOMAXPROCS=1`" + ` for the service alone, fixed rate 138k, two runs each) the service spent 1.2 s instead of 1.4 s per million commands. That is not kept, because it would leave full syncs, compression and the API one core. Tried and reverted, because they changed nothing measurable: a pause of 1 to 2 ms between small reads of the source (fewer, bigger batches: 1 ms gave batches of 257 commands instead of 177 at the same CPU, 2 ms doubled the lag), one batch in flight instead of two, GOMAXPROCS=1, and a goroutine parked in a system call to keep a P busy.
- **Terraform** plan time is Terraform's own start-up and one GET per resource.
`

func (b *runner) write() error {
	r := b.res
	fmt.Println()
	fmt.Printf("%-60s | %-45s | %-45s | %-10s | %s\n", "figure", "redis-replicad", "native", "ratio", "met")
	for _, x := range r.rows() {
		fmt.Printf("%-60s | %-45s | %-45s | %-10s | %s\n", x.figure, x.ours, x.native, x.ratio, strings.Trim(x.met, "*"))
	}
	for _, e := range r.Errors {
		fmt.Println("error:", e)
	}
	if b.cfg.Results == "" {
		return nil
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(b.cfg.Results, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.cfg.Results, "results.json"), append(j, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(b.cfg.Results, "RESULTS.md"), []byte(r.markdown()), 0o644)
}

func mib(n int64) string {
	if n >= 10<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

func kilo(f float64) string {
	switch {
	case f >= 1e6:
		return fmt.Sprintf("%.2fM", f/1e6)
	case f >= 1e3:
		return fmt.Sprintf("%.0fk", f/1e3)
	}
	return fmt.Sprintf("%.0f", f)
}

func human(n int) string {
	s := fmt.Sprint(n)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// Render rewrites RESULTS.md from results.json in dir, without measuring.
func Render(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		return err
	}
	var r Results
	if err := json.Unmarshal(data, &r); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "RESULTS.md"), []byte(r.markdown()), 0o644)
}
