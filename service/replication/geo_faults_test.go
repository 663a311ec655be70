package replication_test

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// geoPair is two redis-replicad processes on one host, as two regions: A
// holds the source database, B the destinations that replicate it through
// A's replication gateway.
type geoPair struct {
	t      *testing.T
	a, b   *servicetest.Process
	aa, ba *apiClient
	src    api.Database
	srcc   *redis.Client
}

func startGeoPair(t *testing.T, argsA ...string) *geoPair {
	t.Helper()
	g := &geoPair{t: t, a: servicetest.StartProcess(t, argsA...), b: servicetest.StartProcess(t)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("instance A log:\n%s", tail(g.a.Log(), 60))
			t.Logf("instance B log:\n%s", tail(g.b.Log(), 60))
		}
	})
	g.aa = newAPI(t, &servicetest.Instance{URL: g.a.URL, Username: "admin", Password: g.a.Password(t), CACert: g.a.CACert(t)})
	g.ba = newAPI(t, &servicetest.Instance{URL: g.b.URL, Username: "admin", Password: g.b.Password(t), CACert: g.b.CACert(t)})
	g.src = g.aa.create(api.CreateDatabaseRequest{Name: "geo-source", MemorySize: 256 << 20})
	g.srcc = redis.NewClient(&redis.Options{Addr: fmt.Sprintf("%s:%d", g.src.Endpoint.Host, g.src.Endpoint.Port),
		Password: g.src.AuthenticationRedisPass, MaxRetries: -1, DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second})
	t.Cleanup(func() { g.srcc.Close() })
	return g
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// preload writes n keys of size bytes to the source, so that a full load
// takes a moment.
func (g *geoPair) preload(n, size int) {
	g.t.Helper()
	ctx := context.Background()
	val := strings.Repeat("v", size)
	for i := 0; i < n; i += 1000 {
		pipe := g.srcc.Pipeline()
		for k := i; k < i+1000 && k < n; k++ {
			pipe.Set(ctx, fmt.Sprint("bulk:", k), val, 0)
		}
		_, err := pipe.Exec(ctx)
		require.NoError(g.t, err)
	}
}

// sourceServerPID is the pid of the source database's redis-server.
func (g *geoPair) sourceServerPID() int {
	g.t.Helper()
	info, err := g.srcc.Info(context.Background(), "server").Result()
	require.NoError(g.t, err)
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "process_id:"); ok {
			var pid int
			fmt.Sscan(v, &pid)
			return pid
		}
	}
	g.t.Fatalf("no process_id in INFO server")
	return 0
}

// restartA starts A again after a kill.
func (g *geoPair) restartA() { g.a.Start(g.t) }

// geoWriter writes INCRs of counters and RPUSHes of increasing numbers to
// the source, in pipelines (every fourth a transaction), through every
// fault: a lost or repeated command shows as a counter or a list that
// differs.
type geoWriter struct {
	acked atomic.Int64
	stop  func()
}

func startGeoWriter(t *testing.T, c *redis.Client) *geoWriter { return startPacedGeoWriter(t, c, 0) }

// startPacedGeoWriter is startGeoWriter with a pause of gap after each
// pipeline: a write rate that a source's backlog holds through a long
// fault.
func startPacedGeoWriter(t *testing.T, c *redis.Client, gap time.Duration) *geoWriter {
	ctx, cancel := context.WithCancel(context.Background())
	w := &geoWriter{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ctx.Err() == nil; n++ {
			var pipe redis.Pipeliner
			if n%4 == 0 {
				pipe = c.TxPipeline()
			} else {
				pipe = c.Pipeline()
			}
			for k := range 20 {
				pipe.Incr(ctx, fmt.Sprint("ctr:", (n+k)%30))
				pipe.RPush(ctx, fmt.Sprint("seq:", k%8), n*20+k)
			}
			pause := gap
			if _, err := pipe.Exec(ctx); err == nil {
				w.acked.Add(20)
			} else {
				pause = 50 * time.Millisecond // the source is down: try again shortly
			}
			if pause > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
		}
	}()
	var once sync.Once
	w.stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(w.stop)
	return w
}

