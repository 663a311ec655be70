package provider

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testAccDefaultsConfig is a source, its source URL password and a
// destination with its Replica Of; with explicit set, every attribute that
// has a default is written with it, as some users do.
func testAccDefaultsConfig(explicit bool, imports ...string) string {
	dst, src, rest := "", "", ""
	if explicit {
		dst = `
  tls_mode     = "disabled"
  shards_count = 1
  replication  = false
  oss_cluster  = false`
		src = `, encryption = false, compression = 0, read_from = "master"`
		rest = `
  sync          = "enabled"
  wait_for_sync = true
  fail_after    = "3m"`
	}
	var b strings.Builder
	for _, imp := range imports {
		to, id, _ := strings.Cut(imp, "=")
		b.WriteString("\nimport {\n  to = " + to + "\n  id = \"" + id + "\"\n}\n")
	}
	return testAccCLIProviderConfig + `
resource "redis_database" "src" {
  name        = "defaults-src"
  memory_size = 67108864
}

resource "redis_source_url_password" "src" {
  database_id = redis_database.src.id
}

resource "redis_database" "dst" {
  name        = "defaults-dst"
  memory_size = 67108864` + dst + `
}

resource "redis_replica_of" "dst" {
  database_id = redis_database.dst.id
  source      = [{ address = redis_source_url_password.src.address` + src + ` }]
  source_uris = [redis_source_url_password.src.source_url]` + rest + `
}
` + b.String()
}

// TestAccDefaults_explicitOrOmittedPlanNothing: an attribute written with
// its default plans the same as one left out, after an apply of either
// spelling, after a refresh and after an import: `terraform plan
// -detailed-exitcode` exits 0 each time. Imported with `compression = 0`
// in a source, the Replica Of planned an update that changed nothing.
func TestAccDefaults_explicitOrOmittedPlanNothing(t *testing.T) {
	e := testAccStart(t)
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert)
	noChange := func(step string) {
		t.Helper()
		out, code := cli.run("plan", "-detailed-exitcode", "-no-color")
		assert.Equal(t, 0, code, "%s: the plan is not empty:\n%s", step, out)
	}
	spell := map[bool]string{false: "omitted", true: "explicit"}

	cli.write("main.tf", testAccDefaultsConfig(false))
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	noChange("applied with the defaults omitted")
	cli.write("main.tf", testAccDefaultsConfig(true))
	noChange("the defaults written out after an apply without them")
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	noChange("applied with the defaults written out")
	cli.write("main.tf", testAccDefaultsConfig(false))
	noChange("the defaults left out after an apply with them")
	cli.mustRun(0, "apply", "-refresh-only", "-auto-approve", "-no-color")
	noChange("after a refresh")

	dstID := stateAttr(t, cli.mustRun(0, "state", "show", "-no-color", "redis_database.dst"), "id")
	for _, explicit := range []bool{true, false} {
		cli.mustRun(0, "state", "rm", "redis_replica_of.dst", "redis_database.dst")
		cli.write("main.tf", testAccDefaultsConfig(explicit, "redis_database.dst="+dstID, "redis_replica_of.dst="+dstID))
		out := flat(cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color"))
		assert.Contains(t, out, "2 to import, 0 to add, 0 to change, 0 to destroy",
			"imported with the defaults %s, the plan changes something", spell[explicit])
		cli.mustRun(0, "apply", "-auto-approve", "-no-color")
		noChange("imported with the defaults " + spell[explicit])
		cli.write("main.tf", testAccDefaultsConfig(!explicit))
		noChange("imported with the defaults " + spell[explicit] + ", then " + spell[!explicit])
	}
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}

// TestAccReplicaOf_stateOfSchemaV0PlansNoChange: a state that the provider
// wrote before the defaults of redis_replica_of were in its schema (version
// 0, with null for a default left out) plans no change, with or without a
// refresh, and a real change of a setting still shows in the plan.
func TestAccReplicaOf_stateOfSchemaV0PlansNoChange(t *testing.T) {
	e := testAccStart(t)
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert)
	cli.write("main.tf", testAccDefaultsConfig(false))
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")

	// The state as version 0 wrote it: the Replica Of's defaults null.
	statePath := filepath.Join(cli.dir, "terraform.tfstate")
	raw, err := os.ReadFile(statePath)
	require.NoError(t, err)
	var state map[string]any
	require.NoError(t, json.Unmarshal(raw, &state))
	found := false
	for _, r := range state["resources"].([]any) {
		res := r.(map[string]any)
		if res["type"] != "redis_replica_of" {
			continue
		}
		found = true
		inst := res["instances"].([]any)[0].(map[string]any)
		inst["schema_version"] = 0
		attrs := inst["attributes"].(map[string]any)
		attrs["fail_after"] = nil
		for _, s := range attrs["source"].([]any) {
			src := s.(map[string]any)
			src["encryption"], src["compression"], src["read_from"] = nil, nil, nil
		}
	}
	require.True(t, found, "no redis_replica_of in the state")
	raw, err = json.Marshal(state)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(statePath, raw, 0o600))

	for _, explicit := range []bool{false, true} {
		cli.write("main.tf", testAccDefaultsConfig(explicit))
		for _, args := range [][]string{{"-refresh=false"}, nil} {
			out, code := cli.run(append([]string{"plan", "-detailed-exitcode", "-no-color"}, args...)...)
			assert.Equal(t, 0, code, "a state of version 0 (defaults explicit: %t, %v) plans a change:\n%s", explicit, args, out)
		}
	}

	// A real change still plans one, and says what.
	cli.write("main.tf", strings.Replace(testAccDefaultsConfig(true), "compression = 0", "compression = 2", 1))
	out := flat(cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color", "-refresh=false"))
	assert.Contains(t, out, "+ compression = 2")
	assert.Contains(t, out, "- compression = 0 -> null")
	assert.Contains(t, out, "0 to add, 1 to change, 0 to destroy")
	// Applied, a value other than the default stays beside the defaults
	// left out (the schema's Default in a set overwrote it at the next plan).
	cli.write("main.tf", strings.Replace(testAccDefaultsConfig(false), "source_url_password.src.address", "source_url_password.src.address, compression = 2", 1))
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	out, code := cli.run("plan", "-detailed-exitcode", "-no-color")
	assert.Equal(t, 0, code, "compression = 2 applied, the plan is not empty:\n%s", out)
	assert.Contains(t, flat(cli.mustRun(0, "state", "show", "-no-color", "redis_replica_of.dst")), "compression = 2")
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}
