package provider

import (
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/internal/redisurl"
)

// testAccWORotationConfig is the documented pattern of a password rotation
// with write-only URLs: the ephemeral redis_source_url read after the
// redis_source_url_password, and source_uris_wo_version tied to its
// password_version.
const testAccWORotationConfig = testAccCLIProviderConfig + `
variable "rotation" { default = "1" }

resource "redis_database" "src" {
  name        = "worot-src"
  memory_size = 8388608
}

resource "redis_source_url_password" "src" {
  database_id = redis_database.src.id
  keepers     = { rotation = var.rotation }
}

ephemeral "redis_source_url" "src" {
  database_id = redis_source_url_password.src.database_id
  depends_on  = [redis_source_url_password.src]
}

resource "redis_database" "dst" {
  name        = "worot-dst"
  memory_size = 8388608
}

resource "redis_replica_of" "dst" {
  database_id            = redis_database.dst.id
  source                 = [{ address = redis_source_url_password.src.address }]
  source_uris_wo         = [ephemeral.redis_source_url.src.uri]
  source_uris_wo_version = redis_source_url_password.src.password_version
}

output "src_id" {
  value = redis_database.src.id
}

output "dst_id" {
  value = redis_database.dst.id
}
`

// TestAccReplicaOf_writeOnlyRotationInOneApply rotates the source's
// password with the write-only pattern of the docs: the one apply that
// regenerates the password also sends the new URL to the destination (no
// flush), and the next plan is empty.
func TestAccReplicaOf_writeOnlyRotationInOneApply(t *testing.T) {
	e := testAccStartWith(t, testAccShortGrace)
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert)
	cli.write("main.tf", testAccWORotationConfig)
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")
	ctx := testAccContext(t)
	srcUID := mustAtoi(t, strings.TrimSpace(cli.mustRun(0, "output", "-raw", "src_id")))
	dstUID := mustAtoi(t, strings.TrimSpace(cli.mustRun(0, "output", "-raw", "dst_id")))
	before, err := e.client.GetDatabase(ctx, dstUID)
	require.NoError(t, err)
	first, err := e.client.GetSourceURL(ctx, srcUID)
	require.NoError(t, err)
	require.Len(t, before.ReplicaSources, 1)
	require.Equal(t, first.URI, before.ReplicaSources[0].URI)

	plan := flat(cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color", "-var", "rotation=2"))
	assert.Contains(t, plan, "redis_replica_of.dst will be updated in-place", "the rotation does not update the destination")
	assert.Contains(t, plan, "source_uris_wo_version = ")
	assert.Contains(t, plan, "-> (known after apply)")
	assert.NotContains(t, plan, "redis_replica_of.dst must be replaced")
	out := flat(cli.mustRun(0, "apply", "-auto-approve", "-no-color", "-var", "rotation=2"))
	assert.Contains(t, out, "1 added, 1 changed, 1 destroyed")

	rotated, err := e.client.GetSourceURL(ctx, srcUID)
	require.NoError(t, err)
	require.NotEqual(t, first.URI, rotated.URI, "the password was not regenerated")
	after, err := e.client.GetDatabase(ctx, dstUID)
	require.NoError(t, err)
	require.Len(t, after.ReplicaSources, 1)
	assert.Equal(t, rotated.URI, after.ReplicaSources[0].URI, "the destination does not use the new password")
	assert.Equal(t, api.SyncEnabled, after.ReplicaSync)
	assert.Equal(t, before.ReplicaGeneration, after.ReplicaGeneration, "the rotation flushed the destination")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color", "-var", "rotation=2")

	cli.checkNoSecrets(map[string]string{"first password": urlPassword(t, first.URI), "new password": urlPassword(t, rotated.URI)})
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color", "-var", "rotation=2")
}

// urlPassword is the password of a source URL.
func urlPassword(t *testing.T, uri string) string {
	t.Helper()
	u, err := redisurl.Parse(uri)
	require.NoError(t, err)
	return u.Password
}

