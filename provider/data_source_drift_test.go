package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
)

// showValues returns the values of every resource and data source in the
// state, by address, from terraform show -json (sensitive values included:
// the JSON only marks them).
func showValues(t *testing.T, cli *testAccCLI) map[string]map[string]any {
	t.Helper()
	var doc struct {
		Values struct {
			RootModule struct {
				Resources []struct {
					Address string         `json:"address"`
					Values  map[string]any `json:"values"`
				} `json:"resources"`
			} `json:"root_module"`
		} `json:"values"`
	}
	// What show -json prints holds the secrets: it is kept out of what
	// checkNoSecrets searches.
	n := cli.all.Len()
	shown := cli.mustRun(0, "show", "-json")
	cli.all.Truncate(n)
	require.NoError(t, json.Unmarshal([]byte(shown), &doc))
	out := map[string]map[string]any{}
	for _, r := range doc.Values.RootModule.Resources {
		out[r.Address] = r.Values
	}
	return out
}

// TestAccDataSources_readChangesMadeOutsideTerraform: each data source reads
// what the service has now, after changes made through the API. Nothing in
// the configuration depending on them, `plan -detailed-exitcode` exits 0
// (a data source is read again by every plan; what it reads is no change);
// an output that depends on them shows the new value as a change (exit 2)
// until applied; a database that is gone is an error naming it.
func TestAccDataSources_readChangesMadeOutsideTerraform(t *testing.T) {
	e := testAccStart(t)
	ctx := testAccContext(t)
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert)
	const name = "ds-outside"
	db, err := e.client.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: name, MemorySize: 64 << 20})
	require.NoError(t, err)
	uid := strconv.Itoa(db.UID)
	dataSources := testAccCLIProviderConfig + fmt.Sprintf(`
data "redis_database" "by_name" {
  name = %q
}

data "redis_database" "by_id" {
  id = %q
}

data "redis_source_url" "outside" {
  database_id = %q
}

data "redis_cluster" "this" {}
`, name, uid, uid)
	outputs := `
output "memory_size" {
  value = data.redis_database.by_name.memory_size
}

output "source_url" {
  value     = data.redis_source_url.outside.uri
  sensitive = true
}
`
	// checkReads compares what the data sources read with the service.
	checkReads := func(what string) {
		t.Helper()
		now, err := e.client.GetDatabase(ctx, db.UID)
		require.NoError(t, err)
		url, err := e.client.GetSourceURL(ctx, db.UID)
		require.NoError(t, err)
		cluster, err := e.client.GetCluster(ctx)
		require.NoError(t, err)
		values := showValues(t, cli)
		for _, addr := range []string{"data.redis_database.by_name", "data.redis_database.by_id"} {
			v := values[addr]
			require.NotNil(t, v, "%s: %s is not in the state", what, addr)
			assert.Equal(t, float64(now.MemorySize), v["memory_size"], "%s: %s memory_size", what, addr)
			assert.Equal(t, now.AuthenticationRedisPass, v["password"], "%s: %s password", what, addr)
			assert.Equal(t, now.TLSMode, v["tls_mode"], "%s: %s tls_mode", what, addr)
			assert.Equal(t, now.Status, v["status"], "%s: %s status", what, addr)
		}
		assert.Equal(t, url.URI, values["data.redis_source_url.outside"]["uri"], "%s: the source URL", what)
		c := values["data.redis_cluster.this"]
		assert.Equal(t, cluster.Name, c["name"], "%s: cluster name", what)
		assert.Equal(t, cluster.ProxyCert, c["proxy_cert"], "%s: proxy_cert", what)
		assert.Equal(t, cluster.SyncerCert, c["syncer_cert"], "%s: syncer_cert", what)
	}
	secrets := map[string]string{"API password": e.inst.Password}
	defer func() { cli.checkNoSecrets(secrets) }()
	changeOutside := func(memory int64, password string) {
		t.Helper()
		_, err := e.client.UpdateDatabase(ctx, db.UID, api.UpdateDatabaseRequest{MemorySize: &memory, AuthenticationRedisPass: &password})
		require.NoError(t, err)
		_, err = e.client.RegenerateAdminPassword(ctx, db.UID, nil)
		require.NoError(t, err)
		url, err := e.client.GetSourceURL(ctx, db.UID)
		require.NoError(t, err)
		secrets["database password "+password] = password
		secrets["source URL "+password] = url.URI
		require.NoError(t, testAccEventually(2*time.Minute, "the database is active", func(ctx context.Context) error {
			d, err := e.client.GetDatabase(ctx, db.UID)
			if err != nil {
				return err
			}
			if d.Status != api.StatusActive {
				return fmt.Errorf("status %q", d.Status)
			}
			return nil
		}))
	}

	// Data sources that nothing depends on.
	cli.write("main.tf", dataSources)
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	checkReads("first read")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")
	changeOutside(96<<20, "outside-password-1")
	out, code := cli.run("plan", "-detailed-exitcode", "-no-color")
	assert.Equal(t, 0, code, "data sources that nothing depends on plan a change:\n%s", out)
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	checkReads("after changes through the API")

	// Outputs that depend on them: the new value is a change to outputs.
	cli.write("main.tf", dataSources+outputs)
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")
	changeOutside(128<<20, "outside-password-2")
	out = flat(cli.mustRun(2, "plan", "-detailed-exitcode", "-no-color"))
	assert.Contains(t, out, "Changes to Outputs")
	assert.Contains(t, out, fmt.Sprintf("memory_size = %d -> %d", 96<<20, 128<<20))
	assert.Contains(t, out, "source_url = (sensitive value)")
	cli.mustRun(0, "apply", "-auto-approve", "-no-color")
	checkReads("after the outputs were applied")
	cli.mustRun(0, "plan", "-detailed-exitcode", "-no-color")

	// The database deleted outside Terraform: an error that names it.
	require.NoError(t, e.client.DeleteDatabase(ctx, db.UID))
	require.NoError(t, testAccEventually(2*time.Minute, "the database is gone", func(ctx context.Context) error {
		if _, err := e.client.GetDatabase(ctx, db.UID); err == nil {
			return fmt.Errorf("database %d still exists", db.UID)
		}
		return nil
	}))
	n := cli.all.Len()
	cli.mustRun(1, "plan", "-detailed-exitcode", "-no-color")
	out = flat(cli.all.String()[n:]) // the errors are on stderr
	assert.Contains(t, out, fmt.Sprintf("no database is named %q", name))
	assert.Contains(t, out, fmt.Sprintf("database %s does not exist", uid))
}
