package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

// TestAccReplicaOf_checkBlockInCI runs the CI recipe of the resource's
// documentation (examples/resources/redis_replica_of/ci-check.sh) with the
// check block of its example: it passes while the destination is in sync;
// once the source is down, plan -detailed-exitcode still exits 0 (nothing
// to change, no output of the example changes), and the recipe fails
// naming the check.
func TestAccReplicaOf_checkBlockInCI(t *testing.T) {
	e := testAccStart(t)
	if _, err := exec.LookPath("jq"); err != nil {
		t.Fatal("this test runs the documented CI recipe, which needs jq: install it (apt-get install -y jq)")
	}
	legacy := redistest.Start(t)
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert)
	_, file, _, _ := runtime.Caller(0)
	examples := filepath.Join(filepath.Dir(file), "..", "examples", "resources", "redis_replica_of")
	example, err := os.ReadFile(filepath.Join(examples, "resource.tf"))
	require.NoError(t, err)
	// Everything of the example from its check block on, outputs
	// included, up to its variables: the docs say that a source that is
	// down leaves plan -detailed-exitcode at 0 with it.
	check := string(example[bytes.Index(example, []byte(`check "orders_eu_in_sync"`)):bytes.Index(example, []byte(`variable "us_password"`))])
	cli.write("main.tf", fmt.Sprintf(`
terraform {
  required_providers {
    redis = { source = "replicad/redis" }
  }
}

variable "endpoint" {}
variable "ca_cert" {}
variable "password" { sensitive = true }

provider "redis" {
  endpoint = var.endpoint
  password = var.password
  ca_cert  = var.ca_cert
}

resource "redis_database" "orders_eu" {
  name        = "check-dst"
  memory_size = 67108864
}

resource "redis_replica_of" "orders_eu" {
  database_id = redis_database.orders_eu.id
  source      = [{ address = %q }]
}

output "dst_id" {
  value = redis_database.orders_eu.id
}

%s`, legacy.Addr(), check))
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	recipe := func() (string, int) {
		cmd := exec.Command("bash", filepath.Join(examples, "ci-check.sh"))
		cmd.Dir, cmd.Env = cli.dir, append(cli.env, "TF_CLI_ARGS_plan=-no-color")
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			return string(out), exit.ExitCode()
		case err != nil:
			t.Fatalf("run the CI recipe: %v", err)
		}
		return string(out), 0
	}
	out, code := recipe()
	assert.Equal(t, 0, code, "the CI recipe fails on a destination in sync:\n%s", out)

	legacy.Stop()
	uid, err := strconv.Atoi(strings.TrimSpace(cli.mustRun(0, "output", "-raw", "dst_id")))
	require.NoError(t, err)
	require.NoError(t, testAccEventually(time.Minute, "the source is seen down", func(ctx context.Context) error {
		db, err := e.client.GetDatabase(ctx, uid)
		if err != nil {
			return err
		}
		if db.ReplicaSources[0].Status == api.SourceInSync {
			return errors.New("still in sync")
		}
		return nil
	}))
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color") // nothing to change: a plan alone does not see it
	out, code = recipe()
	assert.Equal(t, 3, code, "the CI recipe passes with the source down:\n%s", out)
	assert.Contains(t, out, "failed checks: check.orders_eu_in_sync")
	assert.Contains(t, out, legacy.Addr()+" is ")
}
