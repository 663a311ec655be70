package provider

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/helper/acctest"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"github.com/redis/go-redis/v9"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

// testAccTwoRegions starts two redis-replicad instances, "a" and "b", each
// standing for a location.
//
// A user gives each location a provider alias, and Terraform runs one
// provider process per alias. The acceptance tests serve the provider in
// process instead, and Terraform then sends every alias to the one server it
// was given, where the last configuration wins. So the tests name the second
// location's provider "redisb", served by a second in-process server of the
// same provider (as google-beta serves google_* resources). The examples,
// with real aliases, are tested with the provider binary (see
// TestAccExamples_geoReplication).
type testAccTwoRegions struct {
	a, b *testAccEnv
}

// testAccTwoRegionsFactories serves one provider server per location.
var testAccTwoRegionsFactories = map[string]func() (tfprotov6.ProviderServer, error){
	"redis":  providerserver.NewProtocol6WithError(New("test")()),
	"redisb": providerserver.NewProtocol6WithError(New("test")()),
}

// providerRef is how a resource names the provider of location alias.
func providerRef(alias string) string {
	if alias == "a" {
		return "redis"
	}
	return "redisb"
}

func testAccStartTwo(t *testing.T) *testAccTwoRegions {
	t.Helper()
	return &testAccTwoRegions{a: testAccStart(t), b: testAccStart(t)}
}

// providers is the two provider blocks, "redis" for a and "redisb" for b.
func (r *testAccTwoRegions) providers() string {
	return r.a.providerConfigNamed("redis") + r.b.providerConfigNamed("redisb")
}

// providerConfigNamed is the provider block of the instance, for the
// provider of local name name.
func (e *testAccEnv) providerConfigNamed(name string) string {
	return fmt.Sprintf(`
provider %q {
  endpoint = %s
  username = %s
  password = %s
  ca_cert  = %s
}
`, name, hclString(e.inst.URL), hclString(e.inst.Username), hclString(e.inst.Password), hclString(e.inst.CACert))
}

// envFor returns the instance of a provider alias.
func (r *testAccTwoRegions) envFor(alias string) *testAccEnv {
	if alias == "a" {
		return r.a
	}
	return r.b
}

func (r *testAccTwoRegions) checkDestroyed(s *terraform.State) error {
	if err := r.a.checkDatabasesDestroyed(s); err != nil && !strings.Contains(err.Error(), "not_found") {
		return err
	}
	return nil
}

// hclDatabase is a redis_database named after its resource name.
func hclDatabase(alias, name, prefix string) string {
	return fmt.Sprintf(`
resource "redis_database" %q {
  provider    = %s
  name        = "%s-%s"
  memory_size = 67108864
}
`, name, providerRef(alias), prefix, name)
}

// hclSourcePassword is a redis_source_url_password for the database name.
func hclSourcePassword(alias, name, keeper string) string {
	keepers := ""
	if keeper != "" {
		keepers = fmt.Sprintf("  keepers     = { rotation = %q }\n", keeper)
	}
	return fmt.Sprintf(`
resource "redis_source_url_password" %q {
  provider    = %s
  database_id = redis_database.%s.id
%s}
`, name, providerRef(alias), name, keepers)
}

// hclReplicaOf makes the database dst (of alias) a Replica Of the databases
// srcs, through their redis_source_url_password. extra is added inside the
// resource block.
func hclReplicaOf(alias, dst string, srcs []string, extra string) string {
	var sources, uris []string
	for _, s := range srcs {
		sources = append(sources, fmt.Sprintf("    { address = redis_database.%s.replication_endpoint },", s))
		uris = append(uris, fmt.Sprintf("    redis_source_url_password.%s.source_url,", s))
	}
	return fmt.Sprintf(`
resource "redis_replica_of" %q {
  provider    = %s
  database_id = redis_database.%s.id
  source = [
%s
  ]
  source_uris = [
%s
  ]
%s
  timeouts {
    create = "2m"
    update = "2m"
  }
}
`, dst, providerRef(alias), dst, strings.Join(sources, "\n"), strings.Join(uris, "\n"), extra)
}

// testAccClient connects to the database of a redis_database resource with
// its application password.
func testAccClient(s *terraform.State, name string) (*redis.Client, error) {
	rs, ok := s.RootModule().Resources[name]
	if !ok {
		return nil, fmt.Errorf("%s is not in the state", name)
	}
	return redis.NewClient(&redis.Options{
		Addr: rs.Primary.Attributes["endpoint"], Password: rs.Primary.Attributes["password"],
		DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		MaxRetries: -1,
	}), nil
}

// testAccEventually polls cond until it returns nil, for at most timeout.
func testAccEventually(timeout time.Duration, what string, cond func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var err error
	for {
		if err = cond(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: still not true after %s: %w", what, timeout, err)
		case <-time.After(100 * time.Millisecond): // poll interval, not a wait for an outcome
		}
	}
}

// testAccCheckReplicates writes a fresh key to each source database and
// waits until every destination database has all of them.
func testAccCheckReplicates(sources []string, destinations []string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		want := map[string]string{}
		for _, src := range sources {
			c, err := testAccClient(s, src)
			if err != nil {
				return err
			}
			key, value := "tf-acc:"+acctest.RandString(8), src
			err = c.Set(ctx, key, value, 0).Err()
			c.Close()
			if err != nil {
				return fmt.Errorf("SET on the source %s: %w", src, err)
			}
			want[key] = value
		}
		for _, dst := range destinations {
			c, err := testAccClient(s, dst)
			if err != nil {
				return err
			}
			err = testAccEventually(30*time.Second, "the writes reach "+dst, func(ctx context.Context) error {
				for k, v := range want {
					got, err := c.Get(ctx, k).Result()
					if err != nil {
						return fmt.Errorf("GET %s: %w", k, err)
					}
					if got != v {
						return fmt.Errorf("GET %s = %q, want %q", k, got, v)
					}
				}
				return nil
			})
			c.Close()
			if err != nil {
				return err
			}
		}
		return nil
	}
}

