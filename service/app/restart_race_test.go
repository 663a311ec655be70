package app_test

import (
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// An API change of a database whose redis-server restarted and still loads
// its data: the change waits for the load and is applied, and the API keeps
// answering. The service used to close the connections the restart's own
// apply was waiting on, which then waited for ever with its turn taken:
// the change, and every API call after it, hung.
func TestAChangeDuringARestartsLoadIsApplied(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "slowload", MemorySize: 64 << 20})
	app := dbClient(t, db, db.AuthenticationRedisPass)
	const keys = 3000
	pipe := app.Pipeline()
	for n := range keys {
		pipe.Set(ctx(t), "k:"+strconv.Itoa(n), n, 0)
	}
	_, err := pipe.Exec(ctx(t))
	require.NoError(t, err)

	// The restart loads its AOF's RDB base slowly, a millisecond a key,
	// and answers meanwhile (every KiB loaded).
	internal := i.App.Databases().Client(db.UID)
	require.NoError(t, internal.Do(ctx(t), "BGREWRITEAOF").Err())
	eventually(t, time.Minute, "the AOF is rewritten (an RDB base)", func() error {
		if v := infoField(t, internal, "persistence", "aof_rewrite_in_progress"); v != "0" {
			return fmt.Errorf("aof_rewrite_in_progress %s", v)
		}
		if v := infoField(t, internal, "persistence", "aof_last_bgrewrite_status"); v != "ok" {
			return fmt.Errorf("aof_last_bgrewrite_status %s", v)
		}
		return nil
	})
	require.NoError(t, internal.ConfigSet(ctx(t), "key-load-delay", "1000").Err())
	require.NoError(t, internal.ConfigSet(ctx(t), "loading-process-events-interval-bytes", "1024").Err())
	require.NoError(t, internal.Do(ctx(t), "CONFIG", "REWRITE").Err())

	pid := i.App.Databases().PID(ctx(t), db.UID)
	require.NotZero(t, pid)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	eventually(t, 30*time.Second, "the restarted redis-server is loading", func() error {
		var got api.Database
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &got)
		if got.Status != api.StatusLoading {
			return fmt.Errorf("status %s", got.Status)
		}
		return nil
	})

	// The change answers (the test's client gives up after 30 s).
	memory := int64(96 << 20)
	var changed api.Database
	code, apiErr := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", db.UID), api.UpdateDatabaseRequest{MemorySize: &memory}, &changed)
	require.Equal(t, 200, code, "%v", apiErr)
	// So does the next one.
	var got api.Database
	code, apiErr = call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &got)
	require.Equal(t, 200, code, "%v", apiErr)

	eventually(t, time.Minute, "the database serves its data with the new memory size", func() error {
		n, err := app.DBSize(ctx(t)).Result()
		if err != nil {
			return err
		}
		if n != keys {
			return fmt.Errorf("%d keys", n)
		}
		maxmemory, err := i.App.Databases().Client(db.UID).ConfigGet(ctx(t), "maxmemory").Result()
		if err != nil {
			return err
		}
		if maxmemory["maxmemory"] != strconv.FormatInt(memory, 10) {
			return fmt.Errorf("maxmemory %s", maxmemory["maxmemory"])
		}
		return nil
	})
	v, err := app.Get(ctx(t), "k:2999").Result()
	require.NoError(t, err)
	assert.Equal(t, "2999", v)
}

