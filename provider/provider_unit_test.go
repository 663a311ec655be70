package provider

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral"
	fwprovider "github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/client"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func diagSummaries(d diag.Diagnostics) string {
	var s []string
	for _, e := range d.Errors() {
		s = append(s, e.Summary()+": "+e.Detail())
	}
	return strings.Join(s, "\n")
}

func TestClientConfigMissingValues(t *testing.T) {
	_, diags := clientConfig(providerModel{}, env(nil))
	got := diagSummaries(diags)
	for _, want := range []string{"Missing redis-replicad endpoint", EnvEndpoint, "Missing redis-replicad password", EnvPassword} {
		if !strings.Contains(got, want) {
			t.Errorf("diagnostics %q lack %q", got, want)
		}
	}
}

func TestClientConfigFromEnvironment(t *testing.T) {
	cfg, diags := clientConfig(providerModel{}, env(map[string]string{
		EnvEndpoint: " https://h:9443 ",
		EnvPassword: "pw",
	}))
	if diags.HasError() {
		t.Fatal(diagSummaries(diags))
	}
	if cfg.Endpoint != "https://h:9443" || cfg.Username != "admin" || cfg.Password != "pw" {
		t.Fatalf("cfg = %+v", cfg)
	}
}

func TestClientConfigBlockWinsOverEnvironment(t *testing.T) {
	cfg, diags := clientConfig(providerModel{
		Endpoint:           types.StringValue("https://block:1"),
		Username:           types.StringValue("ops"),
		Password:           types.StringValue("block-pw"),
		InsecureSkipVerify: types.BoolValue(true),
	}, env(map[string]string{EnvEndpoint: "https://env:2", EnvUsername: "envuser", EnvPassword: "env-pw"}))
	if diags.HasError() {
		t.Fatal(diagSummaries(diags))
	}
	if cfg.Endpoint != "https://block:1" || cfg.Username != "ops" || cfg.Password != "block-pw" || !cfg.InsecureSkipVerify {
		t.Fatalf("cfg = %+v", cfg)
	}
}

// TestClientConfigEmptyStringsFallBackToEnvironment: a setting given as ""
// (a variable with an empty default) is left out, so the environment
// variable is used rather than said to be missing.
func TestClientConfigEmptyStringsFallBackToEnvironment(t *testing.T) {
	ca := testCertificatePEM(t, "ca")
	cfg, diags := clientConfig(providerModel{
		Endpoint: types.StringValue(""),
		Username: types.StringValue(""),
		Password: types.StringValue(""),
		CACert:   types.StringValue(""),
	}, env(map[string]string{EnvEndpoint: "https://env:2", EnvUsername: "envuser", EnvPassword: "env-pw", EnvCACert: ca}))
	require.False(t, diags.HasError(), diagSummaries(diags))
	assert.Equal(t, client.Config{Endpoint: "https://env:2", Username: "envuser", Password: "env-pw", CACert: ca}, cfg)
}

// TestClientConfigWarnsWhenNotVerifying: insecure_skip_verify is said at
// every run, with the ca_cert it makes useless.
func TestClientConfigWarnsWhenNotVerifying(t *testing.T) {
	_, diags := clientConfig(providerModel{
		Endpoint: types.StringValue("https://h:1"), Password: types.StringValue("pw"),
		InsecureSkipVerify: types.BoolValue(true),
	}, env(map[string]string{EnvCACert: testCertificatePEM(t, "ca")}))
	require.False(t, diags.HasError(), diagSummaries(diags))
	require.Equal(t, 1, diags.WarningsCount())
	assert.Equal(t, "The API's certificate is not verified", diags.Warnings()[0].Summary())
	assert.Contains(t, diags.Warnings()[0].Detail(), "The ca_cert given is not used")

	_, diags = clientConfig(providerModel{Endpoint: types.StringValue("https://h:1"), Password: types.StringValue("pw")}, env(nil))
	assert.Empty(t, diags)
}

