package cluster

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A cluster of Redis 6 answers CLUSTER SHARDS with an unknown subcommand
// error: that is a clear, lasting error, not one to retry.
func TestDiscoverOldRedis(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		buf := make([]byte, 4096)
		for {
			if _, err := conn.Read(buf); err != nil {
				return
			}
			conn.Write([]byte("-ERR unknown subcommand 'SHARDS'. Try CLUSTER HELP.\r\n"))
		}
	}()
	c := redis.NewClient(&redis.Options{Addr: l.Addr().String(), Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = Discover(ctx, c, false)
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrUnsupported), "%v", err)
	assert.Contains(t, err.Error(), "Redis 7.0 or later")
}
