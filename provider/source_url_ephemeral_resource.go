package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/replicad/terraform-provider-redis/internal/client"
)

var (
	_ ephemeral.EphemeralResource              = (*sourceURLEphemeralResource)(nil)
	_ ephemeral.EphemeralResourceWithConfigure = (*sourceURLEphemeralResource)(nil)
)

type sourceURLEphemeralResource struct {
	client *client.Client
	// destroying: a database that does not exist is a warning (see
	// destroyCommand and missingWhileDestroying).
	destroying bool
}

type sourceURLEphemeralModel struct {
	DatabaseID types.String `tfsdk:"database_id"`
	URI        types.String `tfsdk:"uri"`
	Address    types.String `tfsdk:"address"`
	Username   types.String `tfsdk:"username"`
	Password   types.String `tfsdk:"password"`
}

func (e *sourceURLEphemeralResource) Metadata(_ context.Context, req ephemeral.MetadataRequest, resp *ephemeral.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_source_url"
}

func (e *sourceURLEphemeralResource) Schema(_ context.Context, _ ephemeral.SchemaRequest, resp *ephemeral.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Reads the current Replica Of source URL of a database without storing it anywhere " +
			"(Terraform 1.10+). An ephemeral value can only go where Terraform does not store it: give it to " +
			"`source_uris_wo`, the write-only argument of `redis_replica_of` (Terraform 1.11+), with a " +
			"`source_uris_wo_version` that changes whenever the URL changes: for a password that a " +
			"`redis_source_url_password` of the same configuration rotates, its `password_version`.",
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
			"username": schema.StringAttribute{
				MarkdownDescription: "The user of the source URL.",
				Computed:            true,
			},
			"password": schema.StringAttribute{
				MarkdownDescription: "The password of the source URL.",
				Computed:            true,
				Sensitive:           true,
			},
		},
	}
}

func (e *sourceURLEphemeralResource) Configure(_ context.Context, req ephemeral.ConfigureRequest, resp *ephemeral.ConfigureResponse) {
	e.client = clientFromProviderData(req.ProviderData, &resp.Diagnostics)
}

func (e *sourceURLEphemeralResource) Open(ctx context.Context, req ephemeral.OpenRequest, resp *ephemeral.OpenResponse) {
	var config sourceURLEphemeralModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &config)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if e.destroying && sourceURLMissing(ctx, e.client, config.DatabaseID.ValueString(), &resp.Diagnostics) {
		config.URI, config.Address = types.StringValue(""), types.StringValue("")
		config.Username, config.Password = types.StringValue(""), types.StringValue("")
		resp.Diagnostics.Append(resp.Result.Set(ctx, &config)...)
		return
	}
	s, ok := lookupSourceURL(ctx, e.client, config.DatabaseID.ValueString(), &resp.Diagnostics)
	if !ok {
		return
	}
	config.URI = types.StringValue(s.URI)
	config.Address = types.StringValue(s.Address)
	config.Username = types.StringValue(s.Username)
	config.Password = types.StringValue(s.Password)
	resp.Diagnostics.Append(resp.Result.Set(ctx, &config)...)
}
