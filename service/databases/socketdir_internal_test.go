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
	other := cfg
	other.DataDir = t.TempDir()
	m2, err := NewManager(other)
	require.NoError(t, err)

	dir := filepath.Dir(m1.Socket(1))
	assert.NotEqual(t, dir, filepath.Dir(m2.Socket(1)), "each Manager has its own")
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

// A service killed (kill -9) cannot remove its sockets' directory: the next
// run of the same data directory does, so that runs do not pile them up in
// the shared temporary directory. It names another one each time.
func TestTheSocketsDirectoryOfAKilledRunIsRemovedByTheNext(t *testing.T) {
	dataDir := t.TempDir()
	cfg := Config{RedisServer: "redis-server", DataDir: dataDir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	killed, err := NewManager(cfg)
	require.NoError(t, err)
	left := filepath.Dir(killed.Socket(1))
	t.Cleanup(func() { os.RemoveAll(left) })
	killed.cancel() // what a kill leaves: no Close
	<-killed.rewriterDone

	// Something that is not a sockets' directory is never removed, even
	// if the file names it.
	notOurs := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(notOurs, "keep"), nil, 0o600))

	next, err := NewManager(cfg)
	require.NoError(t, err)
	defer next.Close()
	_, err = os.Stat(left)
	assert.True(t, os.IsNotExist(err), "the killed run's directory %s is still there", left)
	assert.NotEqual(t, left, filepath.Dir(next.Socket(1)))
	_, err = os.Stat(filepath.Dir(next.Socket(1)))
	require.NoError(t, err)

	require.NoError(t, os.WriteFile(filepath.Join(dataDir, runDirFile), []byte(notOurs), 0o600))
	third, err := NewManager(cfg)
	require.NoError(t, err)
	defer third.Close()
	_, err = os.Stat(filepath.Join(notOurs, "keep"))
	assert.NoError(t, err, "a directory not named as the sockets' directories are is kept")
}
