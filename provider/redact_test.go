package provider

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
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
// address, a source URL, sync, fail_after, database_id, and an address beside
// a compression and a read_from out of range. The plan fails at
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

variable "level" {
  type    = number
  default = 7
}

# Attributes of a source whose address is a URL: the framework names them
# by the whole source, address included.
resource "redis_replica_of" "w" {
  database_id = "6"
  source      = [{ address = var.sec, compression = var.level, read_from = var.bare }]
}
`)
	out := flat(cli.mustRun(1, "plan", "-no-color"))
	_ = out
	all := flat(cli.all.String())
	assert.Contains(t, all, `a source address is a URL, "redis://:xxxxx@127.0.0.1:23780", not a host:port address`)
	assert.Contains(t, all, "a source address is not a host:port address")
	assert.Contains(t, all, "invalid source URL (the value is not shown")
	assert.Contains(t, all, "Invalid duration")
	assert.Contains(t, all, "compression of a source value must be between 0 and 6")
	assert.Contains(t, all, "read_from of a source value must be one of")
	cli.checkNoSecrets(map[string]string{"secret": testSecret})
}

// The validators of a source's attributes do not show the source: the
// framework names an attribute of a set element by the element's whole
// value, and an address may be a URL with its password, given by mistake.
// The messages name the source by its address when it is a host:port.
func TestSourceAttributeValidatorsDoNotShowTheSource(t *testing.T) {
	ctx := context.Background()
	var sresp resource.SchemaResponse
	(&replicaOfResource{}).Schema(ctx, resource.SchemaRequest{}, &sresp)
	nested := sresp.Schema.Attributes["source"].(schema.SetNestedAttribute).NestedObject.Attributes

	element := func(addr string) types.Object {
		return types.ObjectValueMust(map[string]attr.Type{"address": types.StringType, "compression": types.Int64Type}, map[string]attr.Value{
			"address": types.StringValue(addr), "compression": types.Int64Value(7),
		})
	}
	for _, tc := range []struct{ addr, want string }{
		{"redis://:" + testSecret + "@127.0.0.1:23780", "of a source"},
		{testSecret, "of a source"},
		{"10.0.0.5:6379", `of the source "10.0.0.5:6379"`},
	} {
		at := path.Root("source").AtSetValue(element(tc.addr))

		var ir validator.Int64Response
		for _, v := range nested["compression"].(schema.Int64Attribute).Validators {
			v.ValidateInt64(ctx, validator.Int64Request{Path: at.AtName("compression"), ConfigValue: types.Int64Value(7)}, &ir)
		}
		require.True(t, ir.Diagnostics.HasError(), "compression = 7")
		text := diagsText(ir.Diagnostics)
		assert.NotContains(t, text, testSecret)
		assert.Contains(t, text, "compression "+tc.want)
		assert.Contains(t, text, "between 0 and 6")
		for _, d := range ir.Diagnostics {
			dp, ok := d.(diag.DiagnosticWithPath)
			require.True(t, ok)
			assert.Equal(t, path.Root("source"), dp.Path(), "attached to the set: Terraform logs the path, element value included")
		}

		var sr validator.StringResponse
		for _, v := range nested["read_from"].(schema.StringAttribute).Validators {
			v.ValidateString(ctx, validator.StringRequest{Path: at.AtName("read_from"), ConfigValue: types.StringValue(testSecret)}, &sr)
		}
		require.True(t, sr.Diagnostics.HasError(), "read_from")
		text = diagsText(sr.Diagnostics)
		assert.NotContains(t, text, testSecret)
		assert.Contains(t, text, "read_from "+tc.want)

		sr = validator.StringResponse{}
		for _, v := range nested["server_cert"].(schema.StringAttribute).Validators {
			v.ValidateString(ctx, validator.StringRequest{Path: at.AtName("server_cert"), ConfigValue: types.StringValue(testSecret)}, &sr)
		}
		require.True(t, sr.Diagnostics.HasError(), "server_cert")
		text = diagsText(sr.Diagnostics)
		assert.NotContains(t, text, testSecret)
		assert.Contains(t, text, "server_cert "+tc.want+": the value is not PEM")
	}
}

// TestAccValidation_noKeyInErrors plans, with TF_LOG=DEBUG, a private key
// given where a certificate is expected (client_certificates of a database,
// server_cert of a source), from a sensitive variable: the mix-up of
// tls_private_key's private_key_pem and cert_pem. The plan fails, naming
// the attribute, and nothing terraform prints (its logs included, which
// name the attribute of each diagnostic) shows the key.
func TestAccValidation_noKeyInErrors(t *testing.T) {
	const keyBody = "MIIEpAIBAAKCAQEA" + testSecret + "q0Zr5yVx1tL2w9kPc3nB7sD4fG6hJ8mK"
	key := "-----BEGIN RSA PRIVATE KEY-----\n" + keyBody + "\n-----END RSA PRIVATE KEY-----\n"
	cli := newTestAccCLI(t, "TF_LOG=DEBUG", "TF_VAR_key="+key)
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

variable "key" {
  type      = string
  sensitive = true
}

resource "redis_database" "d" {
  name                = "pinned"
  memory_size         = 8388608
  tls_mode            = "replica_ssl"
  client_certificates = [var.key]
}

resource "redis_replica_of" "r" {
  database_id = "4"
  source      = [{ address = "127.0.0.1:23780", encryption = true, server_cert = var.key }]
}
`)
	cli.mustRun(1, "plan", "-no-color")
	all := flat(cli.all.String())
	assert.Contains(t, all, "Invalid certificate")
	assert.Contains(t, all, "client_certificates")
	assert.Contains(t, all, "server_cert")
	cli.checkNoSecrets(map[string]string{"key": keyBody})
}
