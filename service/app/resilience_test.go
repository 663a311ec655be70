package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// request does one API request without failing the test (safe from any
// goroutine): the status and the body.
func request(i *servicetest.Instance, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, i.URL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth(i.Username, i.Password)
	resp, err := i.HTTPClient().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// Defect 1 of issue 12: two instances on one host with the same port range,
// creating databases at the same moment, pick the same free ports; the
// loser's redis-server cannot bind. Every create must still succeed on a
// port of its own, and nothing may be left pending.
func TestInstancesSharingAPortRangeCreateAtOnce(t *testing.T) {
	base := 30000 + 40*rand.IntN(250)
	shared := func(c *app.Config) { c.PortMin, c.PortMax = base, base+39 }
	instances := []*servicetest.Instance{servicetest.StartWith(t, shared), servicetest.StartWith(t, shared)}

	const perInstance = 4
	type created struct {
		inst int
		db   api.Database
	}
	var (
		mu      sync.Mutex
		results []created
		wg      sync.WaitGroup
		start   = make(chan struct{})
	)
	for n, inst := range instances {
		for k := range perInstance {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				req := api.CreateDatabaseRequest{Name: fmt.Sprintf("db-%d", k), MemorySize: 16 << 20}
				code, body, err := request(inst, "POST", "/v1/bdbs", req)
				if !assert.NoError(t, err) || !assert.Equal(t, http.StatusOK, code, "create %s on instance %d: %s", req.Name, n, body) {
					return
				}
				var db api.Database
				if assert.NoError(t, json.Unmarshal(body, &db)) {
					mu.Lock()
					results = append(results, created{n, db})
					mu.Unlock()
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	require.Len(t, results, 2*perInstance, "every create succeeds")

	ports := map[int]string{}
	for _, r := range results {
		for _, p := range []int{r.db.Port, r.db.ReplicationPort} {
			who := fmt.Sprintf("instance %d database %s", r.inst, r.db.Name)
			if other, dup := ports[p]; dup {
				t.Errorf("port %d is used by %s and %s", p, other, who)
			}
			ports[p] = who
		}
		assert.Equal(t, api.StatusActive, r.db.Status)
		c := dbClient(t, r.db, r.db.AuthenticationRedisPass)
		key := fmt.Sprintf("owner:%d:%s", r.inst, r.db.Name)
		require.NoError(t, c.Set(ctx(t), key, "me", 0).Err(), "instance %d database %s serves on port %d", r.inst, r.db.Name, r.db.Port)
		n, err := c.DBSize(ctx(t)).Result()
		require.NoError(t, err)
		assert.EqualValues(t, 1, n, "database %s of instance %d on port %d holds only its own key", r.db.Name, r.inst, r.db.Port)
	}
	for n, inst := range instances {
		var list []api.Database
		code, _ := call(t, inst, "GET", "/v1/bdbs", nil, &list)
		require.Equal(t, http.StatusOK, code)
		assert.Len(t, list, perInstance, "instance %d keeps exactly the databases it created", n)
		for _, db := range list {
			assert.Equal(t, api.StatusActive, db.Status, "instance %d database %s", n, db.Name)
		}
	}
}

// Defect 2 of issue 12: any printable password works, spaces included, for
// the application user and in source URLs; the files on disk hold hashes.
func TestPasswordsWithSpaces(t *testing.T) {
	i := servicetest.Start(t)
	const appPass = "correct horse battery staple"
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "spaced", MemorySize: 16 << 20, AuthenticationRedisPass: appPass})
	assert.Equal(t, appPass, db.AuthenticationRedisPass)
	require.NoError(t, dbClient(t, db, appPass).Set(ctx(t), "k", "v", 0).Err(), "the application logs in with a password holding spaces")
	assert.Error(t, dbClient(t, db, "correct horse").Ping(ctx(t)).Err(), "a wrong password is refused")

	newPass := "  another one, with spaces  "
	var updated api.Database
	code, e := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", db.UID), map[string]any{"authentication_redis_pass": newPass}, &updated)
	require.Equal(t, http.StatusOK, code, "update: %v", e)
	require.NoError(t, dbClient(t, db, newPass).Ping(ctx(t)).Err())

	// Control characters are still refused, with a clear error.
	code, e = call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", db.UID), map[string]any{"authentication_redis_pass": "bad\npassword"}, nil)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, e.Description, "control characters")

	// A source whose password holds spaces, URL-encoded in its URL.
	const srcPass = "source pass word"
	src := redistest.Start(t, "--requirepass", srcPass)
	require.NoError(t, src.Client().Set(ctx(t), "from-source", "yes", 0).Err())
	uri := "redis://:" + url.PathEscape(srcPass) + "@" + src.Addr()
	require.Contains(t, uri, "%20")
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "spaced-replica", MemorySize: 16 << 20,
		AuthenticationRedisPass: "reader password", ReplicaSources: []api.ReplicaSource{{URI: uri}}})
	eventually(t, time.Minute, "the replica loads from a source whose password holds spaces", func() error {
		got, err := dbClient(t, dst, "reader password").Get(ctx(t), "from-source").Result()
		if err != nil {
			return err
		}
		if got != "yes" {
			return fmt.Errorf("value %q", got)
		}
		return nil
	})

	// No password is on disk in clear in the databases' files.
	err := filepath.Walk(filepath.Join(i.DataDir, "dbs"), func(path string, info os.FileInfo, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while walked: a rewrite's temporary file
		}
		if err != nil || info.IsDir() || !strings.HasSuffix(path, ".conf") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, pw := range []string{appPass, newPass, "reader password", db.AuthenticationRedisPass} {
			assert.NotContains(t, string(b), pw, "%s holds a password in clear", path)
		}
		assert.Contains(t, string(b), "#", "%s holds password hashes", path)
		return nil
	})
	require.NoError(t, err)
}

