package app_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// A redis-server that a kill -9 of the service left running (busy in a
// script, it does not act on the SIGTERM it got when the service died) is
// ended by the next start: it held the database's port for ever, and the
// database never came back ("port ... is taken by another process").
func TestALeftoverServerOfAKilledServiceDoesNotHoldItsPort(t *testing.T) {
	p := servicetest.StartProcess(t)
	i := &servicetest.Instance{URL: p.URL, Username: "admin", Password: p.Password(t), CACert: p.CACert(t)}
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "busy", MemorySize: 32 << 20})
	c := dbClient(t, db, db.AuthenticationRedisPass)
	require.NoError(t, c.Set(ctx(t), "k", "kept", 0).Err())
	old, err := c.InfoMap(ctx(t), "server").Result()
	require.NoError(t, err)
	var pid int
	_, err = fmt.Sscan(old["Server"]["process_id"], &pid)
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) }) // if the test fails

	// A script that never ends keeps the server busy.
	busy := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", db.Port), Password: db.AuthenticationRedisPass, ReadTimeout: -1, MaxRetries: -1})
	t.Cleanup(func() { busy.Close() })
	go busy.Eval(ctx(t), "while true do end", nil)
	eventually(t, 30*time.Second, "the server is busy in the script", func() error {
		if err := c.Ping(ctx(t)).Err(); err == nil || !strings.HasPrefix(err.Error(), "BUSY") {
			return fmt.Errorf("PING: %v", err)
		}
		return nil
	})

	p.Kill(t)
	p.Start(t)
	eventually(t, 10*time.Second, "the database says why it is not back yet", func() error {
		var got api.Database
		if code, e := call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &got); code != 200 {
			return fmt.Errorf("%d %v", code, e)
		}
		if got.Status != api.StatusPending || !strings.Contains(got.LastError, "previous life still runs in its directory") {
			return fmt.Errorf("status %s: %s", got.Status, got.LastError)
		}
		return nil
	})
	eventually(t, 60*time.Second, "the database is back, with its data, on its port", func() error {
		var got api.Database
		if code, e := call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &got); code != 200 {
			return fmt.Errorf("%d %v", code, e)
		}
		if got.Status != api.StatusActive {
			return fmt.Errorf("status %s: %s", got.Status, got.LastError)
		}
		v, err := c.Get(ctx(t), "k").Result()
		if err != nil {
			return err
		}
		if v != "kept" {
			return fmt.Errorf("k = %q", v)
		}
		return nil
	})
	require.True(t, processGone(pid), "the leftover server is gone")
	require.Equal(t, []int{db.UID}, serverUIDs(t, p.DataDir), "one redis-server runs for the database")
	require.Contains(t, p.Log(), "a redis-server of a previous life of the service still runs")
}

// processGone says whether pid has ended (a zombie not reaped yet has).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}

// The ports of a deleted database go to a new database only once the
// range has been gone through, a restart of the service in between or
// not: its destinations (on other instances) meanwhile find nothing there,
// rather than another database that refuses their password, which stops
// their sync. After a restart, the next create took them at once.
func TestADeletedDatabasesPortsAreNotGivenAgainAfterARestart(t *testing.T) {
	i := servicetest.Start(t)
	mustCreate(t, i, api.CreateDatabaseRequest{Name: "stays", MemorySize: 16 << 20})
	gone := mustCreate(t, i, api.CreateDatabaseRequest{Name: "deleted", MemorySize: 16 << 20})
	code, e := call(t, i, "DELETE", fmt.Sprintf("/v1/bdbs/%d", gone.UID), nil, nil)
	require.Equal(t, 204, code, "%v", e)
	i.Restart(t)
	next := mustCreate(t, i, api.CreateDatabaseRequest{Name: "next", MemorySize: 16 << 20})
	require.NotContains(t, []int{gone.Port, gone.ReplicationPort}, next.Port, "the deleted database's ports: %d, %d", gone.Port, gone.ReplicationPort)
	require.NotContains(t, []int{gone.Port, gone.ReplicationPort}, next.ReplicationPort, "the deleted database's ports: %d, %d", gone.Port, gone.ReplicationPort)
}

