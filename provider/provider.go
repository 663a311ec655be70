// Package provider is the Terraform provider of redis-replicad, built on
// terraform-plugin-framework.
package provider

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/replicad/terraform-provider-redis/internal/client"
)

// Address is the provider's address in the registry.
const Address = "registry.terraform.io/replicad/redis"

// Environment variables read when the provider block leaves a setting out.
const (
	EnvEndpoint = "REDIS_REPLICAD_ENDPOINT"
	EnvUsername = "REDIS_REPLICAD_USERNAME"
	EnvPassword = "REDIS_REPLICAD_PASSWORD"
	EnvCACert   = "REDIS_REPLICAD_CA_CERT"
	// EnvInsecureSkipVerify is true or false (strconv.ParseBool).
	EnvInsecureSkipVerify = "REDIS_REPLICAD_INSECURE_SKIP_VERIFY"
)

var (
	_ provider.Provider                       = (*redisProvider)(nil)
	_ provider.ProviderWithEphemeralResources = (*redisProvider)(nil)
)

type redisProvider struct {
	version string
	// destroying is true when the terraform command that started the
	// provider destroys (see destroyCommand).
	destroying bool
}

// New returns the constructor of the provider, as providerserver wants it.
func New(version string) func() provider.Provider {
	destroying := destroyCommand(parentCommandLine())
	return func() provider.Provider { return &redisProvider{version: version, destroying: destroying} }
}

type providerModel struct {
	Endpoint           types.String `tfsdk:"endpoint"`
	Username           types.String `tfsdk:"username"`
	Password           types.String `tfsdk:"password"`
	CACert             types.String `tfsdk:"ca_cert"`
	InsecureSkipVerify types.Bool   `tfsdk:"insecure_skip_verify"`
}

func (p *redisProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "redis"
	resp.Version = p.version
}

func (p *redisProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The `redis` provider manages the databases of one `redis-replicad` " +
			"instance through its REST API. Use one provider block per instance, and " +
			"[provider aliases](https://developer.hashicorp.com/terraform/language/providers/configuration#alias-multiple-provider-configurations) " +
			"for several locations.",
		Attributes: map[string]schema.Attribute{
			"endpoint": schema.StringAttribute{
				MarkdownDescription: "Base URL of the `redis-replicad` REST API, for example `https://replicad.example.com:9443`. " +
					"It must use `https` and hold no credentials. May also be set with the `" + EnvEndpoint + "` environment variable.",
				Optional: true,
			},
			"username": schema.StringAttribute{
				MarkdownDescription: "User name of the REST API (HTTP basic authentication). Defaults to `admin`. " +
					"May also be set with the `" + EnvUsername + "` environment variable.",
				Optional: true,
			},
			"password": schema.StringAttribute{
				MarkdownDescription: "Password of the REST API user. May also be set with the `" + EnvPassword + "` environment variable.",
				Optional:            true,
				Sensitive:           true,
			},
			"ca_cert": schema.StringAttribute{
				MarkdownDescription: "PEM-encoded certificate of the authority that signed the API's TLS certificate " +
					"(for example the `ca.pem` that `redis-replicad` generates in its data directory). " +
					"When unset, the system's trusted authorities are used. " +
					"May also be set with the `" + EnvCACert + "` environment variable.",
				Optional: true,
			},
			"insecure_skip_verify": schema.BoolAttribute{
				MarkdownDescription: "Skip the verification of the API's TLS certificate. " +
					"Only for tests: anyone on the network path could then read the credentials. Every run then warns about it, and `ca_cert` is not used. Defaults to `false`. " +
					"May also be set with the `" + EnvInsecureSkipVerify + "` environment variable (`true` or `false`).",
				Optional: true,
			},
		},
	}
}

func (p *redisProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var config providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &config)...)
	if resp.Diagnostics.HasError() {
		return
	}

	for _, a := range []struct {
		name  string
		value types.String
		env   string
	}{
		{"endpoint", config.Endpoint, EnvEndpoint},
		{"username", config.Username, EnvUsername},
		{"password", config.Password, EnvPassword},
		{"ca_cert", config.CACert, EnvCACert},
	} {
		if a.value.IsUnknown() {
			resp.Diagnostics.AddAttributeError(path.Root(a.name),
				"Unknown redis-replicad "+a.name,
				fmt.Sprintf("The provider cannot talk to redis-replicad because the value of %q is not known yet (it "+
					"comes from a resource that this plan creates or changes). Set it to a value known at plan time, or "+
					"leave it out of the provider block and set the %s environment variable (which the provider "+
					"reads only then), or apply what it depends on first (terraform apply -target=<that resource>).",
					a.name, a.env))
		}
	}
	if config.InsecureSkipVerify.IsUnknown() {
		resp.Diagnostics.AddAttributeError(path.Root("insecure_skip_verify"), "Unknown insecure_skip_verify",
			"The value of insecure_skip_verify must be known at plan time.")
	}
	if resp.Diagnostics.HasError() {
		return
	}

	cfg, diags := clientConfig(config, os.Getenv)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	cfg.UserAgent = "terraform-provider-redis/" + p.version
	cfg.Log = func(ctx context.Context, msg string, fields map[string]any) {
		tflog.Debug(ctx, msg, fields)
	}

	c, err := client.New(cfg)
	if err != nil {
		resp.Diagnostics.AddError("Invalid redis-replicad provider configuration", err.Error())
		return
	}
	ctx = tflog.SetField(ctx, "redis_replicad_endpoint", c.Endpoint())
	tflog.Info(ctx, "configured the redis-replicad client", map[string]any{"provider_version": p.version})
	if p.destroying {
		tflog.Info(ctx, "the terraform command destroys: the checks of a create or an update are left out")
	}

	resp.ResourceData = c
	resp.DataSourceData = c
	resp.EphemeralResourceData = c
}

