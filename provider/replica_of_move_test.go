package provider

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestAccPlans_movedReplicaOfWarnsOfTheFlush: a new database_id replaces
// the Replica Of: the old destination keeps its data, and the new one is
// flushed and loaded. The plan warns of that flush, naming the new
// destination, as for a create. It warned of nothing: Terraform plans the
// replacement's create again, without the prior state, and does not show
// that plan's warnings.
func TestAccPlans_movedReplicaOfWarnsOfTheFlush(t *testing.T) {
	e := testAccStart(t)
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert)
	cli.write("main.tf", testAccCLIProviderConfig+`
variable "dst" { default = "first" }

resource "redis_database" "src" {
  name        = "move-src"
  memory_size = 8388608
}

data "redis_source_url" "src" {
  database_id = redis_database.src.id
}

resource "redis_database" "dst" {
  for_each    = toset(["first", "second"])
  name        = "move-${each.key}"
  memory_size = 8388608
}

resource "redis_replica_of" "dst" {
  database_id = redis_database.dst[var.dst].id
  source      = [{ address = data.redis_source_url.src.address }]
  source_uris = [data.redis_source_url.src.uri]
}
`)
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")

	cli.all.Reset()
	cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color", "-var", "dst=second")
	plan := flat(cli.all.String())
	assert.Contains(t, plan, "redis_replica_of.dst must be replaced")
	assert.Regexp(t, `Warning: Replica Of flushes database \d+ \("move-second"\)`, plan)
	assert.Regexp(t, `database \d+ \("move-first"\) stops being a Replica Of and keeps its data`, plan)
	cli.mustRun(0, "apply", "-auto-approve", "-no-color", "-var", "dst=second")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color", "-var", "dst=second")
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color", "-var", "dst=second")
}
