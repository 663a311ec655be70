package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// A create whose redis-server is slow to come up (a stalled disk, a busy
// host) holds only itself: the changes, creates and deletes of the other
// databases go through meanwhile, as they do while a change waits for a
// database that does not answer.
func TestASlowCreateDoesNotHoldTheChangesOfOthers(t *testing.T) {
	bin := servicetest.RequireRedisServer(t)
	wrapper := filepath.Join(t.TempDir(), "redis-server-slow-second")
	script := "#!/bin/sh\ncase \"$PWD\" in */dbs/2) sleep 15;; esac\nexec " + bin + " \"$@\"\n"
	require.NoError(t, os.WriteFile(wrapper, []byte(script), 0o755))
	i := servicetest.StartWith(t, func(c *app.Config) { c.RedisServer = wrapper })
	first := mustCreate(t, i, api.CreateDatabaseRequest{Name: "first", MemorySize: 16 << 20})

	created := make(chan int, 1)
	go func() {
		code, _, _ := tryCall(i, "POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "slow", MemorySize: 16 << 20})
		created <- code
	}()
	eventually(t, 10*time.Second, "the slow create is under way", func() error {
		if _, err := os.Stat(filepath.Join(i.DataDir, "dbs", "2", "redis.conf")); err != nil {
			return err
		}
		return nil
	})

	began := time.Now()
	memory := int64(24 << 20)
	code, e := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", first.UID), api.UpdateDatabaseRequest{MemorySize: &memory}, nil)
	require.Equal(t, http.StatusOK, code, "%v", e)
	third := mustCreate(t, i, api.CreateDatabaseRequest{Name: "third", MemorySize: 16 << 20})
	code, e = call(t, i, "DELETE", fmt.Sprintf("/v1/bdbs/%d", third.UID), nil, nil)
	require.Equal(t, http.StatusNoContent, code, "%v", e)
	took := time.Since(began)
	require.Less(t, took, 8*time.Second, "the other databases' change, create and delete waited for the slow create")

	select {
	case code := <-created:
		require.Equal(t, http.StatusOK, code)
	case <-time.After(time.Minute):
		t.Fatal("the slow create did not answer")
	}
	require.Equal(t, listedUIDs(t, i), serverUIDs(t, i.DataDir))
}

// A delete of a database whose create is under way waits for the create,
// and leaves nothing: no record, no process, no files.
func TestADeleteDuringASlowCreateLeavesNothing(t *testing.T) {
	bin := servicetest.RequireRedisServer(t)
	wrapper := filepath.Join(t.TempDir(), "redis-server-slow-first")
	script := "#!/bin/sh\ncase \"$PWD\" in */dbs/1) sleep 5;; esac\nexec " + bin + " \"$@\"\n"
	require.NoError(t, os.WriteFile(wrapper, []byte(script), 0o755))
	i := servicetest.StartWith(t, func(c *app.Config) { c.RedisServer = wrapper })
	created := make(chan int, 1)
	go func() {
		code, _, _ := tryCall(i, "POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "slow", MemorySize: 16 << 20})
		created <- code
	}()
	eventually(t, 10*time.Second, "the slow create is under way", func() error {
		_, err := os.Stat(filepath.Join(i.DataDir, "dbs", "1", "redis.conf"))
		return err
	})
	code, _ := call(t, i, "DELETE", "/v1/bdbs/1", nil, nil)
	require.Equal(t, http.StatusNoContent, code, "the delete waits for the create, and deletes it")
	require.Equal(t, http.StatusConflict, <-created, "the create says that it was deleted meanwhile")
	eventually(t, 10*time.Second, "nothing is left", func() error {
		if l, p := listedUIDs(t, i), serverUIDs(t, i.DataDir); len(l) != 0 || len(p) != 0 {
			return fmt.Errorf("listed %v, running %v", l, p)
		}
		if _, err := os.Stat(filepath.Join(i.DataDir, "dbs", "1")); !os.IsNotExist(err) {
			return fmt.Errorf("its files: %v", err)
		}
		return nil
	})
}

// serverUIDs lists the uids of the databases whose redis-server processes
// (zombies aside) run in a directory under dataDir: what ps shows of them.
func serverUIDs(t *testing.T, dataDir string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var out []int
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(strings.Split(string(b), "\x00")[0], "redis-server") {
			continue
		}
		if st, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); len(strings.Fields(string(st))) > 2 && strings.Fields(string(st))[2] == "Z" {
			continue
		}
		// redis-server renames its process: its directory says whose it is.
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil {
			continue
		}
		rel, err := filepath.Rel(filepath.Join(dataDir, "dbs"), cwd)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		if uid, err := strconv.Atoi(strings.Split(rel, string(filepath.Separator))[0]); err == nil {
			out = append(out, uid)
		}
	}
	sort.Ints(out)
	return out
}

// listedUIDs lists the uids of the databases the API lists.
func listedUIDs(t *testing.T, i *servicetest.Instance) []int {
	t.Helper()
	var all []api.Database
	code, e := call(t, i, "GET", "/v1/bdbs", nil, &all)
	require.Equal(t, http.StatusOK, code, "%v", e)
	var out []int
	for _, d := range all {
		out = append(out, d.UID)
	}
	sort.Ints(out)
	return out
}

// A create the client stopped waiting for (its timeout passed, it was
// interrupted, a proxy cut the connection) is carried through all the same:
// the client was told nothing, and finds the database it asked for by its
// name (the provider records it, tainted, when timeouts.create passes). A
// create dropped with the connection would leave the client to guess.
func TestACreateWhoseClientStoppedWaitingIsCarriedThrough(t *testing.T) {
	bin := servicetest.RequireRedisServer(t)
	wrapper := filepath.Join(t.TempDir(), "redis-server-slow-first")
	script := "#!/bin/sh\ncase \"$PWD\" in */dbs/1) sleep 4;; esac\nexec " + bin + " \"$@\"\n"
	require.NoError(t, os.WriteFile(wrapper, []byte(script), 0o755))
	i := servicetest.StartWith(t, func(c *app.Config) { c.RedisServer = wrapper })

	body, err := json.Marshal(api.CreateDatabaseRequest{Name: "abandoned", MemorySize: 16 << 20})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, "POST", i.URL+"/v1/bdbs", bytes.NewReader(body))
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
	eventually(t, 10*time.Second, "the slow create is under way", func() error {
		_, err := os.Stat(filepath.Join(i.DataDir, "dbs", "1", "redis.conf"))
		return err
	})
	cancel()
	require.Error(t, <-answered, "the client gave up before the answer")

	eventually(t, time.Minute, "the abandoned create ends with an active database", func() error {
		var dbs []api.Database
		if code, e := call(t, i, "GET", "/v1/bdbs", nil, &dbs); code != http.StatusOK {
			return fmt.Errorf("list: %d %v", code, e)
		}
		if len(dbs) != 1 || dbs[0].Name != "abandoned" || dbs[0].Status != api.StatusActive {
			return fmt.Errorf("listed %+v", dbs)
		}
		return nil
	})
	require.Equal(t, []int{1}, serverUIDs(t, i.DataDir))
}
