package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeShards serves CLUSTER SHARDS (RESP2) with the given nodes of one shard
// (key-value pairs each), and an error for anything else: a source of any
// kind, not only a Redis, answers a destination.
func fakeShards(t *testing.T, nodes ...[]string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	bulk := func(s string) string { return fmt.Sprintf("$%d\r\n%s\r\n", len(s), s) }
	var b strings.Builder
	fmt.Fprintf(&b, "*1\r\n*4\r\n%s*2\r\n:0\r\n:16383\r\n%s*%d\r\n", bulk("slots"), bulk("nodes"), len(nodes))
	for _, n := range nodes {
		fmt.Fprintf(&b, "*%d\r\n", len(n))
		for i, v := range n {
			if i%2 == 1 && (n[i-1] == "port" || n[i-1] == "replication-offset") {
				fmt.Fprintf(&b, ":%s\r\n", v)
			} else {
				b.WriteString(bulk(v))
			}
		}
	}
	reply := b.String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					var n int
					if _, err := fmt.Sscanf(line, "*%d", &n); err != nil {
						return
					}
					var args []string
					for range n {
						if _, err := r.ReadString('\n'); err != nil {
							return
						}
						arg, err := r.ReadString('\n')
						if err != nil {
							return
						}
						args = append(args, strings.ToUpper(strings.TrimRight(arg, "\r\n")))
					}
					out := "-ERR unknown command\r\n"
					if len(args) >= 2 && args[0] == "CLUSTER" && args[1] == "SHARDS" {
						out = reply
					}
					if _, err := c.Write([]byte(out)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// A node address and role come from the source: bytes that are not UTF-8,
// or a host that is no name, would reach metric labels (where the client
// library panics on them, taking the service down), logs and the status.
// Such a node has no address to reach, as a node with none.
func TestDiscoverSkipsNodesWithAHostThatIsNoName(t *testing.T) {
	addr := fakeShards(t,
		[]string{"id", "a", "port", "7001", "ip", "127.0.0.1", "endpoint", "h\xff", "role", "master", "replication-offset", "1", "health", "online"},
		[]string{"id", "b", "port", "7002", "ip", "127.0.0.1", "endpoint", "<img src=x>", "role", "replica", "replication-offset", "1", "health", "online"},
		[]string{"id", "c", "port", "7003", "ip", "127.0.0.1", "endpoint", "node-3.example", "role", "rep\xfflica", "replication-offset", "1", "health", "online"},
		[]string{"id", "d", "port", "7004", "ip", "10.0.0.4", "endpoint", "node-4.example", "role", "replica", "replication-offset", "1", "health", "online"},
		[]string{"id", "e", "port", "7005", "ip", "\xfe", "endpoint", "?", "role", "replica", "replication-offset", "1", "health", "online"},
	)
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	top, err := Discover(ctx, c, false)
	require.NoError(t, err)
	require.Len(t, top.Shards, 1)
	var addrs []string
	for _, n := range top.Shards[0].Nodes {
		assert.True(t, utf8.ValidString(n.Addr) && utf8.ValidString(n.Role), "node %q %q", n.Addr, n.Role)
		addrs = append(addrs, n.Addr)
	}
	assert.Equal(t, []string{"node-4.example:7004"}, addrs, "only the node with a name and a role")
}

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
