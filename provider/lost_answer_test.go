package provider

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/acctest"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

// startLosingProxy serves the API of e through a TLS reverse proxy that
// answers the first request that lose(r) selects with a 504, after the
// service has taken it, as a load balancer whose timeout is shorter than
// the request does. It returns the provider block that points at it.
func startLosingProxy(t *testing.T, e *testAccEnv, lose func(r *http.Request, body []byte) bool) (providerConfig string, lost *atomic.Bool) {
	t.Helper()
	lost = &atomic.Bool{}
	providerConfig = startAPIProxy(t, e, func(w http.ResponseWriter, r *http.Request, body []byte, forward func(http.ResponseWriter, *http.Request)) {
		if !lost.Load() && lose(r, body) {
			forward(httptest.NewRecorder(), r)
			lost.Store(true)
			http.Error(w, "upstream timed out", http.StatusGatewayTimeout)
			return
		}
		forward(w, r)
	})
	return providerConfig, lost
}

// checkAnswerLost fails a test step whose proxy lost no answer: the test
// would test nothing.
func checkAnswerLost(lost *atomic.Bool) resource.TestCheckFunc {
	return func(*terraform.State) error {
		if !lost.Load() {
			return fmt.Errorf("no answer was lost: the test tests nothing")
		}
		return nil
	}
}

// TestAccReplicaOf_createRetriedAfterALostAnswer: the service makes the
// database a Replica Of, but its answer is lost (a 504 from a proxy whose
// timeout is shorter than the request), and the client sends the request
// again. The create is the one that made it: it goes on and is recorded.
// It failed with "The database is already a Replica Of" (the retry's
// condition on the generation no longer held) and was left out of the
// state, the destination a Replica Of that only an import could recover.
func TestAccReplicaOf_createRetriedAfterALostAnswer(t *testing.T) {
	e := testAccStart(t)
	legacy := redistest.Start(t, "--requirepass", "legacy-lost-answer-secret")
	prefix := acctest.RandomWithPrefix("tf-acc")
	providerConfig, lost := startLosingProxy(t, e, func(r *http.Request, body []byte) bool {
		return r.Method == http.MethodPut && strings.Contains(string(body), "replica_sources")
	})
	config := providerConfig + hclDatabase("a", "dst", prefix) + fmt.Sprintf(`
resource "redis_replica_of" "dst" {
  database_id = redis_database.dst.id
  source      = [{ address = %q }]
  source_uris = [%q]
}
`, legacy.Addr(), legacy.URL())
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: config,
			ConfigPlanChecks: resource.ConfigPlanChecks{
				PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
			},
			Check: resource.ComposeAggregateTestCheckFunc(
				checkAnswerLost(lost),
				resource.TestCheckResourceAttr("redis_replica_of.dst", "status", api.SourceInSync),
				resource.TestCheckResourceAttr("redis_replica_of.dst", "generation", "1"),
			),
		}},
	})
}

// TestAccDatabaseResource_createAnswerLost: the service creates the
// database, but its answer is lost (a 504 from a proxy whose timeout is
// shorter than the request; a create is not sent again, as it may have
// been taken). The apply finds the database it created, by its name that
// no database had before, and records it. It failed and left the database
// out of the state: the next apply was refused (the name is taken) until
// the database was imported or deleted by hand.
func TestAccDatabaseResource_createAnswerLost(t *testing.T) {
	e := testAccStart(t)
	name := acctest.RandomWithPrefix("tf-acc")
	providerConfig, lost := startLosingProxy(t, e, func(r *http.Request, _ []byte) bool {
		return r.Method == http.MethodPost && r.URL.Path == "/v1/bdbs"
	})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             e.checkDatabasesDestroyed,
		Steps: []resource.TestStep{{
			Config: providerConfig + fmt.Sprintf(`
resource "redis_database" "test" {
  name        = %q
  memory_size = 67108864
}
`, name),
			ConfigPlanChecks: resource.ConfigPlanChecks{
				PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
			},
			Check: resource.ComposeAggregateTestCheckFunc(
				checkAnswerLost(lost),
				resource.TestCheckResourceAttr(testAccDatabaseResource, "name", name),
				resource.TestCheckResourceAttr(testAccDatabaseResource, "status", api.StatusActive),
				testAccCheckDatabaseConnects(testAccDatabaseResource),
			),
		}},
	})
}

// TestAccSourceURLPassword_regenerateAnswerLost: the service regenerates
// the password, but its answer is lost (a 504 from a proxy). The apply
// finds the new password, tagged with its keepers, and records it. It
// failed and recorded nothing: the next apply regenerated the password
// again, which ends at once the grace period of the password the
// destinations still used.
func TestAccSourceURLPassword_regenerateAnswerLost(t *testing.T) {
	e := testAccStart(t)
	name := acctest.RandomWithPrefix("tf-acc")
	providerConfig, lost := startLosingProxy(t, e, func(r *http.Request, _ []byte) bool {
		return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/actions/regenerate_admin_password")
	})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: providerConfig + fmt.Sprintf(`
resource "redis_database" "src" {
  name        = %q
  memory_size = 67108864
}

resource "redis_source_url_password" "src" {
  database_id = redis_database.src.id
  keepers     = { rotation = "1" }
}
`, name),
			ConfigPlanChecks: resource.ConfigPlanChecks{
				PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
			},
			Check: resource.ComposeAggregateTestCheckFunc(
				checkAnswerLost(lost),
				e.checkSourceURLMatches("redis_source_url_password.src"),
				resource.TestCheckResourceAttr("redis_source_url_password.src", "keepers.rotation", "1"),
			),
		}},
	})
}
