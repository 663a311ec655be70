package dirlock

import (
	"context"
	"os"
	"path/filepath"
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
