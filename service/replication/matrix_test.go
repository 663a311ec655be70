package replication_test

import (
	"context"
	"fmt"
	"os"
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

// Rows of the fault matrix of issue 12 that no other test covers. Each runs
// at a scale that fits CI; REDIS_REPLICAD_MATRIX_SCALE=full runs them
// larger (datasets ten times the size).

func matrixScale(ciKeys int) int {
	if os.Getenv("REDIS_REPLICAD_MATRIX_SCALE") == "full" {
		return 10 * ciKeys
	}
	return ciKeys
}

// TestMatrixKill9DuringFullLoad kills the service (SIGKILL) twice while it
// loads a large dataset, under a steady INCR load on the source: once it is
// back, the destination equals the source, every counter included.
func TestMatrixKill9DuringFullLoad(t *testing.T) {
	keys := matrixScale(150000)
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	sc := src.Client()
	loadKeys(t, src, keys)
	p := servicetest.StartProcess(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service log:\n%s", p.Log())
		}
	})
	inst := &servicetest.Instance{URL: p.URL, Username: "admin", Password: p.Password(t), CACert: p.CACert(t)}
	a := newAPI(t, inst)
	w := startIncrWriter(t, sc, 20)

	dst := a.create(api.CreateDatabaseRequest{Name: "loading", MemorySize: 512 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	for round := range 2 {
		redistest.Eventually(t, 2*time.Minute, "the full load is under way", func() error {
			db := a.get(dst.UID)
			if len(db.ReplicaSources) != 1 || db.ReplicaSources[0].RDBTransferred == 0 || db.Status != api.StatusLoading {
				return fmt.Errorf("status %s, sources %+v", db.Status, db.ReplicaSources)
			}
			return nil
		})
		t.Logf("round %d: killing the service during the load", round)
		p.Kill(t)
		p.Start(t)
	}
	a.waitInSync(dst.UID, 3*time.Minute)
	w.stop()
	require.NotZero(t, w.written.Load(), "nothing was written")
	eventuallyEqual(t, 2*time.Minute, destClient(t, dst, 0), sc)
}

// TestMatrixDestinationRedisKilledUnderLoad kills the destination's
// redis-server (SIGKILL) twice while INCRs stream in: the service restarts it,
// and the syncer resumes from the checkpoint the destination kept.
func TestMatrixDestinationRedisKilledUnderLoad(t *testing.T) {
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "victim", MemorySize: 128 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	w := startIncrWriter(t, src.Client(), 20)
	for round := range 2 {
		base := w.written.Load()
		redistest.Eventually(t, time.Minute, "the stream is being applied", func() error {
			if w.written.Load() < base+5000 {
				return fmt.Errorf("written %d", w.written.Load()-base)
			}
			if db := a.get(dst.UID); db.ReplicaSyncStatus != api.SourceInSync {
				return fmt.Errorf("status %s", db.ReplicaSyncStatus)
			}
			return nil
		})
		pid := i.App.Databases().PID(context.Background(), dst.UID)
		require.NotZero(t, pid)
		t.Logf("round %d: killing the destination's redis-server %d", round, pid)
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		redistest.Eventually(t, time.Minute, "a new destination process", func() error {
			if p := i.App.Databases().PID(context.Background(), dst.UID); p == 0 || p == pid {
				return fmt.Errorf("pid %d", p)
			}
			return nil
		})
	}
	w.stop()
	eventuallyEqual(t, 2*time.Minute, destClient(t, dst, 0), src.Client())
}

// TestMatrixRestartWhileSourceListChanges kills the service right after a
// change of the source list was accepted (the reload it starts is under
// way or not begun): once back, the destination holds exactly both
// sources, counters included.
func TestMatrixRestartWhileSourceListChanges(t *testing.T) {
	keys := matrixScale(50000)
	src1 := redistest.Start(t, "--repl-backlog-size", "64mb")
	src2 := redistest.Start(t, "--repl-backlog-size", "64mb")
	loadKeys(t, src2, keys)
	p := servicetest.StartProcess(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service log:\n%s", p.Log())
		}
	})
	inst := &servicetest.Instance{URL: p.URL, Username: "admin", Password: p.Password(t), CACert: p.CACert(t)}
	a := newAPI(t, inst)
	dst := a.create(api.CreateDatabaseRequest{Name: "changing", MemorySize: 256 << 20, ReplicaSources: []api.ReplicaSource{{URI: src1.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	w := startIncrWriter(t, src1.Client(), 20)

	both := []api.ReplicaSource{{URI: src1.URL()}, {URI: src2.URL()}}
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &both})
	p.Kill(t)
	p.Start(t)

	db := a.waitInSync(dst.UID, 3*time.Minute)
	require.Len(t, db.ReplicaSources, 2, "the change survived the crash")
	w.stop()
	eventuallyEqual(t, 2*time.Minute, destClient(t, dst, 0), src1.Client(), src2.Client())
}

// loadKeys writes n string keys of 100 bytes ("data:<n>") to s.
func loadKeys(t *testing.T, s *redistest.Server, n int) {
	t.Helper()
	c := s.Client()
	value := strings.Repeat("v", 100)
	for k := 0; k < n; k += 1000 {
		pipe := c.Pipeline()
		for j := k; j < min(k+1000, n); j++ {
			pipe.Set(context.Background(), "data:"+strconv.Itoa(j), value, 0)
		}
		_, err := pipe.Exec(context.Background())
		require.NoError(t, err)
	}
}
