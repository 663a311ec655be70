package provider

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/acctest"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/redis/go-redis/v9"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

// seriesName matches the name label of a series.
var seriesName = regexp.MustCompile(`,name="[^"]*"`)

// Acceptance tests of issue 6: TLS for Replica Of traffic, TLS databases,
// and compressed replication between two instances. Location "a" holds the
// sources, location "b" the destinations, as in the other Replica Of tests.

// hclClusters reads the certificates of both locations.
const hclClusters = `
data "redis_cluster" "a" {
  provider = redis
}

data "redis_cluster" "b" {
  provider = redisb
}
`

// hclTLSSource is a source database of location a whose replication
// requires TLS, admitting the client certificates certs (an HCL expression),
// with a source URL password.
func hclTLSSource(name, prefix, tlsMode, certs string) string {
	certLine := ""
	if certs != "" {
		certLine = "  client_certificates = " + certs + "\n"
	}
	return fmt.Sprintf(`
resource "redis_database" %[1]q {
  provider    = redis
  name        = "%[2]s-%[1]s"
  memory_size = 67108864
  tls_mode    = %[3]q
%[4]s}
`, name, prefix, tlsMode, certLine) + hclSourcePassword("a", name, "")
}

// hclReplicaOfSource makes the database dst (of alias) a Replica Of the
// database src of location a, with the source's other attributes given in
// HCL (for example `encryption = true`), and waits for the sync unless wait
// is false.
func hclReplicaOfSource(alias, dst, src, attrs string, wait bool) string {
	if attrs != "" {
		attrs = ", " + attrs
	}
	return fmt.Sprintf(`
resource "redis_replica_of" %[1]q {
  provider      = %[2]s
  database_id   = redis_database.%[1]s.id
  source        = [{ address = redis_database.%[3]s.replication_endpoint%[4]s }]
  source_uris   = [redis_source_url_password.%[3]s.source_url]
  wait_for_sync = %[5]v
  timeouts {
    create = "2m"
    update = "2m"
  }
}
`, dst, providerRef(alias), src, attrs, wait)
}

// testAccFill writes keys of every common type to a database, some with an
// expiry, with values that compress well (n keys of about 600 bytes).
func testAccFill(name, prefix string, n int) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		c, err := testAccClient(s, name)
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		value := strings.Repeat("order shipped to warehouse 7; ", 20)
		pipe := c.Pipeline()
		for i := 0; i < n; i++ {
			k := fmt.Sprintf("%s:%d", prefix, i)
			switch i % 5 {
			case 0:
				pipe.Set(ctx, k, value+strconv.Itoa(i), 0)
			case 1:
				pipe.HSet(ctx, k, "status", "shipped", "note", value, "n", i)
			case 2:
				pipe.RPush(ctx, k, "a", value, strconv.Itoa(i))
			case 3:
				pipe.ZAdd(ctx, k, redis.Z{Score: float64(i), Member: value}, redis.Z{Score: 1.5, Member: "x"})
			case 4:
				pipe.SAdd(ctx, k, "red", "green", value)
				pipe.Expire(ctx, k, time.Hour)
			}
		}
		_, err = pipe.Exec(ctx)
		return err
	}
}

// testAccCheckEqual waits until the destination database holds exactly the
// keys of the sources (redis_database resources or extra clients), key by
// key: type, value and expiry.
func testAccCheckEqual(dst string, sources []string, extra ...*redis.Client) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		d, err := testAccClient(s, dst)
		if err != nil {
			return err
		}
		defer d.Close()
		clients := append([]*redis.Client(nil), extra...)
		for _, src := range sources {
			c, err := testAccClient(s, src)
			if err != nil {
				return err
			}
			defer c.Close()
			clients = append(clients, c)
		}
		return testAccEventually(time.Minute, dst+" equals its sources key by key", func(ctx context.Context) error {
			return redistest.Diff(ctx, d, clients...)
		})
	}
}

// testAccCheckEmpty checks that nothing was applied to a database.
func testAccCheckEmpty(name string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		c, err := testAccClient(s, name)
		if err != nil {
			return err
		}
		defer c.Close()
		n, err := c.DBSize(context.Background()).Result()
		if err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("%s has %d keys, want none: something was applied", name, n)
		}
		return nil
	}
}

