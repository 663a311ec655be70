package provider

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/acctest"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"github.com/redis/go-redis/v9"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/client"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

const testAccDatabaseResource = "redis_database.test"

func TestAccDatabaseResource_basic(t *testing.T) {
	e := testAccStart(t)
	name := acctest.RandomWithPrefix("tf-acc")
	var uid int

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             e.checkDatabasesDestroyed,
		Steps: []resource.TestStep{
			// Create with a generated password and port.
			{
				Config: e.providerConfig() + testAccDatabaseConfig(name, 64<<20, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(testAccDatabaseResource, plancheck.ResourceActionCreate),
						plancheck.ExpectUnknownValue(testAccDatabaseResource, tfjsonpath.New("password")),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(testAccDatabaseResource, "name", name),
					resource.TestCheckResourceAttr(testAccDatabaseResource, "memory_size", strconv.Itoa(64<<20)),
					resource.TestCheckResourceAttr(testAccDatabaseResource, "status", api.StatusActive),
					resource.TestMatchResourceAttr(testAccDatabaseResource, "id", regexp.MustCompile(`^[1-9][0-9]*$`)),
					resource.TestMatchResourceAttr(testAccDatabaseResource, "port", regexp.MustCompile(`^[1-9][0-9]*$`)),
					resource.TestMatchResourceAttr(testAccDatabaseResource, "endpoint", regexp.MustCompile(`^.+:[1-9][0-9]*$`)),
					resource.TestMatchResourceAttr(testAccDatabaseResource, "password", regexp.MustCompile(`^.{8,}$`)),
					testAccCaptureDatabaseUID(testAccDatabaseResource, &uid),
					testAccCheckDatabaseConnects(testAccDatabaseResource),
				),
			},
			// Update memory_size and password in place.
			{
				Config: e.providerConfig() + testAccDatabaseConfig(name, 128<<20, "tf-acc-password-2"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(testAccDatabaseResource, plancheck.ResourceActionUpdate),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(testAccDatabaseResource, "memory_size", strconv.Itoa(128<<20)),
					resource.TestCheckResourceAttr(testAccDatabaseResource, "password", "tf-acc-password-2"),
					resource.TestCheckResourceAttr(testAccDatabaseResource, "status", api.StatusActive),
					testAccCheckDatabaseUIDUnchanged(testAccDatabaseResource, &uid),
					testAccCheckDatabaseConnects(testAccDatabaseResource),
					e.checkDatabaseMatches(testAccDatabaseResource, func(db *api.Database) error {
						if db.MemorySize != 128<<20 {
							return fmt.Errorf("the service has memory_size %d", db.MemorySize)
						}
						return nil
					}),
				),
			},
			// Removing the password from the configuration keeps it.
			{
				Config: e.providerConfig() + testAccDatabaseConfig(name, 128<<20, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.TestCheckResourceAttr(testAccDatabaseResource, "password", "tf-acc-password-2"),
			},
			// Import by id.
			{
				ResourceName:      testAccDatabaseResource,
				ImportState:       true,
				ImportStateVerify: true,
			},
			// A change made through the API shows in the next plan, and the
			// apply puts the configured value back.
			{
				PreConfig: func() {
					size := int64(96 << 20)
					if _, err := e.client.UpdateDatabase(testAccContext(t), uid, api.UpdateDatabaseRequest{MemorySize: &size}); err != nil {
						t.Fatalf("out-of-band update: %v", err)
					}
				},
				Config: e.providerConfig() + testAccDatabaseConfig(name, 128<<20, "tf-acc-password-2"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(testAccDatabaseResource, plancheck.ResourceActionUpdate),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(testAccDatabaseResource, "memory_size", strconv.Itoa(128<<20)),
					testAccCheckDatabaseUIDUnchanged(testAccDatabaseResource, &uid),
				),
			},
			// The same drift, seen by a plan only.
			{
				PreConfig: func() {
					size := int64(32 << 20)
					if _, err := e.client.UpdateDatabase(testAccContext(t), uid, api.UpdateDatabaseRequest{MemorySize: &size}); err != nil {
						t.Fatalf("out-of-band update: %v", err)
					}
				},
				Config:             e.providerConfig() + testAccDatabaseConfig(name, 128<<20, "tf-acc-password-2"),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			// A database deleted outside Terraform is planned for creation.
			{
				PreConfig: func() {
					ctx := testAccContext(t)
					if err := e.client.DeleteDatabase(ctx, uid); err != nil {
						t.Fatalf("out-of-band delete: %v", err)
					}
					if err := waitForDatabaseDeleted(ctx, e.client, uid, time.Minute); err != nil {
						t.Fatal(err)
					}
				},
				Config: e.providerConfig() + testAccDatabaseConfig(name, 128<<20, "tf-acc-password-2"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(testAccDatabaseResource, plancheck.ResourceActionCreate),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(testAccDatabaseResource, "status", api.StatusActive),
					testAccCheckDatabaseConnects(testAccDatabaseResource),
				),
			},
		},
	})
}

