package provider

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

// startHoldingProxy serves the API of e through a TLS reverse proxy that
// passes the first request that hold(r, body) selects to the service, then
// holds its answer until the client gives up: a request the service took
// while Terraform was interrupted (Ctrl-C). taken is closed once the service
// has answered that request. It returns the provider block that points at
// the proxy.
func startHoldingProxy(t *testing.T, e *testAccEnv, hold func(r *http.Request, body []byte) bool) (providerConfig string, taken <-chan struct{}) {
	t.Helper()
	done := make(chan struct{})
	var once sync.Once
	providerConfig = startAPIProxy(t, e, func(w http.ResponseWriter, r *http.Request, body []byte, forward func(http.ResponseWriter, *http.Request)) {
		held := false
		if hold(r, body) {
			once.Do(func() { held = true })
		}
		if !held {
			forward(w, r)
			return
		}
		// The service's own request is not the client's: the client's
		// going away must not cancel it.
		forward(httptest.NewRecorder(), r.Clone(t.Context()))
		close(done)
		<-r.Context().Done()
	})
	return providerConfig, done
}

// interruptedApply runs terraform apply in cli's directory and sends it
// SIGINT (Ctrl-C) once taken is closed; it returns what terraform printed.
func interruptedApply(t *testing.T, cli *testAccCLI, taken <-chan struct{}) string {
	t.Helper()
	bin := os.Getenv("TF_ACC_TERRAFORM_PATH")
	if bin == "" {
		bin = "terraform"
	}
	cmd := exec.Command(bin, "-chdir="+cli.dir, "apply", "-auto-approve", "-no-color")
	cmd.Env = cli.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-taken:
	case err := <-exited:
		t.Fatalf("terraform apply ended (%v) before the service took the request:\n%s", err, out.String())
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("the service did not take the request within 3 minutes:\n%s", out.String())
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	select {
	case <-exited:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("terraform apply did not end after SIGINT:\n%s", out.String())
	}
	return out.String()
}

// TestAccDatabaseResource_createInterrupted: Terraform is interrupted
// (Ctrl-C) while the service creates a database. The database is recorded
// (tainted: it was not seen active), and the next apply converges on one
// database of that name. It was left out of the state while the service
// made it, and the next apply failed: the name was taken.
func TestAccDatabaseResource_createInterrupted(t *testing.T) {
	e := testAccStart(t)
	providerConfig, taken := startHoldingProxy(t, e, func(r *http.Request, _ []byte) bool {
		return r.Method == http.MethodPost && strings.TrimSuffix(r.URL.Path, "/") == "/v1/bdbs"
	})
	cli := newTestAccCLI(t)
	cli.write("main.tf", testAccCLIProxiedConfig(providerConfig)+`
resource "redis_database" "db" {
  name        = "interrupted"
  memory_size = 8388608
}
`)
	out := flat(interruptedApply(t, cli, taken))
	assert.Contains(t, out, "Terraform was interrupted before the database (uid 1) was seen active. It is recorded in the state, tainted")

	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")
	dbs, err := e.client.ListDatabases(testAccContext(t))
	require.NoError(t, err)
	named := 0
	for _, d := range dbs {
		if d.Name == "interrupted" {
			named++
		}
	}
	assert.Equal(t, 1, named, "databases named interrupted: %+v", dbs)
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}

// TestAccReplicaOf_createInterrupted: Terraform is interrupted (Ctrl-C)
// while the service makes a database a Replica Of. The resource is recorded
// (not tainted: a replacement would flush the destination), and the next
// apply waits for the sync without a flush. It was left out of the state
// while the database was a Replica Of, and every later apply failed with
// "The database is already a Replica Of".
func TestAccReplicaOf_createInterrupted(t *testing.T) {
	e := testAccStart(t)
	legacy := redistest.Start(t, "--requirepass", "legacy-interrupted-secret")
	providerConfig, taken := startHoldingProxy(t, e, func(r *http.Request, body []byte) bool {
		return r.Method == http.MethodPut && strings.Contains(string(body), "replica_sources")
	})
	cli := newTestAccCLI(t)
	cli.write("main.tf", testAccCLIProxiedConfig(providerConfig)+fmt.Sprintf(`
resource "redis_database" "dst" {
  name        = "interrupted-dst"
  memory_size = 8388608
}

resource "redis_replica_of" "dst" {
  database_id = redis_database.dst.id
  source      = [{ address = %q }]
  source_uris = [%q]
}
`, legacy.Addr(), legacy.URL()))
	interruptedApply(t, cli, taken)

	out := cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	assert.NotContains(t, out, "must be replaced")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")
	dbs, err := e.client.ListDatabases(testAccContext(t))
	require.NoError(t, err)
	require.Len(t, dbs, 1)
	assert.EqualValues(t, 1, dbs[0].ReplicaGeneration, "the destination was flushed again")
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}