// insecure_skip_verify falls back to its environment variable as every
// other setting of the provider block does; a bad value names the variable.
func TestClientConfigInsecureSkipVerifyFromEnvironment(t *testing.T) {
	base := map[string]string{EnvEndpoint: "https://h:9443", EnvPassword: "pw"}
	with := func(v string) map[string]string {
		m := map[string]string{EnvInsecureSkipVerify: v}
		for k, x := range base {
			m[k] = x
		}
		return m
	}
	cfg, diags := clientConfig(providerModel{}, env(with("true")))
	if diags.HasError() || !cfg.InsecureSkipVerify {
		t.Fatalf("%s=true: cfg = %+v, %s", EnvInsecureSkipVerify, cfg, diagSummaries(diags))
	}
	cfg, diags = clientConfig(providerModel{InsecureSkipVerify: types.BoolValue(false)}, env(with("true")))
	if diags.HasError() || cfg.InsecureSkipVerify {
		t.Fatalf("the block's false wins over the environment: cfg = %+v, %s", cfg, diagSummaries(diags))
	}
	_, diags = clientConfig(providerModel{}, env(with("maybe")))
	if got := diagSummaries(diags); !strings.Contains(got, EnvInsecureSkipVerify) || !strings.Contains(got, `"maybe"`) {
		t.Fatalf("diagnostics %q do not name %s and its value", got, EnvInsecureSkipVerify)
	}
}

func TestClientConfigRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		m    providerModel
		want string
	}{
		"http":        {providerModel{Endpoint: types.StringValue("http://h:1")}, "must be an https:// URL"},
		"no host":     {providerModel{Endpoint: types.StringValue("https://")}, "must be an https:// URL"},
		"credentials": {providerModel{Endpoint: types.StringValue("https://u:secretpw@h:1")}, "must not contain credentials"},
		"ca file":     {providerModel{Endpoint: types.StringValue("https://h:1"), CACert: types.StringValue("/etc/ca.pem")}, "not a file name"},
		// Said at the setting, with its environment variable, not as an
		// "Invalid redis-replicad provider configuration" of the client.
		"query": {providerModel{Endpoint: types.StringValue("https://h:1/?token=secretpw")},
			"The endpoint must not have a query or a fragment (?... or #...): give the base URL of the API only"},
		"fragment": {providerModel{Endpoint: types.StringValue("https://h:1#secretpw")}, "must not have a query or a fragment"},
		// HTTP basic authentication ends the user name at its first colon:
		// every request would fail with 401, naming the password.
		"colon in user": {providerModel{Endpoint: types.StringValue("https://h:1"), Username: types.StringValue("ad:min")},
			"The username may not contain a colon"},
	} {
		tc.m.Password = types.StringValue("pw")
		_, diags := clientConfig(tc.m, env(nil))
		got := diagSummaries(diags)
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s: diagnostics %q lack %q", name, got, tc.want)
		}
		if strings.Contains(got, "secretpw") {
			t.Errorf("%s: diagnostics show the password", name)
		}
	}
}

func TestParseDatabaseID(t *testing.T) {
	if uid, err := parseDatabaseID("12"); err != nil || uid != 12 {
		t.Fatalf("parseDatabaseID(12) = %d, %v", uid, err)
	}
	for _, bad := range []string{"", "0", "-1", "012", "abc", "1.5", " 1"} {
		if _, err := parseDatabaseID(bad); err == nil {
			t.Errorf("parseDatabaseID(%q) accepted it", bad)
		}
	}
}

