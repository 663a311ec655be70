package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/acctest"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/redis/go-redis/v9"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
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

// TestAccExamples_geoReplication applies examples/geo-replication as
// scripts/demo.sh does: the terraform CLI with the provider binary, one
// provider alias per location, and a legacy redis-server given by URL. Keys
// written to the sources are read at the destinations; orders is replicated
// over TLS and compressed, the legacy server in plain text; rotating the
// password keeps both destinations in sync.
func TestAccExamples_geoReplication(t *testing.T) {
	r := testAccStartTwo(t)
	legacy := redistest.Start(t, "--requirepass", "legacy-"+acctest.RandString(12))
	cli := newTestAccCLI(t,
		"TF_VAR_us_endpoint="+r.a.inst.URL, "TF_VAR_us_password="+r.a.inst.Password, "TF_VAR_us_ca_cert="+r.a.inst.CACert,
		"TF_VAR_eu_endpoint="+r.b.inst.URL, "TF_VAR_eu_password="+r.b.inst.Password, "TF_VAR_eu_ca_cert="+r.b.inst.CACert,
		"TF_VAR_legacy_redis_url="+legacy.URL(),
	)
	example, err := os.ReadFile("../examples/geo-replication/main.tf")
	if err != nil {
		t.Fatal(err)
	}
	cli.write("main.tf", string(example))
	ctx := testAccContext(t)
	secrets := map[string]string{"legacy password": legacy.Password}
	defer func() { cli.checkNoSecrets(secrets) }()

	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	var endpoints, passwords map[string]string
	for name, v := range map[string]*map[string]string{"endpoints": &endpoints, "passwords": &passwords} {
		out, _ := cli.run("output", "-json", name) // not in cli.all's secrets: passwords is asked for
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("output %s: %v", name, err)
		}
	}
	client := func(name string) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: endpoints[name], Password: passwords[name], MaxRetries: -1})
		t.Cleanup(func() { c.Close() })
		return c
	}
	orders, replica, inventory := client("orders"), client("orders_replica"), client("inventory")
	var ordersAddress string // where orders is replicated from
	adminPassword := func(round string) {
		uid, err := parseDatabaseID(mustGetDatabaseID(t, ctx, r.a, "orders"))
		if err != nil {
			t.Fatal(err)
		}
		su, err := r.a.client.GetSourceURL(ctx, uid)
		if err != nil {
			t.Fatal(err)
		}
		s, err := parseSourceURL(su.URI)
		if err != nil {
			t.Fatal(err)
		}
		secrets["admin password of orders ("+round+")"] = s.Password
		ordersAddress = s.Address
	}
	adminPassword("first")

	// replicates writes a key to orders and one to the legacy server, and
	// waits until both destinations have what they should.
	replicates := func() {
		t.Helper()
		order, stock := "order:"+acctest.RandString(6), "stock:"+acctest.RandString(6)
		if err := orders.Set(ctx, order, "3 mugs", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := legacy.Client().Set(ctx, stock, "17", 0).Err(); err != nil {
			t.Fatal(err)
		}
		want := map[*redis.Client]map[string]string{
			replica:   {order: "3 mugs"},
			inventory: {order: "3 mugs", stock: "17"},
		}
		for c, keys := range want {
			err := testAccEventually(30*time.Second, "the writes reach "+c.Options().Addr, func(ctx context.Context) error {
				for k, v := range keys {
					if got, err := c.Get(ctx, k).Result(); err != nil || got != v {
						return fmt.Errorf("GET %s = %q, %v", k, got, err)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	replicates()

	cli.mustRun(0, "apply", "-refresh-only", "-auto-approve", "-no-color")
	status := cli.mustRun(0, "output", "-raw", "replication")
	if n := strings.Count(status, " in-sync "); n != 3 {
		t.Errorf("output replication shows %d sources in sync, want 3:\n%s", n, status)
	}
	if !strings.Contains(status, legacy.Addr()) || !strings.Contains(status, ordersAddress) {
		t.Errorf("output replication does not name the sources:\n%s", status)
	}
	// orders crosses over TLS, compressed; the legacy server plainly.
	if n := strings.Count(status, ordersAddress); n != 2 || strings.Count(status, "  compressed") != 2 {
		t.Errorf("output replication does not show orders compressed twice:\n%s", status)
	}
	ordersDB, err := findDatabaseByName(ctx, r.a.client, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if ordersDB.TLSMode != api.TLSReplicaSSL || len(ordersDB.ClientCertificates) != 1 {
		t.Errorf("orders has tls_mode %q and %d client certificates", ordersDB.TLSMode, len(ordersDB.ClientCertificates))
	}
	for _, name := range []string{"orders_replica", "inventory"} {
		db, err := findDatabaseByName(ctx, r.b.client, strings.ReplaceAll(name, "_", "-"))
		if err != nil {
			t.Fatal(err)
		}
		for _, src := range db.ReplicaSources {
			isOrders := sourceAddress(src.URI) == ordersAddress
			if src.Encryption != isOrders || src.CompressionActive != isOrders || (src.Compression == 3) != isOrders {
				t.Errorf("%s: source %s has encryption %v, compression %d, compression active %v", name,
					sourceAddress(src.URI), src.Encryption, src.Compression, src.CompressionActive)
			}
		}
	}
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")

	// A new password for orders: both destinations get the new URL in the
	// same apply (source_uris, and source_uris_wo through the ephemeral
	// resource read after the rotation).
	cli.mustRun(0, "apply", "-auto-approve", "-no-color", "-var", "password_rotation=2")
	adminPassword("second")
	if secrets["admin password of orders (first)"] == secrets["admin password of orders (second)"] {
		t.Fatal("the rotation did not regenerate the password")
	}
	for _, name := range []string{"orders_replica", "inventory"} {
		uid := mustGetDatabaseID(t, ctx, r.b, name)
		id, _ := strconv.Atoi(uid)
		db, err := r.b.client.GetDatabase(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if db.ReplicaSync != api.SyncEnabled || db.ReplicaSyncStatus != api.SourceInSync {
			t.Errorf("after the rotation, %s has sync %q and status %q: %s", name, db.ReplicaSync, db.ReplicaSyncStatus, describeUnsynced(db))
		}
	}
	replicates()
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color", "-var", "password_rotation=2")
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color", "-var", "password_rotation=2")
}

// mustGetDatabaseID returns the uid, as a string, of the database called name.
func mustGetDatabaseID(t *testing.T, ctx context.Context, e *testAccEnv, name string) string {
	t.Helper()
	if name == "orders_replica" {
		name = "orders-replica"
	}
	db, err := findDatabaseByName(ctx, e.client, name)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(db.UID)
}
