package provider

import (
	neturl "net/url"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testAccGeneratedImportConfig is a source with its source URL password and
// a destination; replicaOf is the destination's Replica Of, or an import
// block for it.
func testAccGeneratedImportConfig(replicaOf string) string {
	return testAccCLIProviderConfig + `
resource "redis_database" "src" {
  name        = "gen-src"
  memory_size = 67108864
}

resource "redis_source_url_password" "src" {
  database_id = redis_database.src.id
}

resource "redis_database" "dst" {
  name        = "gen-dst"
  memory_size = 67108864
}
` + replicaOf
}

// TestAccReplicaOf_importWithGeneratedConfig: a Replica Of imported with
// terraform plan -generate-config-out gets source_uris = null (Terraform
// writes no sensitive value), so the plan of that configuration would
// reconnect the source without its password. The plan says so, naming the
// source; with the URLs put back, the import of the destination, its Replica
// Of and the source's password plans no change.
func TestAccReplicaOf_importWithGeneratedConfig(t *testing.T) {
	e := testAccStart(t)
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert)
	const addr = "redis_replica_of.dst"
	cli.write("main.tf", testAccGeneratedImportConfig(`
resource "redis_replica_of" "dst" {
  database_id = redis_database.dst.id
  source      = [{ address = redis_source_url_password.src.address }]
  source_uris = [redis_source_url_password.src.source_url]
}
`))
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")
	id := stateAttr(t, cli.mustRun(0, "state", "show", "-no-color", addr), "id")
	source := stateAttr(t, cli.mustRun(0, "state", "show", "-no-color", "redis_source_url_password.src"), "address")
	url, err := e.client.GetSourceURL(testAccContext(t), mustAtoi(t, stateAttr(t,
		cli.mustRun(0, "state", "show", "-no-color", "redis_database.src"), "id")))
	require.NoError(t, err)
	u, err := neturl.Parse(url.URI)
	require.NoError(t, err)
	password, _ := u.User.Password()
	defer cli.checkNoSecrets(map[string]string{"source password": password, "API password": e.inst.Password})

	// The three resources of the destination's side imported with a
	// generated configuration; the source database stays.
	dbID := stateAttr(t, cli.mustRun(0, "state", "show", "-no-color", "redis_database.dst"), "id")
	passwordID := stateAttr(t, cli.mustRun(0, "state", "show", "-no-color", "redis_source_url_password.src"), "id")
	cli.mustRun(0, "state", "rm", addr, "redis_database.dst", "redis_source_url_password.src")
	cli.write("main.tf", testAccCLIProviderConfig+`
resource "redis_database" "src" {
  name        = "gen-src"
  memory_size = 67108864
}

import {
  to = redis_database.dst
  id = "`+dbID+`"
}

import {
  to = redis_source_url_password.src
  id = "`+passwordID+`"
}

import {
  to = `+addr+`
  id = "`+id+`"
}
`)
	cli.mustRun(0, "plan", "-no-color", "-generate-config-out=generated.tf")
	generated, err := os.ReadFile(filepath.Join(cli.dir, "generated.tf"))
	require.NoError(t, err)
	nullURIs := regexp.MustCompile(`(?m)^(\s*source_uris\s*=\s*)null # sensitive$`)
	require.Regexp(t, nullURIs, string(generated), "Terraform's generated configuration changed")

	plan := flat(cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color"))
	assert.Contains(t, plan, "Warning: Sources lose their credentials",
		"the plan of the generated configuration drops the source's credentials without a word")
	assert.Contains(t, plan, "credentials for "+source+", and this plan gives them none")

	// The URLs put back, as the warning says: an import and nothing else.
	cli.write("generated.tf", nullURIs.ReplaceAllString(string(generated), "${1}[redis_source_url_password.src.source_url]"))
	plan = flat(cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color"))
	assert.Contains(t, plan, "3 to import, 0 to add, 0 to change, 0 to destroy")
	assert.NotContains(t, plan, "lose their credentials")
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	out, code := cli.run("plan", "-detailed-exitcode", "-no-color")
	assert.Equal(t, 0, code, "a plan after the import with the generated configuration plans a change:\n%s", out)

	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}

// TestAccReplicaOf_importNothing: importing a Replica Of from a database
// that is none, or that does not exist, says which, rather than Terraform's
// "no object exists with the given id" for a database that exists.
func TestAccReplicaOf_importNothing(t *testing.T) {
	e := testAccStart(t)
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert)
	cli.write("main.tf", testAccGeneratedImportConfig(`
resource "redis_replica_of" "dst" {
  database_id = redis_database.dst.id
  source      = [{ address = "127.0.0.1:6379" }]
}
`))
	cli.mustRun(0, "apply", "-auto-approve", "-no-color", "-target=redis_database.dst")
	id := stateAttr(t, cli.mustRun(0, "state", "show", "-no-color", "redis_database.dst"), "id")

	cli.all.Reset()
	cli.mustRun(1, "import", "-no-color", "redis_replica_of.dst", id)
	out := flat(cli.all.String())
	assert.Contains(t, out, "Error: Not a Replica Of")
	assert.Contains(t, out, `The database `+id+` ("gen-dst") has no sources`)

	cli.all.Reset()
	cli.mustRun(1, "import", "-no-color", "redis_replica_of.dst", "999")
	out = flat(cli.all.String())
	assert.Contains(t, out, "Error: No such database")
	assert.Contains(t, out, "The database 999 does not exist on "+e.inst.URL)

	cli.mustRun(1, "state", "show", "-no-color", "redis_replica_of.dst")
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}
