package app_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

func TestDatabaseLifecycle(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "orders", MemorySize: 64 << 20})
	if db.UID == 0 || db.Port == 0 || db.AuthenticationRedisPass == "" || db.Status != api.StatusActive {
		t.Fatalf("created database lacks fields: %+v", db)
	}
	c := dbClient(t, db, db.AuthenticationRedisPass)
	if err := c.Set(ctx(t), "k", "v", 0).Err(); err != nil {
		t.Fatalf("write with the database password: %v", err)
	}
	if got := c.Get(ctx(t), "k").Val(); got != "v" {
		t.Fatalf("read back %q", got)
	}
	if err := dbClient(t, db, "wrong-password").Ping(ctx(t)).Err(); err == nil {
		t.Fatal("a wrong password was accepted")
	}

	// Update memory and password: both take effect live.
	newPass := "a-new-password-123"
	mem := int64(128 << 20)
	var updated api.Database
	if code, e := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", db.UID), api.UpdateDatabaseRequest{MemorySize: &mem, AuthenticationRedisPass: &newPass}, &updated); code != 200 {
		t.Fatalf("update: %d %v", code, e)
	}
	if updated.MemorySize != mem || updated.AuthenticationRedisPass != newPass {
		t.Fatalf("update not reflected: %+v", updated)
	}
	c2 := dbClient(t, db, newPass)
	if got := infoField(t, c2, "memory", "maxmemory"); got != fmt.Sprint(mem) {
		t.Fatalf("maxmemory = %s, want %d", got, mem)
	}
	if err := dbClient(t, db, db.AuthenticationRedisPass).Ping(ctx(t)).Err(); err == nil {
		t.Fatal("the old password still works")
	}

	var list []api.Database
	call(t, i, "GET", "/v1/bdbs", nil, &list)
	if len(list) != 1 || list[0].Name != "orders" {
		t.Fatalf("list = %+v", list)
	}

	if code, e := call(t, i, "DELETE", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d %v", code, e)
	}
	if code, _ := call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, nil); code != 404 {
		t.Fatalf("get after delete: %d", code)
	}
	if _, err := os.Stat(filepath.Join(i.DataDir, "dbs", fmt.Sprint(db.UID))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("files of the deleted database remain: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", db.Port), time.Second); err == nil {
		conn.Close()
		t.Fatal("the deleted database still listens")
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "a", MemorySize: 64 << 20})
	path := fmt.Sprintf("/v1/bdbs/%d", db.UID)
	cases := []struct {
		method, path string
		body         any
		status       int
		mention      string
	}{
		{"POST", "/v1/bdbs", `{"name": "x", "memory_size": `, 400, "malformed JSON"},
		{"POST", "/v1/bdbs", `{"name": "x", "memory_size": 1048576, "colour": "red"}`, 400, "unknown field"},
		{"POST", "/v1/bdbs", `{"name": "x", "memory_size": 1048576} {}`, 400, "after the JSON"},
		{"POST", "/v1/bdbs", `{"name": "x", "memory_size": "big"}`, 400, "memory_size"},
		{"POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "x", MemorySize: 10}, 400, "memory_size"},
		{"POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "has space", MemorySize: 4 << 20}, 400, "name"},
		{"POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "x", MemorySize: 4 << 20, Port: 70000}, 400, "port"},
		{"POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "a", MemorySize: 4 << 20}, 409, "already exists"},
		{"POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "x", MemorySize: 4 << 20, Port: db.Port}, 409, "taken"},
		{"POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "x", MemorySize: 4 << 20, AuthenticationRedisPass: "short"}, 400, "8 to 128"},
		{"POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "x", MemorySize: 4 << 20, ReplicaSources: []api.ReplicaSource{{URI: "http://:secretpw@h:1"}}}, 400, "scheme"},
		{"POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "x", MemorySize: 4 << 20, ReplicaSync: "sometimes"}, 400, "replica_sync"},
		{"PUT", path, `{"memory_size": 0}`, 400, "memory_size"},
		{"PUT", path, `{"memory_size": 4194304, "name": "bad name"}`, 400, "name"},
		{"PUT", path, `[1,2]`, 400, "malformed"},
		{"PUT", "/v1/bdbs/999", `{}`, 404, "999"},
		{"GET", "/v1/bdbs/abc", nil, 404, "abc"},
		{"DELETE", "/v1/bdbs/999", nil, 404, "999"},
	}
	for _, c := range cases {
		code, e := call(t, i, c.method, c.path, c.body, nil)
		if code != c.status {
			t.Errorf("%s %s %v: status %d, want %d (%v)", c.method, c.path, c.body, code, c.status, e)
			continue
		}
		if !strings.Contains(e.Description, c.mention) || e.Code == "" {
			t.Errorf("%s %s %v: error %+v does not mention %q", c.method, c.path, c.body, e, c.mention)
		}
		if strings.Contains(e.Description, "secretpw") {
			t.Errorf("error shows a password: %s", e.Description)
		}
	}
	var list []api.Database
	call(t, i, "GET", "/v1/bdbs", nil, &list)
	if len(list) != 1 || list[0].MemorySize != 64<<20 || list[0].Name != "a" {
		t.Fatalf("bad requests changed state: %+v", list)
	}
}

func TestUnauthenticatedIsRejected(t *testing.T) {
	i := servicetest.Start(t)
	for _, creds := range [][2]string{{"", ""}, {i.Username, "wrong"}, {"other", i.Password}} {
		req, _ := http.NewRequest("GET", i.URL+"/v1/bdbs", nil)
		if creds[0] != "" {
			req.SetBasicAuth(creds[0], creds[1])
		}
		resp, err := i.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("credentials %q: status %d, want 401", creds[0], resp.StatusCode)
		}
	}
	resp, err := i.HTTPClient().Get(i.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz without credentials: %v %v", resp, err)
	}
	resp.Body.Close()
	var cluster api.Cluster
	if code, _ := call(t, i, "GET", "/v1/cluster", nil, &cluster); code != 200 || !strings.Contains(cluster.CACert, "BEGIN CERTIFICATE") || cluster.Version == "" {
		t.Fatalf("cluster: %d %+v", code, cluster)
	}
}

func TestRestartKeepsDatabases(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "keep", MemorySize: 32 << 20, AuthenticationRedisPass: "keep-this-password"})
	if err := dbClient(t, db, db.AuthenticationRedisPass).Set(ctx(t), "survives", "yes", 0).Err(); err != nil {
		t.Fatal(err)
	}
	i.Restart(t)
	var after api.Database
	call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &after)
	if after.Port != db.Port || after.AuthenticationRedisPass != db.AuthenticationRedisPass || after.Name != "keep" {
		t.Fatalf("after restart: %+v, before %+v", after, db)
	}
	if got, err := dbClient(t, db, db.AuthenticationRedisPass).Get(ctx(t), "survives").Result(); got != "yes" {
		t.Fatalf("data after restart: %q %v", got, err)
	}
}

func TestKilledRedisServerComesBack(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "phoenix", MemorySize: 32 << 20})
	c := dbClient(t, db, db.AuthenticationRedisPass)
	if err := c.Set(ctx(t), "k", "before the crash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	pid := i.App.Databases().PID(ctx(t), db.UID)
	if pid == 0 {
		t.Fatal("no pid for the database")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "a new redis-server serves the data", func() error {
		if p := i.App.Databases().PID(ctx(t), db.UID); p == pid || p == 0 {
			return fmt.Errorf("pid %d", p)
		}
		got, err := c.Get(ctx(t), "k").Result()
		if err != nil {
			return err
		}
		if got != "before the crash" {
			return fmt.Errorf("value %q", got)
		}
		return nil
	})
}

func TestServiceKilledWithSIGKILLComesBack(t *testing.T) {
	p := servicetest.StartProcess(t)
	i := &servicetest.Instance{URL: p.URL, Username: "admin", Password: p.Password(t), CACert: p.CACert(t)}
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "durable", MemorySize: 32 << 20})
	c := dbClient(t, db, db.AuthenticationRedisPass)
	for n := range 100 {
		if err := c.Set(ctx(t), fmt.Sprint("key:", n), n, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	p.Kill(t)
	// The children die with the service.
	eventually(t, 10*time.Second, "the database stops with the service", func() error {
		if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", db.Port), time.Second); err == nil {
			conn.Close()
			return errors.New("still listening")
		}
		return nil
	})
	p.Start(t)
	var after api.Database
	eventually(t, 30*time.Second, "the database is back", func() error {
		if code, e := call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &after); code != 200 {
			return fmt.Errorf("%d %v", code, e)
		}
		if after.Status != api.StatusActive {
			return fmt.Errorf("status %s", after.Status)
		}
		return nil
	})
	if after.Port != db.Port || after.AuthenticationRedisPass != db.AuthenticationRedisPass {
		t.Fatalf("after kill -9: %+v", after)
	}
	n, err := c.DBSize(ctx(t)).Result()
	if err != nil || n != 100 {
		t.Fatalf("keys after kill -9: %d %v\n%s", n, err, p.Log())
	}
}

