package app_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// blockRemoval mounts a tmpfs inside dir: its files can go, but not the
// mount point, so removing dir fails (EBUSY) as long as it is mounted. It
// returns the function that unmounts it. Needs root.
func blockRemoval(t *testing.T, dir string) (unblock func()) {
	t.Helper()
	mnt := filepath.Join(dir, "mounted")
	require.NoError(t, os.MkdirAll(mnt, 0o700))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("this test makes a database's files impossible to remove with a tmpfs it mounts: run it as root (scripts/test.sh does): mount: %v %s", err, out)
	}
	mounted := true
	unblock = func() {
		if !mounted {
			return
		}
		mounted = false
		if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mnt, err, out)
		}
	}
	t.Cleanup(unblock)
	return unblock
}

// A DELETE whose files cannot be removed says so, and keeps the database
// (status deleting, stopped, refusing changes) so that a DELETE again
// finishes it: the record went first, the answer was a 500, and a retry
// said 404 while the files stayed behind.
func TestDeleteThatCannotRemoveFilesCanBeFinished(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "stuck", MemorySize: 16 << 20})
	c := dbClient(t, db, db.AuthenticationRedisPass)
	require.NoError(t, c.Set(ctx(t), "k", "v", 0).Err())
	dir := filepath.Join(i.DataDir, "dbs", fmt.Sprint(db.UID))
	unblock := blockRemoval(t, dir)
	path := fmt.Sprintf("/v1/bdbs/%d", db.UID)

	code, e := call(t, i, "DELETE", path, nil, nil)
	require.Equal(t, 500, code, "the delete did not finish: %v", e)
	assert.Contains(t, e.Description, "DELETE it again")
	var got api.Database
	code, e = call(t, i, "GET", path, nil, &got)
	require.Equal(t, 200, code, "the database is still there, deleting: %v", e)
	assert.Equal(t, api.StatusDeleting, got.Status)
	assert.Contains(t, got.LastError, "delete did not finish")
	assert.Error(t, c.Ping(ctx(t)).Err(), "its redis-server is stopped")
	renamed := "renamed"
	code, e = call(t, i, "PUT", path, api.UpdateDatabaseRequest{Name: &renamed}, nil)
	assert.Equal(t, 409, code, "a database being deleted takes no change: %v", e)

	// A restart does not bring it back, and keeps it while its files
	// still cannot go.
	i.Restart(t)
	code, _ = call(t, i, "GET", path, nil, &got)
	require.Equal(t, 200, code)
	assert.Equal(t, api.StatusDeleting, got.Status)
	assert.Error(t, c.Ping(ctx(t)).Err(), "not started again")

	unblock()
	code, e = call(t, i, "DELETE", path, nil, nil)
	require.Equal(t, 204, code, "%v", e)
	code, _ = call(t, i, "GET", path, nil, nil)
	assert.Equal(t, 404, code)
	_, err := os.Stat(dir)
	assert.ErrorIs(t, err, os.ErrNotExist, "its files are gone")
	// Its name is free again.
	mustCreate(t, i, api.CreateDatabaseRequest{Name: "stuck", MemorySize: 16 << 20})
}

// The next start finishes a delete that could not remove the files.
func TestStartFinishesAnUnfinishedDelete(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "stuck", MemorySize: 16 << 20})
	dir := filepath.Join(i.DataDir, "dbs", fmt.Sprint(db.UID))
	unblock := blockRemoval(t, dir)
	path := fmt.Sprintf("/v1/bdbs/%d", db.UID)
	code, e := call(t, i, "DELETE", path, nil, nil)
	require.Equal(t, 500, code, "%v", e)
	i.Stop(t)
	unblock()
	i.StartAgain(t)
	eventually(t, 10*time.Second, "the delete is finished", func() error {
		if code, _ := call(t, i, "GET", path, nil, nil); code != 404 {
			return fmt.Errorf("GET: %d", code)
		}
		return nil
	})
	_, err := os.Stat(dir)
	assert.ErrorIs(t, err, os.ErrNotExist, "its files are gone")
}