// slowLoadingRedis is redis-server with Redis's own key-load-delay knob:
// replaying an AOF then takes a while, as it does for a large dataset.
func slowLoadingRedis(t *testing.T) string {
	t.Helper()
	bin := servicetest.RequireRedisServer(t)
	path := filepath.Join(t.TempDir(), "redis-server-slow-load")
	script := "#!/bin/sh\nexec " + bin + " \"$@\" --key-load-delay 200\n"
	require.NoError(t, os.WriteFile(path, []byte(script), 0o755))
	return path
}

func healthz(i *servicetest.Instance) (string, error) {
	resp, err := i.HTTPClient().Get(i.URL + "/healthz")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct{ Status string }
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	err = json.NewDecoder(resp.Body).Decode(&body)
	return body.Status, err
}

// Defect 5 of issue 12: a restart whose databases replay their AOF must not
// hide the API: /healthz says "starting", the database says "loading" (with
// its progress), and both become ready by themselves.
func TestAPIAnswersWhileDatabasesLoad(t *testing.T) {
	i := servicetest.StartWith(t, func(c *app.Config) { c.RedisServer = slowLoadingRedis(t) })
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "big", MemorySize: 64 << 20})
	c := dbClient(t, db, db.AuthenticationRedisPass)
	const keys = 30000
	for n := 0; n < keys; n += 1000 {
		pipe := c.Pipeline()
		for k := n; k < n+1000; k++ {
			pipe.Set(ctx(t), "key:"+strconv.Itoa(k), k, 0)
		}
		_, err := pipe.Exec(ctx(t))
		require.NoError(t, err)
	}
	i.Stop(t)

	i.StartAgainServing(t)
	// At once, not after the load: the API serves and says why it is not
	// all there yet.
	status, err := healthz(i)
	require.NoError(t, err)
	assert.Equal(t, "starting", status)
	seen := map[string]bool{}
	var progress float64
	eventually(t, 2*time.Minute, "the database is back after its load", func() error {
		var got api.Database
		code, body, err := request(i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("GET: %d %v", code, err)
		}
		if err := json.Unmarshal(body, &got); err != nil {
			return err
		}
		seen[got.Status] = true
		if got.Status == api.StatusLoading {
			progress = max(progress, got.LoadingProgress)
		}
		if got.Status != api.StatusActive {
			return fmt.Errorf("status %s", got.Status)
		}
		return nil
	})
	assert.True(t, seen[api.StatusLoading], "the database said loading while it replayed its AOF (seen: %v)", seen)
	assert.Greater(t, progress, 0.0, "loading comes with its progress")
	eventually(t, time.Minute, "healthz says ok", func() error {
		s, err := healthz(i)
		if err != nil {
			return err
		}
		if s != "ok" {
			return fmt.Errorf("healthz %q", s)
		}
		return nil
	})
	n, err := c.DBSize(ctx(t)).Result()
	require.NoError(t, err)
	assert.EqualValues(t, keys, n, "every key is back")
}

