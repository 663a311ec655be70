package provider

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

// testAccCLIReplicaConfig has two real provider aliases, a source with a
// source URL password, and a destination in the other location. Variables
// add a legacy redis-server as a second source, and destinations whose
// sources fail.
const testAccCLIReplicaConfig = `
terraform {
  required_providers {
    redis = { source = "replicad/redis" }
  }
}

provider "redis" {
  alias    = "us"
  endpoint = var.us_endpoint
  password = var.us_password
  ca_cert  = var.us_ca_cert
}

provider "redis" {
  alias    = "eu"
  endpoint = var.eu_endpoint
  password = var.eu_password
  ca_cert  = var.eu_ca_cert
}

variable "us_endpoint" {}
variable "us_ca_cert" {}
variable "eu_endpoint" {}
variable "eu_ca_cert" {}
variable "us_password" { sensitive = true }
variable "eu_password" { sensitive = true }
variable "legacy_address" {}
variable "legacy_url" { sensitive = true }
variable "bad_url" { sensitive = true }
variable "unreachable_url" { sensitive = true }
variable "unreachable_address" {}
variable "rotation" { default = "1" }
variable "with_legacy" { default = false }
variable "with_failures" { default = false }

resource "redis_database" "src" {
  provider    = redis.us
  name        = "cli-src"
  memory_size = 67108864
}

resource "redis_source_url_password" "src" {
  provider    = redis.us
  database_id = redis_database.src.id
  keepers     = { rotation = var.rotation }
}

resource "redis_database" "dst" {
  provider    = redis.eu
  name        = "cli-dst"
  memory_size = 67108864
}

resource "redis_replica_of" "dst" {
  provider    = redis.eu
  database_id = redis_database.dst.id
  source = concat(
    [{ address = redis_database.src.replication_endpoint }],
    var.with_legacy ? [{ address = var.legacy_address }] : [],
  )
  source_uris = concat(
    [redis_source_url_password.src.source_url],
    var.with_legacy ? [var.legacy_url] : [],
  )
}

# A wrong password: the service stops the sync, the apply fails at once.
resource "redis_database" "bad" {
  count       = var.with_failures ? 1 : 0
  provider    = redis.eu
  name        = "cli-bad"
  memory_size = 67108864
}

resource "redis_replica_of" "bad" {
  count       = var.with_failures ? 1 : 0
  provider    = redis.eu
  database_id = redis_database.bad[0].id
  source      = [{ address = var.legacy_address }]
  source_uris = [var.bad_url]
}

# Nothing listens: the apply fails when the timeout passes.
resource "redis_database" "unreachable" {
  count       = var.with_failures ? 1 : 0
  provider    = redis.eu
  name        = "cli-unreachable"
  memory_size = 67108864
}

resource "redis_replica_of" "unreachable" {
  count       = var.with_failures ? 1 : 0
  provider    = redis.eu
  database_id = redis_database.unreachable[0].id
  source      = [{ address = var.unreachable_address }]
  source_uris = [var.unreachable_url]
  timeouts {
    # Long enough for the service to answer under load (CI runs three
    # heavy packages on 2 cores): the warning names the source's status
    # only once the service was read.
    create = "30s"
  }
}

output "src_id" {
  value = redis_database.src.id
}

output "dst_id" {
  value = redis_database.dst.id
}
`

