package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

type runner struct {
	cfg         Config
	procs       procs
	runDir      string
	redisServer string
	svc         *service
	res         *Results
	began       time.Time
}

// Run runs the benchmark within cfg.Timeout and writes its results. A phase
// that fails is reported in the results and the next one runs; everything
// the run started is stopped before Run returns.
func Run(parent context.Context, cfg Config) error {
	ctx, cancel := context.WithTimeout(parent, cfg.Timeout)
	defer cancel()
	b := &runner{cfg: cfg, began: time.Now()}
	b.res = &Results{Started: b.began.UTC(), Params: Params{
		Scale: cfg.Scale, MixedKeys: cfg.MixedKeys, ZSetMembers: cfg.ZSetMembers, Repeat: cfg.Repeat,
		StreamSeconds: cfg.StreamSeconds, LagSeconds: cfg.LagSeconds, LagRuns: cfg.LagRuns, StreamKeys: cfg.StreamKeys,
		TFDatabases: cfg.TFDatabases, CompressKeys: cfg.CompressKeys, Profile: cfg.Profile,
	}}
	var err error
	if b.redisServer, err = exec.LookPath("redis-server"); err != nil {
		return errors.New("redis-server is not on PATH: install Redis 7+ (apt-get install -y redis-server)")
	}
	b.res.Machine = machine(cfg.Root, b.redisServer)
	// One run directory at a time: the previous run's data goes.
	_ = os.RemoveAll(filepath.Join(cfg.OutDir, "run"))
	b.runDir = filepath.Join(cfg.OutDir, "run")
	if err := os.MkdirAll(b.runDir, 0o700); err != nil {
		return err
	}
	if cfg.Profile {
		_ = os.MkdirAll(filepath.Join(cfg.OutDir, "profiles"), 0o755)
	}
	defer b.cleanup()

	b.logf("building redis-replicad and terraform-provider-redis")
	if err := b.build(ctx); err != nil {
		return err
	}
	if b.svc, err = b.startService(ctx); err != nil {
		return err
	}
	b.logf("redis-replicad runs as pid %d (%s); scale %s, time bound %s", b.svc.pid(), b.svc.url, cfg.Scale, cfg.Timeout)
	phases := []struct {
		name string
		run  func(context.Context) error
	}{
		{"fullsync", b.fullSyncs},
		{"compression", b.compression},
		{"streaming", b.streaming},
		{"manytoone", b.manyToOne},
		{"terraform", b.terraform},
	}
	for _, p := range phases {
		if !cfg.runs(p.name) {
			continue
		}
		if ctx.Err() != nil {
			b.res.Errors = append(b.res.Errors, fmt.Sprintf("%s: not run: %v", p.name, context.Cause(ctx)))
			continue
		}
		if err := p.run(ctx); err != nil {
			b.logf("%s failed: %v", p.name, err)
			b.res.Errors = append(b.res.Errors, fmt.Sprintf("%s: %v", p.name, err))
		}
		if b.svc.proc.exited() {
			return fmt.Errorf("redis-replicad exited during %s (log: %s)", p.name, filepath.Join(b.runDir, "service.log"))
		}
	}
	b.res.Seconds = time.Since(b.began).Seconds()
	b.res.Machine.LoadAfter = loadavg()
	if interrupted := parent.Err() != nil; interrupted {
		// Asked to stop: show what was measured, keep the last results.
		b.cfg.Results = ""
		defer b.logf("interrupted: %s and RESULTS.md left as they were", "results.json")
	}
	return b.write()
}

// cleanup stops every process and deletes the data of the run, keeping its
// logs.
func (b *runner) cleanup() {
	b.procs.stopAll()
	_ = filepath.Walk(b.runDir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && !strings.HasSuffix(path, ".log") && !strings.HasSuffix(path, ".tf") && !strings.HasSuffix(path, ".csv") {
			_ = os.Remove(path)
		}
		return nil
	})
}

func (b *runner) logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(b.began).Seconds(), fmt.Sprintf(format, a...))
}