// Defect 6 of issue 12: status reads never wait for a busy redis-server.
// Here every database is frozen (SIGSTOP), the extreme of a busy one: the
// list, each database and /healthz still answer at once.
func TestStatusReadsDoNotWaitForBusyDatabases(t *testing.T) {
	i := servicetest.Start(t)
	const n = 6
	var pids []int
	for k := range n {
		db := mustCreate(t, i, api.CreateDatabaseRequest{Name: fmt.Sprintf("busy-%d", k), MemorySize: 16 << 20})
		pid := i.App.Databases().PID(ctx(t), db.UID)
		require.NotZero(t, pid)
		pids = append(pids, pid)
	}
	for _, pid := range pids {
		require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	}
	// A frozen database made each status read wait for a PING timeout
	// (a second per database); now no read does any I/O on it. The bound
	// is far above what a read takes, far below what waiting costs.
	const bound = 2 * time.Second
	for range 3 {
		began := time.Now()
		code, body, err := request(i, "GET", "/v1/bdbs", nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, "%s", body)
		assert.Less(t, time.Since(began), bound, "GET /v1/bdbs with %d frozen databases", n)

		began = time.Now()
		code, _, err = request(i, "GET", "/v1/bdbs/1", nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
		assert.Less(t, time.Since(began), bound, "GET /v1/bdbs/1 of a frozen database")

		began = time.Now()
		_, err = healthz(i)
		require.NoError(t, err)
		assert.Less(t, time.Since(began), bound, "/healthz")
	}
}

// Defect 4 of issue 12: a source whose client-output-buffer-limit for
// replicas is smaller than what its writes pile up during a full sync cuts
// every load. The destination says what to change on the source, backs off
// between attempts, and succeeds once the limit is raised.
func TestLoadCutBySourceOutputBufferLimit(t *testing.T) {
	i := servicetest.Start(t)
	src := redistest.Start(t, "--client-output-buffer-limit", "replica 256kb 0 0")
	sc := src.Client()
	// A dataset whose transfer takes a while...
	for n := 0; n < 200000; n += 2000 {
		pipe := sc.Pipeline()
		for k := n; k < n+2000; k++ {
			pipe.Set(ctx(t), "data:"+strconv.Itoa(k), strings.Repeat("d", 100), 0)
		}
		_, err := pipe.Exec(ctx(t))
		require.NoError(t, err)
	}
	// ...and writes that pile up meanwhile.
	value := strings.Repeat("w", 1024)
	stopWriter := writeUntilStopped(t, func(c context.Context, n int) error {
		return sc.Set(c, "write:"+strconv.Itoa(n%2000), value, 0).Err()
	})

	// The source's transfers go through a slow link, so that its writes
	// pile up past the limit during every one of them, whatever the
	// machine's speed (a fast load could end before they did).
	proxy := redistest.StartProxy(t, src.Addr())
	proxy.Slow(64<<10, 20*time.Millisecond)
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "cut", MemorySize: 256 << 20, ReplicaSources: []api.ReplicaSource{{URI: "redis://" + proxy.Addr}}})
	get := func() api.ReplicaSourceStatus {
		var got api.Database
		code, e := call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", dst.UID), nil, &got)
		require.Equal(t, http.StatusOK, code, "%v", e)
		require.Len(t, got.ReplicaSources, 1)
		return got.ReplicaSources[0]
	}
	var first time.Time
	var lastErr string
	eventually(t, 2*time.Minute, "last_error says what to change on the source", func() error {
		s := get()
		if !strings.Contains(s.LastError, "client-output-buffer-limit") {
			return fmt.Errorf("last_error %q", s.LastError)
		}
		if first.IsZero() {
			first = time.Now()
		}
		if !strings.Contains(s.LastError, "attempt 3 ") {
			return fmt.Errorf("last_error %q", s.LastError)
		}
		lastErr = s.LastError
		assert.Equal(t, api.SourceOutOfSync, s.Status)
		return nil
	})
	// Backing off: attempts 2 and 3 were announced 2 s and 4 s (at least
	// three quarters of that) after the ones before.
	assert.GreaterOrEqual(t, time.Since(first), 4*time.Second, "attempts are spaced")
	assert.Contains(t, lastErr, "next attempt in")
	// Full syncs are read before the attempt count, so that an attempt
	// starting in between cannot make the check fail: each announced attempt
	// is one full sync, plus at most the one running now.
	served := statsField(t, sc, "sync_full")
	attempt := -1
	if m := regexp.MustCompile(`attempt (\d+) `).FindStringSubmatch(get().LastError); m != nil {
		attempt, _ = strconv.Atoi(m[1])
	}
	require.GreaterOrEqual(t, attempt, 3, "last_error still counts the cut attempts")
	assert.LessOrEqual(t, served, attempt+1, "the source served one full sync per announced attempt, not a loop")

	// What the message says to do works (over a link that keeps up with
	// the writer).
	proxy.Slow(0, 0)
	require.NoError(t, sc.ConfigSet(ctx(t), "client-output-buffer-limit", "replica 0 0 0").Err())
	eventually(t, 3*time.Minute, "the destination is in sync once the limit is raised", func() error {
		if s := get(); s.Status != api.SourceInSync {
			return fmt.Errorf("status %s, last_error %q", s.Status, s.LastError)
		}
		return nil
	})
	stopWriter()
	dc := dbClient(t, dst, dst.AuthenticationRedisPass)
	// Minutes: on a loaded machine the destination may still be well
	// behind the writer it just caught up with.
	eventually(t, 3*time.Minute, "the destination holds exactly the source's data", func() error {
		return redistest.Diff(ctx(t), dc, sc)
	})
}