func TestAccDatabaseResource_port(t *testing.T) {
	e := testAccStart(t)
	name := acctest.RandomWithPrefix("tf-acc")
	port := redistest.FreePort(t)
	other := redistest.FreePort(t)
	var uid int

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             e.checkDatabasesDestroyed,
		Steps: []resource.TestStep{
			{
				Config: e.providerConfig() + testAccDatabaseConfigPort(name, port),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(testAccDatabaseResource, "port", strconv.Itoa(port)),
					resource.TestMatchResourceAttr(testAccDatabaseResource, "endpoint", regexp.MustCompile(":"+strconv.Itoa(port)+"$")),
					testAccCaptureDatabaseUID(testAccDatabaseResource, &uid),
					testAccCheckDatabaseConnects(testAccDatabaseResource),
				),
			},
			// A restarted service gives the same database back: no change.
			{
				PreConfig: func() { e.inst.Restart(t) },
				Config:    e.providerConfig() + testAccDatabaseConfigPort(name, port),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckDatabaseUIDUnchanged(testAccDatabaseResource, &uid),
					resource.TestCheckResourceAttr(testAccDatabaseResource, "status", api.StatusActive),
					testAccCheckDatabaseConnects(testAccDatabaseResource),
				),
			},
			// Removing the port from the configuration keeps it.
			{
				Config: e.providerConfig() + testAccDatabaseConfigPort(name, 0),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.TestCheckResourceAttr(testAccDatabaseResource, "port", strconv.Itoa(port)),
			},
			// An import id that is not a uid is refused.
			{
				ResourceName:  testAccDatabaseResource,
				ImportState:   true,
				ImportStateId: "my-database",
				ExpectError:   regexp.MustCompile(`"my-database" is not a database id`),
			},
			// A new port replaces the database.
			{
				Config: e.providerConfig() + testAccDatabaseConfigPort(name, other),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(testAccDatabaseResource, plancheck.ResourceActionDestroyBeforeCreate),
					},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(testAccDatabaseResource, "port", strconv.Itoa(other)),
					testAccCheckDatabaseConnects(testAccDatabaseResource),
					func(*terraform.State) error {
						if _, err := e.client.GetDatabase(context.Background(), uid); !client.IsNotFound(err) {
							return fmt.Errorf("the replaced database %d still exists (err %v)", uid, err)
						}
						return nil
					},
				),
			},
		},
	})
}