// A database being deleted is no source (its URL would never sync), and a
// create that its name or port stops says that DELETE again frees them:
// "already exists" alone sent users looking for a database they deleted.
func TestADatabaseBeingDeletedIsNoSourceAndSaysHowToFreeItsName(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "stuck", MemorySize: 16 << 20})
	dir := filepath.Join(i.DataDir, "dbs", fmt.Sprint(db.UID))
	blockRemoval(t, dir)
	path := fmt.Sprintf("/v1/bdbs/%d", db.UID)
	var su api.SourceURL
	code, e := call(t, i, "GET", path+"/source_url", nil, &su)
	require.Equal(t, 200, code, "%v", e)
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst", MemorySize: 16 << 20})
	code, e = call(t, i, "DELETE", path, nil, nil)
	require.Equal(t, 500, code, "the delete did not finish: %v", e)

	code, e = call(t, i, "GET", path+"/source_url", nil, nil)
	assert.Equal(t, 409, code, "no source URL of a database being deleted: %v", e)
	assert.Contains(t, e.Description, "being deleted")
	code, e = call(t, i, "POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "STUCK", MemorySize: 16 << 20}, nil)
	assert.Equal(t, 409, code, "%v", e)
	assert.Contains(t, e.Description, fmt.Sprintf("DELETE /v1/bdbs/%d again", db.UID))
	code, e = call(t, i, "POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "other", Port: db.Port, MemorySize: 16 << 20}, nil)
	assert.Equal(t, 409, code, "%v", e)
	assert.Contains(t, e.Description, fmt.Sprintf("DELETE /v1/bdbs/%d again", db.UID))

	// A URL read before is refused as a new source, at create and update.
	code, e = call(t, i, "POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "replica", MemorySize: 16 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: su.URI}}}, nil)
	assert.Equal(t, 400, code, "%v", e)
	assert.Contains(t, e.Description, "being deleted")
	assert.NotContains(t, e.Description, db.AuthenticationRedisPass)
	sources := []api.ReplicaSource{{URI: su.URI}}
	code, e = call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", dst.UID), api.UpdateDatabaseRequest{ReplicaSources: &sources}, nil)
	assert.Equal(t, 400, code, "%v", e)
	assert.Contains(t, e.Description, "being deleted")
}

// A change of a database that is being deleted, or that does not exist,
// is refused as such before anything else is checked: a lowering of its
// memory_size said it could not tell what the database held ("its
// redis-server does not run"), and its new sources were asked whether they
// could compress, seconds each when they do not answer.
func TestAChangeOfADatabaseBeingDeletedOrMissingSaysSoFirst(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "stuck", MemorySize: 32 << 20})
	unblock := blockRemoval(t, filepath.Join(i.DataDir, "dbs", fmt.Sprint(db.UID)))
	defer unblock()
	path := fmt.Sprintf("/v1/bdbs/%d", db.UID)
	code, e := call(t, i, "DELETE", path, nil, nil)
	require.Equal(t, 500, code, "the delete did not finish: %v", e)
	silent := newSilentSource(t)

	lower := int64(16 << 20)
	sources := []api.ReplicaSource{{URI: silent.uri(), Compression: 1}}
	for _, req := range []api.UpdateDatabaseRequest{{MemorySize: &lower}, {ReplicaSources: &sources}} {
		code, e = call(t, i, "PUT", path, req, nil)
		assert.Equal(t, 409, code, "%v", e)
		assert.Contains(t, e.Description, "is being deleted")
		code, e = call(t, i, "PUT", "/v1/bdbs/999", req, nil)
		assert.Equal(t, 404, code, "%v", e)
		assert.Equal(t, api.CodeNotFound, e.Code)
	}
	accepted, _ := silent.counts()
	assert.Zero(t, accepted, "a source was asked about compression for a database being deleted or missing")
}