// sourceRefused waits until the only source of a destination is
// out-of-sync with a last error that matches why, and the sync still
// enabled (the service retries: the cause may be fixed at the source).
func sourceRefused(why *regexp.Regexp) func(*api.Database) error {
	return func(db *api.Database) error {
		if len(db.ReplicaSources) != 1 {
			return fmt.Errorf("%d sources", len(db.ReplicaSources))
		}
		s := db.ReplicaSources[0]
		if s.Status != api.SourceOutOfSync || !why.MatchString(s.LastError) {
			return fmt.Errorf("status %q, last error %q; want out-of-sync and an error matching %s", s.Status, s.LastError, why)
		}
		return nil
	}
}

// checkStateLastError checks that the source_status of a redis_replica_of in
// the state shows why its only source is out of sync.
func checkStateLastError(name string, why *regexp.Regexp) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs, ok := s.RootModule().Resources[name]
		if !ok {
			return fmt.Errorf("%s is not in the state", name)
		}
		for k, v := range rs.Primary.Attributes {
			if strings.HasPrefix(k, "source_status.") && strings.HasSuffix(k, ".last_error") {
				if !why.MatchString(v) {
					return fmt.Errorf("%s %s = %q, want a match of %s", name, k, v, why)
				}
				return nil
			}
		}
		return fmt.Errorf("%s has no last_error in source_status", name)
	}
}

// TestAccReplicaOf_encrypted replicates between two instances over TLS with
// the certificates wired through redis_cluster: the destination pins the
// source instance's proxy certificate, the source admits only the
// destination instance's syncer certificate. Then the source's
// client_certificates change through Terraform: a set that still admits the
// syncer leaves the sync alone (no reload), one that does not cuts it off
// with a status that says why, and putting it back recovers.
func TestAccReplicaOf_encrypted(t *testing.T) {
	r := testAccStartTwo(t)
	prefix := acctest.RandomWithPrefix("tf-acc")
	other := testCertificatePEM(t, "other")
	config := func(certs string, withReplica bool) string {
		c := r.providers() + hclClusters + fmt.Sprintf("\nlocals {\n  other_cert = %s\n}\n", hclString(other)) +
			hclTLSSource("src", prefix, api.TLSReplicaSSL, certs) + hclDatabase("b", "dst", prefix)
		if withReplica {
			c += hclReplicaOfSource("b", "dst", "src", "encryption = true, server_cert = data.redis_cluster.a.proxy_cert", true)
		}
		return c
	}
	const (
		dst    = "redis_replica_of.dst"
		srcDB  = "redis_database.src"
		dstDB  = "redis_database.dst"
		syncer = "[data.redis_cluster.b.syncer_cert]"
	)
	var gen int64
	var srcUID int
	notAdmitted := regexp.MustCompile(`(?i)refused this instance's TLS client certificate`)

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccTwoRegionsFactories,
		Steps: []resource.TestStep{
			// The source, with data.
			{
				Config: config(syncer, false),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(srcDB, "tls_mode", api.TLSReplicaSSL),
					resource.TestCheckResourceAttr(srcDB, "client_certificates.#", "1"),
					resource.TestCheckResourceAttrPair(srcDB, "client_certificates.0", "data.redis_cluster.b", "syncer_cert"),
					resource.TestCheckResourceAttrPair(srcDB, "replication_endpoint", "redis_source_url_password.src", "address"),
					testAccCaptureDatabaseUID(srcDB, &srcUID),
					// replica_ssl: applications still connect in plain text.
					testAccFill(srcDB, "load", 500),
				),
			},
			// Encrypted replication: the initial load, then the stream.
			{
				Config: config(syncer, true),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(dst, "source.0.encryption", "true"),
					resource.TestCheckResourceAttrPair(dst, "source.0.server_cert", "data.redis_cluster.a", "proxy_cert"),
					testAccCheckSourceStatus(dst, 1),
					captureGeneration(dst, &gen),
					testAccCheckEqual(dstDB, []string{srcDB}),
					testAccFill(srcDB, "stream", 100),
					testAccCheckEqual(dstDB, []string{srcDB}),
					r.b.checkReplica(dst, func(db *api.Database) error {
						if s := db.ReplicaSources[0]; !s.Encryption || s.ServerCert == "" {
							return fmt.Errorf("the service has encryption %v", s.Encryption)
						}
						return nil
					}),
				),
			},
			// Import keeps the TLS settings.
			{
				ResourceName:            dst,
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts", "source_status", "wait_for_sync"},
			},
			{
				ResourceName:      srcDB,
				ImportState:       true,
				ImportStateVerify: true,
			},
			// Another admitted certificate: the source is updated in place,
			// the destination keeps its session (no reload).
			{
				Config: config("[data.redis_cluster.b.syncer_cert, local.other_cert]", true),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(srcDB, plancheck.ResourceActionUpdate),
						plancheck.ExpectResourceAction(dst, plancheck.ResourceActionNoop),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(srcDB, "client_certificates.#", "2"),
					testAccCheckDatabaseUIDUnchanged(srcDB, &srcUID),
					r.a.checkDatabaseMatches(srcDB, func(db *api.Database) error {
						if len(db.ClientCertificates) != 2 {
							return fmt.Errorf("the service has %d client certificates", len(db.ClientCertificates))
						}
						return nil
					}),
					testAccCheckReplicates([]string{srcDB}, []string{dstDB}),
					checkGeneration(dst, &gen, 0),
					r.b.checkReplica(dst, func(db *api.Database) error {
						if db.ReplicaGeneration != gen || db.ReplicaSyncStatus != api.SourceInSync {
							return fmt.Errorf("generation %d (want %d), status %s", db.ReplicaGeneration, gen, db.ReplicaSyncStatus)
						}
						return nil
					}),
				),
			},
			// The destination's certificate no longer admitted: its session
			// is cut, and its status says why.
			{
				Config: config("[local.other_cert]", true),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(srcDB, plancheck.ResourceActionUpdate),
						plancheck.ExpectResourceAction(dst, plancheck.ResourceActionNoop),
					},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					r.b.waitForReplica(dst, "the destination is refused", sourceRefused(notAdmitted)),
				),
			},
			{
				RefreshState: true,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(dst, "status", api.SourceOutOfSync),
					checkStateLastError(dst, notAdmitted),
				),
			},
			// Admitted again: the sync recovers, still without a reload.
			{
				Config: config(syncer, true),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(srcDB, plancheck.ResourceActionUpdate),
					},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckReplicates([]string{srcDB}, []string{dstDB}),
					testAccCheckEqual(dstDB, []string{srcDB}),
					r.b.waitForReplica(dst, "the destination is in sync", func(db *api.Database) error {
						if db.ReplicaSyncStatus != api.SourceInSync || db.ReplicaGeneration != gen {
							return fmt.Errorf("status %s, generation %d (want %d): %s", db.ReplicaSyncStatus, db.ReplicaGeneration, gen, describeUnsynced(db))
						}
						return nil
					}),
				),
			},
		},
	})
}

