package provider

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/client"
)

const (
	defaultDatabaseCreateTimeout = 10 * time.Minute
	defaultDatabaseUpdateTimeout = 10 * time.Minute
	defaultDatabaseDeleteTimeout = 10 * time.Minute
)

var (
	_ resource.Resource                = (*databaseResource)(nil)
	_ resource.ResourceWithConfigure   = (*databaseResource)(nil)
	_ resource.ResourceWithImportState = (*databaseResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*databaseResource)(nil)

	_ resource.ResourceWithValidateConfig = (*databaseResource)(nil)
)

type databaseResource struct {
	client *client.Client
	// destroying: the checks of a create or an update are left out
	// (see destroyCommand).
	destroying bool
}

type databaseResourceModel struct {
	ID         types.String `tfsdk:"id"`
	Name       types.String `tfsdk:"name"`
	MemorySize wholeNumber  `tfsdk:"memory_size"`
	Port       types.Int64  `tfsdk:"port"`
	Password   types.String `tfsdk:"password"`
	// PasswordWO is write-only: always null in the plan and the state.
	PasswordWO        types.String `tfsdk:"password_wo"`
	PasswordWOVersion types.Int64  `tfsdk:"password_wo_version"`
	Endpoint          types.String `tfsdk:"endpoint"`
	Status            types.String `tfsdk:"status"`

	TLSMode             types.String `tfsdk:"tls_mode"`
	ClientCertificates  types.Set    `tfsdk:"client_certificates"`
	ReplicationEndpoint types.String `tfsdk:"replication_endpoint"`

	ShardsCount types.Int64 `tfsdk:"shards_count"`
	Replication types.Bool  `tfsdk:"replication"`
	OSSCluster  types.Bool  `tfsdk:"oss_cluster"`
	Endpoints   types.List  `tfsdk:"endpoints"`

	Timeouts timeouts.Value `tfsdk:"timeouts"`
}

func (r *databaseResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_database"
}

