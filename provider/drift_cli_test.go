package provider

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

// TestAccDrift_realChangesPlanAndSayWhat: what changed outside Terraform
// makes `terraform plan -detailed-exitcode` exit 2, and the plan names what:
// a destination's memory_size, its source list and a source's settings
// changed through the API, a source's password regenerated, the destination
// deleted. After each apply, the plan is empty again.
func TestAccDrift_realChangesPlanAndSayWhat(t *testing.T) {
	e := testAccStart(t)
	legacy := redistest.Start(t)
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert)
	ctx := testAccContext(t)
	cli.write("main.tf", testAccDefaultsConfig(false))
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")
	dst := mustAtoi(t, stateAttr(t, cli.mustRun(0, "state", "show", "-no-color", "redis_database.dst"), "id"))
	src := mustAtoi(t, stateAttr(t, cli.mustRun(0, "state", "show", "-no-color", "redis_database.src"), "id"))
	srcURL, err := e.client.GetSourceURL(ctx, src)
	require.NoError(t, err)

	drifted := func(what string, change func(), want ...string) {
		t.Helper()
		change()
		out, code := cli.run("plan", "-detailed-exitcode", "-no-color")
		if assert.Equal(t, 2, code, "%s: the plan does not see it:\n%s", what, out) {
			for _, w := range want {
				assert.Contains(t, flat(out), w, "%s: the plan does not say so", what)
			}
		}
		cli.mustRun(0, "apply", "-auto-approve", "-no-color")
		out, code = cli.run("plan", "-detailed-exitcode", "-no-color")
		assert.Equal(t, 0, code, "%s, then applied: the plan is not empty:\n%s", what, out)
	}

	memory := int64(128 << 20)
	drifted("memory_size changed through the API", func() {
		_, err := e.client.UpdateDatabase(ctx, dst, api.UpdateDatabaseRequest{MemorySize: &memory})
		require.NoError(t, err)
	}, "# redis_database.dst will be updated in-place", "~ memory_size = 134217728 -> 67108864")

	drifted("the source list changed through the API", func() {
		_, err := e.client.UpdateDatabase(ctx, dst, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{
			{URI: srcURL.URI}, {URI: legacy.URL()},
		}})
		require.NoError(t, err)
	}, "# redis_replica_of.dst will be updated in-place", `- address = "`+legacy.Addr()+`" -> null`)

	drifted("a source's compression changed through the API", func() {
		_, err := e.client.UpdateDatabase(ctx, dst, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{
			{URI: srcURL.URI, Compression: 2},
		}})
		require.NoError(t, err)
	}, "# redis_replica_of.dst will be updated in-place", "- compression = 2 -> null", "+ compression = 0")

	drifted("the source's password regenerated through the API", func() {
		_, err := e.client.RegenerateAdminPassword(ctx, src, nil)
		require.NoError(t, err)
	}, "# redis_replica_of.dst will be updated in-place", "source_uris = (sensitive value)")

	drifted("the destination deleted through the API", func() {
		require.NoError(t, e.client.DeleteDatabase(ctx, dst))
	}, "# redis_database.dst will be created", "# redis_replica_of.dst will be created")

	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
}