// TestAccReplicaOf_tlsRefused points three destinations at a source that
// requires TLS and admits only location b's syncers: one trusts the wrong
// certificate, one connects in plain text, one (in location a) presents a
// certificate the source does not know. None gets anything, and each status
// says why.
func TestAccReplicaOf_tlsRefused(t *testing.T) {
	r := testAccStartTwo(t)
	prefix := acctest.RandomWithPrefix("tf-acc")
	config := r.providers() + hclClusters +
		hclTLSSource("src", prefix, api.TLSReplicaSSL, "[data.redis_cluster.b.syncer_cert]") +
		hclDatabase("b", "wrongcert", prefix) + hclDatabase("b", "plain", prefix) + hclDatabase("a", "unknown", prefix)
	replicas := config +
		// b's own proxy certificate is not what the source presents.
		hclReplicaOfSource("b", "wrongcert", "src", "encryption = true, server_cert = data.redis_cluster.b.proxy_cert", false) +
		hclReplicaOfSource("b", "plain", "src", "", false) +
		// a's syncers present a's syncer certificate, which src does not admit.
		hclReplicaOfSource("a", "unknown", "src", "encryption = true, server_cert = data.redis_cluster.a.proxy_cert", false)
	notTrusted := regexp.MustCompile(`(?i)certificate is not trusted`)
	tlsRequired := regexp.MustCompile(`(?i)TLS is required`)
	unknownCert := regexp.MustCompile(`(?i)refused this instance's TLS client certificate`)

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccTwoRegionsFactories,
		Steps: []resource.TestStep{
			{
				Config: config,
				Check:  testAccFill("redis_database.src", "k", 50),
			},
			{
				Config: replicas,
				Check: resource.ComposeAggregateTestCheckFunc(
					r.b.waitForReplica("redis_replica_of.wrongcert", "the wrong server_cert is refused", sourceRefused(notTrusted)),
					r.b.waitForReplica("redis_replica_of.plain", "plain text is refused", sourceRefused(tlsRequired)),
					r.a.waitForReplica("redis_replica_of.unknown", "the unknown client certificate is refused", sourceRefused(unknownCert)),
					testAccCheckEmpty("redis_database.wrongcert"),
					testAccCheckEmpty("redis_database.plain"),
					testAccCheckEmpty("redis_database.unknown"),
				),
			},
			// The state says why, after a refresh.
			{
				RefreshState: true,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("redis_replica_of.wrongcert", "status", api.SourceOutOfSync),
					checkStateLastError("redis_replica_of.wrongcert", notTrusted),
					checkStateLastError("redis_replica_of.plain", tlsRequired),
					checkStateLastError("redis_replica_of.unknown", unknownCert),
				),
			},
		},
	})
}

