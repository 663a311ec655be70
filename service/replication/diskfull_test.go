package replication_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// smallDisk mounts a tmpfs of size bytes for the test: a disk the test can
// fill. It needs root (scripts/test.sh runs as root); elsewhere it fails
// saying so.
func smallDisk(t *testing.T, size int) string {
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

// fillDisk leaves about free bytes free on the filesystem of dir, with a
// file it returns.
func fillDisk(t *testing.T, dir string, free int64) string {
	t.Helper()
	var st syscall.Statfs_t
	require.NoError(t, syscall.Statfs(dir, &st))
	avail := int64(st.Bavail) * int64(st.Bsize)
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for n := avail - free; n > 0; n -= int64(len(chunk)) {
		_, err := f.Write(chunk[:min(int64(len(chunk)), n)])
		require.NoError(t, err)
	}
	return path
}

// TestMatrixDiskFull fills the destination's disk while a stream arrives:
// the destination refuses writes it cannot log (MISCONF), the sync stops
// saying so, and nothing is lost or applied twice: once there is room again
// and the sync is enabled, the destination equals the source.
func TestMatrixDiskFull(t *testing.T) {
	servicetest.RequireRedisServer(t) // first: -short skips before mounting
	disk := smallDisk(t, 64<<20)
	src := redistest.Start(t)
	sc := src.Client()
	loadKeys(t, src, 1000)
	i := servicetest.StartWith(t, func(c *app.Config) { c.DataDir = filepath.Join(disk, "data") })
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "cramped", MemorySize: 128 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)

	filler := fillDisk(t, disk, 4<<20)
	w := startIncrWriter(t, sc, 20)
	big := strings.Repeat("x", 64<<10)
	redistest.Eventually(t, 2*time.Minute, "the sync stops on the full disk, saying why", func() error {
		// Values that fill the destination's AOF.
		for k := range 20 {
			require.NoError(t, sc.Set(redistest.Ctx(t), "big:"+strconv.Itoa(k), big+strconv.Itoa(k), 0).Err())
		}
		db := a.get(dst.UID)
		if len(db.ReplicaSources) != 1 || db.ReplicaSources[0].Status != api.SourceOutOfSync ||
			!strings.Contains(db.ReplicaSources[0].LastError, "MISCONF") {
			return fmt.Errorf("sync %s, sources %+v", db.ReplicaSync, db.ReplicaSources)
		}
		return nil
	})
	w.stop()
	db := a.get(dst.UID)
	t.Logf("with the disk full: replica_sync %s, last_error %q", db.ReplicaSync, db.ReplicaSources[0].LastError)

	// Room again; the sync is enabled again (a stopped sync reloads).
	require.NoError(t, os.Remove(filler))
	enabled := api.SyncEnabled
	redistest.Eventually(t, time.Minute, "the stored state says stopped", func() error {
		if db := a.get(dst.UID); db.ReplicaSync != api.SyncStopped {
			return fmt.Errorf("sync %s", db.ReplicaSync)
		}
		return nil
	})
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSync: &enabled})
	a.waitInSync(dst.UID, 3*time.Minute)
	eventuallyEqual(t, 2*time.Minute, destClient(t, dst, 0), sc)
}