// Issue 12, item 3 (the part that is done): while a destination reloads
// (flushed, its sources not all loaded), it says loading rather than
// active, and active again once the load completes.
func TestReloadingDestinationSaysLoading(t *testing.T) {
	i := servicetest.Start(t)
	src := redistest.Start(t)
	for n := range 1000 {
		require.NoError(t, src.Client().Set(ctx(t), "k"+strconv.Itoa(n), n, 0).Err())
	}
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "reloading", MemorySize: 64 << 20})
	// The source is frozen: the load that the new source list starts
	// cannot end until it thaws.
	require.NoError(t, syscall.Kill(src.PID(), syscall.SIGSTOP))
	thaw := sync.OnceFunc(func() { _ = syscall.Kill(src.PID(), syscall.SIGCONT) })
	t.Cleanup(thaw)
	var got api.Database
	code, e := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", dst.UID), map[string]any{"replica_sources": []api.ReplicaSource{{URI: src.URL()}}}, &got)
	require.Equal(t, http.StatusOK, code, "%v", e)
	eventually(t, time.Minute, "the reloading destination says loading", func() error {
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", dst.UID), nil, &got)
		if got.Status != api.StatusLoading {
			return fmt.Errorf("status %s", got.Status)
		}
		return nil
	})
	assert.GreaterOrEqual(t, got.LoadingProgress, 0.0)
	assert.Less(t, got.LoadingProgress, 100.0)
	thaw()
	eventually(t, time.Minute, "the loaded destination is active", func() error {
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", dst.UID), nil, &got)
		if got.Status != api.StatusActive || got.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("status %s, sync %s", got.Status, got.ReplicaSyncStatus)
		}
		return nil
	})
	require.NoError(t, redistest.Diff(ctx(t), dbClient(t, dst, dst.AuthenticationRedisPass), src.Client()))
}