// A database whose port another program took while the service was down:
// the others start, and the API, the metrics and the statuses of its
// sources say what is wrong, until the port is free and it comes back.
func TestServiceStartsWhenADatabaseCannot(t *testing.T) {
	i := servicetest.Start(t)
	fine := mustCreate(t, i, api.CreateDatabaseRequest{Name: "fine", MemorySize: 16 << 20})
	require.NoError(t, dbClient(t, fine, fine.AuthenticationRedisPass).Set(ctx(t), "k", "v", 0).Err())
	var url api.SourceURL
	code, e := call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d/source_url", fine.UID), nil, &url)
	require.Equal(t, 200, code, "%v", e)
	blocked := mustCreate(t, i, api.CreateDatabaseRequest{Name: "blocked", MemorySize: 16 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: url.URI}}})
	other := mustCreate(t, i, api.CreateDatabaseRequest{Name: "other", MemorySize: 16 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: url.URI}}})
	var got api.Database
	for _, db := range []api.Database{blocked, other} {
		eventually(t, 30*time.Second, "the replica is in sync", func() error {
			call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &got)
			if got.ReplicaSyncStatus != api.SourceInSync {
				return fmt.Errorf("%s", got.ReplicaSyncStatus)
			}
			return nil
		})
	}
	i.Stop(t)
	// Other programs take the port of one database, and the replication
	// endpoint of the other, while the service is down. The one on the
	// endpoint answers like a Redis that does not know the password.
	squatter, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", blocked.Port))
	require.NoError(t, err)
	endpointSquatter, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", fine.ReplicationPort))
	require.NoError(t, err)
	go func() {
		for {
			c, err := endpointSquatter.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					if _, err := io.WriteString(c, "-WRONGPASS invalid username-password pair or user is disabled.\r\n"); err != nil {
						return
					}
				}
			}()
		}
	}()
	i.StartAgain(t)
	call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", fine.UID), nil, &got)
	if got.Status != api.StatusActive {
		t.Fatalf("the other database: %s", got.Status)
	}
	assert.Contains(t, got.LastError, "replication endpoint does not listen", "a database whose destinations cannot connect says so")
	assert.Contains(t, got.LastError, fmt.Sprint(fine.ReplicationPort))
	port := fmt.Sprintf("127.0.0.1:%d", blocked.Port)
	eventually(t, 15*time.Second, "the database says why it does not serve", func() error {
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", blocked.UID), nil, &got)
		if got.Status == api.StatusActive {
			return errors.New("a database whose port is taken says it is active")
		}
		if !strings.Contains(got.LastError, port) || !strings.Contains(got.LastError, "taken by another process") {
			return fmt.Errorf("status %s, last_error %q", got.Status, got.LastError)
		}
		src := got.ReplicaSources[0]
		if src.Status != api.SourceOutOfSync || !strings.HasPrefix(src.LastError, "the destination is down: ") || got.ReplicaSyncStatus != api.SourceOutOfSync {
			return fmt.Errorf("its source says %s (%q), the database %s", src.Status, src.LastError, got.ReplicaSyncStatus)
		}
		return nil
	})
	// A destination of the database whose endpoint does not listen is
	// refused by whoever holds that port: it retries, and says why,
	// instead of stopping its sync for good.
	eventually(t, 30*time.Second, "the other destination says why it cannot replicate", func() error {
		got = api.Database{}
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", other.UID), nil, &got)
		src := got.ReplicaSources[0]
		if src.Status != api.SourceOutOfSync || !strings.Contains(src.LastError, "replication endpoint does not listen") {
			return fmt.Errorf("its source says %s (%q)", src.Status, src.LastError)
		}
		return nil
	})
	assert.Equal(t, api.SyncEnabled, got.ReplicaSync, "someone else's refusal does not stop the sync")
	code, metrics := i.Request(t, i.Username, i.Password, "GET", "/metrics", nil)
	require.Equal(t, 200, code)
	assert.Regexp(t, fmt.Sprintf(`replicad_replica_source_status\{destination="%d",name="blocked",source="[^"]+",state="out-of-sync"\} 1`, blocked.UID), string(metrics))
	assert.Contains(t, string(metrics), fmt.Sprintf(`replicad_database_up{database="%d",name="blocked"} 0`, blocked.UID))

	// Once the ports are free, the database and the endpoint come back by
	// themselves, and so does the replication between them.
	squatter.Close()
	endpointSquatter.Close()
	eventually(t, 30*time.Second, "the replication endpoint listens", func() error {
		got = api.Database{}
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", fine.UID), nil, &got)
		if got.LastError != "" {
			return errors.New(got.LastError)
		}
		return nil
	})
	eventually(t, time.Minute, "the blocked database starts", func() error {
		got = api.Database{} // fields the answer omits must not stay from the last one
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", blocked.UID), nil, &got)
		if got.Status != api.StatusActive || got.LastError != "" || got.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("status %s (%q), sources %s", got.Status, got.LastError, got.ReplicaSyncStatus)
		}
		v, err := dbClient(t, blocked, blocked.AuthenticationRedisPass).Get(ctx(t), "k").Result()
		if err != nil || v != "v" {
			return fmt.Errorf("k: %q %v", v, err)
		}
		return nil
	})
	eventually(t, time.Minute, "the other destination is in sync again", func() error {
		got = api.Database{}
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", other.UID), nil, &got)
		if got.ReplicaSync != api.SyncEnabled || got.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("sync %s, status %s: %+v", got.ReplicaSync, got.ReplicaSyncStatus, got.ReplicaSources)
		}
		return nil
	})
}

