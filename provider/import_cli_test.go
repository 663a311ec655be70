package provider

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

// TestAccImport_databasePinsPlanNothing: databases whose configuration
// writes client_certificates = [], leaves it out, or pins a certificate,
// imported (terraform state rm, then import blocks), plan nothing but the
// imports; an empty set and none mean the same (any TLS client), so moving
// from one to the other plans nothing either.
func TestAccImport_databasePinsPlanNothing(t *testing.T) {
	e := testAccStart(t)
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert)
	databases := func(emptyPins string) string {
		return testAccCLIProviderConfig + `
data "redis_cluster" "this" {}

resource "redis_database" "empty" {
  name        = "pins-empty"
  memory_size = 67108864
  tls_mode    = "replica_ssl"
  ` + emptyPins + `
}

resource "redis_database" "omitted" {
  name        = "pins-omitted"
  memory_size = 67108864
}

resource "redis_database" "pinned" {
  name                = "pins-pinned"
  memory_size         = 67108864
  tls_mode            = "replica_ssl"
  client_certificates = [data.redis_cluster.this.syncer_cert]
}
`
	}
	all := []string{"redis_database.empty", "redis_database.omitted", "redis_database.pinned"}
	config := databases("client_certificates = []")
	cli.write("main.tf", config)
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")

	imports := ""
	for _, addr := range all {
		id := stateAttr(t, cli.mustRun(0, "state", "show", "-no-color", addr), "id")
		cli.mustRun(0, "state", "rm", addr)
		imports += fmt.Sprintf("import {\n  to = %s\n  id = %q\n}\n", addr, id)
	}
	cli.write("main.tf", config+imports)
	out, code := cli.run("plan", "-detailed-exitcode", "-no-color")
	assert.Contains(t, flat(out), "3 to import, 0 to add, 0 to change, 0 to destroy", "exit %d", code)
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	out, code = cli.run("plan", "-detailed-exitcode", "-no-color")
	assert.Equal(t, 0, code, "a plan after the import plans a change:\n%s", out)

	// [] and none are the same: either way, nothing to change.
	cli.write("main.tf", databases(""))
	out, code = cli.run("plan", "-detailed-exitcode", "-no-color")
	assert.Equal(t, 0, code, "client_certificates = [] left out plans a change:\n%s", out)
	cli.write("main.tf", databases("client_certificates = []"))
	out, code = cli.run("plan", "-detailed-exitcode", "-no-color")
	assert.Equal(t, 0, code, "client_certificates = [] written again plans a change:\n%s", out)

	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}

// TestAccImport_replicaOfEmptySourceURIsPlanNothing: a Replica Of of a
// source that needs no password, whose configuration writes
// source_uris = [], imported, plans nothing but the import; [] and none are
// one value there too.
func TestAccImport_replicaOfEmptySourceURIsPlanNothing(t *testing.T) {
	e := testAccStart(t)
	legacy := redistest.Start(t)
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert,
		"TF_VAR_legacy_address="+legacy.Addr())
	config := func(uris string) string {
		return testAccCLIProviderConfig + `
variable "legacy_address" {}

resource "redis_database" "dst" {
  name        = "uris-dst"
  memory_size = 67108864
}

resource "redis_replica_of" "dst" {
  database_id = redis_database.dst.id
  source      = [{ address = var.legacy_address }]
  ` + uris + `
}
`
	}
	const addr = "redis_replica_of.dst"
	cli.write("main.tf", config("source_uris = []"))
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")

	id := stateAttr(t, cli.mustRun(0, "state", "show", "-no-color", addr), "id")
	cli.mustRun(0, "state", "rm", addr)
	cli.write("main.tf", config("source_uris = []")+fmt.Sprintf("import {\n  to = %s\n  id = %q\n}\n", addr, id))
	out, code := cli.run("plan", "-detailed-exitcode", "-no-color")
	assert.Contains(t, flat(out), "1 to import, 0 to add, 0 to change, 0 to destroy", "exit %d", code)
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	out, code = cli.run("plan", "-detailed-exitcode", "-no-color")
	assert.Equal(t, 0, code, "a plan after the import plans a change:\n%s", out)

	cli.write("main.tf", config(""))
	out, code = cli.run("plan", "-detailed-exitcode", "-no-color")
	assert.Equal(t, 0, code, "source_uris = [] left out plans a change:\n%s", out)
	cli.write("main.tf", config("source_uris = []"))
	out, code = cli.run("plan", "-detailed-exitcode", "-no-color")
	assert.Equal(t, 0, code, "source_uris = [] written again plans a change:\n%s", out)

	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}
