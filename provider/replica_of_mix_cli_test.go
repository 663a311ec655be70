package provider

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

// TestAccReplicaOf_sourceMixesAsAUser mixes, in one Replica Of, a source
// URL from a resource (sensitive, unknown at plan when its password is
// rotated), a literal URL marked sensitive, a write-only URL from an
// ephemeral resource, a sensitive address and a source without a password,
// then reorders them, rotates a password, moves a URL between source_uris
// and source_uris_wo, and imports the Replica Of again. After each apply
// `plan -detailed-exitcode` exits 0; a reorder plans nothing; nothing but
// a new source set flushes the destination; no secret is printed.
func TestAccReplicaOf_sourceMixesAsAUser(t *testing.T) {
	e := testAccStart(t)
	legacy := redistest.Start(t, "--requirepass", "legacy-mix-password-12")
	plain := redistest.Start(t)
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert,
		"TF_VAR_legacy_url="+legacy.URL(), "TF_VAR_legacy_address="+legacy.Addr(), "TF_VAR_plain_address="+plain.Addr())
	defer cli.checkNoSecrets(map[string]string{"legacy password": legacy.Password, "API password": e.inst.Password})
	base := testAccCLIProviderConfig + `
variable "legacy_url" {}
variable "legacy_address" {}
variable "plain_address" {}
variable "rotation" { default = "1" }

resource "redis_database" "s1" {
  name        = "mix-s1"
  memory_size = 67108864
}

resource "redis_database" "s2" {
  name        = "mix-s2"
  memory_size = 67108864
}

resource "redis_source_url_password" "s1" {
  database_id = redis_database.s1.id
  keepers     = { rotation = var.rotation }
}

ephemeral "redis_source_url" "s2" {
  database_id = redis_database.s2.id
}

resource "redis_database" "dst" {
  name        = "mix-dst"
  memory_size = 67108864
}
`
	const (
		s1     = `{ address = redis_source_url_password.s1.address }`
		s2     = `{ address = redis_database.s2.replication_endpoint }`
		lgS    = `{ address = sensitive(var.legacy_address) }`
		plainS = `{ address = var.plain_address, compression = 0 }`
		s1URL  = `redis_source_url_password.s1.source_url`
		s2URL  = `ephemeral.redis_source_url.s2.uri`
		lgURL  = `sensitive(var.legacy_url)`
	)
	replicaOf := func(sources []string, uris, wo []string) string {
		u := "null"
		if uris != nil {
			u = "[" + strings.Join(uris, ", ") + "]"
		}
		return fmt.Sprintf(`
resource "redis_replica_of" "dst" {
  database_id            = redis_database.dst.id
  source                 = [%s]
  source_uris            = %s
  source_uris_wo         = [%s]
  source_uris_wo_version = 1
}
`, strings.Join(sources, ", "), u, strings.Join(wo, ", "))
	}
	const addr = "redis_replica_of.dst"
	generation := func() string {
		return stateAttr(t, cli.mustRun(0, "state", "show", "-no-color", addr), "generation")
	}
	apply := func(what, config string) {
		t.Helper()
		cli.write("main.tf", base+config)
		cli.mustRun(0, "apply", "-auto-approve", "-no-color")
		out, code := cli.run("plan", "-detailed-exitcode", "-no-color")
		require.Equal(t, 0, code, "%s: the plan after the apply is not empty:\n%s", what, out)
	}
	planNothing := func(what, config string) {
		t.Helper()
		cli.write("main.tf", base+config)
		out, code := cli.run("plan", "-detailed-exitcode", "-no-color")
		assert.Equal(t, 0, code, "%s plans a change:\n%s", what, out)
	}

	all := []string{s1, s2, lgS, plainS}
	apply("the first apply", replicaOf(all, []string{s1URL, lgURL}, []string{s2URL}))
	gen := generation()

	planNothing("a reorder", replicaOf([]string{plainS, lgS, s2, s1}, []string{lgURL, s1URL}, []string{s2URL}))

	// s1's password rotated: its URL is unknown at plan, with a reorder.
	cli.env = append(cli.env, "TF_VAR_rotation=2")
	cli.write("main.tf", base+replicaOf([]string{s2, s1, plainS, lgS}, []string{lgURL, s1URL}, []string{s2URL}))
	out := flat(cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color"))
	assert.NotContains(t, out, "re-replicates", "a rotation plans a flush")
	apply("a rotation", replicaOf([]string{s2, s1, plainS, lgS}, []string{lgURL, s1URL}, []string{s2URL}))
	assert.Equal(t, gen, generation(), "a rotation flushed the destination")

	// The legacy URL moved to the write-only list, then every URL.
	apply("a URL moved to source_uris_wo", replicaOf(all, []string{s1URL}, []string{lgURL, s2URL}))
	planNothing("a reorder of source_uris_wo", replicaOf([]string{lgS, s1, plainS, s2}, []string{s1URL}, []string{s2URL, lgURL}))
	apply("every URL write-only", replicaOf(all, nil, []string{s2URL, s1URL, lgURL}))
	assert.Equal(t, gen, generation(), "moving URLs flushed the destination")

	// Imported again: the next apply sets source_uris_wo_version (an
	// import cannot read it) and nothing else; then a reorder plans
	// nothing.
	id := stateAttr(t, cli.mustRun(0, "state", "show", "-no-color", addr), "id")
	cli.mustRun(0, "state", "rm", addr)
	apply("the import", replicaOf(all, []string{s1URL}, []string{lgURL, s2URL})+
		fmt.Sprintf("import {\n  to = %s\n  id = %q\n}\n", addr, id))
	planNothing("a reorder after the import", replicaOf([]string{s2, plainS, s1, lgS}, []string{s1URL}, []string{s2URL, lgURL}))
	assert.Equal(t, gen, generation(), "the import flushed the destination")

	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}
