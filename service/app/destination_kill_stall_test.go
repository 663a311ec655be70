package app_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// A destination's redis-server killed (-9) while its source takes a steady
// stream of writes is restarted by the service, and replication continues
// as soon as it is back: the new session of its master link ends the
// syncer's session at once (README: "A new session of the destination's
// master link ends each syncer's session as soon as it starts").
//
// It used not to when a batch was in flight at the kill: the writer waited
// for the acknowledgement of the dead link session (linkSession.waitAck
// waited only for a new ACK or its context, not for the session's end), so
// nothing was applied until the watchdog found the syncer "stuck" 5 s
// later, after saying in-sync over a destination that applied nothing.
func TestDestinationKilledMidStreamResumesWithoutAWatchdogStall(t *testing.T) {
	i := servicetest.Start(t)
	src := mustCreate(t, i, api.CreateDatabaseRequest{Name: "src", MemorySize: 128 << 20})
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst", MemorySize: 128 << 20})
	sources := []api.ReplicaSource{{URI: sourceURL(t, i, src.UID)}}
	code, apiErr := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", dst.UID), api.UpdateDatabaseRequest{ReplicaSources: &sources}, nil)
	require.Equal(t, 200, code, "%v", apiErr)
	status := func() api.ReplicaSourceStatus {
		var got api.Database
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", dst.UID), nil, &got)
		require.Len(t, got.ReplicaSources, 1)
		return got.ReplicaSources[0]
	}
	eventually(t, time.Minute, "the destination is in sync", func() error {
		if s := status(); s.Status != api.SourceInSync {
			return fmt.Errorf("status %s: %s", s.Status, s.LastError)
		}
		return nil
	})

	source := dbClient(t, src, src.AuthenticationRedisPass)
	destination := dbClient(t, dst, dst.AuthenticationRedisPass)

	// A steady writer: batches are in flight most of the time.
	wctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pace := time.NewTicker(200 * time.Microsecond) // a steady rate, not a flood
		defer pace.Stop()
		for wctx.Err() == nil {
			_ = source.Incr(wctx, "ctr").Err()
			<-pace.C
		}
	}()
	t.Cleanup(func() { stop(); wg.Wait() })

	applied := func() int64 {
		n, _ := destination.Get(ctx(t), "ctr").Int64()
		return n
	}
	for round := range 4 {
		// Some stream before the kill.
		before := applied()
		eventually(t, 30*time.Second, "the stream applies writes", func() error {
			if n := applied(); n < before+200 {
				return fmt.Errorf("ctr %d at the destination, was %d", n, before)
			}
			return nil
		})
		pid := i.App.Databases().PID(ctx(t), dst.UID)
		require.NotZero(t, pid)
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		eventually(t, 30*time.Second, "the destination is back", func() error {
			if p := i.App.Databases().PID(ctx(t), dst.UID); p == 0 || p == pid {
				return fmt.Errorf("not restarted yet")
			}
			return destination.Ping(ctx(t)).Err()
		})
		back := time.Now()
		// A write made now reaches the destination well within the
		// watchdog's 5 s.
		marker := "marker:" + strconv.Itoa(round)
		require.NoError(t, source.Set(ctx(t), marker, round, 0).Err())
		deadline := back.Add(4500 * time.Millisecond) // under the watchdog's 5 s, whatever the machine's load
		for {
			n, err := destination.Exists(ctx(t), marker).Result()
			if err == nil && n == 1 {
				break
			}
			s := status()
			require.False(t, strings.Contains(s.LastError, "stuck"),
				"round %d: the syncer waited for the watchdog after its destination came back: %s", round, s.LastError)
			require.True(t, time.Now().Before(deadline),
				"round %d: a write made when the destination came back is not applied %v later (status %s, lag %d ms, %s)",
				round, time.Since(back), s.Status, s.Lag, s.LastError)
			time.Sleep(20 * time.Millisecond)
		}
	}
	stop()
	wg.Wait()
	eventually(t, time.Minute, "in sync with no lag", func() error {
		if s := status(); s.Status != api.SourceInSync || s.Lag != 0 {
			return fmt.Errorf("status %s lag %d: %s", s.Status, s.Lag, s.LastError)
		}
		return nil
	})
	require.NoError(t, redistest.Diff(ctx(t), destination, source))
}