// Defect 3 of issue 12: while a destination reloads (here: its source list
// changed), its readers keep the previous data, whole, until the new data is
// loaded; then they see the new data, whole.
func TestReloadKeepsThePreviousDataReadable(t *testing.T) {
	i := servicetest.Start(t)
	oldSrc, newSrc := redistest.Start(t), redistest.Start(t)
	const keys = 2000
	for n := range keys {
		require.NoError(t, oldSrc.Client().Set(ctx(t), "old:"+strconv.Itoa(n), n, 0).Err())
		require.NoError(t, newSrc.Client().Set(ctx(t), "new:"+strconv.Itoa(n), n, 0).Err())
	}
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "swapped", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: oldSrc.URL()}}})
	dc := dbClient(t, dst, dst.AuthenticationRedisPass)
	eventually(t, time.Minute, "the destination holds the old source", func() error {
		return redistest.Diff(ctx(t), dc, oldSrc.Client())
	})

	// The new source is frozen: the reload cannot end until it thaws.
	require.NoError(t, syscall.Kill(newSrc.PID(), syscall.SIGSTOP))
	thaw := sync.OnceFunc(func() { _ = syscall.Kill(newSrc.PID(), syscall.SIGCONT) })
	t.Cleanup(thaw)
	code, e := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", dst.UID), map[string]any{"replica_sources": []api.ReplicaSource{{URI: newSrc.URL()}}}, nil)
	require.Equal(t, http.StatusOK, code, "%v", e)
	var got api.Database
	eventually(t, time.Minute, "the destination says loading", func() error {
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", dst.UID), nil, &got)
		if got.Status != api.StatusLoading {
			return fmt.Errorf("status %s", got.Status)
		}
		return nil
	})
	// Readers still see every key of the previous data, and nothing else.
	require.NoError(t, redistest.Diff(ctx(t), dc, oldSrc.Client()), "the previous data stays readable during the reload")

	thaw()
	eventually(t, time.Minute, "the destination holds the new source, and only it", func() error {
		return redistest.Diff(ctx(t), dc, newSrc.Client())
	})
	eventually(t, time.Minute, "the destination is in sync and active", func() error {
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", dst.UID), nil, &got)
		if got.Status != api.StatusActive || got.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("status %s, sync %s", got.Status, got.ReplicaSyncStatus)
		}
		return nil
	})
	// It keeps replicating from the checkpoint the swap brought, and its
	// AOF holds the new data: a restart keeps it.
	require.NoError(t, newSrc.Client().Set(ctx(t), "new:after", "swap", 0).Err())
	eventually(t, time.Minute, "a write after the swap is replicated", func() error {
		return redistest.Diff(ctx(t), dc, newSrc.Client())
	})
	i.Restart(t)
	dc = dbClient(t, dst, dst.AuthenticationRedisPass)
	eventually(t, time.Minute, "the swapped data survives a restart", func() error {
		return redistest.Diff(ctx(t), dc, newSrc.Client())
	})
}

