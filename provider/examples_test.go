package provider

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
)

// TestAccExamples_quickstart applies examples/quickstart as a user would:
// the provider configured from the environment, the source replicad/redis.
func TestAccExamples_quickstart(t *testing.T) {
	e := testAccStart(t)
	t.Setenv(EnvEndpoint, e.inst.URL)
	t.Setenv(EnvUsername, e.inst.Username)
	t.Setenv(EnvPassword, e.inst.Password)
	t.Setenv(EnvCACert, e.inst.CACert)
	// The example asks for replicad/redis, not hashicorp/redis.
	t.Setenv(resource.EnvTfAccProviderNamespace, "replicad")

	const db = "redis_database.quickstart"
	resource.Test(t, resource.TestCase{
		CheckDestroy: e.checkDatabasesDestroyed,
		Steps: []resource.TestStep{
			{
				// The file has a provider block, so the providers are given
				// to the step, not to the test case.
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				ConfigFile:               config.StaticFile("../examples/quickstart/main.tf"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(db, "name", "quickstart"),
					resource.TestCheckResourceAttr(db, "memory_size", strconv.Itoa(64<<20)),
					testAccCheckDatabaseConnects(db),
					func(s *terraform.State) error {
						rs := s.RootModule().Resources[db]
						outputs := s.RootModule().Outputs
						if o := outputs["endpoint"]; o == nil || o.Value != rs.Primary.Attributes["endpoint"] {
							return fmt.Errorf("output endpoint = %+v", o)
						}
						if o := outputs["password"]; o == nil || !o.Sensitive || o.Value != rs.Primary.Attributes["password"] {
							return fmt.Errorf("output password is missing, wrong or not sensitive")
						}
						return nil
					},
				),
			},
		},
	})
}
