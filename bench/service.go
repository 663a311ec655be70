package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/sysmon"
)

// service is redis-replicad running as a child process of the harness.
type service struct {
	proc     *proc
	url      string
	user     string
	password string
	caPEM    []byte
	dataDir  string
	http     *http.Client
	profURL  string // the profiling wrapper's control endpoint, when profiling
}

// build compiles the programs the harness runs into OutDir/bin.
func (b *runner) build(ctx context.Context) error {
	bin := filepath.Join(b.cfg.OutDir, "bin")
	for _, t := range []struct{ out, pkg string }{
		{"redis-replicad", "./cmd/redis-replicad"},
		{"terraform-provider-redis", "."},
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(bin, t.out), t.pkg)
		cmd.Dir = b.cfg.Root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", t.pkg, err, out)
		}
	}
	return nil
}

// startService runs the service with its data under runDir. Databases get
// ports from a range of their own.
func (b *runner) startService(ctx context.Context) (*service, error) {
	return b.startInstance(ctx, "service", 0, b.cfg.Profile)
}

// portSlot picks, once per run, which of 13 ranges of 300 ports the first
// instance takes; instance n takes the n-th range after it.
var portSlot = int(time.Now().UnixNano() % 13)

// startInstance runs an instance of the service named name (its data dir
// and log under runDir), with the n-th port range of the run, under the
// profiling wrapper when profile is set.
func (b *runner) startInstance(ctx context.Context, name string, n int, profile bool) (*service, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	// Databases get ports below the kernel's ephemeral ones (32768 and up),
	// so that no client connection takes a database's port between its
	// check and its start, and away from the test helpers' windows
	// (20000-39999) and the service's default range (12000-12999).
	lo := 14000 + 300*((portSlot+n)%13)
	s := &service{dataDir: filepath.Join(b.runDir, name)}
	logPath := filepath.Join(b.runDir, name+".log")
	cluster := "bench"
	if n > 0 {
		cluster = fmt.Sprintf("bench-%d", n)
	}
	args := []string{"serve", "--name", cluster, "--data-dir", s.dataDir, "--listen", "127.0.0.1:" + strconv.Itoa(port),
		"--port-range", fmt.Sprintf("%d-%d", lo, lo+299), "--log-level", envOr("BENCH_LOG_LEVEL", "warn")}
	bin := filepath.Join(b.cfg.OutDir, "bin", "redis-replicad")
	if profile {
		// The harness itself, as a service that can be told to profile.
		if bin, err = os.Executable(); err != nil {
			return nil, err
		}
		pport, err := freePort()
		if err != nil {
			return nil, err
		}
		s.profURL = "http://127.0.0.1:" + strconv.Itoa(pport)
		args = append([]string{"service", "--profile-listen", "127.0.0.1:" + strconv.Itoa(pport),
			"--profile-dir", filepath.Join(b.cfg.OutDir, "profiles")}, args[1:]...)
	}
	cmd := exec.Command(bin, args...)
	if profile {
		// What redis-replicad serve gives itself (internal/sysmon).
		cmd.Env, _ = sysmon.WithAwake(os.Environ())
	}
	s.proc, err = b.procs.start("redis-replicad", cmd, logPath, syscall.SIGTERM)
	if err != nil {
		return nil, err
	}
	s.url = "https://127.0.0.1:" + strconv.Itoa(port)
	s.user = "admin"
	deadline := time.Now().Add(60 * time.Second)
	for {
		pw, err1 := os.ReadFile(filepath.Join(s.dataDir, "admin-password"))
		ca, err2 := os.ReadFile(filepath.Join(s.dataDir, "ca.pem"))
		if err1 == nil && err2 == nil && len(pw) > 0 && len(ca) > 0 {
			s.password, s.caPEM = strings.TrimSpace(string(pw)), ca
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(ca)
			s.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableCompression: true}}
			if resp, err := s.http.Get(s.url + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return s, nil
				}
			}
		}
		if time.Now().After(deadline) || s.proc.exited() || ctx.Err() != nil {
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("redis-replicad did not start:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *service) pid() int { return s.proc.pid() }

func (s *service) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, rd)
	if err != nil {
		return err
	}
	req.SetBasicAuth(s.user, s.password)
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// create makes a database and waits until its redis-server answers.
func (s *service) create(ctx context.Context, req api.CreateDatabaseRequest) (api.Database, error) {
	var db api.Database
	if err := s.do(ctx, "POST", "/v1/bdbs", req, &db); err != nil {
		return db, err
	}
	// A replica says loading until its first load ends: its server answers.
	for db.Status != api.StatusActive && db.Status != api.StatusLoading {
		if ctx.Err() != nil {
			return db, fmt.Errorf("database %s not active: %w", req.Name, ctx.Err())
		}
		time.Sleep(20 * time.Millisecond)
		var err error
		if db, err = s.get(ctx, db.UID); err != nil {
			return db, err
		}
	}
	return db, nil
}

func (s *service) get(ctx context.Context, uid int) (api.Database, error) {
	var db api.Database
	err := s.do(ctx, "GET", "/v1/bdbs/"+strconv.Itoa(uid), nil, &db)
	return db, err
}

func (s *service) update(ctx context.Context, uid int, req api.UpdateDatabaseRequest) (api.Database, error) {
	var db api.Database
	err := s.do(ctx, "PUT", "/v1/bdbs/"+strconv.Itoa(uid), req, &db)
	return db, err
}

func (s *service) delete(ctx context.Context, uid int) error {
	return s.do(ctx, "DELETE", "/v1/bdbs/"+strconv.Itoa(uid), nil, nil)
}

// waitInSync polls until every source of uid is in sync. A source that
// reports an error fails the wait only when it stopped (out of sync with a
// stopped sync); transient errors are retried by the service.
func (s *service) waitInSync(ctx context.Context, uid int, every time.Duration) (api.Database, error) {
	for {
		db, err := s.get(ctx, uid)
		if err == nil && db.ReplicaSyncStatus == api.SourceInSync {
			return db, nil
		}
		if err == nil && db.ReplicaSync == api.SyncStopped {
			return db, fmt.Errorf("database %d: sync stopped: %+v", uid, db.ReplicaSources)
		}
		if ctx.Err() != nil {
			return db, fmt.Errorf("database %d not in sync: %w (%+v)", uid, ctx.Err(), db.ReplicaSources)
		}
		time.Sleep(every)
	}
}

// client connects to a database of the service as its application user.
func dbClient(db api.Database) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", db.Port), Password: db.AuthenticationRedisPass,
		MaxRetries: -1, ReadTimeout: time.Minute, PoolSize: 4})
}

