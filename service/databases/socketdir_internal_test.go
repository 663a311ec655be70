package databases

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The sockets through which the service logs in as its all-powerful user
// are in a directory only this process could have created: mode 0700, a
// name nobody can guess from the data directory (another local user who
// created it first would be handed the internal password), removed on
// Close.
func TestSocketsAreInADirectoryOfTheProcessOwn(t *testing.T) {
	dataDir := t.TempDir()
	cfg := Config{RedisServer: "redis-server", DataDir: dataDir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	m1, err := NewManager(cfg)
	require.NoError(t, err)
	m2, err := NewManager(cfg)
	require.NoError(t, err)

	dir := filepath.Dir(m1.Socket(1))
	assert.NotEqual(t, dir, filepath.Dir(m2.Socket(1)), "the same data directory gives another name each time")
	st, err := os.Lstat(dir)
	require.NoError(t, err)
	assert.True(t, st.IsDir(), "a directory, not a link")
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	assert.Equal(t, filepath.Dir(m1.Socket(1)), filepath.Dir(m1.Socket(2)))
	assert.Less(t, len(m1.Socket(-1_000_000)), 100, "socket paths stay under the kernel's limit")

	m1.Close()
	m2.Close()
	_, err = os.Stat(dir)
	assert.True(t, os.IsNotExist(err), "Close removes the directory")
}
