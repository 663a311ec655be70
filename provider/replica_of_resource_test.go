package provider

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/helper/acctest"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/redis/go-redis/v9"

	"github.com/replicad/terraform-provider-redis/internal/api"
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
		sources = append(sources, fmt.Sprintf("    { address = redis_source_url_password.%s.address },", s))
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

func TestAccReplicaOf_oneToMany(t *testing.T) {
	r := testAccStartTwo(t)
	prefix := acctest.RandomWithPrefix("tf-acc")
	config := r.providers() +
		hclDatabase("a", "src", prefix) + hclSourcePassword("a", "src", "") +
		hclDatabase("b", "remote", prefix) + hclReplicaOf("b", "remote", []string{"src"}, "") +
		hclDatabase("a", "local", prefix) + hclReplicaOf("a", "local", []string{"src"}, "")

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
					resource.TestCheckResourceAttr("redis_replica_of.remote", "source.#", "1"),
					resource.TestCheckResourceAttrPair("redis_replica_of.remote", "source.0.address", "redis_database.src", "endpoint"),
					resource.TestCheckResourceAttrPair("redis_replica_of.remote", "database_id", "redis_database.remote", "id"),
					resource.TestCheckResourceAttrPair("redis_replica_of.local", "database_id", "redis_database.local", "id"),
					testAccCheckSourceStatus("redis_replica_of.remote", 1),
					testAccCheckSourceStatus("redis_replica_of.local", 1),
					testAccCheckReplicates([]string{"redis_database.src"}, []string{"redis_database.remote", "redis_database.local"}),
					testAccCheckReadOnly("redis_database.remote"),
				),
			},
		},
	})
	_ = errors.New
	_ = regexp.MustCompile
}