func (r *databaseResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A Redis database run by `redis-replicad`: a `redis-server` process with its own port, " +
			"memory limit and password. Creating it waits until the database answers.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "The database's uid, as a string.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Name of the database: 1 to 63 letters, digits, `-` or `_`, starting with a letter " +
					"or digit, unique in the instance regardless of case. Can be changed in place.",
				Required: true,
				Validators: []validator.String{
					noEcho(stringvalidator.RegexMatches(namePattern, "must be 1 to 63 letters, digits, '-' or '_', starting with a letter or digit")),
				},
			},
			"memory_size": schema.Int64Attribute{
				MarkdownDescription: "Memory limit of the database in bytes (Redis `maxmemory`), a whole number from 4 MiB " +
					"(4194304) to 1 TiB (1099511627776); a sharded database needs at least 4 MiB per shard. " +
					"Can be changed in place.",
				Required:   true,
				CustomType: wholeNumberType{},
				Validators: []validator.Int64{memorySize()},
			},
			"port": schema.Int64Attribute{
				MarkdownDescription: "TCP port of the database, 1024 to 65535 (the lower ports are reserved for system " +
					"services). When unset, the service picks a free one from its range. " +
					"Changing it replaces the database; removing it from the configuration keeps the current port.",
				Optional: true,
				Computed: true,
				Validators: []validator.Int64{
					int64validator.Between(api.MinPort, 65535),
				},
				PlanModifiers: []planmodifier.Int64{
					int64planmodifier.UseStateForUnknown(),
					int64planmodifier.RequiresReplace(),
				},
			},
			"password": schema.StringAttribute{
				MarkdownDescription: "Password of the database's `default` user, the one applications connect with: " +
					"8 to 128 printable characters (spaces included, no control characters). When unset, the service generates one. Can be changed in place; removing it from the configuration " +
					"keeps the current password. Stored in the state (sensitive); to keep it out of the state, give " +
					"`password_wo` instead, and `password` is then null.",
				Optional:   true,
				Computed:   true,
				Sensitive:  true,
				Validators: []validator.String{databasePassword()},
				PlanModifiers: []planmodifier.String{
					nullWithWriteOnlyPassword(),
					stringplanmodifier.UseStateForUnknown(),
					unknownWhenWriteOnlyPasswordDropped(),
				},
			},
			"password_wo": schema.StringAttribute{
				MarkdownDescription: "Like `password`, but write-only (Terraform 1.11+): never stored in the plan or " +
					"the state, so it accepts ephemeral values (for example from an `ephemeral \"random_password\"`). " +
					"Requires `password_wo_version`; conflicts with `password`. Terraform cannot see a change of a " +
					"write-only value: change `password_wo_version` to set the new password. A password changed outside " +
					"Terraform (through the REST API) shows in the next plan as `password_wo_version` added, and the " +
					"apply sets `password_wo` again: the provider keeps a salted digest of the password it set (in the " +
					"resource's private state) and compares it with the service's on refresh. Removing both from the " +
					"configuration keeps the database's password, and the state then records it in `password` (a " +
					"sensitive attribute): keep them to keep it out of the state.",
				Optional:  true,
				WriteOnly: true,
				Sensitive: true,
				Validators: []validator.String{
					databasePassword(),
					stringvalidator.ConflictsWith(path.MatchRoot("password")),
					stringvalidator.AlsoRequires(path.MatchRoot("password_wo_version")),
				},
			},
			"password_wo_version": schema.Int64Attribute{
				MarkdownDescription: "Any change of this number sets the password to `password_wo`. Requires `password_wo`.",
				Optional:            true,
				Validators: []validator.Int64{
					int64validator.AlsoRequires(path.MatchRoot("password_wo")),
				},
			},
			"endpoint": schema.StringAttribute{
				MarkdownDescription: "Where applications reach the database, as `host:port`.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"status": schema.StringAttribute{
				MarkdownDescription: "Status of the database: `pending` (starting), `loading` (loading its data: after a restart, or reloaded from its Replica Of sources), `active` (answering), `failed`, or `deleting` (a delete that could not remove its files yet: the next plan replaces it).",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{useStateWhenActive()},
			},
			"tls_mode": schema.StringAttribute{
				MarkdownDescription: "TLS of the database: " + tlsModeDescription + ". Can be changed in place: " +
					"a change to or from `enabled` restarts the database's `redis-server` (the data stays), which disconnects its clients; " +
					"between `disabled` and `replica_ssl` only the replication endpoint changes. " +
					"On a sharded database, a change to or from `enabled` is refused at plan time (not supported yet).",
				Optional: true,
				Computed: true,
				Default:  stringdefault.StaticString(api.TLSDisabled),
				Validators: []validator.String{
					noEcho(stringvalidator.OneOf(api.TLSDisabled, api.TLSEnabled, api.TLSReplicaSSL)),
				},
			},
			"client_certificates": schema.SetAttribute{
				MarkdownDescription: "PEM client certificates allowed to replicate from this database over TLS, " +
					"typically the `syncer_cert` of the `redis_cluster` data source of each destination's instance. " +
					"When set, the replication endpoint admits only clients that present one of them, compared " +
					"exactly (pinned), within its validity dates; with `tls_mode = \"enabled\"`, the database's port then requires a client " +
					"certificate too: one of them, or one signed by the instance's `ca_cert` (except on a sharded database, " +
					"whose nodes' ports admit TLS clients without one: Redis trusts the same certificates on a node's port " +
					"and its cluster bus, which must trust the instance's nodes alone). Needs `tls_mode` `replica_ssl` " +
					"or `enabled` (refused with `disabled`: the endpoint would admit any client, in plain text). When unset or empty, " +
					"any TLS client that knows the source URL's password may replicate. Can be changed in place, " +
					"without a restart: replication sessions whose certificate is no longer listed are closed, the " +
					"others go on. Leaving it out and writing `[]` mean the same, and the state records `[]` for either " +
					"once refreshed or imported: moving from one to the other plans nothing.",
				Optional:    true,
				Computed:    true,
				ElementType: types.StringType,
				Validators:  []validator.Set{pemCertificates()},
				// An import cannot tell [] from none (the service has no
				// pins either way): they are one value, so that a plan after
				// an import, or after either is written, changes nothing.
				PlanModifiers: []planmodifier.Set{emptySetAsInState()},
			},
			"replication_endpoint": schema.StringAttribute{
				MarkdownDescription: "Where destinations replicate this database from, as `host:port`: the address " +
					"of its source URL, served by the instance's replication gateway. Give it as the `address` of a " +
					"`redis_replica_of` source. The source URL's password works only there. For a sharded database, " +
					"destinations find its shards there and stream each from its node's own replication endpoint " +
					"(ports of the service's range, listed in the service's API).",
				Computed:      true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"shards_count": schema.Int64Attribute{
				MarkdownDescription: "Number of shards (1 to 64). Above 1 the database is a Redis Cluster of that many " +
					"masters, the slots split evenly between them and `memory_size` split across them; applications use a " +
					"cluster-aware client starting from any of `endpoints`. Cannot be changed yet: a change is refused at " +
					"plan time (resharding a database is not supported; create a new database instead).",
				Optional:   true,
				Computed:   true,
				Default:    int64default.StaticInt64(1),
				Validators: []validator.Int64{int64validator.Between(1, 64)},
			},
			"replication": schema.BoolAttribute{
				MarkdownDescription: "Gives each shard a replica, which the cluster promotes when its master fails. " +
					"Needs `shards_count` above 1 or `oss_cluster = true`. Cannot be changed yet (refused at plan time).",
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(false),
			},
			"oss_cluster": schema.BoolAttribute{
				MarkdownDescription: "Makes the database a Redis Cluster even with one shard (`shards_count` above 1 " +
					"always does). Cannot be changed yet (refused at plan time).",
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(false),
			},
			"endpoints": schema.ListAttribute{
				MarkdownDescription: "Every `redis-server` of the database, as `host:port`: the masters first, in the " +
					"order of their slots, then their replicas. A cluster-aware client can start from any of them; " +
					"the current role and slots of each are in the service's API.",
				Computed:      true,
				ElementType:   types.StringType,
				PlanModifiers: []planmodifier.List{listplanmodifier.UseStateForUnknown()},
			},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}),
		},
	}
	if r.destroying {
		resp.Schema.Attributes = withoutValidators(resp.Schema.Attributes)
	}
}

// ValidateConfig checks what the service would refuse of the sharding
// settings together, with its words: a replica per shard needs a Redis
// Cluster, and each shard at least 4 MiB. Each attribute is read on its own,
// so that one that does not convert (reported by its own check) does not
// hide the others.
func (r *databaseResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	if r.destroying {
		return
	}
	var memory wholeNumber
	var shards types.Int64
	var replication, ossCluster types.Bool
	var diags diag.Diagnostics
	diags.Append(req.Config.GetAttribute(ctx, path.Root("memory_size"), &memory)...)
	diags.Append(req.Config.GetAttribute(ctx, path.Root("shards_count"), &shards)...)
	diags.Append(req.Config.GetAttribute(ctx, path.Root("replication"), &replication)...)
	diags.Append(req.Config.GetAttribute(ctx, path.Root("oss_cluster"), &ossCluster)...)
	checkTimeouts(ctx, req.Config, &resp.Diagnostics)
	if diags.HasError() {
		return // a value that does not convert: its attribute's check says why
	}
	resp.Diagnostics.Append(checkSharding(memory.Int64Value, shards, replication, ossCluster)...)
	var tlsMode types.String
	var pins types.Set
	if req.Config.GetAttribute(ctx, path.Root("tls_mode"), &tlsMode).HasError() ||
		req.Config.GetAttribute(ctx, path.Root("client_certificates"), &pins).HasError() {
		return
	}
	resp.Diagnostics.Append(checkPinsNeedTLS(tlsMode, pins)...)
}

