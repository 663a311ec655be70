package app_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// startFakeSource is a source that answers the replica handshake, then
// lets fullSync answer PSYNC (done closes when the test ends).
func startFakeSource(t *testing.T, fullSync func(c net.Conn, done <-chan struct{})) (addr string) {
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
			fullSync(c, done)
			return
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

// startTricklingSource is a source that sends its RDB a byte every 200 ms
// (a broken or hostile server): an AUX field whose value is announced as
// 1 MB long.
func startTricklingSource(t *testing.T) (addr string) {
	return startFakeSource(t, func(c net.Conn, done <-chan struct{}) {
		fmt.Fprintf(c, "+FULLRESYNC %s 0\r\n$%d\r\nREDIS0010\xfa\x01x\x80\x00\x10\x00\x00", strings.Repeat("ab", 20), 2000000)
		for {
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond): // the source's pace
			}
			if _, err := c.Write([]byte("a")); err != nil {
				return
			}
		}
	})
}

// A source that writes its RDB to disk before it sends it (Redis before
// 7.0, or repl-diskless-sync no) sends a newline now and then meanwhile,
// for as long as the save takes. Its load keeps its slot: given back, it
// would not be taken again when the payload flows, and the loads of the
// instance would then run past their bound.
func TestASourceSavingToDiskKeepsItsLoadSlot(t *testing.T) {
	i := servicetest.StartWith(t, func(c *app.Config) { c.MaxConcurrentLoads = 1 })
	addr := startFakeSource(t, saveToDiskThenSendEmpty)
	mark := i.LogMark()
	requireLoadKeepsItsSlot(t, i, addr, mark)
}

// The same after a load of that source broke off mid-payload: what the
// broken load had received is not the next one's (it once was, and the
// keepalives of the next one's save did not count as progress).
func TestASourceSavingToDiskAfterABrokenLoadKeepsItsLoadSlot(t *testing.T) {
	i := servicetest.StartWith(t, func(c *app.Config) { c.MaxConcurrentLoads = 1 })
	var syncs atomic.Int32
	addr := startFakeSource(t, func(c net.Conn, done <-chan struct{}) {
		if syncs.Add(1) == 1 {
			// Part of a 2 MB AUX field, then the connection drops.
			fmt.Fprintf(c, "+FULLRESYNC %s 0\r\n$%d\r\nREDIS0010\xfa\x01x\x80\x00\x10\x00\x00%s", strings.Repeat("ab", 20), 2000000, strings.Repeat("a", 1000))
			return
		}
		saveToDiskThenSendEmpty(c, done)
	})
	mark := i.LogMark()
	requireLoadKeepsItsSlot(t, i, addr, mark)
	require.GreaterOrEqual(t, syncs.Load(), int32(2), "the source was asked for a second full sync")
}

// saveToDiskThenSendEmpty answers PSYNC as a source that saves its RDB to
// disk for 12 s (past the 10 s after which an idle load gives its slot
// back), sending a newline every 200 ms meanwhile, then sends an empty
// dataset (a checksum of 0 is "not computed") and an idle stream.
func saveToDiskThenSendEmpty(c net.Conn, done <-chan struct{}) {
	fmt.Fprintf(c, "+FULLRESYNC %s 0\r\n", strings.Repeat("cd", 20))
	for end := time.Now().Add(12 * time.Second); time.Now().Before(end); {
		select {
		case <-done:
			return
		case <-time.After(200 * time.Millisecond): // the source's pace
		}
		if _, err := c.Write([]byte("\n")); err != nil {
			return
		}
	}
	fmt.Fprintf(c, "$18\r\nREDIS0010\xff\x00\x00\x00\x00\x00\x00\x00\x00")
	<-done
}

// requireLoadKeepsItsSlot makes a database a Replica Of the source at
// addr, waits for it to be in sync, and checks that its load never gave
// its slot back.
func requireLoadKeepsItsSlot(t *testing.T, i *servicetest.Instance, addr string, mark int) {
	t.Helper()
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "disk", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: "redis://" + addr}}})
	eventually(t, time.Minute, "the load ends", func() error {
		var got api.Database
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &got)
		if got.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("status %s", got.ReplicaSyncStatus)
		}
		return nil
	})
	require.NotContains(t, i.LogsSince(mark), "its slot goes to the instance's other loads")
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
