package provider

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/acctest"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testAccSourceURLPasswordImportConfig is a database and its source URL
// password with keepers from var.rotation; importBlock adds an import
// block for the password.
func testAccSourceURLPasswordImportConfig(importBlock string) string {
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

provider "redis" {
  endpoint = var.endpoint
  password = var.password
  ca_cert  = var.ca_cert
}

resource "redis_database" "src" {
  name        = "import-src"
  memory_size = 67108864
}

resource "redis_source_url_password" "src" {
  database_id = redis_database.src.id
  keepers     = { rotation = var.rotation, team = "payments" }
}
%s`, importBlock)
}

// TestAccSourceURLPassword_importPlansNothing: a password that Terraform
// regenerated with keepers, forgotten and imported again (terraform import,
// then an import block), plans nothing: the service kept the keepers with
// the password. Other keepers then regenerate it; a password regenerated
// outside Terraform (no keepers) takes configured keepers as a record only,
// kept by the service for the next import, whether the resource was
// refreshed or imported.
func TestAccSourceURLPassword_importPlansNothing(t *testing.T) {
	e := testAccStart(t)
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert)
	const addr = "redis_source_url_password.src"
	cli.write("main.tf", testAccSourceURLPasswordImportConfig(""))
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")

	id := stateAttr(t, cli.mustRun(0, "state", "show", "-no-color", addr), "id")
	uid := mustAtoi(t, id)
	created, err := e.client.GetSourceURL(testAccContext(t), uid)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"rotation": "1", "team": "payments"}, created.AdminPasswordKeepers,
		"the service stores the keepers with the password")
	samePassword := func(when string) {
		t.Helper()
		now, err := e.client.GetSourceURL(testAccContext(t), uid)
		require.NoError(t, err)
		assert.Equal(t, created.URI, now.URI, "%s regenerated the password", when)
	}

	// terraform import.
	cli.mustRun(0, "state", "rm", addr)
	cli.mustRun(0, "import", "-no-color", addr, id)
	out, code := cli.run("plan", "-detailed-exitcode", "-no-color")
	assert.Equal(t, 0, code, "a plan after terraform import plans a change:\n%s", out)
	state := cli.mustRun(0, "state", "show", "-no-color", addr)
	assert.Contains(t, flat(state), `"rotation" = "1"`, "the import reads the keepers")
	samePassword("terraform import")

	// An import block: plan and apply import, and change nothing.
	cli.mustRun(0, "state", "rm", addr)
	cli.write("main.tf", testAccSourceURLPasswordImportConfig(fmt.Sprintf(`
import {
  to = %s
  id = %q
}
`, addr, id)))
	plan := flat(cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color"))
	assert.Contains(t, plan, "1 to import, 0 to add, 0 to change, 0 to destroy", "the import block plans a change")
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	out, code = cli.run("plan", "-detailed-exitcode", "-no-color")
	assert.Equal(t, 0, code, "a plan after an import block plans a change:\n%s", out)
	samePassword("an import block")
	cli.write("main.tf", testAccSourceURLPasswordImportConfig(""))

	// Other keepers: a real regeneration, tagged with the new keepers.
	plan = flat(cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color", "-var", "rotation=2"))
	assert.Contains(t, plan, addr+" must be replaced")
	cli.mustRun(0, "apply", "-auto-approve", "-no-color", "-var", "rotation=2")
	rotated, err := e.client.GetSourceURL(testAccContext(t), uid)
	require.NoError(t, err)
	assert.NotEqual(t, created.URI, rotated.URI, "new keepers did not regenerate the password")
	assert.Equal(t, map[string]string{"rotation": "2", "team": "payments"}, rotated.AdminPasswordKeepers)
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color", "-var", "rotation=2")

	// A password regenerated outside Terraform has no keepers: refresh
	// reads that, as an import does, and both plan the same in-place
	// update that records the configured keepers, regenerating nothing.
	outside, err := e.client.RegenerateAdminPassword(testAccContext(t), uid, nil)
	require.NoError(t, err)
	assert.Empty(t, outside.AdminPasswordKeepers)
	refreshed := flat(cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color", "-var", "rotation=2"))
	cli.mustRun(0, "state", "rm", addr)
	cli.mustRun(0, "import", "-no-color", "-var", "rotation=2", addr, id)
	imported := flat(cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color", "-var", "rotation=2"))
	for what, plan := range map[string]string{"after a refresh": refreshed, "after an import": imported} {
		assert.Contains(t, plan, addr+" will be updated in-place", what)
		assert.Contains(t, plan, "+ keepers", what)
		assert.Contains(t, plan, "0 to add, 1 to change, 0 to destroy", "keepers are recorded in place "+what)
		assert.NotContains(t, plan, "must be replaced", what)
	}
	cli.mustRun(0, "apply", "-auto-approve", "-no-color", "-var", "rotation=2")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color", "-var", "rotation=2")
	now, err := e.client.GetSourceURL(testAccContext(t), uid)
	require.NoError(t, err)
	assert.Equal(t, outside.URI, now.URI, "recording keepers regenerated the password")
	assert.Equal(t, map[string]string{"rotation": "2", "team": "payments"}, now.AdminPasswordKeepers,
		"the recorded keepers are not stored with the password")
	// Recorded with the service, they are found by the next import.
	cli.mustRun(0, "state", "rm", addr)
	cli.mustRun(0, "import", "-no-color", "-var", "rotation=2", addr, id)
	out, code = cli.run("plan", "-detailed-exitcode", "-no-color", "-var", "rotation=2")
	assert.Equal(t, 0, code, "a plan after importing a password with recorded keepers plans a change:\n%s", out)
	// The service keeps them: other keepers are not recorded over them.
	_, err = e.client.RecordAdminPasswordKeepers(testAccContext(t), uid, map[string]string{"rotation": "other"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "already has keepers")

	cli.mustRun(0, "destroy", "-auto-approve", "-no-color", "-var", "rotation=2")
}

// keepers = {} is stored by the service as no keepers; it plans nothing
// after the apply, as keepers omitted does.
func TestAccSourceURLPassword_emptyKeepersPlanNothing(t *testing.T) {
	e := testAccStart(t)
	prefix := acctest.RandomWithPrefix("tf-acc")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: e.providerConfig() + hclDatabase("a", "src", prefix) + `
resource "redis_source_url_password" "src" {
  database_id = redis_database.src.id
  keepers     = {}
}
`,
			ConfigPlanChecks: resource.ConfigPlanChecks{
				PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
			},
		}},
	})
}

// TestAccSourceURLPassword_keepersLimitsAtPlan: keepers beyond the
// service's limits (64 entries, keys of 1 to 256 bytes, values up to 4096
// bytes) are refused by the plan, not by the service in the middle of an
// apply that has already changed other resources.
func TestAccSourceURLPassword_keepersLimitsAtPlan(t *testing.T) {
	e := testAccStart(t)
	many := ""
	for i := range 65 {
		many += fmt.Sprintf("k%d = \"v\", ", i)
	}
	long := ""
	for range 4097 {
		long += "b"
	}
	var steps []resource.TestStep
	for _, c := range []struct{ keepers, want string }{
		{`{ "" = "x" }`, `string length must be between 1 and 256`},
		{"{ " + many + "}", `must contain at most 64 elements`},
		{`{ a = "` + long + `" }`, `string length must be at most 4096`},
		// A null keeper (an unset variable): a clear error, not the
		// framework's "Value Conversion Error ... always an error in the
		// provider".
		{`{ rotation = null }`, `(?s)Keeper without a value.*keepers\["rotation"\] is null`},
	} {
		steps = append(steps, resource.TestStep{
			Config: e.providerConfig() + `
resource "redis_source_url_password" "src" {
  database_id = "1"
  keepers     = ` + c.keepers + `
}
`,
			PlanOnly:    true,
			ExpectError: regexp.MustCompile(c.want),
		})
	}
	resource.Test(t, resource.TestCase{ProtoV6ProviderFactories: testAccProtoV6ProviderFactories, Steps: steps})
}
