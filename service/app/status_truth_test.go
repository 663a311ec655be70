package app_test

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// A destination that was stopped (SIGSTOP) while its source took writes
// resumes with a backlog. "in-sync" must mean that the backlog is applied:
// it used to be reported as soon as the stream resumed, with a lag of a few
// milliseconds, while tens of thousands of the source's keys were missing
// (whoever waits for in-sync before a cutover loses them).
func TestInSyncAfterAStoppedDestinationMeansItsBacklogIsApplied(t *testing.T) {
	i := servicetest.Start(t)
	src := mustCreate(t, i, api.CreateDatabaseRequest{Name: "src", MemorySize: 256 << 20})
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20})
	var url api.SourceURL
	code, apiErr := call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d/source_url", src.UID), nil, &url)
	require.Equal(t, 200, code, "%v", apiErr)
	sources := []api.ReplicaSource{{URI: url.URI}}
	code, apiErr = call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", dst.UID), api.UpdateDatabaseRequest{ReplicaSources: &sources}, nil)
	require.Equal(t, 200, code, "%v", apiErr)
	status := func() (string, api.ReplicaSourceStatus) {
		var got api.Database
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", dst.UID), nil, &got)
		require.Len(t, got.ReplicaSources, 1)
		return got.ReplicaSyncStatus, got.ReplicaSources[0]
	}
	syncStatus := func() string { s, _ := status(); return s }
	eventually(t, time.Minute, "the destination is in sync", func() error {
		if s := syncStatus(); s != api.SourceInSync {
			return fmt.Errorf("status %s", s)
		}
		return nil
	})

	source := dbClient(t, src, src.AuthenticationRedisPass)
	write := func(prefix string, n int) {
		pipe := source.Pipeline()
		for k := range n {
			pipe.Set(ctx(t), prefix+strconv.Itoa(k), k, 0)
		}
		_, err := pipe.Exec(ctx(t))
		require.NoError(t, err)
	}
	pid := i.App.Databases().PID(ctx(t), dst.UID)
	require.NotZero(t, pid)
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	stopped := true
	t.Cleanup(func() {
		if stopped {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	// Writes pending for longer than the stall limit: the watchdog ends
	// the session, and the next one resumes from the destination's
	// checkpoint, with the source's backlog not received yet.
	write("before:", 20000)
	eventually(t, time.Minute, "the watchdog finds the syncer stuck", func() error {
		if _, src := status(); src.Status != api.SourceOutOfSync || !strings.Contains(src.LastError, "stuck") {
			return fmt.Errorf("status %s: %s", src.Status, src.LastError)
		}
		return nil
	})
	write("during:", 60000)
	want, err := source.DBSize(ctx(t)).Result()
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
	stopped = false

	// A cutover waits for in-sync with a lag of 0 (nothing received and
	// not applied), the writes stopped: the first time it is seen, polled
	// as fast as the API answers, the destination has everything.
	destination := dbClient(t, dst, dst.AuthenticationRedisPass)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		s, src := status()
		if s == api.SourceInSync && src.Lag == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the destination is not in sync 2 minutes after it runs again")
	}
	got, err := destination.DBSize(ctx(t)).Result()
	require.NoError(t, err)
	require.Equal(t, want, got, "keys in the destination when its source first says in-sync with no lag again")
	require.NoError(t, redistest.Diff(ctx(t), destination, source))
}

// Full loads stalled by a destination that does not answer (stopped in the
// middle of its load, here) give their slot back to the instance's other
// loads (there are max(2, CPUs)): another destination of the same source
// still loads. The stalled ones used to hold their slots until their
// sessions failed, minutes later.
func TestStoppedDestinationsDoNotHoldTheFullLoadsOfOthers(t *testing.T) {
	i := servicetest.Start(t)
	// A source that takes a few seconds to write its RDB, so that the
	// destinations are stopped in the middle of their loads.
	source := redistest.Start(t, "--rdb-key-save-delay", "2000")
	sc := source.Client()
	pipe := sc.Pipeline()
	for k := range 2000 {
		pipe.Set(ctx(t), "k:"+strconv.Itoa(k), k, time.Duration(k%3)*time.Hour)
	}
	_, err := pipe.Exec(ctx(t))
	require.NoError(t, err)
	sources := []api.ReplicaSource{{URI: source.URL()}}

	slots := max(2, runtime.NumCPU())
	for n := range slots {
		db := mustCreate(t, i, api.CreateDatabaseRequest{Name: fmt.Sprintf("stopped-%d", n), MemorySize: 64 << 20})
		code, apiErr := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", db.UID), api.UpdateDatabaseRequest{ReplicaSources: &sources}, nil)
		require.Equal(t, 200, code, "%v", apiErr)
		eventually(t, time.Minute, "the destination loads", func() error {
			var got api.Database
			call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &got)
			if got.Status != api.StatusLoading {
				return fmt.Errorf("status %s", got.Status)
			}
			return nil
		})
		pid := i.App.Databases().PID(ctx(t), db.UID)
		require.NotZero(t, pid)
		require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	}

	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20})
	code, apiErr := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", dst.UID), api.UpdateDatabaseRequest{ReplicaSources: &sources}, nil)
	require.Equal(t, 200, code, "%v", apiErr)
	eventually(t, time.Minute, "the running destination loads and is in sync", func() error {
		var got api.Database
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", dst.UID), nil, &got)
		if got.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("status %s %+v", got.ReplicaSyncStatus, got.ReplicaSources)
		}
		return nil
	})
	require.NoError(t, redistest.Diff(ctx(t), dbClient(t, dst, dst.AuthenticationRedisPass), sc))
}
