package provider

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/acctest"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/replicad/terraform-provider-redis/internal/api"
)

// TestAccReplicaOf_rotationKeepsData rotates the source's password through
// keepers several times, the destination getting the new URL in the same
// apply, after a few seconds of other work (as in a real apply with more
// resources): the destination is never flushed (its generation stays), its
// sync never stops, and it keeps replicating.
func TestAccReplicaOf_rotationKeepsData(t *testing.T) {
	r := testAccStartTwo(t)
	prefix := acctest.RandomWithPrefix("tf-acc")
	config := func(keeper string) string {
		// The destination gets the new URL only once the slow step, which
		// starts after the regeneration, is over.
		return r.providers() + hclDatabase("a", "src", prefix) + hclSourcePassword("a", "src", keeper) +
			hclDatabase("b", "dst", prefix) + `
resource "terraform_data" "slow" {
  triggers_replace = [redis_source_url_password.src.id, redis_source_url_password.src.keepers]
  provisioner "local-exec" {
    command = "sleep 4"
  }
}
` + hclReplicaOf("b", "dst", []string{"src"}, "  depends_on = [terraform_data.slow]\n")
	}
	const dst = "redis_replica_of.dst"
	const pw = "redis_source_url_password.src"
	var gen int64
	var written []string
	var password string
	rotation := func(keeper string) resource.TestStep {
		return resource.TestStep{
			Config: config(keeper),
			ConfigPlanChecks: resource.ConfigPlanChecks{
				PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(pw, plancheck.ResourceActionDestroyBeforeCreate),
					plancheck.ExpectResourceAction(dst, plancheck.ResourceActionUpdate),
				},
				PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
			},
			Check: resource.ComposeAggregateTestCheckFunc(
				func(s *terraform.State) error {
					now := s.RootModule().Resources[pw].Primary.Attributes["password"]
					if now == password {
						return errors.New("the password was not regenerated")
					}
					password = now
					return nil
				},
				resource.TestCheckResourceAttr(dst, "sync", api.SyncEnabled),
				r.b.checkReplica(dst, func(db *api.Database) error {
					if db.ReplicaSync != api.SyncEnabled {
						return fmt.Errorf("replica_sync is %q after the rotation", db.ReplicaSync)
					}
					return nil
				}),
				checkGeneration(dst, &gen, 0),
				testAccCheckKeysPresent("redis_database.dst", &written),
				testAccCheckReplicates([]string{"redis_database.src"}, []string{"redis_database.dst"}),
				r.a.checkSourceURLMatches(pw),
				testAccWriteKey("redis_database.src", &written),
			),
		}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccTwoRegionsFactories,
		ExternalProviders:        map[string]resource.ExternalProvider{},
		Steps: []resource.TestStep{
			{
				Config: config("1"),
				Check: resource.ComposeAggregateTestCheckFunc(
					captureGeneration(dst, &gen),
					func(s *terraform.State) error {
						password = s.RootModule().Resources[pw].Primary.Attributes["password"]
						return nil
					},
					testAccCheckReplicates([]string{"redis_database.src"}, []string{"redis_database.dst"}),
					testAccWriteKey("redis_database.src", &written),
				),
			},
			rotation("2"),
			rotation("3"),
			rotation("4"),
		},
	})
}
