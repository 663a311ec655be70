package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// An update whose client stopped waiting (its timeout passed, Ctrl-C, a
// proxy cut the connection) while the database's servers did not answer
// yet is carried through, to every node of a sharded database: the record
// already holds it, and a node left with the settings of before (its
// memory limit, its password) would disagree with it until a restart.
func TestAnUpdateWhoseClientStoppedWaitingIsCarriedThrough(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "abandoned-update", MemorySize: 32 << 20, ShardsCount: 2,
		AuthenticationRedisPass: "old-password-1"})
	require.Len(t, db.Endpoints, 2)

	// Every node stops answering (SIGSTOP: no exit for the service to
	// restart), so that the update waits for them while its client leaves.
	var pids []int
	for _, ep := range db.Endpoints {
		pid, err := strconv.Atoi(infoField(t, nodeClient(t, ep, "old-password-1"), "server", "process_id"))
		require.NoError(t, err)
		pids = append(pids, pid)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGCONT)
			}
		}
	}
	t.Cleanup(resume)
	for _, pid := range pids {
		require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	}

	memory, password := int64(64<<20), "new-password-2"
	body, err := json.Marshal(api.UpdateDatabaseRequest{MemorySize: &memory, AuthenticationRedisPass: &password})
	require.NoError(t, err)
	reqCtx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, "PUT", fmt.Sprintf("%s/v1/bdbs/%d", i.URL, db.UID), bytes.NewReader(body))
	require.NoError(t, err)
	req.SetBasicAuth(i.Username, i.Password)
	mark := i.LogMark()
	answered := make(chan error, 1)
	go func() {
		resp, err := i.HTTPClient().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()
	eventually(t, time.Minute, "the update is recorded", func() error {
		if got := getDB(t, i, db.UID); got.MemorySize != memory {
			return fmt.Errorf("memory_size is %d", got.MemorySize)
		}
		return nil
	})
	cancel()
	select {
	case err := <-answered:
		require.Error(t, err, "the client gave up before the answer")
	case <-time.After(time.Minute):
		t.Fatal("the client's request did not end when it was cancelled")
	}
	// The service has seen the client go: it says it carries the update
	// through (or, dropping it, answered the gone client with an error).
	eventually(t, time.Minute, "the service sees the client gone", func() error {
		logs := i.LogsSince(mark)
		if strings.Contains(logs, "stopped waiting") || strings.Contains(logs, "request failed") {
			return nil
		}
		return fmt.Errorf("nothing logged of it yet")
	})
	resume()

	eventually(t, 2*time.Minute, "every node has the new settings, and the database says nothing is pending", func() error {
		for _, ep := range db.Endpoints {
			c := nodeClient(t, ep, password)
			info, err := c.Info(t.Context(), "memory").Result()
			if err != nil {
				return fmt.Errorf("node %d with the new password: %w", ep.Port, err)
			}
			if !strings.Contains(info, fmt.Sprintf("maxmemory:%d\r\n", memory/2)) {
				return fmt.Errorf("node %d does not have maxmemory %d yet", ep.Port, memory/2)
			}
			if err := nodeClient(t, ep, "old-password-1").Ping(t.Context()).Err(); err == nil {
				return fmt.Errorf("node %d still takes the old password", ep.Port)
			}
		}
		got := getDB(t, i, db.UID)
		if got.Status != api.StatusActive || got.LastError != "" {
			return fmt.Errorf("status %q, last_error %q", got.Status, got.LastError)
		}
		if got.MemorySize != memory || got.AuthenticationRedisPass != password {
			return fmt.Errorf("the record says memory_size %d", got.MemorySize)
		}
		return nil
	})
}

