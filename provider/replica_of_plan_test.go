package provider

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

// testAccPlanConfig is one instance: a source database with a source URL
// password (keepers from var.rotation), an optional legacy redis-server as
// a second source, and a destination.
func testAccPlanConfig(legacy *redistest.Server) string {
	return fmt.Sprintf(`
terraform {
  required_providers {
    redis = { source = "replicad/redis" }
  }
}

variable "endpoint" {}
variable "ca_cert" {}
variable "password" { sensitive = true }
variable "rotation" { default = "1" }
variable "with_legacy" { default = false }
variable "sync" { default = "enabled" }

provider "redis" {
  endpoint = var.endpoint
  password = var.password
  ca_cert  = var.ca_cert
}

resource "redis_database" "src" {
  name        = "plan-src"
  memory_size = 67108864
}

resource "redis_source_url_password" "src" {
  database_id = redis_database.src.id
  keepers     = { rotation = var.rotation }
}

resource "redis_database" "dst" {
  name        = "plan-dst"
  memory_size = 67108864
}

resource "redis_replica_of" "dst" {
  database_id = redis_database.dst.id
  sync        = var.sync
  source = concat(
    [{ address = redis_source_url_password.src.address }],
    var.with_legacy ? [{ address = %q }] : [],
  )
  source_uris = concat(
    [redis_source_url_password.src.source_url],
    var.with_legacy ? [%q] : [],
  )
}
`, legacy.Addr(), legacy.URL())
}

// flat joins the words of terraform's output, which wraps and aligns.
func flat(s string) string { return strings.Join(strings.Fields(s), " ") }

