package provider

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/acctest"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/redis/go-redis/v9"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/app"
)

func testAccShardedDatabaseConfig(name string, shards int, memorySize int64) string {
	return fmt.Sprintf(`
resource "redis_database" "test" {
  name         = %s
  memory_size  = %d
  shards_count = %d
  replication  = true
}

data "redis_database" "sharded" {
  id = redis_database.test.id
}
`, hclString(name), memorySize, shards)
}

func TestAccDatabaseResource_sharded(t *testing.T) {
	e := testAccStart(t)
	name := acctest.RandomWithPrefix("tf-acc")
	var uid int
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             e.checkDatabasesDestroyed,
		Steps: []resource.TestStep{
			{
				Config: e.providerConfig() + testAccShardedDatabaseConfig(name, 3, 96<<20),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(testAccDatabaseResource, plancheck.ResourceActionCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(testAccDatabaseResource, "shards_count", "3"),
					resource.TestCheckResourceAttr(testAccDatabaseResource, "replication", "true"),
					resource.TestCheckResourceAttr(testAccDatabaseResource, "oss_cluster", "false"),
					resource.TestCheckResourceAttr(testAccDatabaseResource, "status", api.StatusActive),
					resource.TestCheckResourceAttr(testAccDatabaseResource, "endpoints.#", "6"),
					resource.TestCheckResourceAttr("data.redis_database.sharded", "shards_count", "3"),
					resource.TestCheckResourceAttr("data.redis_database.sharded", "replication", "true"),
					resource.TestCheckResourceAttrPair("data.redis_database.sharded", "endpoints.#", testAccDatabaseResource, "endpoints.#"),
					resource.TestCheckResourceAttrPair("data.redis_database.sharded", "endpoints.5", testAccDatabaseResource, "endpoints.5"),
					testAccCaptureDatabaseUID(testAccDatabaseResource, &uid),
					testAccCheckClusterServes(testAccDatabaseResource, 3),
					e.checkDatabaseMatches(testAccDatabaseResource, func(db *api.Database) error {
						masters := 0
						for _, ep := range db.Endpoints {
							if ep.Role == "master" && ep.Slots != "" {
								masters++
							}
						}
						if masters != 3 {
							return fmt.Errorf("the service shows %d masters with slots: %+v", masters, db.Endpoints)
						}
						return nil
					}),
				),
			},
			// memory_size changes in place, split across the shards.
			{
				Config: e.providerConfig() + testAccShardedDatabaseConfig(name, 3, 192<<20),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(testAccDatabaseResource, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckDatabaseUIDUnchanged(testAccDatabaseResource, &uid),
					resource.TestCheckResourceAttr(testAccDatabaseResource, "memory_size", strconv.Itoa(192<<20)),
					testAccCheckClusterServes(testAccDatabaseResource, 3),
				),
			},
			// A new shards_count is refused at plan time, nothing changes.
			{
				Config:      e.providerConfig() + testAccShardedDatabaseConfig(name, 4, 192<<20),
				ExpectError: regexp.MustCompile(`shards_count cannot change yet`),
			},
			{
				ResourceName:            testAccDatabaseResource,
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts"},
			},
		},
	})
}

// testAccCheckClusterServes writes and reads keys of every shard through a
// cluster-aware client started from the resource's endpoints, and checks
// that each of the masters holds some of them.
func testAccCheckClusterServes(name string, masters int) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs, ok := s.RootModule().Resources[name]
		if !ok {
			return fmt.Errorf("%s is not in the state", name)
		}
		n, _ := strconv.Atoi(rs.Primary.Attributes["endpoints.#"])
		var addrs []string
		for i := range n {
			addrs = append(addrs, rs.Primary.Attributes["endpoints."+strconv.Itoa(i)])
		}
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Password: rs.Primary.Attributes["password"]})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for k := range 200 {
			if err := c.Set(ctx, "tf-acc-"+strconv.Itoa(k), k, 0).Err(); err != nil {
				return fmt.Errorf("SET through the cluster: %w", err)
			}
		}
		for k := range 200 {
			if v, err := c.Get(ctx, "tf-acc-"+strconv.Itoa(k)).Result(); err != nil || v != strconv.Itoa(k) {
				return fmt.Errorf("GET tf-acc-%d through the cluster: %q %v", k, v, err)
			}
		}
		var seen atomic.Int32
		err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			size, err := m.DBSize(ctx).Result()
			if err != nil {
				return err
			}
			if size == 0 {
				return fmt.Errorf("master %s holds no key", m.Options().Addr)
			}
			seen.Add(1)
			return nil
		})
		if err != nil {
			return err
		}
		if int(seen.Load()) != masters {
			return fmt.Errorf("%d masters answered, want %d", seen.Load(), masters)
		}
		return nil
	}
}

// TestAccDatabaseResource_shardedTLSEnabledRefusedAtPlan: tls_mode to or
// from "enabled" on a sharded database, which the service refuses (400),
// is refused at plan time, as a new shards_count is, rather than planned
// with a restart warning and failed by the apply.
func TestAccDatabaseResource_shardedTLSEnabledRefusedAtPlan(t *testing.T) {
	e := testAccStart(t)
	name := acctest.RandomWithPrefix("tf-acc")
	config := func(tls string) string {
		return e.providerConfig() + fmt.Sprintf(`
resource "redis_database" "test" {
  name         = %s
  memory_size  = %d
  shards_count = 2
  tls_mode     = %q
}
`, hclString(name), 64<<20, tls)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             e.checkDatabasesDestroyed,
		Steps: []resource.TestStep{
			{Config: config("disabled")},
			{Config: config("enabled"), PlanOnly: true, ExpectError: regexp.MustCompile(`tls_mode cannot change yet`)},
		},
	})
}

// TestAccDatabaseResource_shardedTLSChangeWithAReplacement: a plan that
// replaces a sharded database (a new port) may give the new one another
// tls_mode: that is the "create a new database" the refusal of an in-place
// change asks for. The refusal blocked this plan too.
func TestAccDatabaseResource_shardedTLSChangeWithAReplacement(t *testing.T) {
	var freePort int
	e := testAccStartWith(t, func(c *app.Config) { freePort = c.PortMax })
	name := acctest.RandomWithPrefix("tf-acc")
	config := func(tls, port string) string {
		return e.providerConfig() + fmt.Sprintf(`
resource "redis_database" "test" {
  name         = %s
  memory_size  = %d
  shards_count = 2
  tls_mode     = %q
  %s
}
`, hclString(name), 64<<20, tls, port)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             e.checkDatabasesDestroyed,
		Steps: []resource.TestStep{
			{Config: config("disabled", "")},
			{Config: config("enabled", fmt.Sprintf("port = %d", freePort)), PlanOnly: true, ExpectNonEmptyPlan: true},
		},
	})
}