// checkPinsNeedTLS is the service's refusal of client_certificates on a
// database whose replication endpoint has no TLS (tls_mode disabled, the
// default): the pins would admit nobody less, and the service answers 400.
func checkPinsNeedTLS(tlsMode types.String, pins types.Set) diag.Diagnostics {
	var diags diag.Diagnostics
	if tlsMode.IsUnknown() || pins.IsUnknown() || pins.IsNull() || len(pins.Elements()) == 0 {
		return diags
	}
	if tlsMode.IsNull() || tlsMode.ValueString() == api.TLSDisabled {
		diags.AddAttributeError(path.Root("client_certificates"), "client_certificates need TLS",
			"client_certificates pin the TLS clients of the replication endpoint, which has no TLS with tls_mode = \"disabled\" "+
				"(the default): any client that knows the password would replicate, in plain text. Set tls_mode to \"replica_ssl\" "+
				"or \"enabled\", or remove client_certificates.")
	}
	return diags
}

// checkSharding is the service's validateSharding on configuration values;
// unknown values are skipped, null ones take their defaults.
func checkSharding(memory, shards types.Int64, replication, ossCluster types.Bool) diag.Diagnostics {
	var diags diag.Diagnostics
	if shards.IsUnknown() || ossCluster.IsUnknown() {
		return diags
	}
	n := max(shards.ValueInt64(), 1) // null: the default, 1
	clustered := n > 1 || ossCluster.ValueBool()
	if !replication.IsUnknown() && replication.ValueBool() && !clustered {
		diags.AddAttributeError(path.Root("replication"), "replication needs a Redis Cluster",
			"replication (a replica per shard) needs a Redis Cluster for now: set shards_count above 1 or oss_cluster = true.")
	}
	if !clustered || memory.IsUnknown() || memory.IsNull() || n > api.MaxShards {
		return diags
	}
	if per := memory.ValueInt64() / n; per < api.MinMemorySize {
		diags.AddAttributeError(path.Root("memory_size"), "Not enough memory per shard",
			fmt.Sprintf("memory_size %d split across %d shards leaves %d bytes per shard, less than the %d (4 MiB) each needs.",
				memory.ValueInt64(), n, per, int64(api.MinMemorySize)))
	}
	return diags
}

func (r *databaseResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFromProviderData(req.ProviderData, &resp.Diagnostics)
}

func (r *databaseResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan databaseResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Create(ctx, defaultDatabaseCreateTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}

	in := api.CreateDatabaseRequest{
		Name:       plan.Name.ValueString(),
		MemorySize: plan.MemorySize.ValueInt64(),
	}
	if !plan.Port.IsUnknown() && !plan.Port.IsNull() {
		in.Port = int(plan.Port.ValueInt64())
	}
	if !plan.Password.IsUnknown() && !plan.Password.IsNull() {
		in.AuthenticationRedisPass = plan.Password.ValueString()
	}
	var wo types.String
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("password_wo"), &wo)...)
	if !wo.IsNull() && !wo.IsUnknown() {
		in.AuthenticationRedisPass = wo.ValueString()
	}
	in.TLSMode = plan.TLSMode.ValueString()
	in.ShardsCount = int(plan.ShardsCount.ValueInt64())
	in.Replication = plan.Replication.ValueBool()
	in.OSSCluster = plan.OSSCluster.ValueBool()
	in.ClientCertificates = expandCertificates(ctx, plan.ClientCertificates, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	tflog.Debug(ctx, "creating a database", map[string]any{
		"name": in.Name, "memory_size": in.MemorySize, "port": in.Port,
		"tls_mode": in.TLSMode, "client_certificates": len(in.ClientCertificates),
	})
	// The databases before the create: when its answer is lost (a proxy's
	// timeout, a reset connection), the service may have taken it; a
	// create is not sent again, and the database it made is found by its
	// name (unique on the service), which none of these had.
	// timeouts.create bounds the whole create: the service answers a
	// create once the database's redis-server has started, which a loaded
	// host can make long, and the client retries.
	deadline := time.Now().Add(timeout)
	createCtx, cancelCreate := context.WithDeadline(ctx, deadline)
	defer cancelCreate()
	before, listErr := r.client.ListDatabases(createCtx)
	db, err := r.client.CreateDatabase(createCtx, in)
	// Interrupted (Ctrl-C cancels ctx) or timed out while the request was
	// out, the create may have been taken all the same: it is looked for,
	// beyond the interruption, so that it is recorded rather than left
	// behind.
	interrupted := err != nil && ctx.Err() != nil
	timedOut := err != nil && !interrupted && createCtx.Err() != nil
	if timedOut {
		err = fmt.Errorf("the create timeout (%s) passed before the service answered the create: %w", timeout, err)
	}
	if err != nil && listErr == nil && (client.IsUnreachable(err) || interrupted || timedOut) {
		lookCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		found := createdDatabase(lookCtx, r.client, in.Name, before)
		cancel()
		if found != nil && timedOut {
			// Recorded, and tainted by the error: the next apply replaces it.
			resp.Diagnostics.Append(flattenDatabase(found, &plan)...)
			resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
			resp.Diagnostics.AddError("The database "+strconv.Quote(in.Name)+" did not become active",
				fmt.Sprintf("The create timeout (%s) passed before the service answered the create. The database it was "+
					"making (uid %d, status %q) is recorded in the state, tainted: the next apply deletes it and creates it "+
					"again. Raise timeouts.create if the service needs longer to start a database.", timeout, found.UID, found.Status))
			return
		}
		if found != nil {
			tflog.Warn(ctx, "the answer to the create was lost; the service created the database", map[string]any{"uid": found.UID, "error": err.Error()})
			db, err = found, nil
		}
	}
	if err != nil {
		detail := err.Error()
		if client.IsConflict(err) {
			detail += "\n\nIf this apply replaces a database of the same name and the resource has lifecycle " +
				"create_before_destroy, the new database is created while the old one still holds the name: give the " +
				"new database another name, or remove create_before_destroy."
		}
		resp.Diagnostics.AddError("Could not create the database "+strconv.Quote(in.Name), detail)
		return
	}
	tflog.Info(ctx, "created a database", map[string]any{"uid": db.UID})
	if !wo.IsNull() && !wo.IsUnknown() {
		recordSentPassword(ctx, resp.Private, wo.ValueString(), &resp.Diagnostics)
	}

	// Save what exists now, so that a database that fails to start is
	// tainted in the state (and replaced by the next apply), not forgotten.
	resp.Diagnostics.Append(flattenDatabase(db, &plan)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}

	uid := db.UID
	db, err = waitForDatabaseActive(ctx, r.client, uid, max(time.Until(deadline).Round(time.Second), time.Second))
	if db != nil {
		resp.Diagnostics.Append(flattenDatabase(db, &plan)...)
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
	}
	switch {
	case err != nil && ctx.Err() == context.Canceled:
		resp.Diagnostics.AddError("The database "+strconv.Quote(in.Name)+" did not become active",
			fmt.Sprintf("Terraform was interrupted before the database (uid %d) was seen active. It is recorded in the "+
				"state, tainted: the next apply deletes it and creates it again.", uid))
	case err != nil:
		resp.Diagnostics.AddError("The database "+strconv.Quote(in.Name)+" did not become active", err.Error())
	}
}