// TestAccReplicaOf_compression replicates a database of another instance
// with compression, beside an open-source redis-server: the first
// compresses (fewer bytes on the wire than replicated, per the source
// instance's gateway metrics), and the destination equals both sources key by
// key. The service refuses compression for the open-source server, which
// cannot compress. Turning compression off is a new setting of the same
// source: the syncer reconnects without a reload.
func TestAccReplicaOf_compression(t *testing.T) {
	r := testAccStartTwo(t)
	legacy := redistest.Start(t, "--requirepass", "legacy-"+acctest.RandString(12))
	prefix := acctest.RandomWithPrefix("tf-acc")
	base := r.providers() + hclDatabase("a", "src", prefix) + hclSourcePassword("a", "src", "") + hclDatabase("b", "dst", prefix)
	replica := func(srcCompression, legacyCompression int) string {
		return base + fmt.Sprintf(`
variable "legacy_url" {
  type      = string
  sensitive = true
  default   = %s
}

resource "redis_replica_of" "dst" {
  provider    = redisb
  database_id = redis_database.dst.id
  source = [
    { address = redis_database.src.replication_endpoint, compression = %d },
    { address = %s, compression = %d },
  ]
  source_uris = [redis_source_url_password.src.source_url, var.legacy_url]
}
`, hclString(legacy.URL()), srcCompression, hclString(legacy.Addr()), legacyCompression)
	}
	const dst, srcDB, dstDB = "redis_replica_of.dst", "redis_database.src", "redis_database.dst"
	var srcAddr string
	var srcUID int
	var gen int64
	legacyAddr := legacy.Addr()
	// compression checks the compression status of the source at *addr (known
	// once the source exists).
	compression := func(addr *string, active string) resource.TestCheckFunc {
		return func(s *terraform.State) error {
			a := s.RootModule().Resources[dst].Primary.Attributes
			for k, v := range map[string]string{
				"source_status." + *addr + ".compression_active": active,
				"source_status." + *addr + ".compression_note":   "",
			} {
				if a[k] != v {
					return fmt.Errorf("%s = %q, want %q", k, a[k], v)
				}
			}
			return nil
		}
	}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccTwoRegionsFactories,
		Steps: []resource.TestStep{
			{
				Config: base,
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccFill(srcDB, "load", 2000),
					testAccCaptureDatabaseUID(srcDB, &srcUID),
					func(s *terraform.State) error {
						srcAddr = s.RootModule().Resources[srcDB].Primary.Attributes["replication_endpoint"]
						return legacy.Client().Set(context.Background(), "legacy:1", "from the legacy server", 0).Err()
					},
				),
			},
			// An open-source Redis cannot compress: the service says so.
			{
				Config:      replica(6, 3),
				ExpectError: regexp.MustCompile(`compression\s+applies\s+only\s+between\s+redis-replicad\s+instances`),
			},
			{
				Config: replica(6, 0),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckSourceStatus(dst, 2),
					compression(&srcAddr, "true"),
					compression(&legacyAddr, "false"),
					captureGeneration(dst, &gen),
					testAccCheckEqual(dstDB, []string{srcDB}, legacy.Client()),
					testAccFill(srcDB, "stream", 500),
					testAccCheckEqual(dstDB, []string{srcDB}, legacy.Client()),
					func(*terraform.State) error {
						wire, plain, err := gatewayBytes(r.a, srcUID)
						if err != nil {
							return err
						}
						t.Logf("gateway of the source: %.0f bytes replicated, %.0f on the wire (%.1f%%)", plain, wire, 100*wire/plain)
						if plain < 100_000 || wire >= plain*3/4 {
							return fmt.Errorf("the gateway sent %.0f bytes on the wire for %.0f bytes replicated: want much fewer", wire, plain)
						}
						return nil
					},
				),
			},
			// Compression off: the same source with a new setting, no reload.
			{
				Config: replica(0, 0),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(dst, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					// The syncer reconnects after the apply has returned: see
					// the status of the new session.
					r.b.waitForReplica(dst, "the source no longer compresses", func(db *api.Database) error {
						for _, src := range db.ReplicaSources {
							if sourceAddress(src.URI) == srcAddr && (src.CompressionActive || src.Status != api.SourceInSync) {
								return fmt.Errorf("compression active %v, status %s", src.CompressionActive, src.Status)
							}
						}
						return nil
					}),
					checkGeneration(dst, &gen, 0),
					testAccCheckReplicates([]string{srcDB}, []string{dstDB}),
					testAccCheckEqual(dstDB, []string{srcDB}, legacy.Client()),
				),
			},
			{
				RefreshState: true,
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckSourceStatus(dst, 2),
					compression(&srcAddr, "false"),
					checkGeneration(dst, &gen, 0),
				),
			},
		},
	})
}