// waitAcked waits until the writer has had n more writes acknowledged.
func (w *geoWriter) waitAcked(t *testing.T, n int64) {
	t.Helper()
	base := w.acked.Load()
	redistest.Eventually(t, 2*time.Minute, "the source takes writes", func() error {
		if got := w.acked.Load() - base; got < n {
			return fmt.Errorf("%d of %d writes", got, n)
		}
		return nil
	})
}

func (g *geoPair) createReplica(name string, src api.ReplicaSource) api.Database {
	g.t.Helper()
	return g.ba.create(api.CreateDatabaseRequest{Name: name, MemorySize: 256 << 20, ReplicaSources: []api.ReplicaSource{src}})
}

// waitLoading waits until B's destination has begun its full load.
func (g *geoPair) waitLoading(uid int) {
	g.t.Helper()
	redistest.Eventually(g.t, 2*time.Minute, "the full load has begun", func() error {
		db := g.ba.get(uid)
		if len(db.ReplicaSources) == 1 && db.ReplicaSources[0].RDBTransferred > 0 {
			return nil
		}
		return fmt.Errorf("%+v", db.ReplicaSources)
	})
}

// waitDown waits until B's destination tells that its source is not there:
// not in sync, with an error and a lag that grows.
func (g *geoPair) waitDown(uid int, why string) api.ReplicaSourceStatus {
	g.t.Helper()
	var s api.ReplicaSourceStatus
	// The documented limits are 5 s (probe) and 15 s (silence); the margin
	// is for a loaded machine.
	redistest.Eventually(g.t, time.Minute, "B tells that "+why, func() error {
		db := g.ba.get(uid)
		if len(db.ReplicaSources) != 1 {
			return fmt.Errorf("sources %+v", db.ReplicaSources)
		}
		s = db.ReplicaSources[0]
		switch {
		case db.ReplicaSyncStatus == api.SourceInSync || s.Status == api.SourceInSync:
			return fmt.Errorf("status %s, source %s", db.ReplicaSyncStatus, s.Status)
		case s.LastError == "":
			return fmt.Errorf("no last_error: %+v", s)
		case s.Lag <= 0:
			return fmt.Errorf("lag %d", s.Lag)
		}
		return nil
	})
	return s
}

func (g *geoPair) waitEqual(dst api.Database) {
	g.t.Helper()
	dc := destClient(g.t, dst, 0)
	g.ba.waitInSync(dst.UID, 2*time.Minute)
	eventuallyEqual(g.t, 2*time.Minute, dc, g.srcc)
}

// TestGeoKill9OfEitherInstanceLosesNothing kills instance B during its full
// load of A's database and while it streams, then A while B streams (B must
// tell that A is gone, with a lag that grows), then the source's
// redis-server, all under a write load of counters and lists: B ends equal
// to the source, key by key.
func TestGeoKill9OfEitherInstanceLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes")
	}
	g := startGeoPair(t)
	g.preload(60000, 1000)
	w := startGeoWriter(t, g.srcc)
	w.waitAcked(t, 2000)

	dst := g.createReplica("geo-dest", api.ReplicaSource{URI: g.aa.sourceURL(g.src.UID)})
	g.waitLoading(dst.UID)
	t.Log("killing B during the full load")
	g.b.Kill(t)
	g.b.Start(t)
	g.ba.waitInSync(dst.UID, 2*time.Minute)

	w.waitAcked(t, 5000)
	t.Log("killing B while it streams")
	g.b.Kill(t)
	g.b.Start(t)
	g.ba.waitInSync(dst.UID, 2*time.Minute)

	w.waitAcked(t, 5000)
	t.Log("killing A while B streams")
	g.a.Kill(t)
	s := g.waitDown(dst.UID, "A is down")
	t.Logf("while A is down: %+v", s)
	g.restartA()
	g.ba.waitInSync(dst.UID, 2*time.Minute)

	w.waitAcked(t, 5000)
	t.Log("killing the source's redis-server while B streams")
	pid := g.sourceServerPID()
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	w.waitAcked(t, 5000)

	w.stop()
	g.waitEqual(dst)
}

