package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// A redis-server that stops answering (SIGSTOP, a stalled disk) is not
// active, and its database says why in last_error rather than looking
// like one that starts; once it answers again, it is active and says
// nothing.
func TestADatabaseThatStopsAnsweringSaysSo(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "frozen", MemorySize: 16 << 20})
	c := dbClient(t, db, db.AuthenticationRedisPass)
	require.NoError(t, c.Set(ctx(t), "k", "v", 0).Err())
	pid := i.App.Databases().PID(ctx(t), db.UID)
	require.NotZero(t, pid)
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	stopped := true
	t.Cleanup(func() {
		if stopped {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	eventually(t, time.Minute, "the database says that its redis-server does not answer", func() error {
		var got api.Database
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &got)
		if got.Status == api.StatusActive || !strings.Contains(got.LastError, "has not answered") {
			return fmt.Errorf("status %s, last_error %q", got.Status, got.LastError)
		}
		return nil
	})
	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
	stopped = false
	eventually(t, time.Minute, "the database is active again and says nothing", func() error {
		var got api.Database
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &got)
		if got.Status != api.StatusActive || got.LastError != "" {
			return fmt.Errorf("status %s, last_error %q", got.Status, got.LastError)
		}
		return nil
	})
	v, err := c.Get(ctx(t), "k").Result()
	require.NoError(t, err)
	require.Equal(t, "v", v)
}

// A memory_size below what the database holds is refused (Redis would
// refuse every write); when its redis-server does not answer (stopped, or
// still loading its data), what it holds cannot be told, and the lowering
// is refused too rather than recorded unchecked.
func TestLoweringTheMemoryOfADatabaseThatDoesNotAnswerIsRefused(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "frozen", MemorySize: 64 << 20})
	c := dbClient(t, db, db.AuthenticationRedisPass)
	fillBulk(t, c, 5)
	pid := i.App.Databases().PID(ctx(t), db.UID)
	require.NotZero(t, pid)
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	stopped := true
	t.Cleanup(func() {
		if stopped {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	small := int64(api.MinMemorySize)
	code, e := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", db.UID), api.UpdateDatabaseRequest{MemorySize: &small}, nil)
	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
	stopped = false
	require.Contains(t, []int{http.StatusBadRequest, http.StatusConflict}, code, "%v", e)
	var got api.Database
	call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &got)
	require.Equal(t, db.MemorySize, got.MemorySize, "nothing changed")
	eventually(t, 30*time.Second, "the database takes writes", func() error {
		return c.Set(ctx(t), "after", strings.Repeat("x", 1000), 0).Err()
	})
}