// A second instance started on the data directory of a running one is
// refused, and changes nothing there first: it wrote the certificates and
// secrets it found missing, and issued the API certificate again for its
// own --advertise-host, before it found the state file locked. (Two
// instances started at once on a new directory each wrote their own CA
// and API password, and the one that went on served with files that were
// no longer on disk.)
func TestASecondInstanceOnTheDataDirectoryIsRefusedAndChangesNothing(t *testing.T) {
	i := servicetest.Start(t)
	before := topFiles(t, i.DataDir)
	require.Contains(t, before, "api.pem")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	second, err := app.Start(ctx, app.Config{DataDir: i.DataDir, Listen: "127.0.0.1:0", AdvertiseHost: "elsewhere.example",
		PortMin: 34390, PortMax: 34399, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if second != nil {
		_ = second.Stop(context.Background())
	}
	require.Error(t, err)
	require.Contains(t, err.Error(), "another redis-replicad serves this data directory")
	// The instance above runs in this process: the error names it.
	require.Contains(t, err.Error(), fmt.Sprintf("locked by process %d", os.Getpid()))
	require.Equal(t, before, topFiles(t, i.DataDir), "the refused instance changed the data directory")
}

// topFiles maps the files at the top of dir (certificates, secrets), the
// state file aside, to digests of their contents.
func topFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string]string{}
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == "state.db" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		out[e.Name()] = fmt.Sprintf("%x", sha256.Sum256(b))
	}
	return out
}

// A database created where the state file does not know the directory of
// its uid (the state file was lost, or restored from a backup older than
// the databases) starts empty: it loaded the other database's AOF, and
// served its data under the new name and password. The directory found
// there is kept aside, not deleted.
func TestANewDatabaseDoesNotLoadTheFilesOfOneTheStateFileDoesNotKnow(t *testing.T) {
	i := servicetest.Start(t)
	old := mustCreate(t, i, api.CreateDatabaseRequest{Name: "old", MemorySize: 16 << 20})
	require.NoError(t, dbClient(t, old, old.AuthenticationRedisPass).Set(ctx(t), "secret-of-old", "v", 0).Err())
	i.Stop(t)
	// The state file from before the database was created.
	require.NoError(t, os.Rename(filepath.Join(i.DataDir, "state.db"), filepath.Join(t.TempDir(), "state.db")))
	i.StartAgain(t)

	fresh := mustCreate(t, i, api.CreateDatabaseRequest{Name: "fresh", MemorySize: 16 << 20})
	require.Equal(t, old.UID, fresh.UID, "the test needs the uid given again")
	n, err := dbClient(t, fresh, fresh.AuthenticationRedisPass).DBSize(ctx(t)).Result()
	require.NoError(t, err)
	require.Zero(t, n, "a new database holds another database's keys")
	aside, err := filepath.Glob(filepath.Join(i.DataDir, "dbs", fmt.Sprintf("%d.set-aside-*", old.UID), "appendonlydir"))
	require.NoError(t, err)
	require.Len(t, aside, 1, "the unknown database's files are kept aside")
}

// A database whose redis-server fails before it opens its log (here it
// cannot read its configuration, as a redis-server of another version
// that does not know a directive) says what the server said: last_error
// pointed to a redis.log that had nothing of it.
func TestADatabaseWhoseServerCannotReadItsConfigurationSaysWhy(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "config", MemorySize: 16 << 20})
	i.Stop(t)
	real := servicetest.RequireRedisServer(t)
	wrapper := filepath.Join(t.TempDir(), "redis-server")
	// --version and - (the checks of the binary at start) as they are.
	require.NoError(t, os.WriteFile(wrapper, []byte(`#!/bin/sh
case "$1" in
--version|-) exec `+real+` "$@";;
esac
exec `+real+` "$@" --no-such-directive-of-this-version yes
`), 0o755))
	other := servicetest.StartWith(t, func(c *app.Config) { c.DataDir, c.RedisServer = i.DataDir, wrapper })
	eventually(t, 30*time.Second, "the database says why its server does not start", func() error {
		var got api.Database
		if code, e := call(t, other, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &got); code != 200 {
			return fmt.Errorf("%d %v", code, e)
		}
		if !strings.Contains(got.LastError, "Bad directive") {
			return fmt.Errorf("status %s, last_error %q", got.Status, got.LastError)
		}
		return nil
	})
}

