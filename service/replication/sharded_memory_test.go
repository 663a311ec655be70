package replication_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/cluster"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// An OOM of a queued command in a slot's MULTI makes its EXEC answer
// EXECABORT: that is no slot move. With a backlog that covers the gap, the
// sync must stop as out of memory, not take it for a changed slot map
// and retry (nor reload the destination).
func TestAShardedDestinationOutOfMemoryOnTheStreamStops(t *testing.T) {
	src := redistest.Start(t, "--repl-backlog-size", "256mb")
	ctx := redistest.Ctx(t)
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "small-sharded", MemorySize: 16 << 20, ShardsCount: 2,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, 2*time.Minute)
	for n := range 200 {
		require.NoError(t, src.Client().Set(ctx, fmt.Sprint("blob:", n), strings.Repeat("x", 200000), 0).Err())
	}
	var seen []string
	redistest.Eventually(t, 30*time.Second, "the sync stops on out of memory", func() error {
		db := a.get(dst.UID)
		if e := db.ReplicaSources[0].LastError; e != "" && (len(seen) == 0 || seen[len(seen)-1] != e) {
			seen = append(seen, e)
		}
		if db.ReplicaSync != api.SyncStopped || !strings.Contains(db.ReplicaSources[0].LastError, "out of memory") {
			return fmt.Errorf("sync %s status %s, source %+v", db.ReplicaSync, db.ReplicaSyncStatus, db.ReplicaSources[0])
		}
		return nil
	})
	for _, e := range seen {
		require.NotContains(t, e, "slot map", "an OOM was reported as a slot move")
	}
}

// A reader that pipelines GETs of a big value without reading the replies
// (its output buffer would grow past the shard's maxmemory): the shard
// disconnects it at the output buffer limit the service sets for clients
// (client-output-buffer-limit normal), and the sync goes on, never stopped.
func TestReadersNotReadingTheirRepliesOnAShardDoNotStopTheSync(t *testing.T) {
	src := redistest.Start(t)
	sc := src.Client()
	ctx := redistest.Ctx(t)
	require.NoError(t, sc.Set(ctx, "big", strings.Repeat("b", 100<<10), 0).Err())
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "hogged", MemorySize: 64 << 20, ShardsCount: 2,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	db := a.waitInSync(dst.UID, 2*time.Minute)
	slot := cluster.KeySlot([]byte("big"))
	var addr string
	for _, ep := range db.Endpoints {
		if ep.Role != "master" {
			continue
		}
		var lo, hi int
		fmt.Sscanf(ep.Slots, "%d-%d", &lo, &hi)
		if slot >= lo && slot <= hi {
			addr = net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port))
		}
	}
	require.NotEmpty(t, addr)
	hog, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer hog.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(db.AuthenticationRedisPass), db.AuthenticationRedisPass)
	for range 1000 {
		b.WriteString("*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n")
	}
	_, err = hog.Write([]byte(b.String()))
	require.NoError(t, err)
	// Closed by the shard before it sent every reply (100 MiB).
	require.NoError(t, hog.SetReadDeadline(time.Now().Add(time.Minute)))
	got, err := io.Copy(io.Discard, hog)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the shard kept the reader that does not read its replies (%d bytes read): %v", got, err)
	}
	assert.Less(t, got, int64(1000*100<<10), "the reader was cut before all its replies")
	for n := range 2000 {
		require.NoError(t, sc.Set(ctx, fmt.Sprintf("after%d", n), "w", 0).Err())
	}
	if db := a.get(dst.UID); db.ReplicaSync != api.SyncEnabled {
		t.Fatalf("the sync stopped: %+v", db.ReplicaSources)
	}
	hog.Close()
	eventuallyEqualSharded(t, a, dst.UID, 2*time.Minute, sc)
	a.waitInSync(dst.UID, time.Minute)
}