// A reload into a second server (several sources: see
// TestSingleSourceLoadsFromAFile for one) is swapped in while the sources'
// links stay open: a source whose backlog cannot cover the time of the
// swap (a busy source, a small repl-backlog-size) is not asked for another
// full sync after it, which on a busy enough source used to make a reload
// loop.
func TestSwapKeepsTheSourceLinksOpen(t *testing.T) {
	i := servicetest.Start(t)
	oldSrc, other := redistest.Start(t), redistest.Start(t)
	require.NoError(t, other.Client().Set(ctx(t), "other", "1", 0).Err())
	busy := redistest.Start(t, "--repl-backlog-size", "16kb")
	bc := busy.Client()
	for n := 0; n < 50000; n += 1000 {
		pipe := bc.Pipeline()
		for k := n; k < n+1000; k++ {
			pipe.Set(ctx(t), "data:"+strconv.Itoa(k), strings.Repeat("d", 64), 0)
		}
		_, err := pipe.Exec(ctx(t))
		require.NoError(t, err)
	}
	require.NoError(t, oldSrc.Client().Set(ctx(t), "old", "1", 0).Err())
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "busy", MemorySize: 128 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: oldSrc.URL()}}})
	dc := dbClient(t, dst, dst.AuthenticationRedisPass)
	eventually(t, time.Minute, "the destination holds the old source", func() error {
		return redistest.Diff(ctx(t), dc, oldSrc.Client())
	})

	// Writes that overrun a 16 kB backlog many times a second.
	value := strings.Repeat("w", 512)
	stopWriter := writeUntilStopped(t, func(c context.Context, n int) error {
		pipe := bc.Pipeline()
		for k := range 20 {
			pipe.Set(c, "write:"+strconv.Itoa((n*20+k)%5000), value, 0)
		}
		_, err := pipe.Exec(c)
		return err
	})

	code, e := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", dst.UID), map[string]any{"replica_sources": []api.ReplicaSource{{URI: busy.URL()}, {URI: other.URL()}}}, nil)
	require.Equal(t, http.StatusOK, code, "%v", e)
	var got api.Database
	eventually(t, 2*time.Minute, "the reload is swapped in and the destination in sync", func() error {
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", dst.UID), nil, &got)
		if got.Status != api.StatusActive || got.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("status %s, sync %s", got.Status, got.ReplicaSyncStatus)
		}
		if n, err := dc.Exists(ctx(t), "old").Result(); err != nil || n != 0 {
			return fmt.Errorf("the old source's key is still there (%d, %v)", n, err)
		}
		return nil
	})
	stopWriter()
	eventually(t, time.Minute, "the destination holds the busy source and the other, key by key", func() error {
		return redistest.Diff(ctx(t), dc, bc, other.Client())
	})
	assert.Equal(t, 1, statsField(t, bc, "sync_full"), "one full sync for the reload, none after the swap")
	assert.Equal(t, 0, statsField(t, bc, "sync_partial_err"), "no PSYNC refused after the swap")
}

// statsField is a number of a server's INFO stats (sync_full, ...).
func statsField(t *testing.T, c *redis.Client, name string) int {
	info, err := c.Info(ctx(t), "stats").Result()
	require.NoError(t, err)
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			n, err := strconv.Atoi(v)
			require.NoError(t, err, "INFO stats %s", name)
			return n
		}
	}
	t.Fatalf("INFO stats has no %s", name)
	return 0
}

