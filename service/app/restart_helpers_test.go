package app_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// fillBulk writes rounds x 10,000 keys bulk:<round>:<k> of 64 bytes: enough
// for an AOF replay that lasts a while.
func fillBulk(t *testing.T, c *redis.Client, rounds int) {
	t.Helper()
	value := strings.Repeat("v", 64)
	for round := range rounds {
		pipe := c.Pipeline()
		for k := range 10000 {
			pipe.Set(ctx(t), fmt.Sprintf("bulk:%d:%d", round, k), value, 0)
		}
		_, err := pipe.Exec(ctx(t))
		require.NoError(t, err)
	}
}

// killAndWaitGone kills a redis-server with SIGKILL and waits until the
// process is gone (kill returns before it is): a client connecting
// earlier could still be answered by it.
func killAndWaitGone(t *testing.T, pid int) {
	t.Helper()
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	eventually(t, 10*time.Second, "the killed redis-server is gone", func() error {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("pid %d: %v", pid, err)
		}
		return nil
	})
}

// notListening says whether err is a restarting server's: nothing listens
// yet, or the killed server's connection ended.
func notListening(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		strings.Contains(err.Error(), "connection reset")
}