// testAccCheckKeyGone waits until key is absent from the database.
func testAccCheckKeysGone(dst string, keys *[]string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		c, err := testAccClient(s, dst)
		if err != nil {
			return err
		}
		defer c.Close()
		return testAccEventually(30*time.Second, "the keys leave "+dst, func(ctx context.Context) error {
			n, err := c.Exists(ctx, *keys...).Result()
			if err != nil {
				return err
			}
			if n != 0 {
				return fmt.Errorf("%d of %v still exist", n, *keys)
			}
			return nil
		})
	}
}

// testAccWriteKey writes a fresh key to the database and appends it to keys.
func testAccWriteKey(src string, keys *[]string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		c, err := testAccClient(s, src)
		if err != nil {
			return err
		}
		defer c.Close()
		key := "tf-acc:" + acctest.RandString(8)
		if err := c.Set(context.Background(), key, "x", 0).Err(); err != nil {
			return err
		}
		*keys = append(*keys, key)
		return nil
	}
}

// testAccCheckReadOnly checks that an application cannot write to a
// destination.
func testAccCheckReadOnly(dst string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		c, err := testAccClient(s, dst)
		if err != nil {
			return err
		}
		defer c.Close()
		err = c.Set(context.Background(), "tf-acc:forbidden", "x", 0).Err()
		if err == nil || !strings.Contains(err.Error(), "NOPERM") {
			return fmt.Errorf("a write to the destination %s gave %v, want a NOPERM error", dst, err)
		}
		return nil
	}
}

// testAccCheckSourceStatus checks the source_status of a redis_replica_of:
// one entry per source, each in sync, with the address of a source.
func testAccCheckSourceStatus(name string, n int) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs, ok := s.RootModule().Resources[name]
		if !ok {
			return fmt.Errorf("%s is not in the state", name)
		}
		a := rs.Primary.Attributes
		if a["source_status.%"] != strconv.Itoa(n) {
			return fmt.Errorf("%s has %s source statuses, want %d", name, a["source_status.%"], n)
		}
		if a["status"] != api.SourceInSync {
			return fmt.Errorf("%s status = %q", name, a["status"])
		}
		for k, v := range a {
			if strings.HasPrefix(k, "source_status.") && strings.HasSuffix(k, ".status") && v != api.SourceInSync {
				return fmt.Errorf("%s %s = %q", name, k, v)
			}
			if strings.HasPrefix(k, "source_status.") && strings.HasSuffix(k, ".last_error") && v != "" {
				return fmt.Errorf("%s %s = %q", name, k, v)
			}
		}
		return nil
	}
}

// checkReplica reads the destination of a redis_replica_of from the service
// and runs f on it.
func (e *testAccEnv) checkReplica(name string, f func(*api.Database) error) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		var uid int
		if err := testAccCaptureDatabaseUID(name, &uid)(s); err != nil {
			return err
		}
		db, err := e.client.GetDatabase(context.Background(), uid)
		if err != nil {
			return err
		}
		return f(db)
	}
}

// captureGeneration stores the generation of a redis_replica_of.
func captureGeneration(name string, gen *int64) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs, ok := s.RootModule().Resources[name]
		if !ok {
			return fmt.Errorf("%s is not in the state", name)
		}
		n, err := strconv.ParseInt(rs.Primary.Attributes["generation"], 10, 64)
		if err != nil {
			return fmt.Errorf("%s generation: %w", name, err)
		}
		*gen = n
		return nil
	}
}

// checkGeneration checks the generation of a redis_replica_of against the
// captured one: want is the expected increase.
func checkGeneration(name string, gen *int64, want int64) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		var now int64
		if err := captureGeneration(name, &now)(s); err != nil {
			return err
		}
		if now != *gen+want {
			return fmt.Errorf("%s generation = %d, want %d + %d", name, now, *gen, want)
		}
		*gen = now
		return nil
	}
}

func TestAccReplicaOf_oneToMany(t *testing.T) {
	r := testAccStartTwo(t)
	prefix := acctest.RandomWithPrefix("tf-acc")
	config := r.providers() +
		hclDatabase("a", "src", prefix) + hclSourcePassword("a", "src", "") +
		hclDatabase("b", "remote", prefix) + hclReplicaOf("b", "remote", []string{"src"}, "") +
		hclDatabase("a", "local", prefix) + hclReplicaOf("a", "local", []string{"src"}, "  wait_for_sync = false\n")

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccTwoRegionsFactories,
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("redis_replica_of.remote", "sync", api.SyncEnabled),
					resource.TestCheckResourceAttr("redis_replica_of.remote", "wait_for_sync", "true"),
					resource.TestCheckResourceAttr("redis_replica_of.remote", "source.#", "1"),
					resource.TestCheckResourceAttrPair("redis_replica_of.remote", "source.0.address", "redis_source_url_password.src", "address"),
					resource.TestCheckResourceAttrPair("redis_replica_of.remote", "database_id", "redis_database.remote", "id"),
					resource.TestCheckResourceAttrPair("redis_replica_of.local", "database_id", "redis_database.local", "id"),
					resource.TestCheckResourceAttr("redis_replica_of.remote", "generation", "1"),
					testAccCheckSourceStatus("redis_replica_of.remote", 1),
					resource.TestCheckResourceAttr("redis_replica_of.local", "wait_for_sync", "false"),
					resource.TestCheckResourceAttr("redis_replica_of.local", "source_status.%", "1"),
					testAccCheckReplicates([]string{"redis_database.src"}, []string{"redis_database.remote", "redis_database.local"}),
					testAccCheckReadOnly("redis_database.remote"),
					r.b.checkReplica("redis_replica_of.remote", func(db *api.Database) error {
						if len(db.ReplicaSources) != 1 || db.ReplicaSync != api.SyncEnabled {
							return fmt.Errorf("the service has %d sources, sync %q", len(db.ReplicaSources), db.ReplicaSync)
						}
						return nil
					}),
				),
			},
			// Both resources import by database id.
			{
				ResourceName:            "redis_replica_of.remote",
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts", "source_status"},
			},
			{
				ResourceName:            "redis_source_url_password.src",
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"keepers"},
			},
			{
				ResourceName:  "redis_replica_of.remote",
				ImportState:   true,
				ImportStateId: "orders",
				ExpectError:   regexp.MustCompile(`"orders" is not a database id`),
			},
		},
	})
}

