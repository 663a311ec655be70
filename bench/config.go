// Package bench measures redis-replicad against Redis's own replication: full
// sync, streaming throughput, end-to-end lag, the service's cost, and the
// Terraform provider at scale. Every figure of the service is measured in the
// same run as its baseline, a native redis-server doing REPLICAOF of the same
// source, and is reported absolutely and as a ratio.
//
// The harness starts everything it measures (redis-server processes, the
// service as a separate process so that /proc gives its RSS and CPU time,
// terraform) and stops all of it before returning, also on error, on a signal
// and when its time bound runs out.
package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config of a run. Environment variables (see FromEnv) override the scale's
// defaults one by one.
type Config struct {
	Scale string // "quick" (make bench) or "full"

	MixedKeys   int // keys of the mixed-types dataset
	ZSetMembers int // members of the single sorted set
	Repeat      int // full-sync runs of each side; the median is reported

	StreamSeconds int // duration of the saturating load
	LagSeconds    int // duration of the half-load lag measurement (of each run of it)
	LagRuns       int // runs of the lag measurement per side, alternating; probes pooled
	LagRate       int // commands/s of the lag rows (0: half the saturating run's source rate)
	StreamKeys    int // key space of the streaming load

	TFDatabases int // redis_database and redis_replica_of resources each

	CompressKeys int // keys of the JSON-like dataset of the compression row (the mixed one gets half)

	Only    map[string]bool // phases to run; empty = all
	Timeout time.Duration   // bound of the whole run

	Root    string // repository root
	OutDir  string // scratch: binaries, data dirs, logs, profiles
	Results string // where results.json and RESULTS.md go ("" = do not write)
	Profile bool   // run the service under the harness's profiling wrapper
}

// Phases, in run order.
var Phases = []string{"fullsync", "compression", "streaming", "manytoone", "terraform"}

func defaults(scale string) (Config, error) {
	switch scale {
	case "", "quick":
		return Config{Scale: "quick", MixedKeys: 200_000, ZSetMembers: 1_000_000, Repeat: 1,
			StreamSeconds: 15, LagSeconds: 15, LagRuns: 3, StreamKeys: 100_000, TFDatabases: 50,
			CompressKeys: 200_000, Timeout: 15 * time.Minute}, nil
	case "full":
		return Config{Scale: "full", MixedKeys: 1_000_000, ZSetMembers: 1_000_000, Repeat: 3,
			StreamSeconds: 30, LagSeconds: 30, LagRuns: 3, StreamKeys: 200_000, TFDatabases: 50,
			CompressKeys: 500_000, Timeout: 60 * time.Minute}, nil
	}
	return Config{}, fmt.Errorf("BENCH_SCALE=%q: want quick or full", scale)
}

// FromEnv builds the Config of a run from BENCH_* variables:
//
//	BENCH_SCALE          quick (default) or full
//	BENCH_KEYS           keys of the mixed dataset (quick 200000, full 1000000)
//	BENCH_ZSET           members of the big sorted set (1000000)
//	BENCH_REPEAT         full-sync runs per side, median reported (quick 1, full 3)
//	BENCH_STREAM_SECONDS saturating load duration (quick 15, full 30)
//	BENCH_LAG_SECONDS    half-load duration, of each lag run (quick 15, full 30)
//	BENCH_LAG_RUNS       lag runs per side, ours and native alternating (3)
//	BENCH_TF_DATABASES   databases and replica_of resources each (50)
//	BENCH_COMPRESS_KEYS  JSON-like keys of the compression row, the mixed dataset there
//	                     gets half (quick 200000, full 500000; 0 skips the row)
//	BENCH_MANY_RATE      combined commands/s of the many-to-one lag row (default: the
//	                     half load of the lag row, 100000 when that did not run)
//	BENCH_LAG_RATE       commands/s of the half-load lag rows (default: half of what the
//	                     source absorbed in the saturating run), to compare runs
//	BENCH_ONLY           comma list of phases: fullsync, compression, streaming, manytoone, terraform
//	BENCH_TIMEOUT        bound of the whole run (quick 15m, full 60m)
//	BENCH_PROFILE        1: CPU and heap profiles of the service per phase in bench/out/profiles
//	BENCH_RESULTS        directory of results.json and RESULTS.md (bench); "-" writes none
func FromEnv(root string) (Config, error) {
	c, err := defaults(os.Getenv("BENCH_SCALE"))
	if err != nil {
		return c, err
	}
	ints := []struct {
		name string
		dst  *int
	}{
		{"BENCH_KEYS", &c.MixedKeys}, {"BENCH_ZSET", &c.ZSetMembers}, {"BENCH_REPEAT", &c.Repeat},
		{"BENCH_STREAM_SECONDS", &c.StreamSeconds}, {"BENCH_LAG_SECONDS", &c.LagSeconds}, {"BENCH_LAG_RATE", &c.LagRate},
		{"BENCH_LAG_RUNS", &c.LagRuns},
		{"BENCH_TF_DATABASES", &c.TFDatabases}, {"BENCH_COMPRESS_KEYS", &c.CompressKeys},
	}
	for _, v := range ints {
		if s := os.Getenv(v.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return c, fmt.Errorf("%s=%q: want a non-negative integer", v.name, s)
			}
			*v.dst = n
		}
	}
	if c.Repeat < 1 {
		c.Repeat = 1
	}
	if c.LagRuns < 1 {
		c.LagRuns = 1
	}
	if s := os.Getenv("BENCH_TIMEOUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return c, fmt.Errorf("BENCH_TIMEOUT=%q: %w", s, err)
		}
		c.Timeout = d
	}
	c.Only = map[string]bool{}
	if s := os.Getenv("BENCH_ONLY"); s != "" {
		for _, p := range strings.Split(s, ",") {
			p = strings.TrimSpace(p)
			ok := false
			for _, q := range Phases {
				ok = ok || p == q
			}
			if !ok {
				return c, fmt.Errorf("BENCH_ONLY: unknown phase %q (phases: %s)", p, strings.Join(Phases, ", "))
			}
			c.Only[p] = true
		}
	}
	c.Profile = os.Getenv("BENCH_PROFILE") == "1"
	c.Root = root
	c.OutDir = filepath.Join(root, "bench", "out")
	c.Results = filepath.Join(root, "bench")
	if s := os.Getenv("BENCH_RESULTS"); s == "-" {
		c.Results = ""
	} else if s != "" {
		c.Results = s
	}
	return c, nil
}

func (c Config) runs(phase string) bool { return len(c.Only) == 0 || c.Only[phase] }