// tookDatabaseUpdate returns the database uid, read beyond an interruption
// of ctx, when it holds everything that update in asked for; nil otherwise.
func tookDatabaseUpdate(ctx context.Context, c *client.Client, uid int, in api.UpdateDatabaseRequest) *api.Database {
	readCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	db, err := findDatabaseByID(readCtx, c, uid)
	if err != nil {
		return nil
	}
	pems := func(certs []string) []string {
		out := make([]string, len(certs))
		for i, c := range certs {
			out[i] = strings.TrimSpace(c)
		}
		slices.Sort(out)
		return out
	}
	switch {
	case in.Name != nil && *in.Name != db.Name,
		in.MemorySize != nil && *in.MemorySize != db.MemorySize,
		in.AuthenticationRedisPass != nil && *in.AuthenticationRedisPass != db.AuthenticationRedisPass,
		in.TLSMode != nil && *in.TLSMode != db.TLSMode,
		in.ClientCertificates != nil && !slices.Equal(pems(*in.ClientCertificates), pems(db.ClientCertificates)):
		return nil
	}
	return db
}

// createdDatabase returns the database named name that is not among
// before, the databases listed before a create whose answer was lost: the
// one that create made. nil when there is none (or the service cannot be
// read either).
func createdDatabase(ctx context.Context, c *client.Client, name string, before []api.Database) *api.Database {
	known := map[int]bool{}
	for _, d := range before {
		known[d.UID] = true
	}
	// The service may still be making it: a create is answered once done.
	for range 3 {
		all, err := c.ListDatabases(ctx)
		if err != nil {
			return nil
		}
		for _, d := range all {
			if d.Name == name && !known[d.UID] {
				return &d
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	return nil
}

func (r *databaseResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state databaseResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	uid, err := parseDatabaseID(state.ID.ValueString())
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("id"), "Invalid database id", err.Error())
		return
	}
	db, err := findDatabaseByID(ctx, r.client, uid)
	if client.IsNotFound(err) {
		tflog.Warn(ctx, "the database no longer exists, removing it from the state", map[string]any{"uid": uid})
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("Could not read the database %d", uid), err.Error())
		return
	}
	resp.Diagnostics.Append(flattenDatabase(db, &state)...)
	if state.ClientCertificates.IsNull() {
		// No pins are recorded as [], which a configuration that leaves
		// client_certificates out plans as it is (emptySetAsInState).
		state.ClientCertificates = types.SetValueMust(types.StringType, []attr.Value{})
	}
	if db.AuthenticationRedisPass != "" && sentPasswordDiffers(ctx, req.Private, db.AuthenticationRedisPass) {
		// The password is not the write-only one the provider set last.
		// The state records no version for it, never the password, so that
		// the plan sets password_wo again, and shows it.
		resp.Diagnostics.AddWarning(fmt.Sprintf("The password of database %d was changed outside Terraform", uid),
			"The database's password is not the write-only password (password_wo) that Terraform set last. The plan "+
				"sets password_wo again: it shows password_wo_version as added.")
		state.Password, state.PasswordWOVersion = types.StringNull(), types.Int64Null()
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *databaseResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state databaseResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Update(ctx, defaultDatabaseUpdateTimeout)
	resp.Diagnostics.Append(diags...)
	uid, err := parseDatabaseID(state.ID.ValueString())
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("id"), "Invalid database id", err.Error())
	}
	if resp.Diagnostics.HasError() {
		return
	}

	in, changed := expandDatabaseUpdate(ctx, plan, state, &resp.Diagnostics)
	if !plan.PasswordWOVersion.IsNull() && !plan.PasswordWOVersion.Equal(state.PasswordWOVersion) {
		// A new version: the write-only password, from the configuration.
		var wo types.String
		resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("password_wo"), &wo)...)
		if !wo.IsNull() && !wo.IsUnknown() {
			v := wo.ValueString()
			in.AuthenticationRedisPass, changed = &v, true
		}
	}
	if resp.Diagnostics.HasError() {
		return
	}
	var db *api.Database
	if changed {
		tflog.Debug(ctx, "updating a database", map[string]any{
			"uid": uid, "name_changed": in.Name != nil, "memory_size_changed": in.MemorySize != nil,
			"password_changed": in.AuthenticationRedisPass != nil, "tls_mode_changed": in.TLSMode != nil,
			"client_certificates_changed": in.ClientCertificates != nil,
		})
		if _, err := r.client.UpdateDatabase(ctx, uid, in); err != nil {
			// Interrupted (Ctrl-C cancels ctx) while the request was out,
			// the service may have taken it: recorded as applied, so that
			// the next plan does not set it again, nor take a new
			// write-only password for one changed outside Terraform.
			now := tookDatabaseUpdate(ctx, r.client, uid, in)
			if ctx.Err() == nil || now == nil {
				resp.Diagnostics.AddError(fmt.Sprintf("Could not update the database %d", uid), err.Error())
				return
			}
			if in.AuthenticationRedisPass != nil && !plan.PasswordWOVersion.IsNull() {
				recordSentPassword(ctx, resp.Private, *in.AuthenticationRedisPass, &resp.Diagnostics)
			}
			resp.Diagnostics.Append(flattenDatabase(now, &plan)...)
			resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
			resp.Diagnostics.AddError(fmt.Sprintf("The update of database %d was interrupted", uid),
				fmt.Sprintf("Terraform was interrupted after the service took the update of database %d: it is recorded "+
					"as applied (database status %q).", uid, now.Status))
			return
		}
	}
	switch {
	case plan.PasswordWOVersion.IsNull():
		recordSentPassword(ctx, resp.Private, "", &resp.Diagnostics)
	case !plan.PasswordWOVersion.Equal(state.PasswordWOVersion) && in.AuthenticationRedisPass != nil:
		recordSentPassword(ctx, resp.Private, *in.AuthenticationRedisPass, &resp.Diagnostics)
	}
	db, err = waitForDatabaseActive(ctx, r.client, uid, timeout)
	if db != nil {
		resp.Diagnostics.Append(flattenDatabase(db, &plan)...)
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
	}
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("The database %d is not active after the update", uid), err.Error())
	}
}

