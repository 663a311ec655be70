package provider

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/acctest"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

// TestAccReplicaOf_redisCluster makes a database a Replica Of an
// open-source Redis Cluster named by one of its nodes, read from the
// shards' replicas, then from their masters (no reload), and checks the
// shards' status in source_status.
func TestAccReplicaOf_redisCluster(t *testing.T) {
	e := testAccStart(t)
	cl := redistest.StartCluster(t, 3, 1, "--requirepass", "cluster-acc-secret", "--masterauth", "cluster-acc-secret")
	cl.WaitReplicasOnline() // read_from = "replica" must find one per shard
	node := cl.Nodes[0]
	cc := cl.Client()
	ctx := context.Background()
	for i := range 50 {
		if err := cc.Set(ctx, fmt.Sprint("acc:", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	prefix := acctest.RandomWithPrefix("tf-acc")
	config := func(readFrom string) string {
		return e.providerConfig() + hclDatabase("a", "dst", prefix) + fmt.Sprintf(`
resource "redis_replica_of" "dst" {
  database_id = redis_database.dst.id
  source      = [{ address = %q, read_from = %q }]
  source_uris = [%q]
}
`, node.Addr(), readFrom, node.URL())
	}
	status := "source_status." + node.Addr()
	shardsAre := func(role string) resource.TestCheckFunc {
		checks := []resource.TestCheckFunc{
			resource.TestCheckResourceAttr("redis_replica_of.dst", status+".status", "in-sync"),
			resource.TestCheckResourceAttr("redis_replica_of.dst", status+".shards.#", "3"),
			resource.TestCheckResourceAttr("redis_replica_of.dst", status+".shards.0.slots", "0-5460"),
			resource.TestCheckResourceAttr("redis_replica_of.dst", status+".shards.2.slots", "10922-16383"),
		}
		for i := range 3 {
			checks = append(checks,
				resource.TestCheckResourceAttr("redis_replica_of.dst", fmt.Sprintf("%s.shards.%d.role", status, i), role),
				resource.TestCheckResourceAttr("redis_replica_of.dst", fmt.Sprintf("%s.shards.%d.full_syncs", status, i), "1"))
		}
		return resource.ComposeAggregateTestCheckFunc(checks...)
	}
	// Every key of every shard reaches the destination.
	replicated := func(s *terraform.State) error {
		c, err := testAccClient(s, "redis_database.dst")
		if err != nil {
			return err
		}
		defer c.Close()
		return testAccEventually(time.Minute, "the cluster's keys at the destination", func(ctx context.Context) error {
			n, err := c.DBSize(ctx).Result()
			if err == nil && n != 50 {
				err = fmt.Errorf("%d keys, want 50", n)
			}
			return err
		})
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config("replica"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(shardsAre("replica"), replicated,
					resource.TestCheckResourceAttr("redis_replica_of.dst", "generation", "1")),
			},
			{
				// Another node to read from is no new source: no reload.
				Config: config("master"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("redis_replica_of.dst", plancheck.ResourceActionUpdate)},
				},
				Check: resource.ComposeAggregateTestCheckFunc(shardsAre("master"), replicated,
					resource.TestCheckResourceAttr("redis_replica_of.dst", "generation", "1")),
			},
		},
	})
}