// The documented fallback of item 3: when the host cannot hold a second copy
// of the database (here its memory_size is larger than the host's free
// memory), a reload from several sources (one source loads through a file,
// which needs no second copy) happens in place: the destination says
// loading, and readers see it fill up from empty.
func TestReloadInPlaceWithoutMemoryForTwoCopies(t *testing.T) {
	i := servicetest.Start(t)
	oldSrc, newSrc, otherSrc := redistest.Start(t), redistest.Start(t), redistest.Start(t)
	for n := range 100 {
		require.NoError(t, oldSrc.Client().Set(ctx(t), "old:"+strconv.Itoa(n), n, 0).Err())
		require.NoError(t, newSrc.Client().Set(ctx(t), "new:"+strconv.Itoa(n), n, 0).Err())
		require.NoError(t, otherSrc.Client().Set(ctx(t), "other:"+strconv.Itoa(n), n, 0).Err())
	}
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "huge", MemorySize: 1 << 40,
		ReplicaSources: []api.ReplicaSource{{URI: oldSrc.URL()}}})
	dc := dbClient(t, dst, dst.AuthenticationRedisPass)
	eventually(t, time.Minute, "the destination holds the old source", func() error {
		return redistest.Diff(ctx(t), dc, oldSrc.Client())
	})
	require.NoError(t, syscall.Kill(newSrc.PID(), syscall.SIGSTOP))
	thaw := sync.OnceFunc(func() { _ = syscall.Kill(newSrc.PID(), syscall.SIGCONT) })
	t.Cleanup(thaw)
	code, e := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", dst.UID), map[string]any{"replica_sources": []api.ReplicaSource{{URI: newSrc.URL()}, {URI: otherSrc.URL()}}}, nil)
	require.Equal(t, http.StatusOK, code, "%v", e)
	eventually(t, time.Minute, "the destination is flushed and says loading", func() error {
		var got api.Database
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", dst.UID), nil, &got)
		if got.Status != api.StatusLoading {
			return fmt.Errorf("status %s", got.Status)
		}
		// The other source may be loaded already: the frozen one is not.
		if n, err := dc.Exists(ctx(t), "old:0", "new:0").Result(); err != nil || n != 0 {
			return fmt.Errorf("%d of the old source's and the frozen one's keys (%v)", n, err)
		}
		return nil
	})
	thaw()
	eventually(t, time.Minute, "the destination holds the new sources", func() error {
		return redistest.Diff(ctx(t), dc, newSrc.Client(), otherSrc.Client())
	})
}

// Fault matrix, API row: racing conflicting updates. Every request gets a
// definite answer (200 or 409, never 500), the stored state is one of the
// requested ones, and the running state follows it.
func TestRacingConflictingUpdates(t *testing.T) {
	i := servicetest.Start(t)
	a := mustCreate(t, i, api.CreateDatabaseRequest{Name: "a", MemorySize: 16 << 20})
	b := mustCreate(t, i, api.CreateDatabaseRequest{Name: "b", MemorySize: 16 << 20})
	src1, src2 := redistest.Start(t), redistest.Start(t)
	require.NoError(t, src1.Client().Set(ctx(t), "one", "1", 0).Err())
	require.NoError(t, src2.Client().Set(ctx(t), "two", "2", 0).Err())
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: src1.URL()}}})

	sets := [][]api.ReplicaSource{{{URI: src1.URL()}}, {{URI: src2.URL()}}, {{URI: src1.URL()}, {URI: src2.URL()}}}
	var wg sync.WaitGroup
	for n := range 12 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			uid := []int{a.UID, b.UID}[n%2]
			code, body, err := request(i, "PUT", fmt.Sprintf("/v1/bdbs/%d", uid), map[string]any{"name": "winner"})
			if assert.NoError(t, err) {
				assert.Contains(t, []int{http.StatusOK, http.StatusConflict}, code, "rename: %s", body)
			}
		}()
		go func() {
			defer wg.Done()
			code, body, err := request(i, "PUT", fmt.Sprintf("/v1/bdbs/%d", dst.UID), map[string]any{"replica_sources": sets[n%3]})
			if assert.NoError(t, err) {
				assert.Equal(t, http.StatusOK, code, "change of sources: %s", body)
			}
		}()
	}
	wg.Wait()

	var list []api.Database
	code, _ := call(t, i, "GET", "/v1/bdbs", nil, &list)
	require.Equal(t, http.StatusOK, code)
	winners := 0
	for _, db := range list {
		if db.Name == "winner" {
			winners++
		}
	}
	assert.Equal(t, 1, winners, "exactly one database won the name")

	var got api.Database
	eventually(t, 2*time.Minute, "the destination follows the stored source list", func() error {
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", dst.UID), nil, &got)
		if got.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("sync %s", got.ReplicaSyncStatus)
		}
		return nil
	})
	var want []*redistest.Server
	for _, s := range got.ReplicaSources {
		switch s.URI {
		case src1.URL():
			want = append(want, src1)
		case src2.URL():
			want = append(want, src2)
		default:
			t.Fatalf("stored source %q was never requested", s.URI)
		}
	}
	var clients []*redis.Client
	for _, s := range want {
		clients = append(clients, s.Client())
	}
	eventually(t, time.Minute, "the destination holds exactly its stored sources", func() error {
		return redistest.Diff(ctx(t), dbClient(t, dst, dst.AuthenticationRedisPass), clients...)
	})
}

