package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/mapplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/replicad/terraform-provider-redis/internal/client"
)

var (
	_ resource.Resource                = (*sourceURLPasswordResource)(nil)
	_ resource.ResourceWithConfigure   = (*sourceURLPasswordResource)(nil)
	_ resource.ResourceWithImportState = (*sourceURLPasswordResource)(nil)
)

type sourceURLPasswordResource struct {
	client *client.Client
}

func newSourceURLPasswordResource() resource.Resource { return &sourceURLPasswordResource{} }

type sourceURLPasswordResourceModel struct {
	ID         types.String `tfsdk:"id"`
	DatabaseID types.String `tfsdk:"database_id"`
	Keepers    types.Map    `tfsdk:"keepers"`
	Password   types.String `tfsdk:"password"`
	SourceURL  types.String `tfsdk:"source_url"`
	Address    types.String `tfsdk:"address"`
}

func (r *sourceURLPasswordResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_source_url_password"
}

func (r *sourceURLPasswordResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Regenerates the admin password of a database (\"Regenerate Password\") and exposes its " +
			"Replica Of source URL, `redis://admin:<password>@host:port`, for destinations in other locations. " +
			"Regenerating disconnects the sessions that use the old password: destinations that still use the old " +
			"URL stop with an authentication error until they are given the new one. Changing `keepers` regenerates " +
			"the password again. Destroying this resource only forgets the password: the current one stays valid.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "The database's uid, the same as `database_id`.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"database_id": schema.StringAttribute{
				MarkdownDescription: "The uid of the source database. Changing it replaces the resource.",
				Required:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators: []validator.String{
					stringvalidator.RegexMatches(databaseIDPattern, "must be a database uid, a positive integer such as \"3\""),
				},
			},
			"keepers": schema.MapAttribute{
				MarkdownDescription: "Arbitrary values; any change regenerates the password (the idiom of the " +
					"`random` provider), for example `{ rotation = \"2025-q3\" }`.",
				Optional:      true,
				ElementType:   types.StringType,
				PlanModifiers: []planmodifier.Map{mapplanmodifier.RequiresReplace()},
			},
			"password": schema.StringAttribute{
				MarkdownDescription: "The admin password of the database.",
				Computed:            true,
				Sensitive:           true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"source_url": schema.StringAttribute{
				MarkdownDescription: "The source URL with the password, for `source_uris` of a `redis_replica_of`.",
				Computed:            true,
				Sensitive:           true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"address": schema.StringAttribute{
				MarkdownDescription: "The `host:port` of the source URL, for the `address` of a source of a `redis_replica_of`.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
		},
	}
}

func (r *sourceURLPasswordResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFromProviderData(req.ProviderData, &resp.Diagnostics)
}

func (r *sourceURLPasswordResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan sourceURLPasswordResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	uid, err := parseDatabaseID(plan.DatabaseID.ValueString())
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("database_id"), "Invalid database id", err.Error())
		return
	}
	tflog.Info(ctx, "regenerating the admin password of a database; sessions with the old one are disconnected", map[string]any{"uid": uid})
	s, err := regenerateSourceURL(ctx, r.client, uid)
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("Could not regenerate the admin password of database %d", uid), err.Error())
		return
	}
	plan.ID = plan.DatabaseID
	flattenSourceURLPassword(s, &plan)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// Read follows the database's current source URL: when the password was
// regenerated outside Terraform, the state takes the new one, so that the
// destinations that use source_url are planned for an update.
func (r *sourceURLPasswordResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state sourceURLPasswordResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	uid, err := parseDatabaseID(state.ID.ValueString())
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("id"), "Invalid database id", err.Error())
		return
	}
	s, err := readSourceURL(ctx, r.client, uid)
	if client.IsNotFound(err) {
		tflog.Warn(ctx, "the database no longer exists, removing its source URL password from the state", map[string]any{"uid": uid})
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("Could not read the source URL of database %d", uid), err.Error())
		return
	}
	if !state.SourceURL.IsNull() && state.SourceURL.ValueString() != s.URI {
		tflog.Warn(ctx, "the source URL of the database changed outside Terraform", map[string]any{"uid": uid, "address": s.Address})
	}
	state.DatabaseID = state.ID
	flattenSourceURLPassword(s, &state)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// Update only happens for a change that needs no API call (none today:
// every argument forces a replacement).
func (r *sourceURLPasswordResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan sourceURLPasswordResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// Delete forgets the password: regenerating it again would break the
// destinations that use it, even when the resource is only being replaced.
func (r *sourceURLPasswordResource) Delete(ctx context.Context, req resource.DeleteRequest, _ *resource.DeleteResponse) {
	tflog.Debug(ctx, "forgetting a source URL password; the database keeps it")
}

func (r *sourceURLPasswordResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if _, err := parseDatabaseID(req.ID); err != nil {
		resp.Diagnostics.AddError("Invalid import id", err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("database_id"), req.ID)...)
}

func flattenSourceURLPassword(s sourceURL, m *sourceURLPasswordResourceModel) {
	m.Password = types.StringValue(s.Password)
	m.SourceURL = types.StringValue(s.URI)
	m.Address = types.StringValue(s.Address)
}