// clientConfig merges the provider block with the environment and checks
// the result. Every problem is a diagnostic that names the setting and its
// environment variable.
func clientConfig(config providerModel, getenv func(string) string) (client.Config, diag.Diagnostics) {
	var diags diag.Diagnostics
	// An empty string is left out too: `password = var.password` with an
	// empty default must not hide the environment variable (and then ask
	// for it, as missing).
	pick := func(v types.String, env string) string {
		if !v.IsNull() && !v.IsUnknown() && v.ValueString() != "" {
			return v.ValueString()
		}
		return getenv(env)
	}
	cfg := client.Config{
		Endpoint:           strings.TrimSpace(pick(config.Endpoint, EnvEndpoint)),
		Username:           pick(config.Username, EnvUsername),
		Password:           pick(config.Password, EnvPassword),
		CACert:             pick(config.CACert, EnvCACert),
		InsecureSkipVerify: config.InsecureSkipVerify.ValueBool(),
	}
	if config.InsecureSkipVerify.IsNull() {
		if v := strings.TrimSpace(getenv(EnvInsecureSkipVerify)); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				diags.AddAttributeError(path.Root("insecure_skip_verify"), "Invalid "+EnvInsecureSkipVerify,
					fmt.Sprintf("%s is %q: use true or false.", EnvInsecureSkipVerify, v))
			}
			cfg.InsecureSkipVerify = b
		}
	}
	if cfg.Username == "" {
		cfg.Username = client.DefaultUsername
	}

	if cfg.Endpoint == "" {
		diags.AddAttributeError(path.Root("endpoint"), "Missing redis-replicad endpoint",
			"The provider needs the URL of the redis-replicad REST API, for example https://replicad.example.com:9443. "+
				"Set the endpoint attribute of the provider block or the "+EnvEndpoint+" environment variable.")
	} else if u, err := url.Parse(cfg.Endpoint); err != nil || u.Scheme != "https" || u.Host == "" {
		diags.AddAttributeError(path.Root("endpoint"), "Invalid redis-replicad endpoint",
			"The endpoint must be an https:// URL with a host, for example https://replicad.example.com:9443.")
	} else if u.User != nil {
		diags.AddAttributeError(path.Root("endpoint"), "Invalid redis-replicad endpoint",
			"The endpoint must not contain credentials: set the username and password attributes "+
				"(or "+EnvUsername+" and "+EnvPassword+") instead.")
	} else if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		// Not shown: it may hold a token.
		diags.AddAttributeError(path.Root("endpoint"), "Invalid redis-replicad endpoint",
			"The endpoint must not have a query or a fragment (?... or #...): give the base URL of the API only, "+
				"for example https://replicad.example.com:9443 (the endpoint attribute, or "+EnvEndpoint+").")
	}
	if strings.Contains(cfg.Username, ":") {
		// HTTP basic authentication ends the user name at its first colon.
		diags.AddAttributeError(path.Root("username"), "Invalid redis-replicad username",
			"The username may not contain a colon (HTTP basic authentication ends the user name at its first colon): "+
				"check the username attribute, or "+EnvUsername+".")
	}
	if cfg.Password == "" {
		diags.AddAttributeError(path.Root("password"), "Missing redis-replicad password",
			"The provider needs the password of the redis-replicad REST API user "+cfg.Username+". "+
				"Set the password attribute of the provider block or the "+EnvPassword+" environment variable.")
	}
	if cfg.InsecureSkipVerify {
		detail := "The provider does not verify the TLS certificate of " + cfg.Endpoint + ": anyone on the network " +
			"path could pose as the API and read the credentials and passwords it is sent. Use it for tests only; " +
			"give ca_cert (or " + EnvCACert + ") instead."
		if cfg.CACert != "" {
			detail += " The ca_cert given is not used while insecure_skip_verify is set."
		}
		diags.AddAttributeWarning(path.Root("insecure_skip_verify"), "The API's certificate is not verified", detail)
	}
	if cfg.CACert != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(cfg.CACert)) {
		diags.AddAttributeError(path.Root("ca_cert"), "Invalid CA certificate",
			"ca_cert (or "+EnvCACert+") must hold the PEM text of at least one certificate "+
				"(-----BEGIN CERTIFICATE----- ...), not a file name.")
	}
	return cfg, diags
}

func (p *redisProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		func() resource.Resource { return &databaseResource{destroying: p.destroying} },
		func() resource.Resource { return &replicaOfResource{destroying: p.destroying} },
		func() resource.Resource { return &sourceURLPasswordResource{destroying: p.destroying} },
	}
}

func (p *redisProvider) DataSources(context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{
		func() datasource.DataSource { return &databaseDataSource{destroying: p.destroying} },
		newClusterDataSource,
		func() datasource.DataSource { return &sourceURLDataSource{destroying: p.destroying} },
	}
}

func (p *redisProvider) EphemeralResources(context.Context) []func() ephemeral.EphemeralResource {
	return []func() ephemeral.EphemeralResource{
		func() ephemeral.EphemeralResource { return &sourceURLEphemeralResource{destroying: p.destroying} },
	}
}
