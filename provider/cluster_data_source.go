package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/client"
)

var (
	_ datasource.DataSource              = (*clusterDataSource)(nil)
	_ datasource.DataSourceWithConfigure = (*clusterDataSource)(nil)
)

type clusterDataSource struct {
	client *client.Client
}

func newClusterDataSource() datasource.DataSource { return &clusterDataSource{} }

type clusterDataSourceModel struct {
	Name       types.String `tfsdk:"name"`
	Version    types.String `tfsdk:"version"`
	CACert     types.String `tfsdk:"ca_cert"`
	ProxyCert  types.String `tfsdk:"proxy_cert"`
	SyncerCert types.String `tfsdk:"syncer_cert"`
}

func (d *clusterDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_cluster"
}

func (d *clusterDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Describes the `redis-replicad` instance the provider talks to, with the certificates " +
			"that another instance needs to replicate from it over TLS.",
		Attributes: map[string]schema.Attribute{
			"name": schema.StringAttribute{
				MarkdownDescription: "Name of the instance.",
				Computed:            true,
			},
			"version": schema.StringAttribute{
				MarkdownDescription: "Version of `redis-replicad`.",
				Computed:            true,
			},
			"ca_cert": schema.StringAttribute{
				MarkdownDescription: "PEM certificate of the instance's authority, which signed the API's TLS certificate " +
					"(what the provider's `ca_cert` expects) and `proxy_cert`: applications of a database with " +
					"`tls_mode = \"enabled\"` trust it (`redis-cli --tls --cacert`).",
				Computed: true,
			},
			"proxy_cert": schema.StringAttribute{
				MarkdownDescription: "PEM certificate that this instance's databases and replication endpoints present " +
					"over TLS: give it as the `server_cert` of a `redis_replica_of` source, in another location, that " +
					"replicates a database of this instance with `encryption = true`.",
				Computed: true,
			},
			"syncer_cert": schema.StringAttribute{
				MarkdownDescription: "PEM client certificate (self-signed) that this instance's syncers present to the " +
					"TLS sources they replicate from: put it in the `client_certificates` of a source database, in " +
					"another location, that this instance replicates.",
				Computed: true,
			},
		},
	}
}

func (d *clusterDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientFromProviderData(req.ProviderData, &resp.Diagnostics)
}

func (d *clusterDataSource) Read(ctx context.Context, _ datasource.ReadRequest, resp *datasource.ReadResponse) {
	cl, err := d.client.GetCluster(ctx)
	if err != nil {
		resp.Diagnostics.AddError("Could not read the redis-replicad cluster", err.Error())
		return
	}
	state := flattenCluster(cl)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func flattenCluster(cl *api.Cluster) clusterDataSourceModel {
	return clusterDataSourceModel{
		Name:       types.StringValue(cl.Name),
		Version:    types.StringValue(cl.Version),
		CACert:     types.StringValue(cl.CACert),
		ProxyCert:  types.StringValue(cl.ProxyCert),
		SyncerCert: types.StringValue(cl.SyncerCert),
	}
}
