package replication

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A destination that accepts but never answers (a redis-server stopped with
// SIGSTOP keeps accepting in its backlog) must not hold a syncer's stop for
// the two minutes one exchange may take.
func TestAnAuthToADestinationThatNeverAnswersEndsWithItsContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	w, err := dialDestination(ctx, Access{Network: "tcp", Addr: ln.Addr().String(), Password: "secret-password"}, "src")
	if w != nil {
		w.Close()
	}
	require.Error(t, err)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Less(t, time.Since(start), 10*time.Second, "the AUTH outlived its context")
	assert.NotContains(t, err.Error(), "secret-password")
}
