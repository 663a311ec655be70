package app_test

import (
	"fmt"
	"io"
	"net/http"
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

// readBound is how long any read of the API may take while databases do
// not answer. Reads answer from what the service last saw, in well under
// a quarter of a second; the bound is wide so that a loaded machine cannot
// fail the test, yet far below what asking each frozen database in turn
// costs (a second or more each).
const readBound = 2 * time.Second

// timedRead does one GET with the admin's login and says how long it took.
func timedRead(t *testing.T, i *servicetest.Instance, path string) (time.Duration, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx(t), "GET", i.URL+path, nil)
	require.NoError(t, err)
	req.SetBasicAuth(i.Username, i.Password)
	began := time.Now()
	resp, err := i.HTTPClient().Do(req)
	require.NoError(t, err, "GET %s", path)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	took := time.Since(began)
	require.NoError(t, err, "GET %s", path)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", path, body)
	return took, body
}

// freeze stops (SIGSTOP) every redis-server of db until the test ends.
func freeze(t *testing.T, db api.Database) {
	t.Helper()
	eps := db.Endpoints
	if len(eps) == 0 {
		eps = []api.NodeEndpoint{{Host: db.Endpoint.Host, Port: db.Endpoint.Port}}
	}
	for _, ep := range eps {
		pid, err := strconv.Atoi(infoField(t, nodeClient(t, ep, db.AuthenticationRedisPass), "server", "process_id"))
		require.NoError(t, err)
		require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	}
}

// Every read of the API (the list, one database, /healthz, /metrics, the
// console's data, the cluster) answers promptly while sharded and plain
// databases do not answer at all, however many: it never waits for their
// redis-servers. What it says is still the truth: the frozen databases
// soon say that they do not answer, the others that they serve, with the
// roles of their nodes.
func TestReadsAnswerPromptlyWhileDatabasesDoNotAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs redis-servers")
	}
	i := servicetest.Start(t)
	healthySharded := mustCreate(t, i, api.CreateDatabaseRequest{Name: "healthy-sharded", MemorySize: 16 << 20, ShardsCount: 2})
	healthyPlain := mustCreate(t, i, api.CreateDatabaseRequest{Name: "healthy-plain", MemorySize: 16 << 20})
	var frozen []api.Database
	for n := range 5 {
		frozen = append(frozen, mustCreate(t, i, api.CreateDatabaseRequest{Name: fmt.Sprintf("frozen-sharded-%d", n), MemorySize: 16 << 20, ShardsCount: 2}))
	}
	for n := range 3 {
		frozen = append(frozen, mustCreate(t, i, api.CreateDatabaseRequest{Name: fmt.Sprintf("frozen-plain-%d", n), MemorySize: 16 << 20}))
	}
	for _, db := range frozen {
		freeze(t, db)
	}

	paths := []string{"/v1/bdbs", "/healthz", "/metrics", "/ui/api/overview", "/v1/cluster",
		fmt.Sprintf("/v1/bdbs/%d", healthySharded.UID), fmt.Sprintf("/v1/bdbs/%d", healthyPlain.UID)}
	for _, db := range frozen {
		paths = append(paths, fmt.Sprintf("/v1/bdbs/%d", db.UID))
	}
	// Right after the freeze (what was seen is still fresh), and on every
	// round until the frozen databases say so.
	slowest := map[string]time.Duration{}
	readAll := func() {
		t.Helper()
		for _, p := range paths {
			took, _ := timedRead(t, i, p)
			require.Less(t, took, readBound, "GET %s took %s while databases do not answer", p, took)
			slowest[p] = max(slowest[p], took)
		}
	}
	defer func() {
		for _, p := range paths {
			t.Logf("slowest GET %s: %s", p, slowest[p])
		}
	}()
	readAll()
	eventually(t, 3*time.Minute, "every frozen database says that it does not answer, the others that they serve", func() error {
		readAll()
		var all []api.Database
		call(t, i, "GET", "/v1/bdbs", nil, &all)
		byUID := map[int]api.Database{}
		for _, d := range all {
			byUID[d.UID] = d
		}
		for _, db := range frozen {
			got := byUID[db.UID]
			if got.Status == api.StatusActive || !strings.Contains(got.LastError, "has not answered") {
				return fmt.Errorf("%s: status %s, last_error %q", db.Name, got.Status, got.LastError)
			}
		}
		for _, db := range []api.Database{healthySharded, healthyPlain} {
			got := byUID[db.UID]
			if got.Status != api.StatusActive || got.LastError != "" {
				return fmt.Errorf("%s: status %s, last_error %q", db.Name, got.Status, got.LastError)
			}
		}
		return nil
	})
	// The healthy sharded database still shows each node's role and slots,
	// read from its nodes a moment ago.
	eventually(t, time.Minute, "the healthy sharded database shows its masters", func() error {
		got := getDB(t, i, healthySharded.UID)
		if len(got.Endpoints) != 2 {
			return fmt.Errorf("endpoints %+v", got.Endpoints)
		}
		for _, ep := range got.Endpoints {
			if ep.Role != "master" || ep.Slots == "" {
				return fmt.Errorf("endpoints %+v", got.Endpoints)
			}
		}
		return nil
	})
	readAll()
}

