package provider

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// TestAccDatabase_createTimeoutBoundsTheRequest: timeouts.create bounds the
// whole create, the service's answer to the create request included (it
// answers once the database's redis-server has started), not only the wait
// for the database to become active after it. The database the service
// went on making is recorded, tainted, and nothing is left behind by the
// destroy.
func TestAccDatabase_createTimeoutBoundsTheRequest(t *testing.T) {
	testAccRequire(t)
	real := servicetest.RequireRedisServer(t)
	wrapper := filepath.Join(t.TempDir(), "redis-server")
	// A redis-server slow to start (a loaded host, a big AOF): the checks
	// of the binary at the service's start (--version, -) as they are.
	require.NoError(t, os.WriteFile(wrapper, []byte(`#!/bin/sh
case "$1" in
--version|-) exec `+real+` "$@";;
esac
sleep 6
exec `+real+` "$@"
`), 0o755))
	e := testAccStartWith(t, func(c *app.Config) { c.RedisServer = wrapper })
	cli := newTestAccCLI(t, "TF_VAR_endpoint="+e.inst.URL, "TF_VAR_password="+e.inst.Password, "TF_VAR_ca_cert="+e.inst.CACert)
	cli.write("main.tf", testAccCLIProviderConfig+`
resource "redis_database" "slow" {
  name        = "slow"
  memory_size = 8388608
  timeouts {
    create = "2s"
  }
}
`)
	start := time.Now()
	cli.mustRun(1, "apply", "-auto-approve", "-no-color")
	took := time.Since(start)
	out := flat(cli.all.String())
	assert.Contains(t, out, "The create timeout (2s) passed")
	assert.Less(t, took, 5500*time.Millisecond, "the apply ended when its create timeout passed, not when the service answered")

	// The database the service made is in the state (tainted), and the
	// destroy removes it.
	list := cli.mustRun(0, "state", "list")
	assert.Contains(t, list, "redis_database.slow")
	cli.mustRun(0, "destroy", "-auto-approve", "-no-color")
	dbs, err := e.client.ListDatabases(t.Context())
	require.NoError(t, err)
	assert.Empty(t, dbs)
}