// TestAccDatabaseResource_invalid checks that bad values fail at plan time,
// before any API call: the provider points at an address where nothing listens.
func TestAccDatabaseResource_invalid(t *testing.T) {
	testAccRequire(t)
	provider := `
provider "redis" {
  endpoint = "https://127.0.0.1:1"
  password = "unused"
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: append([]resource.TestStep{
			{
				Config:      provider + testAccDatabaseConfig("bad", 0, ""),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)memory_size.*memory_size\s+0\s+is\s+out\s+of\s+range:\s+it\s+is\s+in\s+bytes,\s+from\s+4194304\s+\(4\s+MiB\)\s+to\s+1099511627776\s+\(1\s+TiB\)`),
			},
			{
				Config:      provider + testAccDatabaseConfigPort("bad", 70000),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)port.*must be between 1024 and 65535, got: 70000`),
			},
			{
				// Not a database created and then a wait that fails at once.
				Config: provider + `
resource "redis_database" "test" {
  name        = "bad"
  memory_size = 4194304
  timeouts {
    create = "-1s"
  }
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Invalid timeout.*The create timeout must be a positive duration`),
			},
			{
				Config: provider + `
resource "redis_database" "test" {
  name        = ""
  memory_size = 4194304
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)name.*must\s+be\s+1\s+to\s+63\s+letters`),
			},
			// What the service would refuse is refused at plan time: a
			// rename that comes with a replacement would otherwise destroy
			// the database before its create fails.
			{
				Config: provider + `
resource "redis_database" "test" {
  name        = "orders.v2"
  memory_size = 4194304
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)name.*must\s+be\s+1\s+to\s+63\s+letters`),
			},
			{
				Config: provider + `
resource "redis_database" "test" {
  name        = "` + strings.Repeat("a", 64) + `"
  memory_size = 4194304
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)name.*must\s+be\s+1\s+to\s+63\s+letters`),
			},
			{
				Config: provider + `
resource "redis_database" "test" {
  name        = "-orders"
  memory_size = 4194304
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)name.*starting\s+with\s+a\s+letter\s+or\s+digit`),
			},
			{
				Config: provider + `
resource "redis_database" "test" {
  name        = "bad"
  memory_size = 4194304
  tls_mode    = "required"
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)tls_mode.*value must be one of`),
			},
			{
				Config: provider + `
resource "redis_database" "test" {
  name                = "bad"
  memory_size         = 4194304
  client_certificates = ["-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"]
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Invalid certificate.*"PRIVATE KEY", not a CERTIFICATE`),
			},
			{
				// A null element (an unset variable): said at plan time,
				// not by the framework's conversion error at apply.
				Config: provider + `
variable "unset" {
  type    = string
  default = null
}

resource "redis_database" "test" {
  name                = "bad"
  memory_size         = 4194304
  tls_mode            = "replica_ssl"
  client_certificates = [var.unset]
}
`,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Invalid certificate.*An element of client_certificates is null`),
			},
		}, testAccServiceRulesAtPlan(provider)...),
	})
}