// writeUntilStopped calls write with 0, 1, 2, ... on a goroutine until the
// returned stop is called (also at the test's end); an error fails the test.
func writeUntilStopped(t *testing.T, write func(ctx context.Context, n int) error) (stop func()) {
	done := make(chan struct{})
	wctx := ctx(t) // canceled after the writer stops (cleanups run last first)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			select {
			case <-done:
				return
			default:
			}
			if err := write(wctx, n); err != nil {
				t.Errorf("write to the source: %v", err)
				return
			}
		}
	}()
	stop = sync.OnceFunc(func() { close(done); wg.Wait() })
	t.Cleanup(stop)
	return stop
}

// A sync stopped on an error says why after the service restarts, and
// forgets it once enabled again with what fixes it.
func TestAStoppedSyncSaysWhyAfterARestart(t *testing.T) {
	i := servicetest.Start(t)
	src := redistest.Start(t, "--requirepass", "right-password")
	require.NoError(t, src.Client().Set(ctx(t), "k", "v", 0).Err())
	wrong := fmt.Sprintf("redis://:wrong-password@%s", src.Addr())
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: wrong}}})
	get := func() api.Database {
		var got api.Database
		code, e := call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", dst.UID), nil, &got)
		require.Equal(t, http.StatusOK, code, "%v", e)
		return got
	}
	var why string
	eventually(t, time.Minute, "the sync stops on the password", func() error {
		db := get()
		if db.ReplicaSync != api.SyncStopped || !strings.Contains(db.ReplicaSources[0].LastError, "WRONGPASS") {
			return fmt.Errorf("sync %s, sources %+v", db.ReplicaSync, db.ReplicaSources)
		}
		why = db.ReplicaSources[0].LastError
		return nil
	})
	assert.NotContains(t, why, "wrong-password")

	i.Restart(t)
	db := get()
	assert.Equal(t, api.SyncStopped, db.ReplicaSync)
	assert.Equal(t, why, db.ReplicaSources[0].LastError, "the reason survives the restart")
	assert.Equal(t, api.SourceOutOfSync, db.ReplicaSources[0].Status)

	right := []api.ReplicaSource{{URI: fmt.Sprintf("redis://:right-password@%s", src.Addr())}}
	enabled := api.SyncEnabled
	code, e := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", dst.UID), api.UpdateDatabaseRequest{ReplicaSources: &right, ReplicaSync: &enabled}, nil)
	require.Equal(t, http.StatusOK, code, "%v", e)
	eventually(t, time.Minute, "in sync, the reason gone", func() error {
		db := get()
		if db.ReplicaSyncStatus != api.SourceInSync || db.ReplicaSources[0].LastError != "" {
			return fmt.Errorf("status %s, last_error %q", db.ReplicaSyncStatus, db.ReplicaSources[0].LastError)
		}
		return nil
	})
	i.Restart(t)
	assert.Empty(t, get().ReplicaSources[0].LastError, "no stale reason after another restart")
}