// TestAccReplicaOf_manyToOne replicates three sources of two locations into
// one destination, then reorders, adds and removes sources.
func TestAccReplicaOf_manyToOne(t *testing.T) {
	r := testAccStartTwo(t)
	prefix := acctest.RandomWithPrefix("tf-acc")
	base := r.providers() +
		hclDatabase("a", "s1", prefix) + hclSourcePassword("a", "s1", "") +
		hclDatabase("b", "s2", prefix) + hclSourcePassword("b", "s2", "") +
		hclDatabase("a", "s3", prefix) + hclSourcePassword("a", "s3", "") +
		hclDatabase("b", "dst", prefix)
	const dst = "redis_replica_of.dst"
	var gen int64
	var s3Keys []string

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccTwoRegionsFactories,
		Steps: []resource.TestStep{
			{
				Config: base + hclReplicaOf("b", "dst", []string{"s1", "s2"}, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(dst, "source.#", "2"),
					testAccCheckSourceStatus(dst, 2),
					captureGeneration(dst, &gen),
					testAccCheckReplicates([]string{"redis_database.s1", "redis_database.s2"}, []string{"redis_database.dst"}),
				),
			},
			// The order of the sources has no meaning.
			{
				Config: base + hclReplicaOf("b", "dst", []string{"s2", "s1"}, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
			// Adding a source re-replicates from all of them.
			{
				Config: base + hclReplicaOf("b", "dst", []string{"s1", "s2", "s3"}, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(dst, plancheck.ResourceActionUpdate),
						plancheck.ExpectUnknownValue(dst, tfjsonpath.New("source_status")),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(dst, "source.#", "3"),
					testAccCheckSourceStatus(dst, 3),
					checkGeneration(dst, &gen, 1),
					testAccCheckReplicates([]string{"redis_database.s1", "redis_database.s2", "redis_database.s3"}, []string{"redis_database.dst"}),
					testAccWriteKey("redis_database.s3", &s3Keys),
					testAccWriteKey("redis_database.s3", &s3Keys),
					testAccCheckReplicates([]string{"redis_database.s1"}, []string{"redis_database.dst"}),
				),
			},
			// Removing a source re-replicates from the others: its keys go.
			{
				Config: base + hclReplicaOf("b", "dst", []string{"s2", "s1"}, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(dst, plancheck.ResourceActionUpdate),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(dst, "source.#", "2"),
					testAccCheckSourceStatus(dst, 2),
					checkGeneration(dst, &gen, 1),
					testAccCheckKeysGone("redis_database.dst", &s3Keys),
					testAccCheckReplicates([]string{"redis_database.s1", "redis_database.s2"}, []string{"redis_database.dst"}),
					r.b.checkReplica(dst, func(db *api.Database) error {
						if got := apiSourceAddresses(db.ReplicaSources); len(got) != 2 {
							return fmt.Errorf("the service has the sources %v", got)
						}
						return nil
					}),
				),
			},
		},
	})
}

// waitForService polls the destination of a redis_replica_of until f accepts it.
func (e *testAccEnv) waitForReplica(name, what string, f func(*api.Database) error) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		var uid int
		if err := testAccCaptureDatabaseUID(name, &uid)(s); err != nil {
			return err
		}
		return testAccEventually(time.Minute, what, func(ctx context.Context) error {
			db, err := e.client.GetDatabase(ctx, uid)
			if err != nil {
				return err
			}
			return f(db)
		})
	}
}

func syncIs(want string) func(*api.Database) error {
	return func(db *api.Database) error {
		if db.ReplicaSync != want {
			return fmt.Errorf("replica_sync is %q, want %q", db.ReplicaSync, want)
		}
		return nil
	}
}

