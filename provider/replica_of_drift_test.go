package provider

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

// The drift tests run `terraform plan -detailed-exitcode` as a scheduled CI
// job does, after changes that are not real: a new order of the sources, a
// refresh, an import. Each must plan nothing (exit code 0), whatever mix of
// sensitive, write-only, literal and computed values the configuration
// uses.

// driftSource is how one source and its URL are written in a configuration.
type driftSource struct {
	address string // HCL expression of the source's address
	uri     string // HCL expression of its URL
}

// testAccDriftConfig is one instance, a source database with its source URL
// password and ephemeral source URL, a legacy redis-server with a password,
// and one destination per mix, with its sources in the given order
// (reversed when reverse is set).
func testAccDriftConfig(legacy *redistest.Server, reverse bool) string {
	src := driftSource{"redis_source_url_password.src.address", "redis_source_url_password.src.source_url"}
	lit := driftSource{strconv.Quote(legacy.Addr()), strconv.Quote(legacy.URL())}
	sensVar := driftSource{strconv.Quote(legacy.Addr()), "var.legacy_url"}
	eph := driftSource{"redis_database.src.replication_endpoint", "ephemeral.redis_source_url.src.uri"}

	order := func(s ...driftSource) []driftSource {
		if reverse {
			for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
				s[i], s[j] = s[j], s[i]
			}
		}
		return s
	}
	list := func(s []driftSource, f func(driftSource) string) string {
		var out []string
		for _, x := range s {
			out = append(out, f(x))
		}
		return "[" + strings.Join(out, ", ") + "]"
	}
	addrs := func(s []driftSource) string {
		return list(s, func(x driftSource) string { return "{ address = " + x.address + " }" })
	}
	uris := func(s []driftSource) string { return list(s, func(x driftSource) string { return x.uri }) }

	var b strings.Builder
	fmt.Fprintf(&b, `
terraform {
  required_providers {
    redis = { source = "replicad/redis" }
  }
}

variable "endpoint" {}
variable "ca_cert" {}
variable "password" { sensitive = true }
variable "legacy_url" { sensitive = true }

provider "redis" {
  endpoint = var.endpoint
  password = var.password
  ca_cert  = var.ca_cert
}

resource "redis_database" "src" {
  name        = "drift-src"
  memory_size = 67108864
}

resource "redis_source_url_password" "src" {
  database_id = redis_database.src.id
}

# Read after the regeneration of the password.
ephemeral "redis_source_url" "src" {
  database_id = redis_database.src.id
  depends_on  = [redis_source_url_password.src]
}
`)
	dest := func(name, body string) {
		fmt.Fprintf(&b, `
resource "redis_database" %[1]q {
  name        = "drift-%[1]s"
  memory_size = 67108864
}

resource "redis_replica_of" %[1]q {
  database_id = redis_database.%[1]s.id
%[2]s
}
`, name, body)
	}
	// A sensitive URL (computed at the first plan) beside a literal one.
	s := order(src, lit)
	dest("sensitive_literal", "  source      = "+addrs(s)+"\n  source_uris = "+uris(s))
	// A sensitive variable beside a sensitive computed URL.
	s = order(sensVar, src)
	dest("sensitive_var", "  source      = "+addrs(s)+"\n  source_uris = "+uris(s))
	// The whole list sensitive.
	s = order(src, lit)
	dest("all_sensitive", "  source      = "+addrs(s)+"\n  source_uris = sensitive("+uris(s)+")")
	// Write-only: an ephemeral URL beside a literal one.
	s = order(eph, lit)
	dest("write_only", "  source         = "+addrs(s)+"\n  source_uris_wo = "+uris(s)+"\n  source_uris_wo_version = 1")
	return b.String()
}

var driftMixes = []string{"sensitive_literal", "sensitive_var", "all_sensitive", "write_only"}

func TestAccReplicaOf_noFalseDrift(t *testing.T) {
	e := testAccStart(t)
	legacy := redistest.Start(t, "--requirepass", "legacy-drift-"+strconv.Itoa(redistest.FreePort(t)))
	cli := newTestAccCLI(t,
		"TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert,
		"TF_VAR_legacy_url="+legacy.URL())

	cli.write("main.tf", testAccDriftConfig(legacy, false))
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	// Computed values became known: nothing left to do.
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")

	// Every source set and URL list in the other order.
	cli.write("main.tf", testAccDriftConfig(legacy, true))
	out, code := cli.run("plan", "-detailed-exitcode", "-no-color")
	assert.Equal(t, 0, code, "a new order of the sources plans a change:\n%s", out)

	// A refresh that finds nothing new.
	cli.mustRun(0, "apply", "-refresh-only", "-auto-approve", "-no-color")
	out, code = cli.run("plan", "-detailed-exitcode", "-no-color")
	assert.Equal(t, 0, code, "a plan after a refresh plans a change:\n%s", out)

	// Forget each destination and import it again.
	ids := map[string]string{}
	for _, name := range driftMixes {
		state := cli.mustRun(0, "state", "show", "-no-color", "redis_replica_of."+name)
		ids[name] = stateAttr(t, state, "id")
	}
	for _, name := range driftMixes {
		cli.mustRun(0, "state", "rm", "redis_replica_of."+name)
		cli.mustRun(0, "import", "-no-color", "redis_replica_of."+name, ids[name])
	}
	out, code = cli.run("plan", "-detailed-exitcode", "-no-color")
	// A write-only URL cannot be read back: after an import, Terraform
	// cannot know that the service has it, and the first apply sends it
	// (the syncers reconnect; nothing is flushed). That change is visible.
	require.Equal(t, 2, code, "the import of a write-only configuration plans no change:\n%s", out)
	flat := strings.Join(strings.Fields(out), " ")
	assert.Contains(t, flat, "redis_replica_of.write_only will be updated in-place")
	assert.Contains(t, flat, "+ source_uris_wo_version = 1")
	assert.Contains(t, flat, "0 to add, 1 to change, 0 to destroy")
	assert.NotContains(t, flat, "flush")
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	out, code = cli.run("plan", "-detailed-exitcode", "-no-color")
	assert.Equal(t, 0, code, "a plan after the imports plans a change:\n%s", out)

	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}

// stateAttr reads attribute name from the output of terraform state show.
func stateAttr(t *testing.T, state, name string) string {
	t.Helper()
	for _, line := range strings.Split(state, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && strings.TrimSpace(k) == name {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	t.Fatalf("no %s in:\n%s", name, state)
	return ""
}