// TestGeoKill9OfTheSourceInstanceDuringTheFullLoad kills A while B loads
// its database, under writes: B says so, and once A is back it ends equal.
func TestGeoKill9OfTheSourceInstanceDuringTheFullLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes")
	}
	g := startGeoPair(t)
	g.preload(60000, 1000)
	w := startGeoWriter(t, g.srcc)
	w.waitAcked(t, 2000)

	dst := g.createReplica("geo-dest", api.ReplicaSource{URI: g.aa.sourceURL(g.src.UID), Compression: 3})
	g.waitLoading(dst.UID)
	t.Log("killing A during the full load")
	g.a.Kill(t)
	s := g.waitDown(dst.UID, "A is down during the load")
	t.Logf("while A is down: %+v", s)
	g.restartA()
	w.waitAcked(t, 5000)
	w.stop()
	g.waitEqual(dst)
}

// regenerate regenerates the source's admin password on A.
func (g *geoPair) regenerate() api.AdminPassword {
	g.t.Helper()
	var pw api.AdminPassword
	code, body := g.aa.do("POST", fmt.Sprintf("/v1/bdbs/%d/actions/regenerate_admin_password", g.src.UID), nil, &pw)
	require.Equal(g.t, 200, code, body)
	return pw
}

// TestGeoAdminPasswordRegeneratedWhileStreaming regenerates the source's
// admin password while B streams under writes. B keeps streaming through
// the grace period; once it ends, B, not given the new URL, says that the
// authentication failed; a second destination given the new URL within the
// grace period continues without a full sync; and the first, given the new
// URL, continues from its checkpoint, without a full sync, and ends equal
// to the source.
func TestGeoAdminPasswordRegeneratedWhileStreaming(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes")
	}
	const grace = 25 * time.Second
	g := startGeoPair(t, "--admin-password-grace", grace.String())
	w := startGeoWriter(t, g.srcc)
	w.waitAcked(t, 2000)
	old := g.aa.sourceURL(g.src.UID)
	late := g.createReplica("geo-late", api.ReplicaSource{URI: old})
	prompt := g.createReplica("geo-prompt", api.ReplicaSource{URI: old, Compression: 2})
	g.ba.waitInSync(late.UID, 2*time.Minute)
	g.ba.waitInSync(prompt.UID, 2*time.Minute)
	fullSyncs := func() float64 {
		return metric(g.ba.metrics(), "replicad_replica_full_syncs_total", fmt.Sprintf(`destination="%d"`, prompt.UID))
	}
	fullBefore := fullSyncs()
	require.Positive(t, fullBefore, "the first load is a full sync")

	pw := g.regenerate()
	require.NotEqual(t, old, pw.URI)
	regenerated := time.Now()

	// Within the grace period the old URL keeps working: the late
	// destination follows the writes.
	w.waitAcked(t, 3000)
	g.ba.waitInSync(late.UID, time.Minute)
	if time.Since(regenerated) < grace-5*time.Second {
		db := g.ba.get(late.UID)
		require.Equal(t, api.SourceInSync, db.ReplicaSyncStatus, "within the grace period: %+v", db.ReplicaSources)
		require.Empty(t, db.ReplicaSources[0].LastError)
	}

	// The prompt destination is given the new URL: it continues.
	g.ba.update(prompt.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: pw.URI, Compression: 2}}})
	g.ba.waitInSync(prompt.UID, 2*time.Minute)

	// Once the grace ends the late one says the authentication failed.
	redistest.Eventually(t, grace+time.Minute, "the late destination says its authentication failed", func() error {
		db := g.ba.get(late.UID)
		s := db.ReplicaSources[0]
		if db.ReplicaSyncStatus == api.SourceInSync || s.Status == api.SourceInSync ||
			!strings.Contains(strings.ToLower(s.LastError), "auth") {
			return fmt.Errorf("status %s sync %s: %+v", db.ReplicaSyncStatus, db.ReplicaSync, s)
		}
		if s.Lag <= 0 {
			return fmt.Errorf("lag %d", s.Lag)
		}
		return nil
	})
	db := g.ba.get(late.UID)
	require.NotContains(t, db.ReplicaSources[0].LastError, pw.AuthenticationAdminPass)
	u, _ := url.Parse(old)
	oldPW, _ := u.User.Password()
	require.NotContains(t, db.ReplicaSources[0].LastError, oldPW)

	// The prompt one never noticed, and was never loaded again.
	w.waitAcked(t, 3000)
	g.ba.waitInSync(prompt.UID, 2*time.Minute)
	require.Equal(t, fullBefore, fullSyncs(), "full syncs of the destination given the new URL in time")

	// The late one, given the new URL, continues from where it stopped,
	// without a full sync, and ends equal too.
	lateFull := metric(g.ba.metrics(), "replicad_replica_full_syncs_total", fmt.Sprintf(`destination="%d"`, late.UID))
	require.Positive(t, lateFull)
	enabled := api.SyncEnabled
	g.ba.update(late.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: pw.URI}}, ReplicaSync: &enabled})
	w.waitAcked(t, 3000)
	w.stop()
	g.waitEqual(prompt)
	g.waitEqual(late)
	require.Equal(t, lateFull, metric(g.ba.metrics(), "replicad_replica_full_syncs_total", fmt.Sprintf(`destination="%d"`, late.UID)),
		"full syncs of the destination given the new URL after its sync stopped")
}