func (r *databaseResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state databaseResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, defaultDatabaseDeleteTimeout)
	resp.Diagnostics.Append(diags...)
	uid, err := parseDatabaseID(state.ID.ValueString())
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("id"), "Invalid database id", err.Error())
	}
	if resp.Diagnostics.HasError() {
		return
	}
	tflog.Debug(ctx, "deleting a database", map[string]any{"uid": uid})
	if err := r.client.DeleteDatabase(ctx, uid); err != nil {
		if client.IsNotFound(err) {
			return
		}
		resp.Diagnostics.AddError(fmt.Sprintf("Could not delete the database %d", uid), err.Error())
		return
	}
	if err := waitForDatabaseDeleted(ctx, r.client, uid, timeout); err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("Could not delete the database %d", uid), err.Error())
	}
}

func (r *databaseResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if _, err := parseDatabaseID(req.ID); err != nil {
		resp.Diagnostics.AddError("Invalid import id", err.Error())
		return
	}
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

// expandDatabaseUpdate builds the PUT body from what differs between the plan
// and the state. changed is false when there is nothing to send.
func expandDatabaseUpdate(ctx context.Context, plan, state databaseResourceModel, diags *diag.Diagnostics) (in api.UpdateDatabaseRequest, changed bool) {
	if !plan.Name.Equal(state.Name) {
		v := plan.Name.ValueString()
		in.Name, changed = &v, true
	}
	if !plan.MemorySize.Equal(state.MemorySize) {
		v := plan.MemorySize.ValueInt64()
		in.MemorySize, changed = &v, true
	}
	if !plan.Password.IsUnknown() && !plan.Password.IsNull() && !plan.Password.Equal(state.Password) {
		v := plan.Password.ValueString()
		in.AuthenticationRedisPass, changed = &v, true
	}
	if !plan.TLSMode.IsUnknown() && !plan.TLSMode.Equal(state.TLSMode) {
		v := plan.TLSMode.ValueString()
		in.TLSMode, changed = &v, true
	}
	if !plan.ClientCertificates.Equal(state.ClientCertificates) {
		v := expandCertificates(ctx, plan.ClientCertificates, diags)
		if v == nil {
			v = []string{} // null: none allowed any more
		}
		in.ClientCertificates, changed = &v, true
	}
	return in, changed
}

// expandCertificates returns the PEM certificates of a set; nil for a null set.
func expandCertificates(ctx context.Context, set types.Set, diags *diag.Diagnostics) []string {
	if set.IsNull() || set.IsUnknown() {
		return nil
	}
	var out []string
	diags.Append(set.ElementsAs(ctx, &out, false)...)
	return out
}

// flattenCertificates turns the service's certificates into a set. None
// stays null when prior is null, so that a configuration that leaves
// client_certificates out shows no difference.
func flattenCertificates(certs []string, prior types.Set) (types.Set, diag.Diagnostics) {
	if len(certs) == 0 && (prior.IsNull() || prior.IsUnknown()) {
		return types.SetNull(types.StringType), nil
	}
	elems := make([]attr.Value, len(certs))
	for i, c := range certs {
		elems[i] = types.StringValue(c)
	}
	return types.SetValue(types.StringType, elems)
}

// flattenDatabase copies db into m. The timeouts are left as they are. An
// empty password in the answer keeps the one m has.
func flattenDatabase(db *api.Database, m *databaseResourceModel) diag.Diagnostics {
	m.ID = types.StringValue(strconv.Itoa(db.UID))
	m.Name = types.StringValue(db.Name)
	m.MemorySize = newWholeNumber(db.MemorySize)
	m.Port = types.Int64Value(int64(db.Port))
	switch {
	case !m.PasswordWOVersion.IsNull():
		m.Password = types.StringNull() // write-only: never in the state
	case db.AuthenticationRedisPass != "" || m.Password.IsUnknown() || m.Password.IsNull():
		m.Password = types.StringValue(db.AuthenticationRedisPass)
	}
	m.Endpoint = types.StringValue(databaseEndpoint(db))
	m.Status = types.StringValue(db.Status)
	m.ReplicationEndpoint = types.StringValue(databaseReplicationEndpoint(db))
	mode := db.TLSMode
	if mode == "" {
		mode = api.TLSDisabled
	}
	m.TLSMode = types.StringValue(mode)
	m.ShardsCount = types.Int64Value(int64(max(db.ShardsCount, 1)))
	m.Replication = types.BoolValue(db.Replication)
	m.OSSCluster = types.BoolValue(db.OSSCluster)
	certs, diags := flattenCertificates(db.ClientCertificates, m.ClientCertificates)
	m.ClientCertificates = certs
	eps := make([]attr.Value, 0, len(db.Endpoints))
	for _, ep := range db.Endpoints {
		eps = append(eps, types.StringValue(net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port))))
	}
	if len(eps) == 0 {
		// A service from before sharded databases: its one server.
		eps = append(eps, m.Endpoint)
	}
	list, d := types.ListValue(types.StringType, eps)
	diags.Append(d...)
	m.Endpoints = list
	return diags
}

