package provider

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/acctest"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/redis/go-redis/v9"

	"github.com/replicad/terraform-provider-redis/internal/api"
)

func testAccDatabasePasswordWOConfig(e *testAccEnv, name, password string, version int) string {
	return e.providerConfig() + fmt.Sprintf(`
resource "redis_database" "test" {
  name                = %q
  memory_size         = 67108864
  password_wo         = %q
  password_wo_version = %d
}
`, name, password, version)
}

// testAccCheckPassword checks that the database accepts password, and
// refuses wrong when it is not empty.
func testAccCheckPassword(password, wrong string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs, ok := s.RootModule().Resources[testAccDatabaseResource]
		if !ok {
			return fmt.Errorf("%s is not in the state", testAccDatabaseResource)
		}
		ping := func(ctx context.Context, pw string) error {
			c := redis.NewClient(&redis.Options{Addr: rs.Primary.Attributes["endpoint"], Password: pw, MaxRetries: -1,
				DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second})
			defer c.Close()
			return c.Ping(ctx).Err()
		}
		return testAccEventually(30*time.Second, "the database takes the password", func(ctx context.Context) error {
			if err := ping(ctx, password); err != nil {
				return fmt.Errorf("the password is refused: %w", err)
			}
			if wrong != "" {
				if err := ping(ctx, wrong); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
					return fmt.Errorf("the old password still works (%v)", err)
				}
			}
			return nil
		})
	}
}

// TestAccDatabaseResource_passwordWO sets the password of a database
// through password_wo: it works, it is stored nowhere, a new value alone
// changes nothing, and a new version sets it.
func TestAccDatabaseResource_passwordWO(t *testing.T) {
	e := testAccStart(t)
	name := acctest.RandomWithPrefix("tf-acc")
	const first, second = "wo-password-first-1", "wo-password-second-2"

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             e.checkDatabasesDestroyed,
		Steps: []resource.TestStep{
			{
				Config: testAccDatabasePasswordWOConfig(e, name, first, 1),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckNoResourceAttr(testAccDatabaseResource, "password"),
					resource.TestCheckNoResourceAttr(testAccDatabaseResource, "password_wo"),
					resource.TestCheckResourceAttr(testAccDatabaseResource, "password_wo_version", "1"),
					testAccCheckPassword(first, ""),
				),
			},
			// A new write-only value alone: Terraform cannot see it.
			{
				Config: testAccDatabasePasswordWOConfig(e, name, second, 1),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: testAccCheckPassword(first, ""),
			},
			// A new version sets it.
			{
				Config: testAccDatabasePasswordWOConfig(e, name, second, 2),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(testAccDatabaseResource, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckNoResourceAttr(testAccDatabaseResource, "password"),
					testAccCheckPassword(second, first),
				),
			},
			// No password at all any more: the current one stays, and the
			// state records it (it held none while it was write-only).
			{
				Config: e.providerConfig() + fmt.Sprintf(`
resource "redis_database" "test" {
  name        = %q
  memory_size = 67108864
}
`, name),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(testAccDatabaseResource, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(testAccDatabaseResource, "password", second),
					resource.TestCheckNoResourceAttr(testAccDatabaseResource, "password_wo_version"),
					testAccCheckPassword(second, first),
				),
			},
			// From password to password_wo and back.
			{
				Config: e.providerConfig() + fmt.Sprintf(`
resource "redis_database" "test" {
  name        = %q
  memory_size = 67108864
  password    = "plain-password-3"
}
`, name),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(testAccDatabaseResource, "password", "plain-password-3"),
					testAccCheckPassword("plain-password-3", second),
				),
			},
		},
	})
}

// TestAccDatabaseResource_passwordWODrift changes, through the REST API,
// the password of a database whose password is write-only: the next plan
// shows it (an update that sets password_wo again), as it does for
// `password`, and the apply puts the configured password back. It planned
// nothing: Terraform cannot read a write-only value back, and the
// provider did not compare the service's password with the one it set.
func TestAccDatabaseResource_passwordWODrift(t *testing.T) {
	e := testAccStart(t)
	name := acctest.RandomWithPrefix("tf-acc")
	const configured, outside = "wo-password-configured-1", "changed-outside-terraform-2"
	var uid int
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             e.checkDatabasesDestroyed,
		Steps: []resource.TestStep{
			{
				Config: testAccDatabasePasswordWOConfig(e, name, configured, 1),
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCaptureDatabaseUID(testAccDatabaseResource, &uid),
					testAccCheckPassword(configured, ""),
				),
			},
			// Nothing changed: a refresh finds the password Terraform set.
			{
				Config: testAccDatabasePasswordWOConfig(e, name, configured, 1),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
			{
				PreConfig: func() {
					pw := outside
					if _, err := e.client.UpdateDatabase(context.Background(), uid, api.UpdateDatabaseRequest{AuthenticationRedisPass: &pw}); err != nil {
						t.Fatal(err)
					}
				},
				Config: testAccDatabasePasswordWOConfig(e, name, configured, 1),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(testAccDatabaseResource, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckNoResourceAttr(testAccDatabaseResource, "password"),
					resource.TestCheckResourceAttr(testAccDatabaseResource, "password_wo_version", "1"),
					testAccCheckPassword(configured, outside),
				),
			},
		},
	})
}
