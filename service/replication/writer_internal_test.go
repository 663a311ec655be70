package replication

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/resp"
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

// TestAsPrimary: written as a client's command (no master link), an exact
// stream trim loses its LIMIT; anything else goes as the source sent it.
func TestAsPrimary(t *testing.T) {
	enc := func(s string) []byte { return resp.AppendCommand(nil, bytesArgs(strings.Fields(s))...) }
	assert.Equal(t, enc("XADD s MAXLEN = 12 * f v"), asPrimary(enc("XADD s MAXLEN = 12 LIMIT 5 * f v")))
	assert.Equal(t, enc("xtrim s minid = 9-0"), asPrimary(enc("xtrim s minid = 9-0 limit 10")))
	for _, same := range []string{"XADD s MAXLEN ~ 12 LIMIT 5 * f v", "SET XADD LIMIT", "XADDX s MAXLEN = 1 LIMIT 2"} {
		assert.Equal(t, enc(same), asPrimary(enc(same)), same)
	}
	for _, bad := range [][]byte{nil, []byte("*"), []byte("*1\r\n$9\r\nXADD"), []byte("*1\r\n$-4\r\n"), []byte("*3\r\n$4\r\nXADD\r\n")} {
		assert.Equal(t, bad, asPrimary(bad), "%q", bad)
	}
}
