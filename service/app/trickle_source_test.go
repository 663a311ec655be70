package app_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// startTricklingSource is a source that answers the replica handshake,
// then sends its RDB a byte every 200 ms (a broken or hostile server): an
// AUX field whose value is announced as 1 MB long.
func startTricklingSource(t *testing.T) (addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	serve := func(c net.Conn) {
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if !strings.HasPrefix(line, "*") {
				continue
			}
			var n int
			fmt.Sscanf(line[1:], "%d", &n)
			var args []string
			for range n {
				if _, err := r.ReadString('\n'); err != nil {
					return
				}
				arg, err := r.ReadString('\n')
				if err != nil {
					return
				}
				args = append(args, strings.TrimRight(arg, "\r\n"))
			}
			if len(args) == 0 || !strings.EqualFold(args[0], "PSYNC") {
				fmt.Fprint(c, map[bool]string{true: "+PONG\r\n", false: "+OK\r\n"}[strings.EqualFold(args[0], "PING")])
				continue
			}
			fmt.Fprintf(c, "+FULLRESYNC %s 0\r\n$%d\r\nREDIS0010\xfa\x01x\x80\x00\x10\x00\x00", strings.Repeat("ab", 20), 2000000)
			for {
				select {
				case <-done:
					return
				case <-time.After(200 * time.Millisecond):
				}
				if _, err := c.Write([]byte("a")); err != nil {
					return
				}
			}
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().String()
}

// A source that trickles its RDB (a byte now and then, never idle for
// 10 s) held its load slot for as long as it went on: with as many such
// sources as the instance has slots (two on a 2-CPU host), no other
// destination of the instance could load, and each said "syncing" without
// a word why. A load that takes next to nothing from its source gives its
// slot back, as an idle one does.
func TestATricklingSourceDoesNotHoldBackOtherLoads(t *testing.T) {
	i := servicetest.StartWith(t, func(c *app.Config) { c.MaxConcurrentLoads = 1 })
	slow := mustCreate(t, i, api.CreateDatabaseRequest{Name: "slow", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: "redis://" + startTricklingSource(t)}}})
	eventually(t, 30*time.Second, "the trickling source's load holds the slot", func() error {
		var db api.Database
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", slow.UID), nil, &db)
		if n := db.ReplicaSources[0].RDBTransferred; n < 10 {
			return fmt.Errorf("%d bytes transferred", n)
		}
		return nil
	})

	src := mustCreate(t, i, api.CreateDatabaseRequest{Name: "src", MemorySize: 64 << 20})
	require.NoError(t, dbClient(t, src, src.AuthenticationRedisPass).Set(ctx(t), "k", "v", 0).Err())
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: sourceURL(t, i, src.UID)}}})
	c := dbClient(t, dst, dst.AuthenticationRedisPass)
	eventually(t, 40*time.Second, "the other destination loads while the source trickles", func() error {
		v, err := c.Get(ctx(t), "k").Result()
		if err != nil || v != "v" {
			var db api.Database
			call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", dst.UID), nil, &db)
			return fmt.Errorf("GET k: %q %v (status %s %+v)", v, err, db.Status, db.ReplicaSources[0].Status)
		}
		return nil
	})
}
