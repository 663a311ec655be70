package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

// The lag probe sees a key change at a replica the moment it is applied,
// without CONFIG SET (which applications of a database may not run).
func TestWatchKeysSeesChangesAtAReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	master := redistest.Start(t)
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", master.Addr()[len("127.0.0.1:"):])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seen := make(chan string, 10)
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- watchKeys(ctx, replica.Client(), "probe:", ready, func(key string, _ time.Time) { seen <- key })
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	redistest.Eventually(t, time.Minute, "the replica is linked", func() error {
		if info := master.Client().Info(ctx, "replication").Val(); !strings.Contains(info, "state=online") {
			return fmt.Errorf("no replica online: %s", info)
		}
		return nil
	})
	require.NoError(t, master.Client().Set(ctx, "other", "x", 0).Err())
	require.NoError(t, master.Client().Set(ctx, "probe:7", "x", 0).Err())
	select {
	case k := <-seen:
		require.Equal(t, "probe:7", k)
	case <-ctx.Done():
		t.Fatal("no invalidation for probe:7 at the replica")
	}
	cancel()
	require.NoError(t, <-done)
}

// The probes' arrival times are what the lag rows measure.
func TestWatchProbesRecordsFirstArrivals(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	s := redistest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := watchProbes(ctx, s.Client())
	require.NoError(t, err)
	defer w.Close()
	before := time.Now()
	for _, n := range []int{0, 1, 1, 2} {
		require.NoError(t, s.Client().Set(ctx, probePrefix+strconv.Itoa(n), n, 0).Err())
	}
	require.NoError(t, s.Client().Set(ctx, "other", 1, 0).Err())
	got := w.waitFor(3, time.Now().Add(30*time.Second))
	require.Len(t, got, 3)
	for n := range 3 {
		require.False(t, got[n].Before(before), "probe %d", n)
	}
}
