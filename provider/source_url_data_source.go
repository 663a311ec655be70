package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/replicad/terraform-provider-redis/internal/client"
)

var (
	_ datasource.DataSource              = (*sourceURLDataSource)(nil)
	_ datasource.DataSourceWithConfigure = (*sourceURLDataSource)(nil)
)

type sourceURLDataSource struct {
	client *client.Client
	// destroying: a database that does not exist is a warning (see
	// destroyCommand and missingWhileDestroying).
	destroying bool
}

type sourceURLDataSourceModel struct {
	DatabaseID types.String `tfsdk:"database_id"`
	URI        types.String `tfsdk:"uri"`
	Address    types.String `tfsdk:"address"`
}

func (d *sourceURLDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_source_url"
}

func (d *sourceURLDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Reads the current Replica Of source URL of a database (\"Get Replica Of source URL\"), " +
			"without regenerating its password. The URL is stored in the state as a sensitive value; the ephemeral " +
			"resource of the same name gives it without storing it.",
		Attributes: map[string]schema.Attribute{
			"database_id": schema.StringAttribute{
				MarkdownDescription: "The uid of the source database.",
				Required:            true,
				Validators: []validator.String{
					noEcho(stringvalidator.RegexMatches(databaseIDPattern, "must be a database uid, a positive integer such as \"3\"")),
				},
			},
			"uri": schema.StringAttribute{
				MarkdownDescription: "The source URL, `redis://admin:<password>@host:port`.",
				Computed:            true,
				Sensitive:           true,
			},
			"address": schema.StringAttribute{
				MarkdownDescription: "The `host:port` of the source URL.",
				Computed:            true,
			},
		},
	}
}

func (d *sourceURLDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientFromProviderData(req.ProviderData, &resp.Diagnostics)
}

func (d *sourceURLDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var config sourceURLDataSourceModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &config)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if d.destroying && sourceURLMissing(ctx, d.client, config.DatabaseID.ValueString(), &resp.Diagnostics) {
		config.URI, config.Address = types.StringValue(""), types.StringValue("")
		resp.Diagnostics.Append(resp.State.Set(ctx, &config)...)
		return
	}
	s, ok := lookupSourceURL(ctx, d.client, config.DatabaseID.ValueString(), &resp.Diagnostics)
	if !ok {
		return
	}
	config.URI = types.StringValue(s.URI)
	config.Address = types.StringValue(s.Address)
	resp.Diagnostics.Append(resp.State.Set(ctx, &config)...)
}