// TestAccReplicaOf_writeOnlyResendWarns regenerates the source's password
// through the REST API under a configuration whose source_uris_wo_version
// does not change: the plan is an update whose only visible change is the
// status, with a warning that says why; the apply sends the new URL.
func TestAccReplicaOf_writeOnlyResendWarns(t *testing.T) {
	e := testAccStart(t)
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert)
	cli.write("main.tf", testAccCLIProviderConfig+`
resource "redis_database" "src" {
  name        = "woresend-src"
  memory_size = 8388608
}

ephemeral "redis_source_url" "src" {
  database_id = redis_database.src.id
}

resource "redis_database" "dst" {
  name        = "woresend-dst"
  memory_size = 8388608
}

resource "redis_replica_of" "dst" {
  database_id            = redis_database.dst.id
  source                 = [{ address = redis_database.src.replication_endpoint }]
  source_uris_wo         = [ephemeral.redis_source_url.src.uri]
  source_uris_wo_version = 1
}

output "src_id" {
  value = redis_database.src.id
}

output "dst_id" {
  value = redis_database.dst.id
}
`)
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	ctx := testAccContext(t)
	srcUID := mustAtoi(t, strings.TrimSpace(cli.mustRun(0, "output", "-raw", "src_id")))
	dstUID := mustAtoi(t, strings.TrimSpace(cli.mustRun(0, "output", "-raw", "dst_id")))
	first, err := e.client.GetSourceURL(ctx, srcUID)
	require.NoError(t, err)
	rotated, err := e.client.RegenerateAdminPassword(ctx, srcUID, nil)
	require.NoError(t, err)

	before := cli.all.Len()
	plan := flat(cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color"))
	all := flat(cli.all.String()[before:])
	assert.Contains(t, plan, "redis_replica_of.dst will be updated in-place")
	assert.Contains(t, all, "Warning: The write-only source URLs are sent again")
	assert.Contains(t, all, "changed since the last apply")
	assert.NotContains(t, all, "flush the destination")
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	db, err := e.client.GetDatabase(ctx, dstUID)
	require.NoError(t, err)
	require.Len(t, db.ReplicaSources, 1)
	assert.Equal(t, rotated.URI, db.ReplicaSources[0].URI, "the destination does not use the new password")
	before = cli.all.Len()
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")
	assert.NotContains(t, cli.all.String()[before:], "are sent again", "the warning stays once the URLs are sent")
	cli.checkNoSecrets(map[string]string{"first password": urlPassword(t, first.URI), "new password": rotated.AuthenticationAdminPass})
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}

// TestAccReplicaOf_writeOnlyDriftShows changes, through the REST API, the
// credentials of a source whose URL is write-only: the next plan shows it
// (an update that sends the URL of the configuration again, with the
// warning that says why), as it does for a URL in source_uris, and the
// apply puts it back without a flush. It planned nothing: a write-only URL
// cannot be read back, and the provider compared the configuration's URLs
// with those it sent, not with the service's.
func TestAccReplicaOf_writeOnlyDriftShows(t *testing.T) {
	e := testAccStart(t)
	legacy := redistest.Start(t, "--requirepass", "legacy-wo-drift-"+strconv.Itoa(redistest.FreePort(t)))
	configured := "redis://:" + url.PathEscape(legacy.Password) + "@" + legacy.Addr()
	outside := "redis://default:" + url.PathEscape(legacy.Password) + "@" + legacy.Addr()
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert,
		"TF_VAR_legacy_url="+configured)
	cli.write("main.tf", testAccCLIProviderConfig+`
variable "legacy_url" { sensitive = true }

resource "redis_database" "dst" {
  name        = "wodrift-dst"
  memory_size = 8388608
}

resource "redis_replica_of" "dst" {
  database_id            = redis_database.dst.id
  source                 = [{ address = "`+legacy.Addr()+`" }]
  source_uris_wo         = [var.legacy_url]
  source_uris_wo_version = 1
}

output "dst_id" {
  value = redis_database.dst.id
}
`)
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")
	ctx := testAccContext(t)
	dstUID := mustAtoi(t, strings.TrimSpace(cli.mustRun(0, "output", "-raw", "dst_id")))
	before, err := e.client.GetDatabase(ctx, dstUID)
	require.NoError(t, err)
	require.Len(t, before.ReplicaSources, 1)
	require.Equal(t, configured, before.ReplicaSources[0].URI)

	// Other credentials that work, given through the API.
	changed := []api.ReplicaSource{{URI: outside}}
	_, err = e.client.UpdateDatabase(ctx, dstUID, api.UpdateDatabaseRequest{ReplicaSources: &changed})
	require.NoError(t, err)

	start := cli.all.Len()
	plan := flat(cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color"))
	all := flat(cli.all.String()[start:])
	assert.Contains(t, plan, "redis_replica_of.dst will be updated in-place")
	assert.Contains(t, all, "Warning: The write-only source URLs are sent again")
	assert.Contains(t, all, "changed outside Terraform")
	assert.NotContains(t, all, "flush the destination")
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	after, err := e.client.GetDatabase(ctx, dstUID)
	require.NoError(t, err)
	require.Len(t, after.ReplicaSources, 1)
	assert.Equal(t, configured, after.ReplicaSources[0].URI, "the apply does not send the configured URL")
	assert.Equal(t, before.ReplicaGeneration, after.ReplicaGeneration, "the destination was flushed")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")
	cli.checkNoSecrets(map[string]string{"legacy password": legacy.Password})
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}
