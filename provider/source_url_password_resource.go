package provider

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
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
	_ resource.ResourceWithModifyPlan  = (*sourceURLPasswordResource)(nil)
)

type sourceURLPasswordResource struct {
	client *client.Client
	// destroying: the checks of a create or an update are left out
	// (see destroyCommand).
	destroying bool
}

type sourceURLPasswordResourceModel struct {
	ID         types.String `tfsdk:"id"`
	DatabaseID types.String `tfsdk:"database_id"`
	Keepers    types.Map    `tfsdk:"keepers"`
	Password   types.String `tfsdk:"password"`
	SourceURL  types.String `tfsdk:"source_url"`
	Address    types.String `tfsdk:"address"`
	// PasswordVersion identifies the current password (passwordVersion).
	PasswordVersion types.Int64 `tfsdk:"password_version"`
}

func (r *sourceURLPasswordResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_source_url_password"
}

func (r *sourceURLPasswordResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Regenerates the admin password of a database (\"Regenerate Password\") and exposes its " +
			"Replica Of source URL, `redis://admin:<password>@host:port`, for destinations in other locations. " +
			"Changing `keepers` regenerates the password again.\n\n" +
			"After a regeneration, the old password keeps working for replication for a grace period (the " +
			"service's `--admin-password-grace`, 15 minutes by default), so that destinations given the new " +
			"`source_url` in the same apply reconnect with it and continue where they were: no flush, no reload. " +
			"A destination that still uses the old URL keeps replicating until the grace period ends; then the " +
			"service closes its replication session, it fails to authenticate, and its sync stops (`sync` becomes " +
			"`stopped` and `source_status[*].last_error` says why; the next plan shows `stopped` -> `enabled`, and " +
			"enabling it again with the new URL continues where it stopped, without a flush). A second regeneration ends the grace " +
			"period of the first password at once.\n\n" +
			"Destroying this resource only forgets the password: the current one stays valid.",
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
					noEcho(stringvalidator.RegexMatches(databaseIDPattern, "must be a database uid, a positive integer such as \"3\"")),
				},
			},
			"keepers": schema.MapAttribute{
				MarkdownDescription: "Arbitrary values; any change regenerates the password (the idiom of the " +
					"`random` provider), for example `{ rotation = \"2025-q3\" }`. The service stores them with the " +
					"password they regenerated, and refresh reads them back, so that an import into a configuration " +
					"with the same keepers plans nothing. Keepers given to a resource whose password has none (" +
					"regenerated outside Terraform, say) are only recorded, with the service too: nothing is regenerated. " +
					"At most 64 entries, keys of 1 to 256 bytes, values of at most 4096 bytes (checked at plan time). " +
					"Leave `keepers` out rather than writing `{}`: an import cannot tell an empty map from none, and " +
					"the plan after it would add `{}`.",
				Optional:    true,
				ElementType: types.StringType,
				// The service's limits (README, regenerate_admin_password),
				// checked at plan time rather than in the middle of an apply.
				Validators: []validator.Map{
					mapvalidator.SizeAtMost(64),
					mapvalidator.KeysAre(stringvalidator.LengthBetween(1, 256)),
					mapvalidator.ValueStringsAre(stringvalidator.LengthAtMost(4096)),
					keepersWithValues{},
				},
				PlanModifiers: []planmodifier.Map{mapplanmodifier.RequiresReplaceIf(keepersChanged,
					"A change of keepers regenerates the password; keepers given to a resource that had none do not.",
					"A change of `keepers` regenerates the password; keepers given to a resource that had none do not.")},
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
			"password_version": schema.Int64Attribute{
				MarkdownDescription: "A number that identifies the current password: it changes whenever the password " +
					"does (a regeneration by this resource, or one outside Terraform that refresh finds), and it is " +
					"known only after apply when the plan regenerates the password. Give it to " +
					"`source_uris_wo_version` of a `redis_replica_of` that takes the URL from the `redis_source_url` " +
					"ephemeral resource, so that a rotation sends the new URL in the same apply. It is a one-way " +
					"digest of the password and the database's uid (48 bits of SHA-256), not a secret, and refresh " +
					"and import compute it again from the current password.",
				Computed:      true,
				PlanModifiers: []planmodifier.Int64{int64planmodifier.UseStateForUnknown()},
			},
		},
	}
	if r.destroying {
		resp.Schema.Attributes = withoutValidators(resp.Schema.Attributes)
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
	keepers, diags := keepersOf(ctx, plan.Keepers)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	tflog.Info(ctx, "regenerating the admin password of a database", map[string]any{"uid": uid})
	// The keepers go with the password, so that an import finds them.
	s, err := regenerateSourceURL(ctx, r.client, uid, keepers)
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("Could not regenerate the admin password of database %d", uid), err.Error())
		return
	}
	plan.ID = plan.DatabaseID
	flattenSourceURLPassword(uid, s, &plan)
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
	flattenSourceURLPassword(uid, s, &state)
	// The keepers the password was regenerated with, as the service keeps
	// them, at every refresh as at an import, so that one server state
	// gives one plan: a configuration with the same keepers plans nothing,
	// one with other keepers a regeneration. A password regenerated
	// without keepers (outside Terraform, or by a provider before they
	// were stored) has none: the keepers of the configuration are then
	// recorded by an in-place update, which regenerates nothing.
	keepers := keepersValue(ctx, s.Keepers, &resp.Diagnostics)
	if keepers.IsNull() && !state.Keepers.IsNull() && !state.Keepers.IsUnknown() && len(state.Keepers.Elements()) == 0 {
		// keepers = {} in the configuration: the service stores no keepers
		// for an empty map; null would be a difference at every plan.
		keepers = state.Keepers
	}
	state.Keepers = keepers
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// keepersValue is the keepers attribute for the keepers the service stored
// with a password: null when there are none.
func keepersValue(ctx context.Context, keepers map[string]string, diags *diag.Diagnostics) types.Map {
	if len(keepers) == 0 {
		return types.MapNull(types.StringType)
	}
	k, d := types.MapValueFrom(ctx, types.StringType, keepers)
	diags.Append(d...)
	return k
}