// A change of a database whose redis-server does not answer (stopped,
// here with SIGSTOP) ends with an error that says the change is recorded,
// the database's last_error says its settings are not applied yet, and
// once the server answers again they are: the record and the server must
// not disagree until the next restart. Changes of other databases still
// go through meanwhile.
func TestAChangeOfADatabaseThatDoesNotAnswerIsAppliedOnceItDoes(t *testing.T) {
	i := servicetest.Start(t)
	frozen := mustCreate(t, i, api.CreateDatabaseRequest{Name: "frozen", MemorySize: 32 << 20, AuthenticationRedisPass: "old-password-1"})
	other := mustCreate(t, i, api.CreateDatabaseRequest{Name: "other", MemorySize: 32 << 20})
	pid := i.App.Databases().PID(ctx(t), frozen.UID)
	require.NotZero(t, pid)
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	stopped := true
	t.Cleanup(func() {
		if stopped {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})

	newPassword := "new-password-2"
	type answer struct {
		code int
		err  api.Error
		fail error
	}
	frozenDone := make(chan answer, 1)
	go func() {
		var a answer
		a.code, a.err, a.fail = tryCall(i, "PUT", fmt.Sprintf("/v1/bdbs/%d", frozen.UID), api.UpdateDatabaseRequest{AuthenticationRedisPass: &newPassword})
		frozenDone <- a
	}()
	eventually(t, 30*time.Second, "the change is recorded", func() error {
		var got api.Database
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", frozen.UID), nil, &got)
		if got.AuthenticationRedisPass != newPassword {
			return fmt.Errorf("the record still has the old password")
		}
		return nil
	})

	// While that change waits for its server, the other databases'
	// changes, creates and deletes are not held behind it.
	memory := int64(48 << 20)
	var changed api.Database
	code, apiErr := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", other.UID), api.UpdateDatabaseRequest{MemorySize: &memory}, &changed)
	require.Equal(t, 200, code, "another database's change goes through: %v", apiErr)
	third := mustCreate(t, i, api.CreateDatabaseRequest{Name: "third", MemorySize: 32 << 20})
	code, apiErr = call(t, i, "DELETE", fmt.Sprintf("/v1/bdbs/%d", third.UID), nil, nil)
	require.Equal(t, 204, code, "%v", apiErr)
	select {
	case a := <-frozenDone:
		t.Fatalf("the change of the database that does not answer ended (%d %v %v) before those of the others: they waited behind it", a.code, a.err, a.fail)
	default:
	}

	var a answer
	select {
	case a = <-frozenDone:
	case <-time.After(2 * time.Minute):
		t.Fatal("the change of the database that does not answer never ended")
	}
	require.NoError(t, a.fail)
	require.Equal(t, 500, a.code)
	assert.Contains(t, a.err.Description, "the change is recorded, and is applied as soon as its redis-server answers")

	var got api.Database
	call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", frozen.UID), nil, &got)
	assert.Equal(t, newPassword, got.AuthenticationRedisPass, "the record holds the change")
	assert.Contains(t, got.LastError, "its latest settings are not applied yet")

	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
	stopped = false
	eventually(t, time.Minute, "the new password works and the old one does not", func() error {
		if err := dbClient(t, frozen, newPassword).Ping(ctx(t)).Err(); err != nil {
			return fmt.Errorf("new password: %w", err)
		}
		if err := dbClient(t, frozen, "old-password-1").Ping(ctx(t)).Err(); err == nil {
			return fmt.Errorf("the old password still works")
		}
		return nil
	})
	eventually(t, 30*time.Second, "last_error clears", func() error {
		var got api.Database
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", frozen.UID), nil, &got)
		if got.LastError != "" {
			return fmt.Errorf("last_error %q", got.LastError)
		}
		return nil
	})
}

// A stop (SIGTERM) while API changes wait for a redis-server that does not
// answer does not wait out each change's 15 s: the requests in flight get a
// moment, then end, and their changes stay recorded (a restart applies
// them).
func TestAStopDoesNotWaitForChangesOfADatabaseThatDoesNotAnswer(t *testing.T) {
	i := servicetest.Start(t)
	frozen := mustCreate(t, i, api.CreateDatabaseRequest{Name: "frozen", MemorySize: 32 << 20, AuthenticationRedisPass: "old-password-1"})
	pid := i.App.Databases().PID(ctx(t), frozen.UID)
	require.NotZero(t, pid)
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })

	// Three changes: one waits for the server, two for their turn.
	const changes = 3
	done := make(chan error, changes)
	for k := range changes {
		go func() {
			pw := fmt.Sprintf("new-password-%d", k)
			code, apiErr, err := tryCall(i, "PUT", fmt.Sprintf("/v1/bdbs/%d", frozen.UID), api.UpdateDatabaseRequest{AuthenticationRedisPass: &pw})
			if err == nil && code == 200 {
				err = fmt.Errorf("a change of a stopped redis-server answered 200")
			} else if err == nil {
				t.Logf("change %d: %d %s", k, code, apiErr.Description)
			}
			done <- err
		}()
	}
	eventually(t, 30*time.Second, "every change is recorded", func() error {
		var got api.Database
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", frozen.UID), nil, &got)
		if got.UpdatedAt.Before(frozen.UpdatedAt) || got.AuthenticationRedisPass == "old-password-1" {
			return fmt.Errorf("nothing recorded yet")
		}
		return nil
	})

	began := time.Now()
	i.Stop(t)
	took := time.Since(began)
	for range changes {
		select {
		case err := <-done:
			_ = err // the connection may close before an answer: either is fine
		case <-time.After(time.Minute):
			t.Fatal("a request outlived the service's stop")
		}
	}
	// Each change alone may wait 15 s for the server; three in a row, 45 s.
	assert.Less(t, took, 12*time.Second, "the stop waited for the changes of a database that does not answer")
}
