package replication

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSwapHoldWaitsForEverySource(t *testing.T) {
	h := newSwapHold()
	assert.False(t, h.isRequested())
	_, swapped := h.swapped()
	assert.False(t, swapped)
	h.request()
	assert.True(t, h.isRequested())

	done := make(chan error, 1)
	go func() { done <- h.waitHeld(context.Background(), []string{"a", "b"}) }()
	h.arrivals <- "a"
	h.arrivals <- "a" // a session that restarted holds again
	select {
	case err := <-done:
		t.Fatalf("returned with b missing: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	h.arrivals <- "b"
	require.NoError(t, <-done)

	h.release(Access{Addr: "/tmp/dest.sock"}, nil)
	target, swapped := h.swapped()
	assert.True(t, swapped)
	assert.Equal(t, "/tmp/dest.sock", target.Addr)
}

func TestSwapHoldGivesUpWithTheContext(t *testing.T) {
	h := newSwapHold()
	h.request()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := h.waitHeld(ctx, []string{"a", "b"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "2 of 2 sources")
	_, swapped := h.swapped()
	assert.False(t, swapped, "nobody is released into a swap that did not happen")
}