func TestFlattenDatabase(t *testing.T) {
	db := &api.Database{
		UID: 3, Name: "cache", Port: 12000, MemorySize: 64 << 20, Status: api.StatusActive,
		Endpoint: api.Endpoint{Host: "::1", Port: 12000}, AuthenticationRedisPass: "pw",
	}
	m := databaseResourceModel{Password: types.StringUnknown()}
	flattenDatabase(db, &m)
	if m.ID.ValueString() != "3" || m.Name.ValueString() != "cache" || m.Port.ValueInt64() != 12000 ||
		m.MemorySize.ValueInt64() != 64<<20 || m.Status.ValueString() != "active" ||
		m.Endpoint.ValueString() != "[::1]:12000" || m.Password.ValueString() != "pw" ||
		m.TLSMode.ValueString() != api.TLSDisabled || !m.ClientCertificates.IsNull() ||
		m.ReplicationEndpoint.ValueString() != "" {
		t.Fatalf("flattened %+v", m)
	}
	// The replication endpoint, the TLS mode and the certificates.
	db.ReplicationPort, db.TLSMode, db.ClientCertificates = 12001, api.TLSReplicaSSL, []string{"c1", "c2"}
	flattenDatabase(db, &m)
	if m.ReplicationEndpoint.ValueString() != "[::1]:12001" || m.TLSMode.ValueString() != api.TLSReplicaSSL ||
		len(m.ClientCertificates.Elements()) != 2 {
		t.Fatalf("flattened %+v", m)
	}
	// No certificates: null when the prior value is null, empty when it is empty.
	db.ClientCertificates = []string{}
	flattenDatabase(db, &m)
	if m.ClientCertificates.IsNull() || len(m.ClientCertificates.Elements()) != 0 {
		t.Fatalf("client_certificates = %v, want an empty set", m.ClientCertificates)
	}
	m.ClientCertificates = types.SetNull(types.StringType)
	flattenDatabase(db, &m)
	if !m.ClientCertificates.IsNull() {
		t.Fatalf("client_certificates = %v, want null", m.ClientCertificates)
	}
	// An answer without the password keeps the known one.
	db.AuthenticationRedisPass = ""
	flattenDatabase(db, &m)
	if m.Password.ValueString() != "pw" {
		t.Fatalf("password = %q", m.Password.ValueString())
	}
}

func TestExpandDatabaseUpdate(t *testing.T) {
	state := databaseResourceModel{
		Name: types.StringValue("a"), MemorySize: newWholeNumber(api.MinMemorySize), Password: types.StringValue("p1"),
		TLSMode: types.StringValue(api.TLSDisabled), ClientCertificates: types.SetNull(types.StringType),
	}
	ctx := context.Background()
	var diags diag.Diagnostics
	if _, changed := expandDatabaseUpdate(ctx, state, state, &diags); changed {
		t.Fatal("no difference, yet changed")
	}
	plan := state
	plan.MemorySize = newWholeNumber(2 * api.MinMemorySize)
	plan.Password = types.StringValue("p2")
	in, changed := expandDatabaseUpdate(ctx, plan, state, &diags)
	if !changed || in.Name != nil || *in.MemorySize != 2*api.MinMemorySize || *in.AuthenticationRedisPass != "p2" ||
		in.TLSMode != nil || in.ClientCertificates != nil {
		t.Fatalf("in = %+v, changed = %v", in, changed)
	}

	// TLS: a new mode, certificates added, then removed (null sends none).
	plan = state
	plan.TLSMode = types.StringValue(api.TLSReplicaSSL)
	plan.ClientCertificates = types.SetValueMust(types.StringType, []attr.Value{types.StringValue("c1")})
	in, changed = expandDatabaseUpdate(ctx, plan, state, &diags)
	if !changed || in.TLSMode == nil || *in.TLSMode != api.TLSReplicaSSL || in.ClientCertificates == nil ||
		len(*in.ClientCertificates) != 1 || (*in.ClientCertificates)[0] != "c1" {
		t.Fatalf("in = %+v, changed = %v", in, changed)
	}
	in, changed = expandDatabaseUpdate(ctx, state, plan, &diags)
	if !changed || in.ClientCertificates == nil || len(*in.ClientCertificates) != 0 || *in.TLSMode != api.TLSDisabled {
		t.Fatalf("in = %+v, changed = %v", in, changed)
	}
	if diags.HasError() {
		t.Fatal(diags)
	}
}

func TestCheckPEMCertificate(t *testing.T) {
	cert := testCertificatePEM(t, "unit")
	if err := checkPEMCertificate(cert); err != nil {
		t.Fatalf("a certificate: %v", err)
	}
	for text, want := range map[string]string{
		"":          "not PEM",
		"hello":     "not PEM",
		cert + cert: "more than one PEM block",
		"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n": `"PRIVATE KEY", not a CERTIFICATE`,
		"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n": "does not parse",
	} {
		err := checkPEMCertificate(text)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkPEMCertificate(%.30q) = %v, want %q", text, err, want)
		}
	}
}