// Reads answer promptly while replication and changes wait for servers
// that do not answer: a source and a destination stopped, an update of a
// sharded database whose nodes are stopped, and a create of a Replica Of
// whose source is stopped, all under way. The status says what stands.
func TestReadsAnswerPromptlyWhileReplicationAndChangesWait(t *testing.T) {
	if testing.Short() {
		t.Skip("runs redis-servers")
	}
	src := redistest.Start(t, "--requirepass", "pw-123456")
	require.NoError(t, src.Client().Set(ctx(t), "k", "v", 0).Err())
	i := servicetest.Start(t)
	srcURI := "redis://:pw-123456@" + src.Addr()
	plain := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst-plain", MemorySize: 16 << 20, ReplicaSources: []api.ReplicaSource{{URI: srcURI}}})
	sharded := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst-sharded", MemorySize: 16 << 20, ShardsCount: 2, ReplicaSources: []api.ReplicaSource{{URI: srcURI}}})
	busy := mustCreate(t, i, api.CreateDatabaseRequest{Name: "busy-sharded", MemorySize: 16 << 20, ShardsCount: 2})
	eventually(t, 2*time.Minute, "both destinations in sync", func() error {
		for _, db := range []api.Database{plain, sharded} {
			if got := getDB(t, i, db.UID); got.ReplicaSyncStatus != api.SourceInSync {
				return fmt.Errorf("%s: %s", db.Name, got.ReplicaSyncStatus)
			}
		}
		return nil
	})

	require.NoError(t, syscall.Kill(src.PID(), syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(src.PID(), syscall.SIGCONT) })
	freeze(t, plain)
	freeze(t, busy)
	// Changes that wait for what does not answer, under way meanwhile.
	changes := make(chan error, 2)
	go func() {
		memory := int64(32 << 20)
		_, _, err := tryCall(i, "PUT", fmt.Sprintf("/v1/bdbs/%d", busy.UID), api.UpdateDatabaseRequest{MemorySize: &memory})
		changes <- err
	}()
	go func() {
		_, _, err := tryCall(i, "POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "dst-new", MemorySize: 16 << 20, ReplicaSources: []api.ReplicaSource{{URI: srcURI}}})
		changes <- err
	}()

	paths := []string{"/v1/bdbs", "/healthz", "/metrics", "/ui/api/overview",
		fmt.Sprintf("/v1/bdbs/%d", plain.UID), fmt.Sprintf("/v1/bdbs/%d", sharded.UID), fmt.Sprintf("/v1/bdbs/%d", busy.UID)}
	slowest := map[string]time.Duration{}
	defer func() {
		for _, p := range paths {
			t.Logf("slowest GET %s: %s", p, slowest[p])
		}
	}()
	eventually(t, 3*time.Minute, "the stopped databases and the stopped source say so", func() error {
		for _, p := range paths {
			took, _ := timedRead(t, i, p)
			require.Less(t, took, readBound, "GET %s took %s while servers do not answer", p, took)
			slowest[p] = max(slowest[p], took)
		}
		for _, db := range []api.Database{plain, busy} {
			if got := getDB(t, i, db.UID); got.Status == api.StatusActive || !strings.Contains(got.LastError, "has not answered") {
				return fmt.Errorf("%s: status %s, last_error %q", db.Name, got.Status, got.LastError)
			}
		}
		if got := getDB(t, i, sharded.UID); got.ReplicaSyncStatus != api.SourceOutOfSync {
			return fmt.Errorf("%s: replica_sync_status %s", sharded.Name, got.ReplicaSyncStatus)
		}
		return nil
	})
}
