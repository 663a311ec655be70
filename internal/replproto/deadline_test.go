package replproto

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// With a timeout long enough that reads move the deadline at most once a
// second, keepalives still keep the link up past the timeout, and silence
// is still detected: after at least the timeout less that second.
func TestLazyDeadlineKeepsAliveAndDetectsSilence(t *testing.T) {
	const timeout = 3 * time.Second
	f, c := newFakePair(t, Options{ReadTimeout: timeout})
	f.run(func() {
		f.handshake([]string{"PSYNC", "?", "-1"}, "+FULLRESYNC "+testReplID+" 0\r\n")
		for range 9 { // 4.5 s of keepalives, 1.5x the timeout
			f.send("\n")
			time.Sleep(500 * time.Millisecond)
		}
		f.send("$9\r\nREDIS0010")
	})
	ctx := context.Background()
	_, err := c.Handshake(ctx, "", 0)
	require.NoError(t, err)
	rdb, err := c.RDB(ctx)
	require.NoError(t, err)
	got, err := readAllSmall(rdb, 100)
	require.NoError(t, err, "keepalives kept the link up")
	assert.Equal(t, "REDIS0010", string(got))
	start := time.Now()
	_, err = c.ReadCommand(ctx)
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrConn) && IsRetryable(err) && strings.Contains(err.Error(), "timeout"), "silent source: %v", err)
	assert.GreaterOrEqual(t, time.Since(start), timeout-rearmEvery-100*time.Millisecond, "not before the timeout less the re-arming period")
}
