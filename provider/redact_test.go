package provider

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
)

const testSecret = "SECRETPW123"

func diagsText(diags diag.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		b.WriteString(d.Summary() + ": " + d.Detail() + "\n")
	}
	return b.String()
}

// No check of a source address or URL shows a value that may be secret:
// a URL loses its credentials, a value that does not parse is not shown.
func TestSourceChecksDoNotEchoSecrets(t *testing.T) {
	for _, addr := range []string{
		"redis://:" + testSecret + "@127.0.0.1:23780",
		"redis://admin:" + testSecret + "@127.0.0.1:23780",
		testSecret,
		"admin:" + testSecret,
		"redis://" + testSecret + "@cache.internal:6379/0",
	} {
		_, err := canonicalAddress(addr)
		require.Error(t, err, addr)
		assert.NotContains(t, err.Error(), testSecret)
		if strings.Contains(addr, "127.0.0.1") {
			assert.Contains(t, err.Error(), "127.0.0.1:23780", "a URL is shown without its credentials")
		}
	}
	ctx := context.Background()
	for _, uri := range []string{
		testSecret,
		"redis://" + testSecret,
		"http://admin:" + testSecret + "@10.0.0.1:6379",
		"redis://:" + testSecret + "@10.0.0.1:6379/0?x=" + testSecret,
		" redis://:" + testSecret + "@10.0.0.1:6379",
	} {
		var diags diag.Diagnostics
		var cs credentialSet
		cs.add(ctx, path.Root("source_uris"), stringList(t, uri), &diags)
		require.True(t, diags.HasError(), uri)
		text := diagsText(diags)
		assert.NotContains(t, text, testSecret)
		assert.Contains(t, text, "invalid source URL")
	}
	var diags diag.Diagnostics
	var cs credentialSet
	cs.add(ctx, path.Root("source_uris"), stringList(t, "http://admin:"+testSecret+"@10.0.0.1:6379"), &diags)
	assert.Contains(t, diagsText(diags), `invalid source URL "http://admin:xxxxx@10.0.0.1:6379": the scheme must be redis:// or rediss://`)
	assert.NotContains(t, sourceAddress(testSecret), testSecret)
}

// The string validators of the schemas do not show the value they refuse.
func TestValidatorsDoNotEchoSecrets(t *testing.T) {
	ctx := context.Background()
	for name, v := range map[string]validator.String{
		"database_id": noEcho(stringvalidator.RegexMatches(databaseIDPattern, "must be a database uid")),
		"sync":        noEcho(stringvalidator.OneOf(api.SyncEnabled, api.SyncPaused, api.SyncStopped)),
		"fail_after":  durationString(),
		"server_cert": pemCertificate(),
		"password":    databasePassword(),
	} {
		for _, value := range []string{testSecret, testSecret + "\n", "x"} {
			req := validator.StringRequest{Path: path.Root(name), ConfigValue: types.StringValue(value)}
			var resp validator.StringResponse
			v.ValidateString(ctx, req, &resp)
			if value == testSecret && name == "password" {
				assert.False(t, resp.Diagnostics.HasError(), "a valid password")
				continue
			}
			require.True(t, resp.Diagnostics.HasError(), "%s = %q", name, value)
			assert.NotContains(t, diagsText(resp.Diagnostics), testSecret, name)
			assert.NotContains(t, diagsText(resp.Diagnostics), "got: ", name)
		}
	}
}

// TestAccValidation_noSecretsInErrors plans, with TF_LOG=DEBUG, a
// configuration whose sensitive values are given where they do not fit: an
// address, a source URL, sync, fail_after, database_id. The plan fails at
// validation, and nothing terraform prints shows the secret.
func TestAccValidation_noSecretsInErrors(t *testing.T) {
	cli := newTestAccCLI(t, "TF_LOG=DEBUG")
	cli.write("main.tf", `
terraform {
  required_providers {
    redis = { source = "replicad/redis" }
  }
}

provider "redis" {
  endpoint = "https://127.0.0.1:1"
  password = "unused"
}

variable "sec" {
  type      = string
  sensitive = true
  default   = "redis://:`+testSecret+`@127.0.0.1:23780"
}

variable "bare" {
  type      = string
  sensitive = true
  default   = "`+testSecret+`"
}

resource "redis_replica_of" "x" {
  database_id = "4"
  source      = [{ address = var.sec }]
}

resource "redis_replica_of" "y" {
  database_id = "5"
  source      = [{ address = "127.0.0.1:23781" }]
  source_uris = [var.bare]
}

resource "redis_replica_of" "z" {
  database_id = var.bare
  source      = [{ address = var.bare }]
  sync        = var.bare
  fail_after  = var.bare
}
`)
	out := flat(cli.mustRun(1, "plan", "-no-color"))
	_ = out
	all := flat(cli.all.String())
	assert.Contains(t, all, `a source address is a URL, "redis://:xxxxx@127.0.0.1:23780", not a host:port address`)
	assert.Contains(t, all, "a source address is not a host:port address")
	assert.Contains(t, all, "invalid source URL (the value is not shown")
	assert.Contains(t, all, "Invalid duration")
	cli.checkNoSecrets(map[string]string{"secret": testSecret})
}
