package dirlock

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The lock does not depend on any file in the directory: deleting every
// file in it does not let a second holder in.
func TestLockHoldsWhateverIsDeletedInTheDirectory(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "state.db"), []byte("x"), 0o600))
	l, err := Acquire(context.Background(), dir, 0)
	require.NoError(t, err)
	require.NoError(t, os.Remove(filepath.Join(dir, "state.db")))

	_, err = Acquire(context.Background(), dir, 200*time.Millisecond)
	require.ErrorIs(t, err, ErrHeld)

	require.NoError(t, l.Close())
	l2, err := Acquire(context.Background(), dir, 0)
	require.NoError(t, err)
	assert.NoError(t, l2.Close())
}

// A refused lock names the process that holds it: "held by another
// process" left the user to hunt for it (a service restarted by hand
// while the supervisor's copy still runs).
func TestHeldSaysWhichProcessHoldsIt(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the holder is told on Linux only (/proc/locks)")
	}
	dir := t.TempDir()
	l, err := Acquire(context.Background(), dir, 0)
	require.NoError(t, err)
	defer l.Close()
	_, err = Acquire(context.Background(), dir, 0)
	require.ErrorIs(t, err, ErrHeld)
	var held *HeldError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, os.Getpid(), held.PID)
	assert.Contains(t, err.Error(), fmt.Sprintf("process %d (", os.Getpid()))
	comm, _ := os.ReadFile("/proc/self/comm")
	assert.Equal(t, strings.TrimSpace(string(comm)), held.Command)
}

// A filesystem that cannot lock a directory (NFS answers EBADF: its locks
// need a file open for writing) does not stop the start: the state file's
// own lock, which worked there, remains, and Unsupported says why the
// directory is not locked. Any other failure is still an error.
func TestAFilesystemThatLocksNoDirectoryIsNotARefusal(t *testing.T) {
	dir := t.TempDir()
	nfs := func(*os.File) (bool, error) { return false, syscall.EBADF }
	l, err := acquire(context.Background(), dir, 0, nfs)
	require.NoError(t, err)
	require.Error(t, l.Unsupported())
	assert.Contains(t, l.Unsupported().Error(), dir)
	assert.NoError(t, l.Close())

	broken := func(*os.File) (bool, error) { return false, syscall.EIO }
	_, err = acquire(context.Background(), dir, 0, broken)
	assert.ErrorIs(t, err, syscall.EIO)
}
