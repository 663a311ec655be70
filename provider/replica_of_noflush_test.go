package provider

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/acctest"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/replicad/terraform-provider-redis/internal/api"
)

// planCheckFunc runs f as a plan check: run in PreApply, it acts between
// the plan and the apply of the plan Terraform saved.
type planCheckFunc func(context.Context) error

func (f planCheckFunc) CheckPlan(ctx context.Context, _ plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	resp.Error = f(ctx)
}

// TestAccReplicaOf_stoppedAgainBetweenPlanAndApply: a sync stopped on a
// refused password is planned to continue without a flush when the right
// URL is configured. Stopped again by someone between the plan and the
// apply (enabled, then stopped by the user: no longer resumable), the
// apply must not flush the destination that the plan said it would not:
// the service refuses the update (replica_no_flush), nothing is flushed,
// and the next plan shows the flush.
func TestAccReplicaOf_stoppedAgainBetweenPlanAndApply(t *testing.T) {
	r := testAccStartTwo(t)
	prefix := acctest.RandomWithPrefix("tf-acc")
	config := r.providers() +
		hclDatabase("a", "src", prefix) + hclSourcePassword("a", "src", "") +
		hclDatabase("b", "dst", prefix) + hclReplicaOf("b", "dst", []string{"src"}, "")
	const dst = "redis_replica_of.dst"
	var uid int
	var srcURL string
	var gen int64
	ctx := testAccContext(t)
	update := func(in api.UpdateDatabaseRequest) error {
		if _, err := r.b.client.UpdateDatabase(ctx, uid, in); err != nil {
			return fmt.Errorf("out-of-band update: %w", err)
		}
		return nil
	}
	serviceHas := func(want func(*api.Database) error) error {
		return testAccEventually(2*time.Minute, "the destination's state", func(ctx context.Context) error {
			db, err := r.b.client.GetDatabase(ctx, uid)
			if err != nil {
				return err
			}
			return want(db)
		})
	}
	enabled, stopped := api.SyncEnabled, api.SyncStopped

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccTwoRegionsFactories,
		Steps: []resource.TestStep{
			{
				Config: config,
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCaptureDatabaseUID(dst, &uid),
					captureGeneration(dst, &gen),
					func(s *terraform.State) error {
						srcURL = s.RootModule().Resources["redis_source_url_password.src"].Primary.Attributes["source_url"]
						return nil
					},
				),
			},
			{
				// A wrong password through the API: the sync stops, resumable.
				PreConfig: func() {
					u, _ := url.Parse(srcURL)
					u.User = url.UserPassword("admin", "not-the-password")
					if err := update(api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: u.String()}}}); err != nil {
						t.Fatal(err)
					}
					if err := serviceHas(func(db *api.Database) error {
						if db.ReplicaSync != api.SyncStopped || !db.ReplicaStopResumable {
							return fmt.Errorf("replica_sync %q, replica_stop_resumable %t", db.ReplicaSync, db.ReplicaStopResumable)
						}
						return nil
					}); err != nil {
						t.Fatal(err)
					}
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(dst, plancheck.ResourceActionUpdate),
						// The plan says no flush: the generation is known.
						plancheck.ExpectKnownValue(dst, tfjsonpath.New("generation"), knownvalue.NotNull()),
						// Someone enables the sync with the right URL, then
						// stops it: it is no longer resumable.
						planCheckFunc(func(context.Context) error {
							if err := update(api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: srcURL}}, ReplicaSync: &enabled}); err != nil {
								return err
							}
							return update(api.UpdateDatabaseRequest{ReplicaSync: &stopped})
						}),
					},
				},
				ExpectError: regexp.MustCompile(`(?s)changed since the plan.*Run terraform plan again.*asks for no flush`),
			},
			{
				// Nothing was flushed; the next plan shows the flush.
				PreConfig: func() {
					if err := serviceHas(func(db *api.Database) error {
						if db.ReplicaGeneration != gen || db.ReplicaSync != api.SyncStopped {
							return fmt.Errorf("replica_generation %d (want %d), replica_sync %q", db.ReplicaGeneration, gen, db.ReplicaSync)
						}
						return nil
					}); err != nil {
						t.Fatal(err)
					}
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(dst, plancheck.ResourceActionUpdate),
						plancheck.ExpectUnknownValue(dst, tfjsonpath.New("generation")),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckSourceStatus(dst, 1),
					testAccCheckReplicates([]string{"redis_database.src"}, []string{"redis_database.dst"}),
					checkGeneration(dst, &gen, 1),
				),
			},
		},
	})
}

// TestAccReplicaOf_stoppedThenPaused: a sync stopped by the user, then
// paused, owes the destination a reload (the service counts it when the
// sync leaves stopped): the plan shows the generation changing, with the
// warning, and the apply is not refused as a flush the plan did not show.
func TestAccReplicaOf_stoppedThenPaused(t *testing.T) {
	r := testAccStartTwo(t)
	prefix := acctest.RandomWithPrefix("tf-acc")
	base := r.providers() + hclDatabase("a", "src", prefix) + hclSourcePassword("a", "src", "") + hclDatabase("b", "dst", prefix)
	config := func(sync string) string {
		return base + hclReplicaOf("b", "dst", []string{"src"}, fmt.Sprintf("  sync = %q\n", sync))
	}
	const dst = "redis_replica_of.dst"
	var gen int64
	empty := []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccTwoRegionsFactories,
		Steps: []resource.TestStep{
			{
				Config:           config(api.SyncEnabled),
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPostRefresh: empty},
				Check:            captureGeneration(dst, &gen),
			},
			{
				Config:           config(api.SyncStopped),
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPostRefresh: empty},
				Check: resource.ComposeAggregateTestCheckFunc(
					r.b.waitForReplica(dst, "the sync is stopped", syncIs(api.SyncStopped)),
					checkGeneration(dst, &gen, 0),
				),
			},
			{
				Config: config(api.SyncPaused),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(dst, plancheck.ResourceActionUpdate),
						plancheck.ExpectUnknownValue(dst, tfjsonpath.New("generation")),
					},
					PostApplyPostRefresh: empty,
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					r.b.waitForReplica(dst, "the sync is paused", syncIs(api.SyncPaused)),
					checkGeneration(dst, &gen, 1),
				),
			},
			// Enabled: the destination is flushed and loaded now, and the
			// plan says so.
			{
				Config: config(api.SyncEnabled),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(dst, plancheck.ResourceActionUpdate),
						plancheck.ExpectUnknownValue(dst, tfjsonpath.New("generation")),
					},
					PostApplyPostRefresh: empty,
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckSourceStatus(dst, 1),
					testAccCheckReplicates([]string{"redis_database.src"}, []string{"redis_database.dst"}),
					checkGeneration(dst, &gen, 0),
				),
			},
		},
	})
}
