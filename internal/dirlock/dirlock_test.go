package dirlock

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
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
