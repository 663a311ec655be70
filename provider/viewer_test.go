package provider

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/app"
)

// TestAccProvider_readOnlyUser: the service's viewer user reads sources as
// addresses, without their URLs. A plan with it (a least-privilege drift
// check in CI, say) fails saying that the provider needs the admin user,
// rather than showing every source replaced and the destination
// re-replicated.
func TestAccProvider_readOnlyUser(t *testing.T) {
	const viewer, viewerPassword = "viewer", "viewer-password-1"
	e := testAccStartWith(t, func(c *app.Config) { c.ViewerUser, c.ViewerPassword = viewer, viewerPassword })
	legacy := redistest.Start(t)
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert)
	cli.write("main.tf", testAccCLIProviderConfig+`
resource "redis_database" "dst" {
  name        = "viewer-dst"
  memory_size = 67108864
}

resource "redis_replica_of" "dst" {
  database_id = redis_database.dst.id
  source      = [{ address = "`+legacy.Addr()+`" }]
}
`)
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")

	cli.all.Reset()
	cli.env = append(cli.env, "REDIS_REPLICAD_USERNAME="+viewer)
	_, code := cli.run("plan", "-detailed-exitcode", "-no-color", "-var", "password="+viewerPassword)
	plan := flat(cli.all.String())
	assert.Equal(t, 1, code, "a plan with the read-only user did not fail")
	assert.Contains(t, plan, "Error: A read-only API user")
	assert.NotContains(t, plan, "re-replicates")
	assert.NotContains(t, plan, "will be updated")

	cli.env = cli.env[:len(cli.env)-1]
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}