// metrics returns the service's Prometheus text.
func (s *service) metrics(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", s.url+"/metrics", nil)
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(s.user, s.password)
	resp, err := s.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// metric returns the value of the series name whose labels contain every
// string of match, or -1.
func metric(text, name string, match ...string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for _, m := range match {
			ok = ok && strings.Contains(line, m)
		}
		if ok {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// destMetrics are the series of destination uid.
type destMetrics struct {
	applied, bytesIn, cmdsApplied, fullSyncs, errors, batches float64
}

func (s *service) destMetrics(ctx context.Context, uid int) (destMetrics, error) {
	text, err := s.metrics(ctx)
	if err != nil {
		return destMetrics{}, err
	}
	l := `destination="` + strconv.Itoa(uid) + `"`
	return destMetrics{
		applied:     metric(text, "replicad_replica_applied_offset", l),
		bytesIn:     metric(text, "replicad_replica_bytes_received_total", l),
		cmdsApplied: metric(text, "replicad_replica_commands_applied_total", l),
		fullSyncs:   metric(text, "replicad_replica_full_syncs_total", l),
		errors:      metric(text, "replicad_replica_errors_total", l),
		batches:     metric(text, "replicad_replica_batches_total", l),
	}, nil
}

// profile starts (name != "") or stops the CPU profile of a service run by
// the profiling wrapper; without the wrapper it does nothing.
func (s *service) profile(ctx context.Context, action, name string) {
	if s.profURL == "" {
		return
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", s.profURL+"/"+action+"?name="+name, nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
}

// envOr is the environment variable name, or def when it is empty.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
