package app_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// smallDataDisk mounts a tmpfs of size bytes for the test, a disk it can
// fill. It needs root (scripts/test.sh runs as root).
func smallDataDisk(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("this test fills a small disk, a tmpfs it mounts: run it as root (scripts/test.sh does): mount: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fillDataDisk leaves no free space on the filesystem of dir, with a file
// whose path it returns.
func fillDataDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			return path
		}
	}
}

// A database whose disk is full refuses writes (MISCONF: its AOF cannot be
// written), and answers even PING so. A change of its settings must still
// reach it: ACL SETUSER and CONFIG SET write nothing to the AOF.
func TestAChangeOfADatabaseWhoseDiskIsFullIsApplied(t *testing.T) {
	disk := smallDataDisk(t, 64<<20)
	i := servicetest.StartWith(t, func(c *app.Config) { c.DataDir = filepath.Join(disk, "data") })
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "full", MemorySize: 32 << 20})
	c := dbClient(t, db, db.AuthenticationRedisPass)
	require.NoError(t, c.Set(ctx(t), "k", "v", 0).Err())
	filler := fillDataDisk(t, disk)
	t.Cleanup(func() { _ = os.Remove(filler) })
	big := strings.Repeat("x", 100_000)
	eventually(t, 30*time.Second, "writes are refused for the full disk", func() error {
		if err := c.Set(ctx(t), "k", big, 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "MISCONF") {
			return fmt.Errorf("write: %v", err)
		}
		return nil
	})

	const newPassword = "a new password for a full disk"
	code, e := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", db.UID), map[string]any{"authentication_redis_pass": newPassword}, nil)
	// Its files cannot be written either: the answer says that the change
	// is recorded, and it is in force all the same.
	if code != http.StatusOK {
		require.Contains(t, e.Description, "the change is recorded and applied to the running redis-server", "%d", code)
	}
	nc := dbClient(t, db, newPassword)
	require.NoError(t, nc.Get(ctx(t), "k").Err(), "the new password is in force")

	require.NoError(t, os.Remove(filler))
	eventually(t, 30*time.Second, "writes come back once the disk has room", func() error {
		return nc.Set(ctx(t), "k", "after", 0).Err()
	})
	old := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", db.Port), Password: db.AuthenticationRedisPass})
	defer old.Close()
	require.Error(t, old.Ping(ctx(t)).Err(), "the old password is refused")
}

// A database that refuses every write because it cannot write its AOF (its
// disk full) is not silently active: its last_error says so, until the disk
// has room again and it writes.
func TestADatabaseWhoseDiskIsFullSaysSo(t *testing.T) {
	disk := smallDataDisk(t, 64<<20)
	i := servicetest.StartWith(t, func(c *app.Config) { c.DataDir = filepath.Join(disk, "data") })
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "full", MemorySize: 32 << 20})
	c := dbClient(t, db, db.AuthenticationRedisPass)
	filler := fillDataDisk(t, disk)
	t.Cleanup(func() { _ = os.Remove(filler) })
	big := strings.Repeat("x", 100_000)
	eventually(t, 30*time.Second, "writes are refused for the full disk", func() error {
		if err := c.Set(ctx(t), "k", big, 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "MISCONF") {
			return fmt.Errorf("write: %v", err)
		}
		return nil
	})
	var got api.Database
	eventually(t, 10*time.Second, "the database says that it cannot write", func() error {
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &got)
		if !strings.Contains(got.LastError, "AOF") {
			return fmt.Errorf("status %s, last_error %q", got.Status, got.LastError)
		}
		return nil
	})

	require.NoError(t, os.Remove(filler))
	eventually(t, 30*time.Second, "writes come back once the disk has room", func() error {
		return c.Set(ctx(t), "k", "after", 0).Err()
	})
	eventually(t, 10*time.Second, "the database no longer says that it cannot write", func() error {
		var got api.Database
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &got)
		if got.LastError != "" || got.Status != api.StatusActive {
			return fmt.Errorf("status %s, last_error %q", got.Status, got.LastError)
		}
		return nil
	})
}

// A database whose files cannot be written when the service starts (its
// disk full) says so, and starts as soon as they can be: the service used
// to log that it retried, and never did.
func TestADatabaseThatCannotStartWithTheServiceStartsOnceItCan(t *testing.T) {
	disk := smallDataDisk(t, 64<<20)
	i := servicetest.StartWith(t, func(c *app.Config) { c.DataDir = filepath.Join(disk, "data") })
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "later", MemorySize: 16 << 20})
	c := dbClient(t, db, db.AuthenticationRedisPass)
	require.NoError(t, c.Set(ctx(t), "k", "v", 0).Err())
	i.Stop(t)
	filler := fillDataDisk(t, disk)
	t.Cleanup(func() { _ = os.Remove(filler) })
	i.StartAgain(t)
	var got api.Database
	call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &got)
	require.NotEqual(t, api.StatusActive, got.Status)
	require.Contains(t, got.LastError, "could not be started")

	require.NoError(t, os.Remove(filler))
	eventually(t, time.Minute, "the database starts once its files can be written", func() error {
		var got api.Database
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &got)
		if got.Status != api.StatusActive || got.LastError != "" {
			return fmt.Errorf("status %s: %s", got.Status, got.LastError)
		}
		return nil
	})
	v, err := c.Get(ctx(t), "k").Result()
	require.NoError(t, err)
	require.Equal(t, "v", v)
}

// A change whose files cannot be written (the disk full) is recorded: the
// running redis-server takes it all the same, the database says that its
// files are not written yet, and they are once the disk has room, so that
// a restart of the server keeps the change. The record and the server
// used to disagree (GET showed the new password, the server took only the
// old) until another change or a restart of the service.
func TestAChangeWhoseFilesCannotBeWrittenIsAppliedAndWrittenLater(t *testing.T) {
	disk := smallDataDisk(t, 64<<20)
	i := servicetest.StartWith(t, func(c *app.Config) { c.DataDir = filepath.Join(disk, "data") })
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "pw", MemorySize: 16 << 20, AuthenticationRedisPass: "the first password"})
	filler := fillDataDisk(t, disk)
	t.Cleanup(func() { _ = os.Remove(filler) })
	const second = "the other password"
	code, e := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", db.UID), map[string]any{"authentication_redis_pass": second}, nil)
	t.Logf("the change on a full disk: %d %v", code, e)
	var got api.Database
	call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &got)
	if got.AuthenticationRedisPass != second {
		t.Skipf("the change was not recorded (the state file had no room): %d %v", code, e)
	}
	nc := dbClient(t, db, second)
	eventually(t, 30*time.Second, "the running server takes the recorded password", func() error {
		return nc.Ping(ctx(t)).Err()
	})
	require.Contains(t, got.LastError, "its files can be written", "the database says that its change is not all applied")

	require.NoError(t, os.Remove(filler))
	eventually(t, 30*time.Second, "its files are written once the disk has room", func() error {
		var got api.Database
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &got)
		if got.LastError != "" {
			return fmt.Errorf("last_error %q", got.LastError)
		}
		return nil
	})
	pid := i.App.Databases().PID(ctx(t), db.UID)
	require.NotZero(t, pid)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	eventually(t, 30*time.Second, "the restarted server takes the recorded password", func() error {
		if now := i.App.Databases().PID(ctx(t), db.UID); now == 0 || now == pid {
			return fmt.Errorf("not restarted yet")
		}
		return nc.Ping(ctx(t)).Err()
	})
}
