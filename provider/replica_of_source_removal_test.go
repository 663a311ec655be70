package provider

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestAccReplicaOf_sourceRemovedWithItsDatabase checks what the docs of
// redis_replica_of say of a source removed in the same apply as its
// database: Terraform destroys the database first, then updates the
// Replica Of; with create_before_destroy on the source's
// redis_source_url_password, it updates the Replica Of first. Either way
// the apply succeeds and the next plan is empty.
func TestAccReplicaOf_sourceRemovedWithItsDatabase(t *testing.T) {
	e := testAccStart(t)
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert)
	config := func(lifecycle string) string {
		return testAccCLIProviderConfig + `
variable "names" {
  type    = list(string)
  default = ["a", "b"]
}

resource "redis_database" "src" {
  for_each    = toset(var.names)
  name        = "removal-src-${each.key}"
  memory_size = 8388608
}

resource "redis_source_url_password" "src" {
  for_each    = toset(var.names)
  database_id = redis_database.src[each.key].id
  ` + lifecycle + `
}

resource "redis_database" "dst" {
  name        = "removal-dst"
  memory_size = 8388608
}

resource "redis_replica_of" "dst" {
  database_id = redis_database.dst.id
  source      = [for k in var.names : { address = redis_source_url_password.src[k].address }]
  source_uris = [for k in var.names : redis_source_url_password.src[k].source_url]
}
`
	}
	order := func(out string) (updated, destroyed int) {
		return strings.Index(out, "redis_replica_of.dst: Modifications complete"),
			strings.Index(out, `redis_database.src["b"]: Destroying...`)
	}

	cli.write("main.tf", config(""))
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	out := cli.mustRun(0, "apply", "-auto-approve", "-no-color", "-var", `names=["a"]`)
	updated, destroyed := order(out)
	assert.True(t, updated > 0 && destroyed > 0 && destroyed < updated, "without the lifecycle, the source's database is destroyed first:\n%s", out)
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color", "-var", `names=["a"]`)

	cli.write("main.tf", config("lifecycle { create_before_destroy = true }"))
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	out = cli.mustRun(0, "apply", "-auto-approve", "-no-color", "-var", `names=["a"]`)
	updated, destroyed = order(out)
	assert.True(t, updated > 0 && destroyed > 0 && updated < destroyed, "with create_before_destroy on the password, the Replica Of is updated first:\n%s", out)
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color", "-var", `names=["a"]`)
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color", "-var", `names=["a"]`)
}