// ModifyPlan refuses a new name or port that another database has (and
// warns of one given to a new database, see refuseTaken), refuses changes
// the service cannot make yet, and warns that a new tls_mode restarts the
// database (to or from enabled) or changes how destinations must connect.
func (r *databaseResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.destroying {
		return
	}
	var plan, state databaseResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if !req.State.Raw.IsNull() {
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	// A replacement (a new port) is planned twice: with the prior state,
	// then as a create, which receives the private data of the first. The
	// database replaced is deleted before the new one is created: its name
	// is not taken.
	replaced, _ := req.Private.GetKey(ctx, replacingKey)
	if !req.State.Raw.IsNull() {
		replaced = nil
		deleting := state.Status.ValueString() == api.StatusDeleting
		if plan.Port.IsUnknown() || !plan.Port.Equal(state.Port) || deleting {
			replaced = []byte(state.ID.ValueString())
		}
		if deleting {
			// A DELETE stopped it but could not remove its files (a destroy
			// that failed midway): it serves nothing and takes no change,
			// and planned no change at all. Replacing it deletes it again,
			// which finishes the delete, and creates it anew.
			resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("status"), types.StringUnknown())...)
			resp.RequiresReplace.Append(path.Root("status"))
			resp.Diagnostics.AddAttributeWarning(path.Root("status"), "The database is being deleted",
				fmt.Sprintf("Database %s (%q) is being deleted: a DELETE stopped it but could not remove its files (see its "+
					"last_error in the service). It serves nothing, so this plan replaces it: the apply deletes it again, "+
					"which finishes the delete once its files can be removed, then creates it anew, empty.",
					state.ID.ValueString(), state.Name.ValueString()))
		}
		resp.Diagnostics.Append(resp.Private.SetKey(ctx, replacingKey, replaced)...)
		if replaced != nil && !plan.Name.IsUnknown() && strings.EqualFold(plan.Name.ValueString(), state.Name.ValueString()) {
			// Terraform does not tell a provider about create_before_destroy
			// (and shows no warning of the plan of the replacement's create):
			// said here, since such an apply fails midway.
			resp.Diagnostics.AddAttributeWarning(path.Root("name"), "The new database has the name of the one it replaces",
				fmt.Sprintf("This plan replaces the database %s (%q) with a new database of the same name. Terraform deletes "+
					"the old database first, unless the resource has lifecycle create_before_destroy: then it creates the new "+
					"one first, while the old one still holds the name, and the apply fails (names are unique on the "+
					"instance). With create_before_destroy, give the new database another name.",
					state.ID.ValueString(), state.Name.ValueString()))
		}
	}
	r.refuseTaken(ctx, plan, state, string(replaced), &resp.Diagnostics)
	if req.State.Raw.IsNull() || resp.Diagnostics.HasError() {
		return
	}
	refuseReshard(plan, state, &resp.Diagnostics)
	if resp.Diagnostics.HasError() || plan.TLSMode.IsUnknown() || plan.TLSMode.Equal(state.TLSMode) {
		return
	}
	// A plan that replaces the database (a new port: the one attribute
	// that requires it) creates one with the tls_mode wanted, which is
	// what the refusal below tells to do. (resp.RequiresReplace does not
	// say it here: the framework gives ModifyPlan an empty one.)
	replacing := plan.Port.IsUnknown() || !plan.Port.Equal(state.Port)
	if !replacing && (state.ShardsCount.ValueInt64() > 1 || state.OSSCluster.ValueBool()) &&
		(plan.TLSMode.ValueString() == api.TLSEnabled || state.TLSMode.ValueString() == api.TLSEnabled) {
		// The service refuses it (400): say so at plan time, not with a
		// restart warning followed by a failed apply.
		resp.Diagnostics.AddAttributeError(path.Root("tls_mode"), "tls_mode cannot change yet",
			fmt.Sprintf("Changing tls_mode of the sharded database %s (%q) from %q to %q is not supported yet: its nodes' "+
				"links would all change protocol. Keep tls_mode at %q, or create a new database with the tls_mode wanted.",
				state.ID.ValueString(), state.Name.ValueString(), state.TLSMode.ValueString(), plan.TLSMode.ValueString(),
				state.TLSMode.ValueString()))
		return
	}
	// Only enabled changes the protocol of the database's own port; the
	// other modes differ in the replication endpoint only.
	restarts := plan.TLSMode.ValueString() == api.TLSEnabled || state.TLSMode.ValueString() == api.TLSEnabled
	summary, detail := "The database restarts", fmt.Sprintf("Changing tls_mode of database %s (%q) from %q to %q restarts its redis-server: the data stays, "+
		"but every client is disconnected.", state.ID.ValueString(), state.Name.ValueString(), state.TLSMode.ValueString(), plan.TLSMode.ValueString())
	if !restarts {
		summary, detail = "Replication changes protocol", fmt.Sprintf("Changing tls_mode of database %s (%q) from %q to %q changes its replication endpoint only: "+
			"its redis-server and its clients are not disturbed.", state.ID.ValueString(), state.Name.ValueString(), state.TLSMode.ValueString(), plan.TLSMode.ValueString())
	}
	switch {
	case plan.TLSMode.ValueString() == api.TLSEnabled:
		detail += " From then on, applications must connect with TLS (trusting the instance's ca_cert)."
	case state.TLSMode.ValueString() == api.TLSEnabled:
		detail += " From then on, applications must connect in plain text."
	}
	if plan.TLSMode.ValueString() != api.TLSDisabled && state.TLSMode.ValueString() == api.TLSDisabled {
		detail += " Destinations that replicate from it without encryption are refused until their source has encryption = true."
	}
	if plan.TLSMode.ValueString() == api.TLSDisabled {
		detail += " Destinations that replicate from it with encryption = true are refused until their source has encryption = false."
	}
	resp.Diagnostics.AddAttributeWarning(path.Root("tls_mode"), summary, detail)
}