// TestAccReplicaOf_syncStates pauses and resumes a sync (no flush), then
// stops and restarts it (flush and reload).
func TestAccReplicaOf_syncStates(t *testing.T) {
	r := testAccStartTwo(t)
	prefix := acctest.RandomWithPrefix("tf-acc")
	base := r.providers() + hclDatabase("a", "src", prefix) + hclSourcePassword("a", "src", "") + hclDatabase("b", "dst", prefix)
	config := func(sync string) string {
		return base + hclReplicaOf("b", "dst", []string{"src"}, fmt.Sprintf("  sync = %q\n", sync))
	}
	const dst = "redis_replica_of.dst"
	var gen int64
	var written []string
	empty := resource.ConfigPlanChecks{PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccTwoRegionsFactories,
		Steps: []resource.TestStep{
			{
				Config:           config(api.SyncEnabled),
				ConfigPlanChecks: empty,
				Check: resource.ComposeAggregateTestCheckFunc(
					captureGeneration(dst, &gen),
					testAccCheckReplicates([]string{"redis_database.src"}, []string{"redis_database.dst"}),
				),
			},
			{
				Config:           config(api.SyncPaused),
				ConfigPlanChecks: empty,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(dst, "sync", api.SyncPaused),
					r.b.waitForReplica(dst, "the sync is paused", func(db *api.Database) error {
						if db.ReplicaSync != api.SyncPaused || db.ReplicaSyncStatus != api.SourceOutOfSync {
							return fmt.Errorf("replica_sync %q, status %q", db.ReplicaSync, db.ReplicaSyncStatus)
						}
						return nil
					}),
					testAccWriteKey("redis_database.src", &written),
				),
			},
			// Resuming continues where the sync was: no flush.
			{
				Config:           config(api.SyncEnabled),
				ConfigPlanChecks: empty,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(dst, "sync", api.SyncEnabled),
					testAccCheckSourceStatus(dst, 1),
					checkGeneration(dst, &gen, 0),
					testAccCheckKeysPresent("redis_database.dst", &written),
					testAccCheckReplicates([]string{"redis_database.src"}, []string{"redis_database.dst"}),
				),
			},
			{
				Config:           config(api.SyncStopped),
				ConfigPlanChecks: empty,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(dst, "sync", api.SyncStopped),
					r.b.waitForReplica(dst, "the sync is stopped", syncIs(api.SyncStopped)),
					testAccWriteKey("redis_database.src", &written),
				),
			},
			// Restarting a stopped sync flushes and reloads.
			{
				Config: config(api.SyncEnabled),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(dst, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckSourceStatus(dst, 1),
					checkGeneration(dst, &gen, 1),
					testAccCheckKeysPresent("redis_database.dst", &written),
					testAccCheckReplicates([]string{"redis_database.src"}, []string{"redis_database.dst"}),
				),
			},
		},
	})
}

// testAccCheckKeysPresent waits until every key is in the database.
func testAccCheckKeysPresent(dst string, keys *[]string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		c, err := testAccClient(s, dst)
		if err != nil {
			return err
		}
		defer c.Close()
		return testAccEventually(30*time.Second, "the keys reach "+dst, func(ctx context.Context) error {
			n, err := c.Exists(ctx, *keys...).Result()
			if err != nil {
				return err
			}
			if n != int64(len(*keys)) {
				return fmt.Errorf("%d of %d keys exist", n, len(*keys))
			}
			return nil
		})
	}
}

// TestAccReplicaOf_passwordRotation regenerates the source's password
// through keepers while the destination keeps the old URL: once the old
// password's grace period is over (a few seconds here), the service stops
// the sync with an authentication error, which the next plan shows; giving
// the destination the new URL recovers without a reload.
func TestAccReplicaOf_passwordRotation(t *testing.T) {
	r := &testAccTwoRegions{a: testAccStartWith(t, testAccShortGrace), b: testAccStart(t)}
	prefix := acctest.RandomWithPrefix("tf-acc")
	config := func(keeper, extra string) string {
		return r.providers() + hclDatabase("a", "src", prefix) + hclSourcePassword("a", "src", keeper) +
			hclDatabase("b", "dst", prefix) + hclReplicaOf("b", "dst", []string{"src"}, extra)
	}
	const dst = "redis_replica_of.dst"
	const pw = "redis_source_url_password.src"
	keepOldURL := "  lifecycle {\n    ignore_changes = [source_uris]\n  }\n"
	var oldPassword string
	var gen int64
	var srcUID int

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccTwoRegionsFactories,
		Steps: []resource.TestStep{
			{
				Config: config("1", ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestMatchResourceAttr(pw, "password", regexp.MustCompile(`^.{16,}$`)),
					resource.TestCheckResourceAttrPair(pw, "address", "redis_database.src", "replication_endpoint"),
					func(s *terraform.State) error {
						a := s.RootModule().Resources[pw].Primary.Attributes
						oldPassword = a["password"]
						if !strings.Contains(a["source_url"], url.QueryEscape(oldPassword)) || !strings.HasPrefix(a["source_url"], "redis://admin:") {
							return fmt.Errorf("source_url does not hold the admin user and the password")
						}
						return nil
					},
					captureGeneration(dst, &gen),
					testAccCaptureDatabaseUID("redis_database.src", &srcUID),
					testAccCheckReplicates([]string{"redis_database.src"}, []string{"redis_database.dst"}),
				),
			},
			// A new keeper regenerates the password; the destination still
			// has the old URL and, after the grace period, fails to
			// authenticate and stops.
			{
				Config: config("2", keepOldURL),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(pw, plancheck.ResourceActionDestroyBeforeCreate),
						plancheck.ExpectResourceAction(dst, plancheck.ResourceActionNoop),
					},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					func(s *terraform.State) error {
						if s.RootModule().Resources[pw].Primary.Attributes["password"] == oldPassword {
							return errors.New("the password was not regenerated")
						}
						return nil
					},
					r.b.waitForReplica(dst, "the sync stops on an authentication error", func(db *api.Database) error {
						if db.ReplicaSync != api.SyncStopped {
							return fmt.Errorf("replica_sync is %q", db.ReplicaSync)
						}
						if len(db.ReplicaSources) != 1 || !authError.MatchString(db.ReplicaSources[0].LastError) {
							return fmt.Errorf("the last error is not an authentication error: %+v", db.ReplicaSources)
						}
						return nil
					}),
				),
				// The refresh finds the sync stopped by the service.
				ExpectNonEmptyPlan: true,
			},
			// The state shows why, without the password.
			{
				RefreshState:       true,
				ExpectNonEmptyPlan: true,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(dst, "sync", api.SyncStopped),
					resource.TestCheckResourceAttr(dst, "status", api.SourceOutOfSync),
					func(s *terraform.State) error {
						a := s.RootModule().Resources[dst].Primary.Attributes
						for k, v := range a {
							if strings.HasSuffix(k, ".last_error") {
								if !authError.MatchString(v) {
									return fmt.Errorf("%s = %q", k, v)
								}
								if strings.Contains(v, oldPassword) {
									return fmt.Errorf("%s holds the password", k)
								}
								return nil
							}
						}
						return errors.New("no last_error in source_status")
					},
				),
			},
			// The new URL (and sync enabled again) recovers, from where
			// the sync stopped: no flush, no reload, and the plan says so
			// (the generation stays known).
			{
				Config: config("2", ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(dst, plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue(dst, tfjsonpath.New("generation"), knownvalue.Int64Func(func(v int64) error {
							if v != gen {
								return fmt.Errorf("planned generation %d, want %d (no reload)", v, gen)
							}
							return nil
						})),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(dst, "sync", api.SyncEnabled),
					testAccCheckSourceStatus(dst, 1),
					checkGeneration(dst, &gen, 0),
					testAccCheckReplicates([]string{"redis_database.src"}, []string{"redis_database.dst"}),
				),
			},
			// A password regenerated through the API: the password resource
			// follows it on refresh, and the destination gets the new URL.
			// The new password has no keepers (refresh reads that, as an
			// import does): the configured ones are recorded in place,
			// without a regeneration.
			{
				PreConfig: func() {
					if _, err := r.a.client.RegenerateAdminPassword(testAccContext(t), srcUID, nil); err != nil {
						t.Fatal(err)
					}
				},
				Config: config("2", ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(pw, plancheck.ResourceActionUpdate),
						plancheck.ExpectResourceAction(dst, plancheck.ResourceActionUpdate),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckSourceStatus(dst, 1),
					testAccCheckReplicates([]string{"redis_database.src"}, []string{"redis_database.dst"}),
					r.a.checkSourceURLMatches(pw),
				),
			},
		},
	})
}

