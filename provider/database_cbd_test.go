package provider

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

// TestAccDatabase_createBeforeDestroyKeepsTheName: a new port replaces a
// database; with lifecycle create_before_destroy, Terraform creates the new
// database while the old one still holds the name, which the service
// refuses. Terraform does not tell the provider about the lifecycle: the
// plan warns of it, the failed apply says what to do, and the old database
// stays, in the state and on the service.
func TestAccDatabase_createBeforeDestroyKeepsTheName(t *testing.T) {
	e := testAccStart(t)
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert)
	cli.write("main.tf", testAccCLIProviderConfig+`
variable "port" {}

resource "redis_database" "cbd" {
  name        = "cbd"
  memory_size = 8388608
  port        = var.port
  lifecycle {
    create_before_destroy = true
  }
}
`)
	first, second := strconv.Itoa(redistest.FreePort(t)), strconv.Itoa(redistest.FreePort(t))
	cli.mustRun(0, "apply", "-auto-approve", "-no-color", "-var", "port="+first)

	cli.all.Reset()
	cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color", "-var", "port="+second)
	assert.Contains(t, flat(cli.all.String()), "The new database has the name of the one it replaces")
	assert.Contains(t, flat(cli.all.String()), "unless the resource has lifecycle create_before_destroy")

	cli.all.Reset()
	cli.mustRun(1, "apply", "-auto-approve", "-no-color", "-var", "port="+second)
	assert.Contains(t, flat(cli.all.String()),
		"the new database is created while the old one still holds the name: give the new database another name, or remove create_before_destroy")

	// Nothing lost: the old database is managed as it was.
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color", "-var", "port="+first)
	dbs, err := e.client.ListDatabases(t.Context())
	require.NoError(t, err)
	require.Len(t, dbs, 1)
	assert.Equal(t, first, strconv.Itoa(dbs[0].Port))
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color", "-var", "port="+first)
}