// TestAccReplicaOf_noSecretsInOutput runs plans and applies with the
// terraform CLI and TF_LOG=trace (so the provider's logs are printed too),
// through creation, a password rotation with a new source, and two failing
// sources, and checks that no password appears anywhere in what terraform
// printed, while the plans still show which source changes.
func TestAccReplicaOf_noSecretsInOutput(t *testing.T) {
	r := testAccStartTwo(t)
	legacy := redistest.Start(t, "--requirepass", "legacy-secret-"+strconv.Itoa(redistest.FreePort(t)))
	unreachable := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	const badPassword, unreachablePassword = "wrong-password-4711", "unreachable-password-0815"
	cli := newTestAccCLI(t,
		"TF_LOG=trace",
		"TF_VAR_us_endpoint="+r.a.inst.URL, "TF_VAR_us_password="+r.a.inst.Password, "TF_VAR_us_ca_cert="+r.a.inst.CACert,
		"TF_VAR_eu_endpoint="+r.b.inst.URL, "TF_VAR_eu_password="+r.b.inst.Password, "TF_VAR_eu_ca_cert="+r.b.inst.CACert,
		"TF_VAR_legacy_address="+legacy.Addr(), "TF_VAR_legacy_url="+legacy.URL(),
		"TF_VAR_bad_url=redis://:"+badPassword+"@"+legacy.Addr(),
		"TF_VAR_unreachable_address="+unreachable, "TF_VAR_unreachable_url=redis://:"+unreachablePassword+"@"+unreachable,
	)
	cli.write("main.tf", testAccCLIReplicaConfig)
	ctx := testAccContext(t)
	secrets := map[string]string{
		"legacy password":      legacy.Password,
		"wrong password":       badPassword,
		"unreachable password": unreachablePassword,
		"us API password":      r.a.inst.Password,
		"eu API password":      r.b.inst.Password,
	}
	// collect adds the passwords the databases have now.
	collect := func(round string) (srcUID, dstUID int) {
		var err error
		if srcUID, err = strconv.Atoi(strings.TrimSpace(cli.mustRun(0, "output", "-raw", "src_id"))); err != nil {
			t.Fatal(err)
		}
		if dstUID, err = strconv.Atoi(strings.TrimSpace(cli.mustRun(0, "output", "-raw", "dst_id"))); err != nil {
			t.Fatal(err)
		}
		su, err := r.a.client.GetSourceURL(ctx, srcUID)
		if err != nil {
			t.Fatal(err)
		}
		s, err := parseSourceURL(su.URI)
		if err != nil {
			t.Fatal(err)
		}
		secrets["admin password of the source ("+round+")"] = s.Password
		src, err := r.a.client.GetDatabase(ctx, srcUID)
		if err != nil {
			t.Fatal(err)
		}
		dst, err := r.b.client.GetDatabase(ctx, dstUID)
		if err != nil {
			t.Fatal(err)
		}
		secrets["application password of the source"] = src.AuthenticationRedisPass
		secrets["application password of the destination"] = dst.AuthenticationRedisPass
		return srcUID, dstUID
	}

	// Create, then an empty plan.
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	_, dstUID := collect("first")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")

	// Rotate the password and add the legacy source: the plan names the
	// new source and warns about the flush, the apply recovers.
	args := []string{"-var", "rotation=2", "-var", "with_legacy=true", "-no-color"}
	plan := cli.mustRun(2, append([]string{"plan", "-detailed-exitcode"}, args...)...)
	flat := strings.Join(strings.Fields(plan), " ") // terraform wraps and aligns
	for _, want := range []string{
		`+ address = "` + legacy.Addr() + `"`,
		`~ source_uris = (sensitive value)`,
		`Warning: Replica Of re-replicates database ` + strconv.Itoa(dstUID) + ` ("cli-dst")`,
		"(added: " + legacy.Addr() + "; new source credentials",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("the plan does not show %q:\n%s", want, plan)
		}
	}
	cli.mustRun(0, append([]string{"apply", "-auto-approve"}, args...)...)
	collect("second")
	db, err := r.b.client.GetDatabase(ctx, dstUID)
	if err != nil {
		t.Fatal(err)
	}
	if len(db.ReplicaSources) != 2 || db.ReplicaSyncStatus != api.SourceInSync {
		t.Errorf("after the rotation, the destination has %d sources, status %q", len(db.ReplicaSources), db.ReplicaSyncStatus)
	}
	cli.mustRun(0, append([]string{"plan", "-detailed-exitcode"}, args...)...)

	// Two sources that fail: errors name them, with their last errors.
	out, code := cli.run(append([]string{"apply", "-auto-approve", "-var", "with_failures=true"}, args...)...)
	if code != 1 {
		t.Fatalf("the apply with failing sources exited with %d:\n%s", code, out)
	}
	all := cli.all.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`the service stopped the sync: source ` + regexp.QuoteMeta(legacy.Addr()) + ` is out-of-sync, last error: .*(?i:auth|WRONGPASS|password)`),
		regexp.MustCompile(`not every source is in sync after 30s: source ` + regexp.QuoteMeta(unreachable) + ` is \S+.*last error: `),
	} {
		if !want.MatchString(all) {
			t.Errorf("terraform's output does not match %s:\n%s", want, tail(all, 6000))
		}
	}
	cli.mustRun(0, append([]string{"destroy", "-auto-approve", "-var", "with_failures=true"}, args...)...)

	cli.checkNoSecrets(secrets)
	t.Logf("searched %d bytes of terraform output for %d secrets", cli.all.Len(), len(secrets))
}