// gatewayBytes reads, from the /metrics of an instance (with its
// credentials), the bytes its replication gateway sent for database uid: on
// the wire, and before compression.
func gatewayBytes(e *testAccEnv, uid int) (wire, plain float64, err error) {
	req, err := http.NewRequest(http.MethodGet, e.inst.URL+"/metrics", nil)
	if err != nil {
		return 0, 0, err
	}
	req.SetBasicAuth(e.inst.Username, e.inst.Password)
	resp, err := e.inst.HTTPClient().Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	label := `{database="` + strconv.Itoa(uid) + `"}`
	found := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		// The series carry the database's name beside its uid.
		name = seriesName.ReplaceAllString(name, "")
		var dst *float64
		switch name {
		case "replicad_gateway_sent_wire_bytes_total" + label:
			dst = &wire
		case "replicad_gateway_sent_bytes_total" + label:
			dst = &plain
		default:
			continue
		}
		if *dst, err = strconv.ParseFloat(value, 64); err != nil {
			return 0, 0, fmt.Errorf("metric %s: %w", name, err)
		}
		found++
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("/metrics has %d of the 2 gateway byte counters of database %d", found, uid)
	}
	return wire, plain, nil
}

// testAccTLSClient connects to a database with tls_mode = "enabled": TLS,
// trusting the instance's CA.
func testAccTLSClient(s *terraform.State, name, caPEM string) (*redis.Client, error) {
	rs, ok := s.RootModule().Resources[name]
	if !ok {
		return nil, fmt.Errorf("%s is not in the state", name)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		return nil, fmt.Errorf("the CA certificate does not parse")
	}
	addr := rs.Primary.Attributes["endpoint"]
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	return redis.NewClient(&redis.Options{
		Addr: addr, Password: rs.Primary.Attributes["password"],
		TLSConfig:   &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12},
		DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		MaxRetries: -1,
	}), nil
}