func TestPoll(t *testing.T) {
	ctx := context.Background()
	n := 0
	err := poll(ctx, 10*time.Second, func(context.Context) (bool, error) {
		n++
		return n == 3, nil
	})
	if err != nil || n != 3 {
		t.Fatalf("err = %v after %d checks", err, n)
	}
	err = poll(ctx, 300*time.Millisecond, func(context.Context) (bool, error) { return false, nil })
	if !errors.Is(err, errPollTimeout) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	boom := errors.New("boom")
	if err := poll(ctx, time.Second, func(context.Context) (bool, error) { return false, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := poll(cctx, time.Second, func(context.Context) (bool, error) { return false, nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// TestSchemasAreDocumented makes sure every attribute has a description:
// the documentation is generated from them.
func TestSchemasAreDocumented(t *testing.T) {
	ctx := context.Background()
	p := New("test")()
	var ps fwprovider.SchemaResponse
	p.Schema(ctx, fwprovider.SchemaRequest{}, &ps)
	check := func(kind string, desc string, attrs map[string]string) {
		if desc == "" {
			t.Errorf("%s has no description", kind)
		}
		for name, d := range attrs {
			if d == "" {
				t.Errorf("%s.%s has no description", kind, name)
			}
		}
	}
	attrs := map[string]string{}
	for n, a := range ps.Schema.Attributes {
		attrs[n] = a.GetMarkdownDescription()
	}
	check("provider", ps.Schema.MarkdownDescription, attrs)

	for _, f := range p.Resources(ctx) {
		r := f()
		var md resource.MetadataResponse
		r.Metadata(ctx, resource.MetadataRequest{ProviderTypeName: "redis"}, &md)
		var s resource.SchemaResponse
		r.Schema(ctx, resource.SchemaRequest{}, &s)
		if s.Diagnostics.HasError() {
			t.Fatal(s.Diagnostics)
		}
		attrs := map[string]string{}
		for n, a := range s.Schema.Attributes {
			attrs[n] = a.GetMarkdownDescription()
			if nested, ok := a.(rschema.NestedAttribute); ok {
				for cn, c := range nested.GetNestedObject().GetAttributes() {
					attrs[n+"."+cn] = c.GetMarkdownDescription()
				}
			}
		}
		check(md.TypeName, s.Schema.MarkdownDescription, attrs)
	}
	ep := p.(fwprovider.ProviderWithEphemeralResources)
	for _, f := range ep.EphemeralResources(ctx) {
		e := f()
		var md ephemeral.MetadataResponse
		e.Metadata(ctx, ephemeral.MetadataRequest{ProviderTypeName: "redis"}, &md)
		var s ephemeral.SchemaResponse
		e.Schema(ctx, ephemeral.SchemaRequest{}, &s)
		attrs := map[string]string{}
		for n, a := range s.Schema.Attributes {
			attrs[n] = a.GetMarkdownDescription()
		}
		check("ephemeral."+md.TypeName, s.Schema.MarkdownDescription, attrs)
	}
	for _, f := range p.DataSources(ctx) {
		d := f()
		var md datasource.MetadataResponse
		d.Metadata(ctx, datasource.MetadataRequest{ProviderTypeName: "redis"}, &md)
		var s datasource.SchemaResponse
		d.Schema(ctx, datasource.SchemaRequest{}, &s)
		attrs := map[string]string{}
		for n, a := range s.Schema.Attributes {
			attrs[n] = a.GetMarkdownDescription()
		}
		check("data."+md.TypeName, s.Schema.MarkdownDescription, attrs)
	}
}

// client_certificates without TLS are refused at plan time, as the service
// refuses them; unknown values wait for the apply.
func TestCheckPinsNeedTLS(t *testing.T) {
	pins := types.SetValueMust(types.StringType, []attr.Value{types.StringValue("c1")})
	for _, c := range []struct {
		mode types.String
		pins types.Set
		bad  bool
	}{
		{types.StringNull(), pins, true},
		{types.StringValue(api.TLSDisabled), pins, true},
		{types.StringValue(api.TLSReplicaSSL), pins, false},
		{types.StringValue(api.TLSEnabled), pins, false},
		{types.StringUnknown(), pins, false},
		{types.StringNull(), types.SetNull(types.StringType), false},
		{types.StringNull(), types.SetValueMust(types.StringType, nil), false},
		{types.StringNull(), types.SetUnknown(types.StringType), false},
	} {
		if got := checkPinsNeedTLS(c.mode, c.pins).HasError(); got != c.bad {
			t.Errorf("tls_mode %v, client_certificates %v: error %v, want %v", c.mode, c.pins, got, c.bad)
		}
	}
}