// replacingKey holds, in the private data of a plan that replaces a
// database, the uid of the database replaced.
const replacingKey = "replacing"

// refuseTaken says at plan time that another database of the instance has
// the name (regardless of case) or the port that a new database, or a
// renamed one, asks for: the service refuses them (409). state is the zero
// value for a create. A create is only warned: Terraform plans the
// replacement of a tainted database (one that failed to start) as a create
// without its prior state, so the database it deletes first cannot be told
// from another one.
func (r *databaseResource) refuseTaken(ctx context.Context, plan, state databaseResourceModel, replacing string, diags *diag.Diagnostics) {
	create := state.ID.IsNull()
	renamed := !create && !plan.Name.IsUnknown() && !plan.Name.Equal(state.Name)
	newPort := !plan.Port.IsUnknown() && !plan.Port.IsNull() && (create || !plan.Port.Equal(state.Port))
	if r.client == nil || !(create && !plan.Name.IsUnknown() || renamed || newPort) {
		return
	}
	all, err := r.client.ListDatabases(ctx)
	if err != nil {
		return // not fatal for a plan: the service says so at apply time
	}
	// A replacement (a new port) deletes this database before it creates
	// the new one: its own name and ports are not taken.
	report := diags.AddAttributeError
	if create {
		report = diags.AddAttributeWarning
	}
	for _, d := range all {
		if uid := strconv.Itoa(d.UID); uid == state.ID.ValueString() || uid == replacing {
			continue
		}
		hint := fmt.Sprintf("Give another one, or, if it is the database this resource is meant to manage, import it "+
			"(terraform import <address of this resource> %d); if another resource of this configuration, which this "+
			"plan removes, manages it, use a moved block instead (Terraform does not order the removal of one resource "+
			"before the creation of another).", d.UID)
		if create {
			hint = "Unless this plan replaces that very database (a tainted one), the apply fails. " + hint
		}
		if (create || renamed) && !plan.Name.IsUnknown() && strings.EqualFold(d.Name, plan.Name.ValueString()) {
			report(path.Root("name"), "Database name taken",
				fmt.Sprintf("A database named %q already exists (uid %d) on %s: names are unique regardless of case. %s",
					d.Name, d.UID, r.client.Endpoint(), hint))
		}
		if newPort {
			port := int(plan.Port.ValueInt64())
			taken := d.Port == port || d.ReplicationPort == port || d.Endpoint.Port == port
			for _, n := range d.Endpoints {
				taken = taken || n.Port == port || n.ReplicationPort == port
			}
			if taken {
				report(path.Root("port"), "Port taken",
					fmt.Sprintf("The port %d is taken by the database %d (%q) on %s. %s", port, d.UID, d.Name, r.client.Endpoint(), hint))
			}
		}
	}
}

// refuseReshard says at plan time that the shards of a database cannot
// change yet, rather than letting the apply fail (or replacing the database,
// which would lose its data).
func refuseReshard(plan, state databaseResourceModel, diags *diag.Diagnostics) {
	name := fmt.Sprintf("database %s (%q)", state.ID.ValueString(), state.Name.ValueString())
	if !plan.ShardsCount.IsUnknown() && !state.ShardsCount.IsNull() && !plan.ShardsCount.Equal(state.ShardsCount) {
		diags.AddAttributeError(path.Root("shards_count"), "shards_count cannot change yet",
			fmt.Sprintf("Changing shards_count of %s from %d to %d would reshard it, which redis-replicad does not do yet. "+
				"Keep shards_count at %d, or create a new database with the shards wanted.", name,
				state.ShardsCount.ValueInt64(), plan.ShardsCount.ValueInt64(), state.ShardsCount.ValueInt64()))
	}
	for _, b := range []struct {
		attr        string
		plan, state types.Bool
	}{{"replication", plan.Replication, state.Replication}, {"oss_cluster", plan.OSSCluster, state.OSSCluster}} {
		if !b.plan.IsUnknown() && !b.state.IsNull() && !b.plan.Equal(b.state) {
			diags.AddAttributeError(path.Root(b.attr), b.attr+" cannot change yet",
				fmt.Sprintf("Changing %s of %s from %t to %t is not supported yet. Keep it at %t, or create a new database.",
					b.attr, name, b.state.ValueBool(), b.plan.ValueBool(), b.state.ValueBool()))
		}
	}
}

