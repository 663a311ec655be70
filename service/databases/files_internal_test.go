package databases

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/certs"
	"github.com/replicad/terraform-provider-redis/service/store"
)

// A change that cannot write a database's files (its disk full) leaves the
// files its redis-server starts from as they were: the client certificates
// a TLS database trusts used to be deleted before the new ones were
// written, and its server then could not start again (its configuration
// names the deleted file), even once the disk had room.
func TestAChangeThatCannotWriteItsFilesLeavesTheOldOnes(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs redis-server, not run with -short")
	}
	disk := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(16<<20), "tmpfs", disk).CombinedOutput()
	if err != nil {
		t.Fatalf("this test fills a small disk, a tmpfs it mounts: run it as root (scripts/test.sh does): mount: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", disk).Run() })
	tlsDir := t.TempDir()
	ca, err := certs.LoadOrCreateCA(tlsDir, "test CA")
	require.NoError(t, err)
	_, _, err = ca.LoadOrIssue(tlsDir, "proxy", []string{"127.0.0.1"}, false)
	require.NoError(t, err)
	bin, err := FindRedisServer("")
	require.NoError(t, err)
	m, err := NewManager(Config{RedisServer: bin, DataDir: disk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		TLS: TLSFiles{CertFile: filepath.Join(tlsDir, "proxy.pem"), KeyFile: filepath.Join(tlsDir, "proxy-key.pem"), CAFile: filepath.Join(tlsDir, "ca.pem")}})
	require.NoError(t, err)
	t.Cleanup(m.Close)
	ctx := redistest.Ctx(t)
	d := store.Database{UID: 1, Port: redistest.FreePort(t), MemorySize: 16 << 20, TLSMode: api.TLSEnabled,
		RedisPassword: "app", AdminPassword: "admin", InternalPassword: "internal"}
	require.NoError(t, m.Create(ctx, d))

	// A full disk, and pinned certificates that take more than a page.
	filler, err := os.Create(filepath.Join(disk, "filler"))
	require.NoError(t, err)
	for chunk := make([]byte, 1<<20); ; {
		if _, err := filler.Write(chunk); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			break
		}
	}
	require.NoError(t, filler.Close())
	pinned := d
	for n := range 10 {
		cert, _, err := certs.LoadOrCreateSelfSigned(t.TempDir(), "client", fmt.Sprint("client ", n))
		require.NoError(t, err)
		pinned.ClientCertificates = append(pinned.ClientCertificates, string(cert))
	}
	err = m.Ensure(ctx, pinned)
	require.Error(t, err, "the certificates cannot be written on a full disk")
	require.NoError(t, os.Remove(filler.Name()))

	// Its redis-server restarts from the files it has.
	pid := m.PID(ctx, d.UID)
	require.NotZero(t, pid)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	redistest.Eventually(t, 30*time.Second, "the database is back", func() error {
		if now := m.PID(ctx, d.UID); now == 0 || now == pid {
			return fmt.Errorf("its redis-server has not started again: %s", m.Problem(d.UID))
		}
		if st, _ := m.Status(d.UID); st != api.StatusActive {
			return errors.New(st + ": " + m.Problem(d.UID))
		}
		return nil
	})
}