// The ports a deleted database released do not go to the next database
// created: the deleted one's destinations would log in to that other
// database, get its refusal and stop their sync, where they should find
// their source unreachable.
func TestADeletedDatabasesPortsAreNotGivenAtOnceToAnother(t *testing.T) {
	i := servicetest.Start(t)
	mustCreate(t, i, api.CreateDatabaseRequest{Name: "kept", MemorySize: 32 << 20})
	gone := mustCreate(t, i, api.CreateDatabaseRequest{Name: "gone", MemorySize: 32 << 20})
	code, apiErr := call(t, i, "DELETE", fmt.Sprintf("/v1/bdbs/%d", gone.UID), nil, nil)
	require.Equal(t, 204, code, "%v", apiErr)
	next := mustCreate(t, i, api.CreateDatabaseRequest{Name: "next", MemorySize: 32 << 20})
	released := []int{gone.Port, gone.ReplicationPort}
	assert.NotContains(t, released, next.Port)
	assert.NotContains(t, released, next.ReplicationPort)
}

// A delete that the service's death interrupted leaves the database's
// files (its record is gone first): the next start removes them. A
// directory of a uid the service never gave is not its own and stays.
func TestADeleteInterruptedByTheServicesDeathLeavesNoFiles(t *testing.T) {
	i := servicetest.Start(t)
	kept := mustCreate(t, i, api.CreateDatabaseRequest{Name: "kept", MemorySize: 32 << 20})
	gone := mustCreate(t, i, api.CreateDatabaseRequest{Name: "gone", MemorySize: 32 << 20})
	code, apiErr := call(t, i, "DELETE", fmt.Sprintf("/v1/bdbs/%d", gone.UID), nil, nil)
	require.Equal(t, 204, code, "%v", apiErr)
	i.Stop(t)
	// What the interrupted delete left, and a directory that is not the
	// service's.
	leftover := filepath.Join(i.DataDir, "dbs", strconv.Itoa(gone.UID))
	foreign := filepath.Join(i.DataDir, "dbs", "999")
	for _, dir := range []string{leftover, foreign} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "appendonlydir"), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "appendonlydir", "appendonly.aof.1.incr.aof"), []byte("*1\r\n$4\r\nPING\r\n"), 0o600))
	}
	i.StartAgain(t)
	_, err := os.Stat(leftover)
	assert.True(t, os.IsNotExist(err), "the deleted database's files are removed: %v", err)
	_, err = os.Stat(foreign)
	assert.NoError(t, err, "a directory of a uid never given stays")
	_, err = os.Stat(filepath.Join(i.DataDir, "dbs", strconv.Itoa(kept.UID)))
	assert.NoError(t, err, "the kept database's files stay")
	var got api.Database
	code, apiErr = call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", kept.UID), nil, &got)
	require.Equal(t, 200, code, "%v", apiErr)
}