// testAccServiceRulesAtPlan are steps whose configuration the service
// refuses (service/controller), refused at plan time with its words.
func testAccServiceRulesAtPlan(provider string) []resource.TestStep {
	db := func(body string) string {
		return provider + `
resource "redis_database" "test" {
  name = "bad"
` + body + `
}
`
	}
	var steps []resource.TestStep
	for _, s := range []struct{ body, want string }{
		{"memory_size = 1099511627777", `memory_size 1099511627777 is out of range: it is in bytes, from 4194304 (4 MiB) to 1099511627776 (1 TiB)`},
		{"memory_size = 4194304.5", `memory_size must be a whole number`},
		{"memory_size = 8388608\nreplication = true", `replication (a replica per shard) needs a Redis Cluster for now: set shards_count above 1 or oss_cluster = true`},
		{"memory_size = 8388608\nreplication = true\nshards_count = 1", `replication (a replica per shard) needs a Redis Cluster`},
		{"memory_size = 16777216\nshards_count = 64", `memory_size 16777216 split across 64 shards leaves 262144 bytes per shard, less than the 4194304 (4 MiB) each needs`},
		{"memory_size = 4194304\noss_cluster = true\nshards_count = 2", `memory_size 4194304 split across 2 shards leaves 2097152 bytes per shard`},
		{"memory_size = 4194304\npassword = \"short\"", `The password must be 8 to 128 characters long`},
		{"memory_size = 4194304\npassword = \"" + strings.Repeat("p", 129) + "\"", `The password must be 8 to 128 characters long`},
		{"memory_size = 4194304\npassword = \"with a\\ttab\"", `The password may not contain control characters`},
		{"memory_size = 4194304\nport = 80", `port.*must be between 1024 and 65535`},
		{"memory_size = 4194304\nclient_certificates = [\"-----BEGIN CERTIFICATE-----\"]", `client_certificates pin the TLS clients of the replication endpoint, which has no TLS with tls_mode = "disabled"`},
	} {
		want := strings.ReplaceAll(regexp.QuoteMeta(s.want), " ", `\s+`)
		if strings.HasPrefix(s.want, "port") {
			want = strings.ReplaceAll(s.want, " ", `\s+`)
		}
		steps = append(steps, resource.TestStep{Config: db(s.body), PlanOnly: true, ExpectError: regexp.MustCompile("(?s)" + want)})
	}
	return steps
}

func TestAccProvider_missingConfiguration(t *testing.T) {
	testAccRequire(t)
	for _, v := range []string{EnvEndpoint, EnvUsername, EnvPassword, EnvCACert} {
		t.Setenv(v, "")
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      `data "redis_cluster" "this" {}`,
				ExpectError: regexp.MustCompile(`Missing redis-replicad endpoint`),
			},
			{
				Config: `
provider "redis" {
  endpoint = "http://127.0.0.1:1"
}
data "redis_cluster" "this" {}
`,
				ExpectError: regexp.MustCompile(`Invalid redis-replicad endpoint`),
			},
			{
				Config: `
provider "redis" {
  endpoint = "https://127.0.0.1:1"
}
data "redis_cluster" "this" {}
`,
				ExpectError: regexp.MustCompile(`(?s)Missing redis-replicad password.*REDIS_REPLICAD_PASSWORD`),
			},
		},
	})
}

func testAccDatabaseConfig(name string, memorySize int64, password string) string {
	pw := ""
	if password != "" {
		pw = "  password    = " + hclString(password) + "\n"
	}
	return fmt.Sprintf(`
resource "redis_database" "test" {
  name        = %s
  memory_size = %d
%s}
`, hclString(name), memorySize, pw)
}

// testAccDatabaseConfigPort is a database with a port (none when port is 0)
// and timeouts.
func testAccDatabaseConfigPort(name string, port int) string {
	portLine := ""
	if port != 0 {
		portLine = fmt.Sprintf("  port        = %d\n", port)
	}
	return fmt.Sprintf(`
resource "redis_database" "test" {
  name        = %s
  memory_size = 67108864
%s
  timeouts {
    create = "2m"
    delete = "2m"
  }
}
`, hclString(name), portLine)
}

// testAccCaptureDatabaseUID stores the uid of the resource in *uid.
func testAccCaptureDatabaseUID(name string, uid *int) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs, ok := s.RootModule().Resources[name]
		if !ok {
			return fmt.Errorf("%s is not in the state", name)
		}
		n, err := parseDatabaseID(rs.Primary.ID)
		if err != nil {
			return err
		}
		*uid = n
		return nil
	}
}

func testAccCheckDatabaseUIDUnchanged(name string, uid *int) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		var now int
		if err := testAccCaptureDatabaseUID(name, &now)(s); err != nil {
			return err
		}
		if now != *uid {
			return fmt.Errorf("%s was replaced: uid %d, was %d", name, now, *uid)
		}
		return nil
	}
}