// testAccCheckTLSOnly checks that a database answers a TLS client that
// trusts caPEM, has the key k = v, and refuses a plain-text client.
func testAccCheckTLSOnly(name, caPEM, k, v string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		c, err := testAccTLSClient(s, name, caPEM)
		if err != nil {
			return err
		}
		defer c.Close()
		err = testAccEventually(30*time.Second, "a TLS client reads "+k, func(ctx context.Context) error {
			got, err := c.Get(ctx, k).Result()
			if err != nil {
				return err
			}
			if got != v {
				return fmt.Errorf("GET %s = %q, want %q", k, got, v)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := c.Set(context.Background(), "tf-acc:tls", "written over TLS", 0).Err(); err != nil {
			return fmt.Errorf("SET over TLS: %w", err)
		}
		plain, err := testAccClient(s, name)
		if err != nil {
			return err
		}
		defer plain.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := plain.Ping(ctx).Err(); err == nil {
			return fmt.Errorf("%s answered a plain-text client", name)
		}
		return nil
	}
}

// TestAccDatabaseResource_tls turns TLS on for every client of a database,
// in place: a go-redis client with TLS (trusting the instance's CA) reads
// the data written before, a plain-text client is refused. A mode changed
// through the API shows in the next plan; turning TLS off again lets plain
// text in.
func TestAccDatabaseResource_tls(t *testing.T) {
	e := testAccStart(t)
	name := acctest.RandomWithPrefix("tf-acc")
	config := func(mode string) string {
		line := ""
		if mode != "" {
			line = "  tls_mode    = " + hclString(mode) + "\n"
		}
		return e.providerConfig() + fmt.Sprintf(`
resource "redis_database" "test" {
  name        = %s
  memory_size = 67108864
%s}

data "redis_cluster" "this" {}
`, hclString(name), line)
	}
	var uid int
	ctx := testAccContext(t)

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             e.checkDatabasesDestroyed,
		Steps: []resource.TestStep{
			{
				Config: config(""),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(testAccDatabaseResource, "tls_mode", api.TLSDisabled),
					resource.TestCheckNoResourceAttr(testAccDatabaseResource, "client_certificates.#"),
					resource.TestMatchResourceAttr(testAccDatabaseResource, "replication_endpoint", regexp.MustCompile(`^127\.0\.0\.1:[0-9]+$`)),
					resource.TestCheckResourceAttr("data.redis_cluster.this", "ca_cert", e.inst.CACert),
					testAccCaptureDatabaseUID(testAccDatabaseResource, &uid),
					testAccCheckDatabaseConnects(testAccDatabaseResource),
					func(s *terraform.State) error {
						c, err := testAccClient(s, testAccDatabaseResource)
						if err != nil {
							return err
						}
						defer c.Close()
						return c.Set(ctx, "kept", "across the restart", 0).Err()
					},
				),
			},
			// TLS for every client, in place: the data stays.
			{
				Config: config(api.TLSEnabled),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(testAccDatabaseResource, plancheck.ResourceActionUpdate),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(testAccDatabaseResource, "tls_mode", api.TLSEnabled),
					resource.TestCheckResourceAttr(testAccDatabaseResource, "status", api.StatusActive),
					testAccCheckDatabaseUIDUnchanged(testAccDatabaseResource, &uid),
					testAccCheckTLSOnly(testAccDatabaseResource, e.inst.CACert, "kept", "across the restart"),
				),
			},
			{
				ResourceName:      testAccDatabaseResource,
				ImportState:       true,
				ImportStateVerify: true,
			},
			// Changed through the API: the plan shows it.
			{
				PreConfig: func() {
					mode := api.TLSReplicaSSL
					if _, err := e.client.UpdateDatabase(ctx, uid, api.UpdateDatabaseRequest{TLSMode: &mode}); err != nil {
						t.Fatalf("out-of-band update: %v", err)
					}
				},
				Config:             config(api.TLSEnabled),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			// Client certificates set through the API show too.
			{
				PreConfig: func() {
					certs := []string{testCertificatePEM(t, "drift")}
					if _, err := e.client.UpdateDatabase(ctx, uid, api.UpdateDatabaseRequest{ClientCertificates: &certs}); err != nil {
						t.Fatalf("out-of-band update: %v", err)
					}
				},
				Config:             config(api.TLSReplicaSSL),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			// Back to plain text (the default, by leaving tls_mode out), and
			// no client certificates.
			{
				Config: config(""),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(testAccDatabaseResource, plancheck.ResourceActionUpdate),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(testAccDatabaseResource, "tls_mode", api.TLSDisabled),
					resource.TestCheckNoResourceAttr(testAccDatabaseResource, "client_certificates.#"),
					testAccCheckDatabaseUIDUnchanged(testAccDatabaseResource, &uid),
					testAccCheckDatabaseConnects(testAccDatabaseResource),
					e.checkDatabaseMatches(testAccDatabaseResource, func(db *api.Database) error {
						if db.TLSMode != api.TLSDisabled || len(db.ClientCertificates) != 0 {
							return fmt.Errorf("the service has tls_mode %q and %d client certificates", db.TLSMode, len(db.ClientCertificates))
						}
						return nil
					}),
					func(s *terraform.State) error {
						c, err := testAccClient(s, testAccDatabaseResource)
						if err != nil {
							return err
						}
						defer c.Close()
						if got, err := c.Get(ctx, "tf-acc:tls").Result(); err != nil || got != "written over TLS" {
							return fmt.Errorf("GET tf-acc:tls = %q, %v", got, err)
						}
						return nil
					},
				),
			},
		},
	})
}