// A data directory given as a relative path (`--data-dir ./data`) works:
// every database failed to start, since redis-server runs in its own
// directory, where the path named nothing.
func TestARelativeDataDirectoryWorks(t *testing.T) {
	wd, err := os.Getwd()
	require.NoError(t, err)
	rel, err := filepath.Rel(wd, t.TempDir())
	require.NoError(t, err)
	require.False(t, filepath.IsAbs(rel))
	i := servicetest.StartWith(t, func(c *app.Config) { c.DataDir = rel })
	for _, req := range []api.CreateDatabaseRequest{
		{Name: "plain", MemorySize: 32 << 20},
		{Name: "sharded", MemorySize: 96 << 20, ShardsCount: 3},
	} {
		db := mustCreate(t, i, req)
		assert.Equal(t, api.StatusActive, db.Status, "%s", req.Name)
		c := dbClient(t, db, db.AuthenticationRedisPass)
		assert.NoError(t, c.Ping(ctx(t)).Err(), "%s", req.Name)
		_, err := os.Stat(filepath.Join(rel, "dbs", strconv.Itoa(db.UID), "redis.log"))
		assert.NoError(t, err, "%s keeps its files in the data directory", req.Name)
	}
}

// A memory_size below what a database holds is refused, with the figures:
// it was taken, and Redis then refused every write.
func TestAMemorySizeBelowTheDataIsRefused(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "full", MemorySize: 32 << 20})
	c := dbClient(t, db, db.AuthenticationRedisPass)
	for n := range 2500 {
		require.NoError(t, c.Set(ctx(t), fmt.Sprintf("k%d", n), strings.Repeat("x", 4000), 0).Err())
	}
	small := int64(4 << 20)
	code, e := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", db.UID), api.UpdateDatabaseRequest{MemorySize: &small}, nil)
	require.Equal(t, http.StatusBadRequest, code, "%v", e)
	assert.Contains(t, e.Description, "memory_size 4194304 is too small: the database uses")
	var got api.Database
	code, e = call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &got)
	require.Equal(t, 200, code, "%v", e)
	assert.Equal(t, int64(32<<20), got.MemorySize, "unchanged")
	require.NoError(t, c.Set(ctx(t), "still", "writable", 0).Err())
	// Lower, but above the data: taken.
	fits := int64(24 << 20)
	code, e = call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", db.UID), api.UpdateDatabaseRequest{MemorySize: &fits}, nil)
	require.Equal(t, 200, code, "%v", e)
	require.NoError(t, c.Set(ctx(t), "then", "writable", 0).Err())
}