// testAccCheckDatabaseConnects writes and reads a key on the database's
// endpoint with its password, as an application would.
func testAccCheckDatabaseConnects(name string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs, ok := s.RootModule().Resources[name]
		if !ok {
			return fmt.Errorf("%s is not in the state", name)
		}
		endpoint, password := rs.Primary.Attributes["endpoint"], rs.Primary.Attributes["password"]
		rdb := redis.NewClient(&redis.Options{
			Addr: endpoint, Password: password,
			DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
			MaxRetries: -1,
		})
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := rdb.Set(ctx, "tf-acc-key", "tf-acc-value", 0).Err(); err != nil {
			return fmt.Errorf("SET on %s with the database's password: %w", endpoint, err)
		}
		got, err := rdb.Get(ctx, "tf-acc-key").Result()
		if err != nil {
			return fmt.Errorf("GET on %s: %w", endpoint, err)
		}
		if got != "tf-acc-value" {
			return fmt.Errorf("GET on %s returned %q", endpoint, got)
		}
		// A wrong password is refused.
		bad := redis.NewClient(&redis.Options{Addr: endpoint, Password: password + "-wrong", MaxRetries: -1})
		defer bad.Close()
		if err := bad.Ping(ctx).Err(); err == nil {
			return fmt.Errorf("%s accepted a wrong password", endpoint)
		}
		return nil
	}
}

// checkDatabaseMatches reads the resource's database from the service and
// runs f on it.
func (e *testAccEnv) checkDatabaseMatches(name string, f func(*api.Database) error) resource.TestCheckFunc {
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

// checkDatabasesDestroyed verifies that no database of the state is left.
func (e *testAccEnv) checkDatabasesDestroyed(s *terraform.State) error {
	for _, rs := range s.RootModule().Resources {
		if rs.Type != "redis_database" {
			continue
		}
		uid, err := parseDatabaseID(rs.Primary.ID)
		if err != nil {
			return err
		}
		_, err = e.client.GetDatabase(context.Background(), uid)
		if err == nil {
			return fmt.Errorf("database %d still exists", uid)
		}
		if !client.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// A new database whose name (in any case) or port another database of the
// instance has is an error at plan time, naming that database, not a
// plan that the service refuses at apply time.
func TestAccDatabaseResource_conflictsAtPlan(t *testing.T) {
	e := testAccStart(t)
	name := acctest.RandomWithPrefix("tf-acc")
	base := e.providerConfig() + fmt.Sprintf(`
resource "redis_database" "test" {
  name        = %q
  memory_size = 67108864
}
`, name)
	second := func(body string) string {
		return base + `
resource "redis_database" "second" {
  memory_size = 67108864
` + body + `
}
`
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             e.checkDatabasesDestroyed,
		Steps: []resource.TestStep{
			{Config: base},
			{
				// A create is warned at plan time (a tainted database's
				// replacement is planned as a create that cannot tell the
				// database it deletes first), and refused by the service.
				Config:      second(fmt.Sprintf("name = %q", strings.ToUpper(name))),
				ExpectError: regexp.MustCompile(`(?s)database\s+named\s+"` + regexp.QuoteMeta(name) + `"\s+already\s+exists\s+\(uid\s+\d+\)`),
			},
			{
				Config:      second(fmt.Sprintf("name = %q\nport = redis_database.test.port", name+"-2")),
				ExpectError: regexp.MustCompile(`(?s)port\s+\d+\s+is\s+taken\s+by\s+database\s+\d+\s+\(` + regexp.QuoteMeta(name) + `\)`),
			},
			{
				// The same, once the database exists: a rename.
				Config: base + fmt.Sprintf(`
resource "redis_database" "second" {
  name        = %q
  memory_size = 67108864
}
`, name+"-2"),
			},
			{
				Config: base + fmt.Sprintf(`
resource "redis_database" "second" {
  name        = %q
  memory_size = 67108864
}
`, strings.ToUpper(name)),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`(?s)Database name taken.*already\s+exists`),
			},
		},
	})
}
