package provider

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestAccProvider_endpointWithAWrongPath: an endpoint with a path the API
// does not serve (the API's /v1 added to it, say) answers 404 to every
// read. That is an error naming the endpoint, not every resource deleted
// outside Terraform with its re-creation planned (a Replica Of created
// again flushes its destination).
func TestAccProvider_endpointWithAWrongPath(t *testing.T) {
	e := testAccStart(t)
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert)
	cli.write("main.tf", testAccGeneratedImportConfig(`
resource "redis_replica_of" "dst" {
  database_id = redis_database.dst.id
  source      = [{ address = redis_source_url_password.src.address }]
  source_uris = [redis_source_url_password.src.source_url]
}
`))
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")

	cli.all.Reset() // only what the plan prints
	_, code := cli.run("plan", "-detailed-exitcode", "-no-color", "-var", "endpoint="+e.inst.URL+"/v1")
	plan := flat(cli.all.String())
	assert.Equal(t, 1, code, "a plan with a wrong endpoint path did not fail")
	assert.NotContains(t, plan, "has been deleted")
	assert.NotContains(t, plan, "will be created")
	assert.Contains(t, plan, "check the provider's endpoint")

	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}
