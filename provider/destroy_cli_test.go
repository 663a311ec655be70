package provider

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
)

// TestAccDestroy_notStoppedByPlanChecks: terraform destroy first plans the
// configuration as for an apply (to refresh the state), and stops on any
// error of that plan. A configuration whose create or update checks fail (a
// Replica Of moved to a database that no longer exists, a source URL for an
// address that is not a source) must still be destroyable; the same
// configuration still fails terraform plan and apply.
func TestAccDestroy_notStoppedByPlanChecks(t *testing.T) {
	e := testAccStart(t)
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert)
	cli.write("main.tf", testAccCLIProviderConfig+`
variable "broken" { default = false }

resource "redis_database" "src" {
  name        = "destroy-src"
  memory_size = 8388608
}

resource "redis_database" "dst" {
  name        = "destroy-dst"
  memory_size = 8388608
}

data "redis_source_url" "src" {
  database_id = redis_database.src.id
}

resource "redis_replica_of" "dst" {
  database_id = var.broken ? "9999" : redis_database.dst.id
  source      = [{ address = redis_database.src.replication_endpoint }]
  source_uris = var.broken ? ["redis://admin:secret@127.0.0.1:1"] : [data.redis_source_url.src.uri]
}
`)
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")

	cli.all.Reset()
	cli.mustRun(1, "plan", "-no-color", "-var", "broken=true")
	assert.Contains(t, flat(cli.all.String()), "Source URL without a source", "a plan still checks the configuration")

	cli.all.Reset()
	cli.mustRun(0, "plan", "-destroy", "-no-color", "-var", "broken=true")
	cli.all.Reset()
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color", "-var", "broken=true")
	dbs, err := e.client.ListDatabases(t.Context())
	require.NoError(t, err)
	assert.Empty(t, dbs, "terraform destroy removed every database")

	// The ValidateConfig check alone, and ModifyPlan's alone.
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	cli.mustRun(0, "apply", "-destroy", "-auto-approve", "-no-color", "-var", "broken=true")
	dbs, err = e.client.ListDatabases(t.Context())
	require.NoError(t, err)
	assert.Empty(t, dbs, "terraform apply -destroy removed every database")
}

// TestAccDestroy_notStoppedByAMissingSource: a Replica Of whose source is a
// database managed elsewhere, read through the redis_source_url and
// redis_database data sources, can be destroyed once that database is gone:
// the plan that terraform destroy makes first reads the data sources, and
// their "does not exist" stopped it. A plan still fails on it.
func TestAccDestroy_notStoppedByAMissingSource(t *testing.T) {
	e := testAccStart(t)
	src, err := e.client.CreateDatabase(t.Context(), api.CreateDatabaseRequest{Name: "elsewhere", MemorySize: 8 << 20})
	require.NoError(t, err)
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert,
		"TF_VAR_src_id="+strconv.Itoa(src.UID))
	cli.write("main.tf", testAccCLIProviderConfig+`
variable "src_id" {}

data "redis_source_url" "src" {
  database_id = var.src_id
}

data "redis_database" "src" {
  id = var.src_id
}

resource "redis_database" "dst" {
  name        = "missing-source-dst"
  memory_size = 8388608
  tls_mode    = data.redis_database.src.tls_mode
}

resource "redis_replica_of" "dst" {
  database_id = redis_database.dst.id
  source      = [{ address = data.redis_source_url.src.address }]
  source_uris = [data.redis_source_url.src.uri]
}

# The same through the ephemeral resource, into source_uris_wo.
ephemeral "redis_source_url" "src" {
  database_id = var.src_id
}

resource "redis_database" "dst_wo" {
  name        = "missing-source-dst-wo"
  memory_size = 8388608
}

resource "redis_replica_of" "dst_wo" {
  database_id            = redis_database.dst_wo.id
  source                 = [{ address = data.redis_source_url.src.address }]
  source_uris_wo         = [ephemeral.redis_source_url.src.uri]
  source_uris_wo_version = 1
}
`)
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	require.NoError(t, e.client.DeleteDatabase(t.Context(), src.UID))

	cli.all.Reset()
	cli.mustRun(1, "plan", "-no-color")
	assert.Contains(t, flat(cli.all.String()), "does not exist")

	cli.all.Reset()
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
	dbs, err := e.client.ListDatabases(t.Context())
	require.NoError(t, err)
	assert.Empty(t, dbs, "terraform destroy removed the destinations")
}