// TestAccPlans_sayWhatHappens checks what plans say: one flush warning for
// a create, none for a password rotation (the source address stays known),
// no "new credentials" for a source that is removed, and only the sync for
// paused -> enabled; and that importing a source URL password into a
// configuration with keepers plans nothing.
func TestAccPlans_sayWhatHappens(t *testing.T) {
	e := testAccStart(t)
	legacy := redistest.Start(t, "--requirepass", "legacy-plan-secret")
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert)
	cli.write("main.tf", testAccPlanConfig(legacy))

	// A create: one warning that the destination is flushed.
	before := cli.all.Len()
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	out := flat(cli.all.String()[before:])
	assert.Equal(t, 1, strings.Count(out, "Warning: Replica Of flushes"), "flush warnings of a create:\n%s", out)
	assert.NotContains(t, out, "similar warning", "flush warnings of a create")

	// A rotation: the destination gets the new URL, nothing is flushed,
	// and the plan says so.
	plan := flat(cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color", "-var", "rotation=2"))
	assert.NotContains(t, plan, "flush", "a rotation warns about a flush")
	assert.NotContains(t, plan, "address = (known after apply)", "the rotation makes the address unknown")
	assert.Contains(t, plan, "~ source_uris = (sensitive value)")
	assert.NotContains(t, plan, "generation", "a rotation shows a new generation")
	cli.mustRun(0, "apply", "-auto-approve", "-no-color", "-var", "rotation=2")

	// A source added, then removed: the removal is not "new credentials".
	cli.mustRun(0, "apply", "-auto-approve", "-no-color", "-var", "rotation=2", "-var", "with_legacy=true")
	before = cli.all.Len()
	cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color", "-var", "rotation=2")
	plan = flat(cli.all.String()[before:])
	assert.Contains(t, plan, "removed: "+legacy.Addr())
	assert.NotContains(t, plan, "new credentials for "+legacy.Addr())
	cli.mustRun(0, "apply", "-auto-approve", "-no-color", "-var", "rotation=2")

	// Paused, then enabled: the plan shows the sync and the status that
	// follows from it, not a new generation (nothing is flushed).
	cli.mustRun(0, "apply", "-auto-approve", "-no-color", "-var", "rotation=2", "-var", "sync=paused")
	plan = flat(cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color", "-var", "rotation=2"))
	assert.Contains(t, plan, `~ sync = "paused" -> "enabled"`)
	assert.Contains(t, plan, `~ status = "out-of-sync" -> (known after apply)`)
	assert.NotContains(t, plan, "generation", "paused -> enabled shows a new generation")
	cli.mustRun(0, "apply", "-auto-approve", "-no-color", "-var", "rotation=2")

	// Import the source URL password: no new password, no change at all
	// (the service kept its keepers; see also
	// TestAccSourceURLPassword_importPlansNothing).
	state := cli.mustRun(0, "state", "show", "-no-color", "redis_source_url_password.src")
	id := stateAttr(t, state, "id")
	pwBefore, err := e.client.GetSourceURL(testAccContext(t), mustAtoi(t, id))
	require.NoError(t, err)
	cli.mustRun(0, "state", "rm", "redis_source_url_password.src")
	cli.mustRun(0, "import", "-no-color", "-var", "rotation=2", "redis_source_url_password.src", id)
	out, code := cli.run("plan", "-detailed-exitcode", "-no-color", "-var", "rotation=2")
	assert.Equal(t, 0, code, "the import plans a change:\n%s", out)
	pwAfter, err := e.client.GetSourceURL(testAccContext(t), mustAtoi(t, id))
	require.NoError(t, err)
	assert.Equal(t, pwBefore.URI, pwAfter.URI, "the import regenerated the password")
	// A change of keepers after that regenerates again.
	plan = flat(cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color", "-var", "rotation=3"))
	assert.Contains(t, plan, "redis_source_url_password.src must be replaced")

	cli.mustRun(0, "destroy", "-auto-approve", "-no-color", "-var", "rotation=2")
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}

// TestAccPlans_createOnExistingDatabaseWarnsOncePerCommand: making an
// existing database a Replica Of warns, in the plan that the user approves,
// that its data goes; with a saved plan, each command says it once. (A
// `terraform apply` that plans too prints it twice: Terraform plans again
// before applying, and nothing tells the provider which plan it is in; the
// resource docs say so.)
func TestAccPlans_createOnExistingDatabaseWarnsOncePerCommand(t *testing.T) {
	e := testAccStart(t)
	legacy := redistest.Start(t, "--requirepass", "legacy-plan-secret")
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert)
	cli.write("main.tf", testAccPlanConfig(legacy))
	// The destination exists before it becomes a Replica Of.
	cli.mustRun(0, "apply", "-auto-approve", "-no-color",
		"-target=redis_database.dst", "-target=redis_source_url_password.src")
	uid := stateAttr(t, cli.mustRun(0, "state", "show", "-no-color", "redis_database.dst"), "id")

	const warning = "Warning: Replica Of flushes database "
	before := cli.all.Len()
	cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color", "-out=create.tfplan")
	plan := flat(cli.all.String()[before:])
	assert.Equal(t, 1, strings.Count(plan, warning), "flush warnings of the plan:\n%s", plan)
	assert.Contains(t, plan, warning+uid+` ("plan-dst")`, "the warning names the existing destination")

	before = cli.all.Len()
	cli.mustRun(0, "apply", "-no-color", "create.tfplan")
	applied := flat(cli.all.String()[before:])
	assert.Equal(t, 1, strings.Count(applied, warning), "flush warnings of the apply:\n%s", applied)
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")

	// What the resource docs say of one `terraform apply -auto-approve`:
	// the warning of the plan and that of the plan Terraform makes again
	// before it applies, shown together at the end. When this fails,
	// Terraform changed: update the docs.
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color", "-target=redis_replica_of.dst")
	before = cli.all.Len()
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	applied = flat(cli.all.String()[before:])
	assert.Equal(t, 1, strings.Count(applied, warning), "flush warnings of one terraform apply:\n%s", applied)
	assert.Contains(t, applied, "(and one more similar warning elsewhere)", "the re-plan's warning")

	// An interactive apply: the warning comes before the question, so the
	// user sees it before answering; the re-plan's comes at the end.
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color", "-target=redis_replica_of.dst")
	before = cli.all.Len()
	out, code := cli.runInput("yes\n", "apply", "-no-color")
	require.Equal(t, 0, code, "interactive apply:\n%s", tail(cli.all.String()[before:], 8000))
	question := strings.Index(out, "Do you want to perform these actions?")
	require.Positive(t, question, "terraform did not ask:\n%s", out)
	assert.Equal(t, 1, strings.Count(flat(out[:question]), warning), "flush warnings before the question:\n%s", out)
	assert.Equal(t, 1, strings.Count(flat(out[question:]), warning), "flush warnings after the question:\n%s", out)

	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}