// keepersChanged requires a replacement (a new password) when keepers
// change, but not when the prior state has none: an import knows no keepers,
// and importing must not regenerate the password that destinations use.
func keepersChanged(_ context.Context, req planmodifier.MapRequest, resp *mapplanmodifier.RequiresReplaceIfFuncResponse) {
	resp.RequiresReplace = !req.StateValue.IsNull() && !req.PlanValue.Equal(req.StateValue)
}

// ModifyPlan keeps `address` known when the password is regenerated (the
// resource replaced): the address does not change with the password, and a
// destination whose source address is unknown would be planned (and warned)
// as a flush.
func (r *sourceURLPasswordResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.client == nil || r.destroying {
		return
	}
	var plan sourceURLPasswordResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() || !plan.Address.IsUnknown() || plan.DatabaseID.IsUnknown() {
		return
	}
	uid, err := parseDatabaseID(plan.DatabaseID.ValueString())
	if err != nil {
		return // reported by the validator
	}
	s, err := readSourceURL(ctx, r.client, uid)
	if err != nil {
		// Not fatal for a plan: the address stays unknown.
		tflog.Debug(ctx, "could not read the source URL to plan its address", map[string]any{"uid": uid, "err": err.Error()})
		return
	}
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("address"), s.Address)...)
}

// Update records keepers for a password that had none (imported, or
// regenerated outside Terraform): the service tags the current password
// with them, without regenerating it, so that a later import finds them.
// (Any other change of keepers is a replacement.)
func (r *sourceURLPasswordResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan sourceURLPasswordResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	keepers, diags := keepersOf(ctx, plan.Keepers)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	if len(keepers) > 0 {
		uid, err := parseDatabaseID(plan.ID.ValueString())
		if err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("id"), "Invalid database id", err.Error())
			return
		}
		// The planned password stays: the next refresh sees any newer one.
		if _, err := r.client.RecordAdminPasswordKeepers(ctx, uid, keepers); err != nil {
			resp.Diagnostics.AddError(fmt.Sprintf("Could not record the keepers of the admin password of database %d", uid), err.Error())
			return
		}
	}
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

// keepersOf is the keepers attribute as a Go map (nil when null or empty).
// keepersWithValues refuses a keeper whose value is null (an unset
// variable, say): the service stores strings, and the framework's
// conversion error blamed the provider.
type keepersWithValues struct{}

func (keepersWithValues) Description(context.Context) string {
	return "every keeper has a value"
}

func (v keepersWithValues) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (keepersWithValues) ValidateMap(_ context.Context, req validator.MapRequest, resp *validator.MapResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	for k, e := range req.ConfigValue.Elements() {
		if e.IsNull() {
			resp.Diagnostics.AddAttributeError(req.Path.AtMapKey(k), "Keeper without a value",
				fmt.Sprintf("keepers[%q] is null: give every keeper a string (a keeper from an unset variable, say, "+
					"needs a default), or leave the key out.", k))
		}
	}
}

func keepersOf(ctx context.Context, m types.Map) (map[string]string, diag.Diagnostics) {
	if m.IsNull() || m.IsUnknown() || len(m.Elements()) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	diags := m.ElementsAs(ctx, &out, false)
	return out, diags
}

func flattenSourceURLPassword(uid int, s sourceURL, m *sourceURLPasswordResourceModel) {
	m.Password = types.StringValue(s.Password)
	m.SourceURL = types.StringValue(s.URI)
	m.Address = types.StringValue(s.Address)
	m.PasswordVersion = types.Int64Value(passwordVersion(uid, s.Password))
}

// passwordVersion identifies the admin password of database uid: the first
// 48 bits of a SHA-256 digest, a positive number that any JSON reader keeps
// exact. It is computed, not stored by the service, so that refresh and
// import find the same number for the same password. A digest of a password
// the service generated (192 random bits) tells nothing about it.
func passwordVersion(uid int, password string) int64 {
	sum := sha256.Sum256([]byte("redis_source_url_password\x00" + strconv.Itoa(uid) + "\x00" + password))
	return int64(binary.BigEndian.Uint64(sum[:8]) >> 16)
}