var authError = regexp.MustCompile(`(?i)auth|WRONGPASS|password`)

// TestAccReplicaOf_drift changes a replica through the API: a stopped sync,
// other sources, other credentials and a removed Replica Of each show in the
// next plan, and the apply puts the configuration back.
func TestAccReplicaOf_drift(t *testing.T) {
	r := testAccStartTwo(t)
	prefix := acctest.RandomWithPrefix("tf-acc")
	config := r.providers() +
		hclDatabase("a", "src", prefix) + hclSourcePassword("a", "src", "") +
		hclDatabase("a", "other", prefix) + hclSourcePassword("a", "other", "") +
		hclDatabase("b", "dst", prefix) + hclReplicaOf("b", "dst", []string{"src"}, "")
	const dst = "redis_replica_of.dst"
	var uid int
	var srcURL, otherURL string
	var gen int64
	ctx := testAccContext(t)
	outOfBand := func(in api.UpdateDatabaseRequest) func() {
		return func() {
			if _, err := r.b.client.UpdateDatabase(ctx, uid, in); err != nil {
				t.Fatalf("out-of-band update: %v", err)
			}
		}
	}
	stopped, none := api.SyncStopped, []api.ReplicaSource{}
	expectUpdate := resource.ConfigPlanChecks{
		PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(dst, plancheck.ResourceActionUpdate)},
		PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
	}
	inSync := resource.ComposeAggregateTestCheckFunc(
		testAccCheckSourceStatus(dst, 1),
		testAccCheckReplicates([]string{"redis_database.src"}, []string{"redis_database.dst"}),
		r.b.checkReplica(dst, func(db *api.Database) error {
			if len(db.ReplicaSources) != 1 || db.ReplicaSources[0].URI != srcURL {
				return fmt.Errorf("the service has the sources %v", apiSourceAddresses(db.ReplicaSources))
			}
			return nil
		}),
	)

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
						otherURL = s.RootModule().Resources["redis_source_url_password.other"].Primary.Attributes["source_url"]
						return nil
					},
				),
			},
			// The sync stopped through the API.
			{
				PreConfig:          outOfBand(api.UpdateDatabaseRequest{ReplicaSync: &stopped}),
				Config:             config,
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				Config:           config,
				ConfigPlanChecks: expectUpdate,
				Check:            resource.ComposeAggregateTestCheckFunc(inSync, checkGeneration(dst, &gen, 1)),
			},
			// Another source set through the API.
			{
				PreConfig: func() {
					outOfBand(api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: otherURL}}})()
				},
				Config:           config,
				ConfigPlanChecks: expectUpdate,
				Check:            resource.ComposeAggregateTestCheckFunc(inSync, checkGeneration(dst, &gen, 2)),
			},
			// Other credentials for the same source through the API: the
			// service reconnects with them (no reload) and stops the sync on
			// the authentication error; the apply sends the configured URL and
			// enables the sync again, which continues from the checkpoints
			// (a sync stopped on a refused password owes no reload).
			{
				PreConfig: func() {
					u, _ := url.Parse(srcURL)
					u.User = url.UserPassword("admin", "not-the-password")
					outOfBand(api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: u.String()}}})()
					err := testAccEventually(time.Minute, "the sync stops", func(ctx context.Context) error {
						db, err := r.b.client.GetDatabase(ctx, uid)
						if err != nil {
							return err
						}
						return syncIs(api.SyncStopped)(db)
					})
					if err != nil {
						t.Fatal(err)
					}
				},
				Config:           config,
				ConfigPlanChecks: expectUpdate,
				Check:            resource.ComposeAggregateTestCheckFunc(inSync, checkGeneration(dst, &gen, 0)),
			},
			// Replica Of removed through the API: planned for creation.
			{
				PreConfig: outOfBand(api.UpdateDatabaseRequest{ReplicaSources: &none}),
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(dst, plancheck.ResourceActionCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: inSync,
			},
		},
	})
}