// A change of a sharded database whose first node does not answer in time
// reaches its other nodes all the same: each node is brought to the record
// on its own, and the one that does not answer takes it once it does.
func TestAChangeReachesEveryNodeWhenTheFirstDoesNotAnswer(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "first-node-frozen", MemorySize: 32 << 20, ShardsCount: 2,
		AuthenticationRedisPass: "old-password-1"})
	require.Len(t, db.Endpoints, 2)
	var frozen, other api.NodeEndpoint
	for _, ep := range db.Endpoints {
		if ep.Port == db.Port {
			frozen = ep // the first node: the database's own port
		} else {
			other = ep
		}
	}
	require.NotZero(t, frozen.Port, "no node listens on the database's port %d: %+v", db.Port, db.Endpoints)
	pid, err := strconv.Atoi(infoField(t, nodeClient(t, frozen, "old-password-1"), "server", "process_id"))
	require.NoError(t, err)
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))

	memory, password := int64(64<<20), "new-password-2"
	code, e := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", db.UID), api.UpdateDatabaseRequest{MemorySize: &memory, AuthenticationRedisPass: &password}, nil)
	require.Equal(t, http.StatusInternalServerError, code, "%v", e)
	require.Contains(t, e.Description, "the change is recorded, and is applied as soon as its redis-server answers")

	eventually(t, time.Minute, "the node that answers has the new settings while the first does not answer", func() error {
		c := nodeClient(t, other, password)
		info, err := c.Info(t.Context(), "memory").Result()
		if err != nil {
			return fmt.Errorf("node %d with the new password: %w", other.Port, err)
		}
		if !strings.Contains(info, fmt.Sprintf("maxmemory:%d\r\n", memory/2)) {
			return fmt.Errorf("node %d does not have maxmemory %d", other.Port, memory/2)
		}
		return nil
	})
	resume()
	eventually(t, 2*time.Minute, "the first node has the new settings once it answers", func() error {
		info, err := nodeClient(t, frozen, password).Info(t.Context(), "memory").Result()
		if err != nil {
			return fmt.Errorf("node %d with the new password: %w", frozen.Port, err)
		}
		if !strings.Contains(info, fmt.Sprintf("maxmemory:%d\r\n", memory/2)) {
			return fmt.Errorf("node %d does not have maxmemory %d", frozen.Port, memory/2)
		}
		if got := getDB(t, i, db.UID); got.LastError != "" {
			return fmt.Errorf("last_error %q", got.LastError)
		}
		return nil
	})
}

// A delete whose client stopped waiting (here while an update of the same
// database held its turn, its redis-server not answering) is carried
// through: the database, its process and its files are gone, and a GET
// says 404.
func TestADeleteWhoseClientStoppedWaitingIsCarriedThrough(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "abandoned-delete", MemorySize: 32 << 20})
	pid := i.App.Databases().PID(t.Context(), db.UID)
	require.NotZero(t, pid)
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	path := fmt.Sprintf("/v1/bdbs/%d", db.UID)

	// An update waits for the server, holding the database's turn.
	memory := int64(48 << 20)
	updated := make(chan error, 1)
	go func() {
		_, _, err := tryCall(i, "PUT", path, api.UpdateDatabaseRequest{MemorySize: &memory})
		updated <- err
	}()
	eventually(t, time.Minute, "the update is recorded", func() error {
		if got := getDB(t, i, db.UID); got.MemorySize != memory {
			return fmt.Errorf("memory_size is %d", got.MemorySize)
		}
		return nil
	})

	reqCtx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, "DELETE", i.URL+path, nil)
	require.NoError(t, err)
	req.SetBasicAuth(i.Username, i.Password)
	answered := make(chan error, 1)
	go func() {
		resp, err := i.HTTPClient().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()
	eventually(t, time.Minute, "the delete is under way", func() error {
		if got := getDB(t, i, db.UID); got.Status != api.StatusDeleting {
			return fmt.Errorf("status %q", got.Status)
		}
		return nil
	})
	cancel()
	select {
	case err := <-answered:
		require.Error(t, err, "the client gave up before the answer")
	case <-time.After(time.Minute):
		t.Fatal("the client's request did not end when it was cancelled")
	}
	resume()

	eventually(t, 2*time.Minute, "the database is gone, its process and files too", func() error {
		if code, e := call(t, i, "GET", path, nil, nil); code != http.StatusNotFound {
			return fmt.Errorf("GET: %d %v", code, e)
		}
		if uids := serverUIDs(t, i.DataDir); len(uids) != 0 {
			return fmt.Errorf("redis-servers still run for %v", uids)
		}
		if _, err := os.Stat(filepath.Join(i.DataDir, "dbs", strconv.Itoa(db.UID))); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("its directory: %v", err)
		}
		return nil
	})
	select {
	case <-updated:
	case <-time.After(time.Minute):
		t.Fatal("the update never answered")
	}
}
