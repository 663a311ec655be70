package provider

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
)

// A destroy that failed midway (the service could not remove the
// database's files) leaves the database `deleting`: stopped, taking no
// change. The next plan must not say "no changes": it replaces the
// database, and the apply finishes the delete and creates it anew.
func TestAccDatabaseResource_deletingIsReplaced(t *testing.T) {
	e := testAccStart(t)
	cli := newTestAccCLI(t)
	cli.write("main.tf", testAccCLIProxiedConfig(e.providerConfig())+`
resource "redis_database" "db" {
  name        = "half-deleted"
  memory_size = 8388608
}
`)
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	ctx := testAccContext(t)
	dbs, err := e.client.ListDatabases(ctx)
	require.NoError(t, err)
	require.Len(t, dbs, 1)
	uid := dbs[0].UID

	unmount := holdDeleteMidway(t, e, uid)
	require.Error(t, e.client.DeleteDatabase(ctx, uid), "the delete cannot finish")
	db, err := e.client.GetDatabase(ctx, uid)
	require.NoError(t, err)
	require.Equal(t, api.StatusDeleting, db.Status)

	out := flat(cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color"))
	assert.Contains(t, out, "must be replaced")
	assert.Contains(t, out, "The database is being deleted")

	unmount()
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")
	dbs, err = e.client.ListDatabases(ctx)
	require.NoError(t, err)
	require.Len(t, dbs, 1)
	assert.NotEqual(t, uid, dbs[0].UID, "created anew")
	assert.Equal(t, "half-deleted", dbs[0].Name)
	assert.Equal(t, api.StatusActive, dbs[0].Status)
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}

// holdDeleteMidway makes the files of database uid impossible to remove,
// as a busy or read-only mount would, with a tmpfs mounted in its
// directory: its delete stops midway and leaves it `deleting`. The returned
// function (also run at the test's end) lets it go.
func holdDeleteMidway(t *testing.T, e *testAccEnv, uid int) (unmount func()) {
	t.Helper()
	mnt := filepath.Join(e.inst.DataDir, "dbs", fmt.Sprint(uid), "mounted")
	require.NoError(t, os.MkdirAll(mnt, 0o700))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("this test holds a database's delete with a tmpfs it mounts: run it as root (scripts/test.sh does): mount: %v %s", err, out)
	}
	mounted := true
	unmount = func() {
		if mounted {
			mounted = false
			if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v %s", mnt, err, out)
			}
		}
	}
	t.Cleanup(unmount)
	return unmount
}
