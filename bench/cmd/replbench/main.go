// Command replbench is the benchmark of redis-replicad (make bench): it
// measures full sync, streaming throughput, lag, cost and Terraform at scale
// against Redis's own replication, and writes bench/results.json and
// bench/RESULTS.md. Parameters are BENCH_* environment variables (see
// bench.FromEnv); BENCH_SCALE=full runs the 1,000,000-key dataset.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/replicad/terraform-provider-redis/bench"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "service" {
		// The service under profiling (BENCH_PROFILE=1), started by the harness.
		if err := bench.ServeProfiled(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "replbench service:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "render" {
		// RESULTS.md again from results.json (after a change of its layout).
		root, err := repoRoot()
		if err == nil {
			err = bench.Render(filepath.Join(root, "bench"))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "replbench render:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "replbench:", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	cfg, err := bench.FromEnv(root)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return bench.Run(ctx, cfg)
}

// repoRoot is the nearest directory up from here that holds go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run replbench inside the repository (no go.mod found)")
		}
		dir = parent
	}
}