// sentPasswordKey holds, in the private state, a salted digest of the
// write-only password the provider set last (as sentURIsKey does for the
// write-only source URLs): Terraform cannot read password_wo back, so a
// refresh compares the service's password with it to see a change made
// outside Terraform.
const sentPasswordKey = "password_wo_sent"

// recordSentPassword keeps the digest of password under a new random salt;
// an empty password removes the record.
func recordSentPassword(ctx context.Context, private privateSetter, password string, diags *diag.Diagnostics) {
	var values []string
	if password != "" {
		values = []string{password}
	}
	recordDigest(ctx, private, sentPasswordKey, values, "the write-only password set", diags)
}

// sentPasswordDiffers says whether current differs from the write-only
// password recorded; false without a record (an import, a password that is
// not write-only).
func sentPasswordDiffers(ctx context.Context, private privateGetter, current string) bool {
	differs, _ := recordedDigestDiffers(ctx, private, sentPasswordKey, []string{current})
	return differs
}

// nullWithWriteOnlyPassword plans a null password when the configuration
// gives the password as write-only (password_wo_version set): the state must
// not hold it.
func nullWithWriteOnlyPassword() planmodifier.String { return nullWithWriteOnlyPasswordModifier{} }

type nullWithWriteOnlyPasswordModifier struct{}

func (nullWithWriteOnlyPasswordModifier) Description(context.Context) string {
	return "Null when the password is write-only."
}

func (m nullWithWriteOnlyPasswordModifier) MarkdownDescription(ctx context.Context) string {
	return m.Description(ctx)
}

func (nullWithWriteOnlyPasswordModifier) PlanModifyString(ctx context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	var version types.Int64
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("password_wo_version"), &version)...)
	if !version.IsNull() && req.ConfigValue.IsNull() {
		resp.PlanValue = types.StringNull()
	}
}

// unknownWhenWriteOnlyPasswordDropped plans the password as unknown when
// the configuration stops giving it write-only (password_wo_version
// removed) and gives no password either: the current password stays, and
// the state, which held none, records it after the apply.
func unknownWhenWriteOnlyPasswordDropped() planmodifier.String {
	return unknownWhenWriteOnlyPasswordDroppedModifier{}
}

type unknownWhenWriteOnlyPasswordDroppedModifier struct{}

func (unknownWhenWriteOnlyPasswordDroppedModifier) Description(context.Context) string {
	return "Unknown when the write-only password is removed from the configuration: the current password is read after the apply."
}

func (m unknownWhenWriteOnlyPasswordDroppedModifier) MarkdownDescription(ctx context.Context) string {
	return m.Description(ctx)
}

func (unknownWhenWriteOnlyPasswordDroppedModifier) PlanModifyString(ctx context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	if req.State.Raw.IsNull() || !req.ConfigValue.IsNull() {
		return
	}
	var before, after types.Int64
	resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("password_wo_version"), &before)...)
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("password_wo_version"), &after)...)
	if !before.IsNull() && after.IsNull() {
		resp.PlanValue = types.StringUnknown()
	}
}

// emptySetAsInState plans a set left out of the configuration as null, or,
// when the state records it as [] (a refresh, an import), as that []: for
// client_certificates and source_uris, [] and null both mean none, and an
// import cannot tell them apart, so that nothing is planned either way.
func emptySetAsInState() planmodifier.Set { return emptySetAsInStateModifier{} }

type emptySetAsInStateModifier struct{}

func (emptySetAsInStateModifier) Description(context.Context) string {
	return "Plans a set left out of the configuration as the state records none: null or []."
}

func (m emptySetAsInStateModifier) MarkdownDescription(ctx context.Context) string {
	return m.Description(ctx)
}

func (emptySetAsInStateModifier) PlanModifySet(_ context.Context, req planmodifier.SetRequest, resp *planmodifier.SetResponse) {
	if !req.ConfigValue.IsNull() {
		return
	}
	if !req.StateValue.IsNull() && !req.StateValue.IsUnknown() && len(req.StateValue.Elements()) == 0 {
		resp.PlanValue = req.StateValue
		return
	}
	resp.PlanValue = types.SetNull(types.StringType)
}

// useStateWhenActive keeps the status of an active database in the plan:
// an update leaves it active. Any other status is shown as unknown, since
// the apply waits for the database to become active.
func useStateWhenActive() planmodifier.String { return useStateWhenActiveModifier{} }

type useStateWhenActiveModifier struct{}

func (useStateWhenActiveModifier) Description(context.Context) string {
	return "Keeps the status of an active database in the plan."
}

func (m useStateWhenActiveModifier) MarkdownDescription(ctx context.Context) string {
	return m.Description(ctx)
}

func (useStateWhenActiveModifier) PlanModifyString(_ context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	if req.StateValue.IsNull() || !req.PlanValue.IsUnknown() || req.ConfigValue.IsUnknown() {
		return
	}
	if req.StateValue.ValueString() == api.StatusActive {
		resp.PlanValue = req.StateValue
	}
}