// TestAccReplicaOf_writeOnly feeds the source URL of an ephemeral resource
// to source_uris_wo: nothing of it reaches the state. A password regenerated
// through the API is sent to the destination by bumping the version.
func TestAccReplicaOf_writeOnly(t *testing.T) {
	r := &testAccTwoRegions{a: testAccStartWith(t, testAccShortGrace), b: testAccStart(t)}
	prefix := acctest.RandomWithPrefix("tf-acc")
	config := func(version int) string {
		return r.providers() + hclDatabase("a", "src", prefix) + hclDatabase("b", "dst", prefix) + fmt.Sprintf(`
ephemeral "redis_source_url" "src" {
  provider    = redis
  database_id = redis_database.src.id
}

resource "redis_replica_of" "dst" {
  provider               = redisb
  database_id            = redis_database.dst.id
  source                 = [{ address = redis_database.src.replication_endpoint }]
  source_uris_wo         = [ephemeral.redis_source_url.src.uri]
  source_uris_wo_version = %d
}
`, version)
	}
	const dst = "redis_replica_of.dst"
	var srcUID, dstUID int
	var gen int64

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccTwoRegionsFactories,
		Steps: []resource.TestStep{
			{
				Config: config(1),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckNoResourceAttr(dst, "source_uris_wo.#"),
					resource.TestCheckNoResourceAttr(dst, "source_uris.#"),
					resource.TestCheckResourceAttr(dst, "source_uris_wo_version", "1"),
					testAccCheckSourceStatus(dst, 1),
					testAccCaptureDatabaseUID("redis_database.src", &srcUID),
					captureGeneration(dst, &gen),
					testAccCheckReplicates([]string{"redis_database.src"}, []string{"redis_database.dst"}),
				),
			},
			// The password regenerated through the API stops the sync
			// once its grace period is over...
			{
				PreConfig: func() {
					if _, err := r.a.client.RegenerateAdminPassword(testAccContext(t), srcUID, nil); err != nil {
						t.Fatal(err)
					}
				},
				RefreshState:       true,
				ExpectNonEmptyPlan: true,
				Check: r.b.waitForReplica(dst, "the sync stops", func(db *api.Database) error {
					return syncIs(api.SyncStopped)(db)
				}),
			},
			// ... and a new version sends the current URL: the sync
			// continues from the checkpoints, without a reload.
			{
				Config: config(2),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(dst, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckSourceStatus(dst, 1),
					checkGeneration(dst, &gen, 0),
					testAccCheckReplicates([]string{"redis_database.src"}, []string{"redis_database.dst"}),
				),
			},
			// A new URL without a new version (the password regenerated
			// again, or a source replaced at the same address): the
			// provider sees that it differs from the URL it sent, and
			// sends it, instead of leaving the destination on a password
			// that no longer works.
			{
				PreConfig: func() {
					if _, err := r.a.client.RegenerateAdminPassword(testAccContext(t), srcUID, nil); err != nil {
						t.Fatal(err)
					}
				},
				Config: config(2),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(dst, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckSourceStatus(dst, 1),
					r.b.waitForReplica(dst, "the destination has the current URL", func(db *api.Database) error {
						su, err := r.a.client.GetSourceURL(testAccContext(t), srcUID)
						if err != nil {
							return err
						}
						if len(db.ReplicaSources) != 1 || db.ReplicaSources[0].URI != su.URI {
							return errors.New("the destination still has the previous URL")
						}
						return syncIs(api.SyncEnabled)(db)
					}),
					testAccCheckReplicates([]string{"redis_database.src"}, []string{"redis_database.dst"}),
					testAccCaptureDatabaseUID("redis_database.dst", &dstUID),
				),
			},
			// A wrong password put on the destination behind Terraform's
			// back stops the sync; the apply that enables it again sends
			// the configuration's URL (it cannot read the one the service
			// holds to compare), instead of failing with the wrong one
			// at every apply.
			{
				PreConfig: func() {
					ctx := testAccContext(t)
					su, err := r.a.client.GetSourceURL(ctx, srcUID)
					if err != nil {
						t.Fatal(err)
					}
					u, err := url.Parse(su.URI)
					if err != nil {
						t.Fatal(err)
					}
					u.User = url.UserPassword(u.User.Username(), "not-the-password")
					wrong := []api.ReplicaSource{{URI: u.String()}}
					if _, err := r.b.client.UpdateDatabase(ctx, dstUID, api.UpdateDatabaseRequest{ReplicaSources: &wrong}); err != nil {
						t.Fatal(err)
					}
				},
				RefreshState:       true,
				ExpectNonEmptyPlan: true,
				Check: r.b.waitForReplica(dst, "the sync stops", func(db *api.Database) error {
					return syncIs(api.SyncStopped)(db)
				}),
			},
			{
				Config: config(2),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(dst, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckSourceStatus(dst, 1),
					testAccCheckReplicates([]string{"redis_database.src"}, []string{"redis_database.dst"}),
				),
			},
		},
	})
}

