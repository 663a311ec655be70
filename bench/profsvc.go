package bench

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	rpprof "runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/replicad/terraform-provider-redis/service/app"
)

// ServeProfiled runs the service in this process, as `redis-replicad serve`
// does, plus a control endpoint on --profile-listen: POST /start?name=N
// starts a CPU profile into <profile-dir>/N.cpu.pprof, POST /stop ends it
// and writes N.allocs.pprof beside it; /debug/pprof/ is there too. The
// harness uses it with BENCH_PROFILE=1.
func ServeProfiled(args []string) error {
	fs := flag.NewFlagSet("service", flag.ContinueOnError)
	var cfg app.Config
	var profListen, profDir, portRange, logLevel string
	fs.StringVar(&profListen, "profile-listen", "127.0.0.1:0", "")
	fs.StringVar(&profDir, "profile-dir", "", "")
	fs.StringVar(&cfg.Name, "name", "bench", "")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:0", "")
	fs.StringVar(&portRange, "port-range", "", "")
	fs.StringVar(&logLevel, "log-level", "warn", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	lo, hi, _ := strings.Cut(portRange, "-")
	cfg.PortMin, _ = strconv.Atoi(lo)
	cfg.PortMax, _ = strconv.Atoi(hi)
	var level slog.Level
	_ = level.UnmarshalText([]byte(logLevel))
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if profDir == "" {
		profDir = filepath.Join(filepath.Dir(cfg.DataDir), "..", "profiles")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.Start(ctx, cfg)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	current := ""
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("POST /start", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if current != "" {
			rpprof.StopCPUProfile()
		}
		current = r.URL.Query().Get("name")
		f, err := os.Create(filepath.Join(profDir, current+".cpu.pprof"))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if err := rpprof.StartCPUProfile(f); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("POST /stop", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if current == "" {
			return
		}
		rpprof.StopCPUProfile()
		runtime.GC()
		if f, err := os.Create(filepath.Join(profDir, current+".allocs.pprof")); err == nil {
			_ = rpprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
		current = ""
	})
	l, err := net.Listen("tcp", profListen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	<-ctx.Done()
	srv.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Stop(sctx); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	return nil
}