// TestAccSourceURLPassword_createInterrupted: Terraform is interrupted
// (Ctrl-C) while the service regenerates a database's admin password. The
// new password is recorded, and the next apply regenerates nothing: a
// second regeneration would end at once the grace period of the password
// that destinations still use. It was left out of the state, and the next
// apply regenerated the password again.
func TestAccSourceURLPassword_createInterrupted(t *testing.T) {
	e := testAccStart(t)
	providerConfig, taken := startHoldingProxy(t, e, func(r *http.Request, _ []byte) bool {
		return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/actions/regenerate_admin_password")
	})
	cli := newTestAccCLI(t)
	cli.write("main.tf", testAccCLIProxiedConfig(providerConfig)+`
resource "redis_database" "src" {
  name        = "interrupted-src"
  memory_size = 8388608
}

resource "redis_source_url_password" "src" {
  database_id = redis_database.src.id
  keepers     = { rotation = "1" }
}
`)
	interruptedApply(t, cli, taken)
	dbs, err := e.client.ListDatabases(testAccContext(t))
	require.NoError(t, err)
	require.Len(t, dbs, 1)
	regenerated, err := e.client.GetSourceURL(testAccContext(t), dbs[0].UID)
	require.NoError(t, err)

	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")
	now, err := e.client.GetSourceURL(testAccContext(t), dbs[0].UID)
	require.NoError(t, err)
	assert.True(t, now.URI == regenerated.URI, "the next apply regenerated the password again")
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}

// TestAccReplicaOf_updateInterrupted: Terraform is interrupted (Ctrl-C)
// while the service takes a new source of a Replica Of, one that never
// comes in sync (it accepts connections and says nothing). The update is
// recorded as applied and the next plan still shows the wait for the sync
// (an update of status), as after an interrupted create. It showed no
// change: the refresh read the new sources, and no apply ever waited.
func TestAccReplicaOf_updateInterrupted(t *testing.T) {
	e := testAccStart(t)
	legacy := redistest.Start(t)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = silent.Close() })
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	providerConfig, taken := startHoldingProxy(t, e, func(r *http.Request, body []byte) bool {
		return r.Method == http.MethodPut && strings.Contains(string(body), silent.Addr().String())
	})
	cli := newTestAccCLI(t)
	config := func(sources string) string {
		return testAccCLIProxiedConfig(providerConfig) + fmt.Sprintf(`
resource "redis_database" "dst" {
  name        = "interrupted-update"
  memory_size = 8388608
}

resource "redis_replica_of" "dst" {
  database_id = redis_database.dst.id
  source      = [%s]
}
`, sources)
	}
	cli.write("main.tf", config(fmt.Sprintf(`{ address = %q }`, legacy.Addr())))
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")

	cli.write("main.tf", config(fmt.Sprintf(`{ address = %q }, { address = %q }`, legacy.Addr(), silent.Addr())))
	out := flat(interruptedApply(t, cli, taken))
	assert.Contains(t, out, "the wait for the sync was interrupted")
	cli.all.Reset()
	cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color")
	plan := flat(cli.all.String())
	assert.Contains(t, plan, "redis_replica_of.dst will be updated in-place")
	assert.NotContains(t, plan, "re-replicates", "the sources were taken: no flush is planned")
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}

// TestAccDatabaseResource_passwordWOUpdateInterrupted: Terraform is
// interrupted (Ctrl-C) while the service sets a new write-only password
// (password_wo_version bumped). The update is recorded as applied: the
// next plan is empty, with no warning that the password was changed outside
// Terraform. It warned so, and planned to set the password again.
func TestAccDatabaseResource_passwordWOUpdateInterrupted(t *testing.T) {
	e := testAccStart(t)
	const first, second = "wo-interrupted-first-1", "wo-interrupted-second-2"
	providerConfig, taken := startHoldingProxy(t, e, func(r *http.Request, body []byte) bool {
		return r.Method == http.MethodPut && strings.Contains(string(body), second)
	})
	cli := newTestAccCLI(t)
	config := func(password string, version int) string {
		return testAccCLIProxiedConfig(providerConfig) + fmt.Sprintf(`
resource "redis_database" "db" {
  name                = "wo-interrupted"
  memory_size         = 8388608
  password_wo         = %q
  password_wo_version = %d
}
`, password, version)
	}
	cli.write("main.tf", config(first, 1))
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")

	cli.write("main.tf", config(second, 2))
	out := flat(interruptedApply(t, cli, taken))
	assert.Contains(t, out, "Terraform was interrupted after the service took the update of database 1")

	cli.all.Reset()
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")
	assert.NotContains(t, flat(cli.all.String()), "changed outside Terraform")
	db, err := e.client.GetDatabase(testAccContext(t), 1)
	require.NoError(t, err)
	assert.Equal(t, second, db.AuthenticationRedisPass)
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}