// A regeneration of the admin password of a database whose redis-server
// does not answer (stopped, its disk stalled) answers with the new password
// at once: the password lives in the replication endpoint, not in the
// server. It answered 500 after 15 s, without the password, though the new
// one was in force: a caller that regenerated again on that error ended the
// grace period of the password its destinations still used.
func TestARegenerationDoesNotWaitForARedisServerThatDoesNotAnswer(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "stalled", MemorySize: 16 << 20})
	pid := i.App.Databases().PID(ctx(t), db.UID)
	require.NotZero(t, pid)
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })

	began := time.Now()
	var out api.AdminPassword
	code, e := call(t, i, "POST", fmt.Sprintf("/v1/bdbs/%d/actions/regenerate_admin_password", db.UID), nil, &out)
	require.Equal(t, 200, code, "%v", e)
	require.Less(t, time.Since(began), 5*time.Second, "the answer waited for the stopped redis-server")
	var url api.SourceURL
	code, e = call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d/source_url", db.UID), nil, &url)
	require.Equal(t, 200, code, "%v", e)
	require.Equal(t, url.URI, out.URI, "the answer has the password in force")
	require.NotEmpty(t, out.AuthenticationAdminPass)
}

// What a kill -9 of the service during the write of a database's files
// leaves (the temporary file of its configuration or of its trusted
// certificates, written before it replaces the file) is removed when the
// database starts again: each such kill left one for good.
func TestTheTemporaryFilesOfAWriteCutShortAreRemovedAtStart(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "cut", MemorySize: 16 << 20})
	i.Stop(t)
	dir := filepath.Join(i.DataDir, "dbs", fmt.Sprint(db.UID))
	left := []string{filepath.Join(dir, ".redis.conf.2718281828"), filepath.Join(dir, ".clients-e3b0c44298fc.pem.3141592653")}
	for _, p := range left {
		require.NoError(t, os.WriteFile(p, []byte("half a file"), 0o600))
	}
	i.StartAgain(t)
	for _, p := range left {
		require.NoFileExists(t, p)
	}
	require.FileExists(t, filepath.Join(dir, "redis.conf"))
}

// A database whose redis-server cannot be started again (its binary gone,
// removed by a package upgrade say) says so in last_error, and nothing of
// the previous server's log: the warnings the previous server logged when
// it started were given as the cause.
func TestADatabaseWhoseServerBinaryIsGoneSaysSo(t *testing.T) {
	real := servicetest.RequireRedisServer(t)
	wrapper := filepath.Join(t.TempDir(), "redis-server")
	require.NoError(t, os.WriteFile(wrapper, []byte("#!/bin/sh\nexec "+real+" \"$@\"\n"), 0o755))
	i := servicetest.StartWith(t, func(c *app.Config) { c.RedisServer = wrapper })
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "orphaned", MemorySize: 16 << 20})
	pid := i.App.Databases().PID(ctx(t), db.UID)
	require.NotZero(t, pid)
	require.NoError(t, os.Remove(wrapper))
	killAndWaitGone(t, pid)
	eventually(t, 30*time.Second, "the database says that its redis-server cannot start", func() error {
		var got api.Database
		if code, e := call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &got); code != 200 {
			return fmt.Errorf("%d %v", code, e)
		}
		if !strings.Contains(got.LastError, "no such file or directory") {
			return fmt.Errorf("status %s, last_error %q", got.Status, got.LastError)
		}
		if strings.Contains(got.LastError, "Server initialized") {
			return fmt.Errorf("the previous server's log is given as the cause: %q", got.LastError)
		}
		return nil
	})
}

// A create that a kill -9 of the service cut short was never answered: the
// restarted service does not list it, not even for a moment. It served
// its record (a database "pending", its name taken: a create of the same
// name was a 409) until the start had removed it, tens of milliseconds
// after the API answered.
func TestAnUnfinishedCreateIsNeverListedAfterARestart(t *testing.T) {
	p := servicetest.StartProcess(t)
	i := &servicetest.Instance{URL: p.URL, Username: "admin", Password: p.Password(t), CACert: p.CACert(t)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A sharded database with replicas takes a few seconds to form.
		_, _, _ = tryCall(i, "POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "cut", MemorySize: 32 << 20, ShardsCount: 3, Replication: true})
	}()
	eventually(t, 10*time.Second, "the create is under way", func() error {
		if uids := listedUIDs(t, i); len(uids) != 1 {
			return fmt.Errorf("listed %v", uids)
		}
		return nil
	})
	p.Kill(t)
	<-done
	p.Start(t)
	require.Empty(t, listedUIDs(t, i), "the unanswered create is listed")
	var db api.Database
	code, e := call(t, i, "POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "cut", MemorySize: 16 << 20}, &db)
	require.Equal(t, 200, code, "its name is free: %v", e)
	eventually(t, 30*time.Second, "only the new database's redis-server runs", func() error {
		if s := serverUIDs(t, p.DataDir); fmt.Sprint(s) != fmt.Sprint([]int{db.UID}) {
			return fmt.Errorf("servers of %v", s)
		}
		return nil
	})
}