// TestAccReplicaOf_invalid checks that mistakes in the sources fail at plan
// time, before any API call, with messages that show no password.
func TestAccReplicaOf_invalid(t *testing.T) {
	testAccRequire(t)
	testCert := testCertificatePEM(t, "invalid")
	provider := `
provider "redis" {
  endpoint = "https://127.0.0.1:1"
  password = "unused"
}
`
	config := func(body string) string {
		return provider + `
resource "redis_replica_of" "bad" {
  database_id = "1"
` + body + `
}
`
	}
	steps := []struct {
		body string
		want string
	}{
		{`source = [{ address = "127.0.0.1:06379" }]`, `Write the address "127.0.0.1:06379" as\s+"127.0.0.1:6379"`},
		{`source = [{ address = "cache.internal" }]`, `a source address is not a host:port address`},
		{`source = [{ address = "redis://:s3cret-pw@10.0.0.1:6379" }]`, `a source address is a URL, "redis://:xxxxx@10.0.0.1:6379", not a host:port address`},
		{"source = [{ address = \"10.0.0.1:6379\" }]\nsource_uris = [\"s3cret-pw\"]", `invalid source URL \(the value is not shown: it does not parse, and may be a secret\): the scheme must be redis:// or rediss://`},
		{`source = [{ address = "10.0.0.1:6379" }, { address = "10.0.0.1:6379", compression = 2 }]`, `The source 10.0.0.1:6379 is listed twice`},
		// Host names are not case-sensitive: the same server twice.
		{`source = [{ address = "cache.example.com:6379" }, { address = "CACHE.example.com:6379" }]`, `The source (?i:cache.example.com):6379 is listed twice`},
		{"source = [{ address = \"10.0.0.1:6379\" }]\nsource_uris = [\"redis://:s3cret-pw@10.0.0.2:6379\"]", `(?s)A URL in source_uris or source_uris_wo is for\s+10.0.0.2:6379, which is not the address of any source\s+\(10.0.0.1:6379\)`},
		{"source = [{ address = \"10.0.0.1:6379\" }]\nsource_uris = [\"redis://:s3cret-pw@10.0.0.1:6379\", \"redis://:other-pw@10.0.0.1:6379\"]", `Two source URLs \(in source_uris or source_uris_wo\) are for 10.0.0.1:6379`},
		{"source = [{ address = \"10.0.0.1:6379\" }]\nsource_uris = [\"http://admin:s3cret-pw@10.0.0.1:6379\"]", `(?s)invalid source URL "http://admin:xxxxx@10.0.0.1:6379": the scheme must\s+be redis:// or rediss://`},
		{`source = []`, `A Replica Of needs at least one source. To end it`},
		{`source = [for a in [] : { address = a }]`, `remove the redis_replica_of resource instead, or give it count = 0`},
		{"source = [{ address = \"10.0.0.1:6379\", compression = 9 }]", `value must be between 0 and 6, got: 9`},
		{"source = [{ address = \"10.0.0.1:6379\" }]\nsync = \"running\"", `value must be one of`},
		{"source = [{ address = \"10.0.0.1:6379\", encryption = true }]", `The source 10.0.0.1:6379 has encryption = true but no server_cert`},
		{"source = [{ address = \"10.0.0.1:6379\", server_cert = " + hclString(testCert) + " }]", `The source 10.0.0.1:6379 has a server_cert but not encryption = true`},
		{"source = [{ address = \"10.0.0.1:6379\", encryption = true, server_cert = \"not a certificate\" }]", `the value is not PEM`},
		{"source = [{ address = \"10.0.0.1:6379\" }]\nsource_uris = [\"rediss://:s3cret-pw@10.0.0.1:6379\"]", `The URL for the source 10.0.0.1:6379 is rediss://, but the source does not have encryption = true`},
		{"source = [{ address = \"10.0.0.1:6379\" }]\nsource_uris_wo = [\"redis://:s3cret-pw@10.0.0.1:6379\"]", `(?s)Attribute "source_uris_wo_version" must be specified when "source_uris_wo" is specified`},
		{"source = [{ address = \"10.0.0.1:6379\" }]\nsource_uris_wo_version = 1", `(?s)Attribute "source_uris_wo" must be specified when "source_uris_wo_version" is specified`},
		{"source = [{ address = \"10.0.0.1:6379\" }]\ntimeouts {\n update = \"0s\"\n}", `The update timeout must be a positive duration`},
		{`source = [{ address = "[fe80::1%eth0]:6379" }]`, `a source address has an IPv6 zone`},
	}
	var ts []resource.TestStep
	for _, s := range steps {
		// Terraform wraps the messages: any space may be a line break.
		want := strings.ReplaceAll(s.want, " ", `\s+`)
		ts = append(ts, resource.TestStep{Config: config(s.body), PlanOnly: true, ExpectError: regexp.MustCompile(want)})
	}
	resource.Test(t, resource.TestCase{ProtoV6ProviderFactories: testAccProtoV6ProviderFactories, Steps: ts})
}

// checkSourceURLMatches checks that a redis_source_url_password holds the
// database's current source URL.
func (e *testAccEnv) checkSourceURLMatches(name string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		var uid int
		if err := testAccCaptureDatabaseUID(name, &uid)(s); err != nil {
			return err
		}
		su, err := e.client.GetSourceURL(context.Background(), uid)
		if err != nil {
			return err
		}
		if s.RootModule().Resources[name].Primary.Attributes["source_url"] != su.URI {
			return fmt.Errorf("%s does not hold the current source URL", name)
		}
		return nil
	}
}

// A destination that does not exist is an error at plan time, not a
// warning that it will be flushed followed by an error at apply time.
func TestAccReplicaOf_missingDestination(t *testing.T) {
	e := testAccStart(t)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: e.providerConfig() + `
resource "redis_replica_of" "dst" {
  database_id = "9999"
  source      = [{ address = "127.0.0.1:6379" }]
}
`,
			PlanOnly:    true,
			ExpectError: regexp.MustCompile(`(?s)No such database.*The database 9999 does not exist`),
		}},
	})
}

