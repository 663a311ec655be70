package databases

import (
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

// The directory of a deleted database that a kill -9 of the service left
// (its record gone, its files not) may still have its redis-server running
// in it, one that did not act on the SIGTERM it got when the service died.
// Removing the directory ends that server: it held its port for ever, with
// the deleted data in memory.
func TestRemoveLeftoversEndsAServerLeftInTheDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs redis-server, not run with -short")
	}
	bin, err := FindRedisServer("")
	require.NoError(t, err)
	m, err := NewManager(Config{RedisServer: bin, DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(m.Close)

	// A server whose parent is gone (it daemonizes), running in the
	// directory of database 3, as one of a previous life of the service.
	dir := m.Dir(3)
	require.NoError(t, os.MkdirAll(dir, 0o700))
	port := redistest.FreePort(t)
	pidFile := filepath.Join(t.TempDir(), "server.pid")
	out, err := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--daemonize", "yes",
		"--dir", dir, "--pidfile", pidFile, "--save", "", "--appendonly", "no").CombinedOutput()
	require.NoError(t, err, "%s", out)
	var pid int
	redistest.Eventually(t, 10*time.Second, "the server runs", func() error {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return err
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return err
		}
		c, err := net.Dial("tcp", m.Addr(port))
		if err != nil {
			return err
		}
		return c.Close()
	})
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) }) // if the test fails

	removed, err := m.RemoveLeftovers(map[int]bool{}, 4)
	require.NoError(t, err)
	require.Equal(t, []int{3}, removed)
	require.NoDirExists(t, dir)
	require.True(t, gone(pid), "the server left in the directory is ended")
	_, err = net.Dial("tcp", m.Addr(port))
	require.Error(t, err, "its port is free")
}