// TestGeoInstancesOnOverlappingPortsAndDataDirectories starts B on the
// port range of A, and a third instance on A's listen address and on A's
// data directory: what collides is refused with an error that says which
// port or directory, and A's source and B's replica of it go on untouched.
func TestGeoInstancesOnOverlappingPortsAndDataDirectories(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	g := startGeoPair(t)
	var portRange string
	for i, a := range g.a.Cmd.Args {
		if a == "--port-range" {
			portRange = g.a.Cmd.Args[i+1]
		}
	}
	require.NotEmpty(t, portRange)
	// B again, on A's port range.
	g.b.Kill(t)
	g.b.Args = []string{"--port-range", portRange}
	g.b.Start(t)

	w := startGeoWriter(t, g.srcc)
	w.waitAcked(t, 2000)
	dst := g.createReplica("geo-dest", api.ReplicaSource{URI: g.aa.sourceURL(g.src.UID)})
	g.ba.waitInSync(dst.UID, 2*time.Minute)
	require.NotEqual(t, g.src.Endpoint.Port, dst.Endpoint.Port)
	require.NotEqual(t, g.src.ReplicationPort, dst.Endpoint.Port)

	for _, port := range []int{g.src.Endpoint.Port, g.src.ReplicationPort} {
		var db api.Database
		code, body := g.ba.do("POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: fmt.Sprint("taken-", port), MemorySize: 64 << 20, Port: port}, &db)
		require.Contains(t, []int{400, 409}, code, "a create on port %d of A: %s", port, body)
		require.Contains(t, body, fmt.Sprint(port), "the error names the port")
	}
	var list []api.Database
	code, body := g.ba.do("GET", "/v1/bdbs", nil, &list)
	require.Equal(t, 200, code, body)
	require.Len(t, list, 1, "the refused creates left nothing on B")

	// A third instance on A's listen address, and one on A's data directory.
	for _, args := range [][]string{
		{"serve", "--data-dir", t.TempDir(), "--listen", g.a.Listen, "--port-range", portRange},
		{"serve", "--data-dir", g.a.DataDir, "--listen", g.b.Listen, "--port-range", portRange},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		out, err := exec.CommandContext(ctx, g.a.Cmd.Path, args...).CombinedOutput()
		cancel()
		require.Error(t, err, "%v started: %s", args, out)
		require.NotEqual(t, context.DeadlineExceeded, ctx.Err(), "%v did not stop: %s", args, out)
		require.Regexp(t, `(?i)(address already in use|in use|another|locked|already)`, string(out), "%v", args)
	}

	w.waitAcked(t, 3000)
	w.stop()
	g.waitEqual(dst)
}

// TestGeoTLSAndCompressionChangedWhileStreaming changes B's source from
// plain to TLS (A's proxy certificate) with compression, restarts A (its
// gateway with it), then turns TLS off with the most compression, under
// writes: every change continues from the checkpoint, with no full sync (A's
// restart gives its redis-server a new replication id: one), and B ends
// equal.
func TestGeoTLSAndCompressionChangedWhileStreaming(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	g := startGeoPair(t)
	var cl api.Cluster
	code, body := g.aa.do("GET", "/v1/cluster", nil, &cl)
	require.Equal(t, 200, code, body)
	require.NotEmpty(t, cl.ProxyCert)
	w := startGeoWriter(t, g.srcc)
	w.waitAcked(t, 2000)
	uri := g.aa.sourceURL(g.src.UID)
	dst := g.createReplica("geo-dest", api.ReplicaSource{URI: uri})
	g.ba.waitInSync(dst.UID, 2*time.Minute)
	fullSyncs := func() float64 {
		return metric(g.ba.metrics(), "replicad_replica_full_syncs_total", fmt.Sprintf(`destination="%d"`, dst.UID))
	}
	full := fullSyncs()
	require.Equal(t, 1.0, full)

	tlsMode := func(mode string) {
		var db api.Database
		code, body := g.aa.do("PUT", fmt.Sprintf("/v1/bdbs/%d", g.src.UID), api.UpdateDatabaseRequest{TLSMode: &mode}, &db)
		require.Equal(t, 200, code, body)
	}
	tlsOn := api.ReplicaSource{URI: uri, Encryption: true, ServerCert: cl.ProxyCert}
	for i, step := range []struct {
		mode string // A's source's tls_mode, changed first when set
		src  api.ReplicaSource
	}{
		{src: api.ReplicaSource{URI: uri, Compression: 4}},
		{mode: api.TLSReplicaSSL, src: api.ReplicaSource{URI: uri, Encryption: true, ServerCert: cl.ProxyCert, Compression: 1}},
		{src: tlsOn},
		{mode: api.TLSDisabled, src: api.ReplicaSource{URI: uri, Compression: 6}},
	} {
		if step.mode != "" {
			tlsMode(step.mode)
		}
		g.ba.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{step.src}})
		w.waitAcked(t, 3000)
		db := g.ba.waitInSync(dst.UID, 2*time.Minute)
		s := db.ReplicaSources[0]
		require.Equal(t, step.src.Compression > 0, s.CompressionActive, "change %d: %+v", i, s)
		require.Equal(t, full, fullSyncs(), "change %d reloaded the destination", i)
		if i == 1 {
			t.Log("restarting A")
			require.NoError(t, g.a.Cmd.Process.Signal(syscall.SIGTERM))
			_ = g.a.Cmd.Wait()
			g.restartA()
			w.waitAcked(t, 3000)
			g.ba.waitInSync(dst.UID, 2*time.Minute)
			// The source's redis-server restarted with a new replication
			// id: one full sync, as documented, and no more.
			full = fullSyncs()
			require.LessOrEqual(t, full, 2.0, "A's restart reloaded the destination more than once")
		}
	}
	w.stop()
	g.waitEqual(dst)
	require.Equal(t, full, fullSyncs())
}