// A database named as its own source (its replication endpoint, its port,
// by any name of the service's host) is an error at plan time, when the
// destination exists: not a plan that warns of a flush followed by an apply
// that the service refuses.
func TestAccReplicaOf_ownSourceAtPlan(t *testing.T) {
	e := testAccStart(t)
	legacy := redistest.Start(t)
	prefix := acctest.RandomWithPrefix("tf-acc")
	dbs := e.providerConfig() + hclDatabase("a", "dst", prefix) + hclDatabase("a", "solo", prefix)
	replica := func(sources string) string {
		return dbs + fmt.Sprintf(`
resource "redis_replica_of" "dst" {
  database_id = redis_database.dst.id
  source      = [%s]
}
`, sources)
	}
	legacySource := fmt.Sprintf("{ address = %q }", legacy.Addr())
	itself := `(?s)A database cannot be a Replica Of itself.*The\s+source\s+%s\s+is\s+the\s+database\s+%s\s+\(%q\)\s+itself`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: replica(legacySource)},
			{
				// A source added to an existing Replica Of: its replication endpoint.
				Config:   replica(legacySource + ", { address = redis_database.dst.replication_endpoint }"),
				PlanOnly: true,
				ExpectError: regexp.MustCompile(fmt.Sprintf(itself, `127\.0\.0\.1:\d+`, `\d+`,
					prefix+"-dst")),
			},
			{
				// A new Replica Of of an existing database: its own port,
				// by the name localhost.
				Config: replica(legacySource) + `
resource "redis_replica_of" "solo" {
  database_id = redis_database.solo.id
  source      = [{ address = "localhost:${split(":", redis_database.solo.endpoint)[1]}" }]
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(fmt.Sprintf(itself, `localhost:\d+`, `\d+`, prefix+"-solo")),
			},
		},
	})
}

// A Replica Of that would close a replication cycle through the Replica Of
// that the service has already (a <- b, then b <- a) is an error at plan
// time, as the service refuses it, not a plan that warns of a flush
// followed by a failed apply.
func TestAccReplicaOf_cycleAtPlan(t *testing.T) {
	e := testAccStart(t)
	prefix := acctest.RandomWithPrefix("tf-acc")
	base := e.providerConfig() + hclDatabase("a", "a", prefix) + hclDatabase("a", "b", prefix) + hclDatabase("a", "c", prefix) +
		hclSourcePassword("a", "a", "") + hclSourcePassword("a", "b", "") + hclSourcePassword("a", "c", "") +
		hclReplicaOf("a", "a", []string{"b"}, "") + hclReplicaOf("a", "b", []string{"c"}, "")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: base},
			{
				// c <- a closes a <- b <- c.
				Config:   base + hclReplicaOf("a", "c", []string{"a"}, ""),
				PlanOnly: true,
				ExpectError: regexp.MustCompile(`(?s)A replication cycle.*` + strings.ReplaceAll(
					regexp.QuoteMeta(fmt.Sprintf(`%[1]s-c <- %[1]s-a, %[1]s-a <- %[1]s-b, %[1]s-b <- %[1]s-c`, prefix)), " ", `\s+`)),
			},
		},
	})
}

// Two redis_replica_of on one database_id, created in the same apply
// (in parallel): one makes it a Replica Of, the other fails and says to
// import it, instead of both being created and undoing each other at
// every later apply.
func TestAccReplicaOf_twoResourcesOnOneDatabase(t *testing.T) {
	e := testAccStart(t)
	src := redistest.Start(t)
	prefix := acctest.RandomWithPrefix("tf-acc")
	config := e.providerConfig() + hclDatabase("a", "dst", prefix) + fmt.Sprintf(`
resource "redis_replica_of" "one" {
  database_id = redis_database.dst.id
  source      = [{ address = %[1]q }]
}

resource "redis_replica_of" "two" {
  database_id = redis_database.dst.id
  source      = [{ address = %[1]q, compression = 0, read_from = "replica" }]
}
`, src.Addr())
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      config,
			ExpectError: regexp.MustCompile(`(?s)The database is already a Replica Of.*terraform import`),
		}},
	})
}

// Host names are not case-sensitive, for the service either: the same
// source written in another case is the same source, continued without a
// flush. The plan said the destination would be flushed (a source added and
// one removed), with an unknown generation.
func TestAccReplicaOf_hostNameCaseDoesNotFlush(t *testing.T) {
	e := testAccStart(t)
	legacy := redistest.Start(t)
	prefix := acctest.RandomWithPrefix("tf-acc")
	const dst = "redis_replica_of.dst"
	config := func(host string) string {
		return e.providerConfig() + hclDatabase("a", "dst", prefix) + fmt.Sprintf(`
resource "redis_replica_of" "dst" {
  database_id = redis_database.dst.id
  source      = [{ address = "%s:%d" }]
}
`, host, legacy.Port)
	}
	var gen int64
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config("localhost"),
				Check:  captureGeneration(dst, &gen),
			},
			{
				Config: config("LOCALHOST"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(dst, plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue(dst, tfjsonpath.New("generation"), knownvalue.Int64Func(func(v int64) error {
							if v != gen {
								return fmt.Errorf("the plan changes the generation from %d to %d", gen, v)
							}
							return nil
						})),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkGeneration(dst, &gen, 0),
					resource.TestCheckResourceAttr(dst, "status", api.SourceInSync),
				),
			},
		},
	})
}
