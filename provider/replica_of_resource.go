package provider

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
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
	defaultReplicaOfCreateTimeout = 10 * time.Minute
	defaultReplicaOfUpdateTimeout = 10 * time.Minute
)

var (
	_ resource.Resource                   = (*replicaOfResource)(nil)
	_ resource.ResourceWithConfigure      = (*replicaOfResource)(nil)
	_ resource.ResourceWithImportState    = (*replicaOfResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*replicaOfResource)(nil)
	_ resource.ResourceWithValidateConfig = (*replicaOfResource)(nil)
)

type replicaOfResource struct {
	client *client.Client
	// destroying: the checks of a create or an update are left out
	// (see destroyCommand).
	destroying bool
}

type replicaOfResourceModel struct {
	ID                  types.String   `tfsdk:"id"`
	DatabaseID          types.String   `tfsdk:"database_id"`
	Source              types.Set      `tfsdk:"source"`
	SourceURIs          types.Set      `tfsdk:"source_uris"`
	SourceURIsWO        types.List     `tfsdk:"source_uris_wo"`
	SourceURIsWOVersion types.Int64    `tfsdk:"source_uris_wo_version"`
	Sync                types.String   `tfsdk:"sync"`
	WaitForSync         types.Bool     `tfsdk:"wait_for_sync"`
	FailAfter           types.String   `tfsdk:"fail_after"`
	Status              types.String   `tfsdk:"status"`
	Generation          types.Int64    `tfsdk:"generation"`
	SourceStatus        types.Map      `tfsdk:"source_status"`
	Timeouts            timeouts.Value `tfsdk:"timeouts"`
}

var databaseIDPattern = regexp.MustCompile(`^[1-9][0-9]*$`)

// namePattern is what the service accepts as a database name.
var namePattern = regexp.MustCompile(api.NamePattern)

func (r *replicaOfResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_replica_of"
}

func (r *replicaOfResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Version: replicaOfSchemaVersion,
		MarkdownDescription: "Makes a database a **Replica Of** a set of sources: it loads a full copy of every " +
			"source, then applies their writes continuously. Sources can be databases of the same `redis-replicad`, " +
			"of another instance (another region), or any Redis server. Making a database a replica, and adding or " +
			"removing a source, flushes it and loads it again from all sources; new credentials or settings for the same " +
			"sources do not. Destroying this resource ends Replica Of " +
			"and leaves the data in place; the database becomes writable again.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "The destination database's uid, the same as `database_id`.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"database_id": schema.StringAttribute{
				MarkdownDescription: "The uid of the destination database, for example `redis_database.replica.id`. " +
					"It must belong to the `redis-replicad` of this resource's provider. Changing it replaces the resource. " +
					"A sharded database (`shards_count` above 1) may be the destination: commands are routed by hash slot, " +
					"sources must use database 0 only, and a source transaction over several slots is applied slot by slot " +
					"(see the README's \"Sharded destinations\").",
				Required:      true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators: []validator.String{
					noEcho(stringvalidator.RegexMatches(databaseIDPattern, "must be a database uid, a positive integer such as \"3\"")),
				},
			},
			"source": schema.SetNestedAttribute{
				MarkdownDescription: "The sources, at most 32; their order has no meaning. A source is named by its " +
					"`address` and holds no secret, so that a plan shows which source is added, removed or changed. " +
					"Give the credentials of a source in `source_uris` or `source_uris_wo`. Adding or removing a " +
					"source flushes the destination and loads it again from all sources; the plan warns about it. " +
					"New settings (`encryption`, `server_cert`, `compression`) or credentials for the same addresses " +
					"do not: the syncers reconnect and continue where they were.",
				Required: true,
				Validators: []validator.Set{
					// An empty set is said in ValidateConfig, with what to do instead.
					setvalidator.SizeAtMost(api.MaxReplicaSources),
				},
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"address": schema.StringAttribute{
							MarkdownDescription: "Where the source is replicated from, as `host:port`: for a database " +
								"of `redis-replicad`, its `replication_endpoint` (or the `address` of " +
								"`redis_source_url_password` or of the `redis_source_url` data source), not its " +
								"`endpoint`; for an open-source Redis, its address. The `host:port` of the source's URL " +
								"must be the same.",
							Required: true,
						},
						"encryption": schema.BoolAttribute{
							MarkdownDescription: "Connect to the source with TLS (1.2 or later), presenting this instance's " +
								"`syncer_cert`; `server_cert` is then required. Needed when the source database has " +
								"`tls_mode` `replica_ssl` or `enabled`, refused when it has `disabled`. Defaults to `false`.",
							// Computed, as are compression and read_from:
							// written out or left out, the default plans the
							// same, before and after an import (which cannot
							// tell them apart). ModifyPlan fills the defaults
							// (see sourcesWithDefaults).
							Optional: true,
							Computed: true,
						},
						"server_cert": schema.StringAttribute{
							MarkdownDescription: "With `encryption`, the PEM certificate to trust: for a database of " +
								"another `redis-replicad`, its instance's `proxy_cert` (from the `redis_cluster` data " +
								"source), which the source must present (pinned: that certificate, or one issued again with its key, as an instance does when its " +
								"names change), within its validity dates; for an open-source Redis, the " +
								"certificate of the CA that signed its certificate. Host names are not checked. A source " +
								"that presents another certificate is not trusted: nothing is replicated and " +
								"`source_status[*].last_error` says so.",
							Optional:   true,
							Validators: []validator.String{certificateInSource()},
						},
						"compression": schema.Int64Attribute{
							MarkdownDescription: "Compression level of the replication traffic, `0` (off, the " +
								"default) to `6`: zstd (levels 1-3 are zstd's level 1, 4-5 its level 3, 6 about its " +
								"level 7), or DEFLATE at that level with a source instance that predates zstd. Only a database of another `redis-replicad` can compress, the initial " +
								"load and the stream alike; an open-source Redis cannot, and the source is then " +
								"replicated without compression: `source_status[*].compression_active` says whether the " +
								"source compresses, and `compression_note` why not. Compression costs some CPU on both " +
								"sides and saves bandwidth between regions.",
							Optional:   true,
							Computed:   true,
							Validators: []validator.Int64{inSource(int64validator.Between(0, 6))},
						},
						"read_from": schema.StringAttribute{
							MarkdownDescription: "For a source that is a Redis Cluster (its address names any of its " +
								"nodes; or a sharded `redis_database`, by its `replication_endpoint`), which node of each shard to replicate from: `master` (the default) or `replica`, " +
								"an online replica of the shard (its master when none is online), so that replication " +
								"does not load the masters. Changing it continues the sync without a reload. A source " +
								"that is one server ignores it.",
							Optional:   true,
							Computed:   true,
							Validators: []validator.String{inSourceString(stringvalidator.OneOf(api.ReadFromMaster, api.ReadFromReplica))},
						},
					},
				},
			},
			"source_uris": schema.SetAttribute{
				MarkdownDescription: "URLs with the credentials of the sources that need them, " +
					"`redis://[user:]password@host:port`, for example `redis_source_url_password.source.source_url`. " +
					"Each URL goes with the source of the same `host:port`; their order has no meaning. " +
					"Stored in the state, as a sensitive value.",
				// A set, not a list: Terraform compares the sensitivity
				// marks of a value as well as the value, and marks the
				// elements of a list by index, so that a list mixing a
				// sensitive and a literal URL would plan an invisible
				// update whenever its order changes, and after every import
				// (the imported state has no per-element marks). A set
				// carries the marks of its elements as one mark on the set.
				// Computed, so that [] and null are one value (an import
				// cannot tell them apart): see emptySetAsInState.
				Optional:      true,
				Computed:      true,
				Sensitive:     true,
				ElementType:   types.StringType,
				Validators:    []validator.Set{setvalidator.SizeAtMost(api.MaxReplicaSources)},
				PlanModifiers: []planmodifier.Set{emptySetAsInState()},
			},
			"source_uris_wo": schema.ListAttribute{
				MarkdownDescription: "Like `source_uris`, but write-only (Terraform 1.11+): never stored in the plan " +
					"or the state, so it accepts ephemeral values such as `ephemeral.redis_source_url.source.uri`. " +
					"Terraform cannot see a change of a write-only value: change `source_uris_wo_version` to send new URLs " +
					"(for a password that a `redis_source_url_password` of the configuration rotates, set it to that " +
					"resource's `password_version`).",
				Optional:    true,
				WriteOnly:   true,
				ElementType: types.StringType,
				Validators: []validator.List{
					listvalidator.SizeAtMost(api.MaxReplicaSources),
					listvalidator.AlsoRequires(path.MatchRoot("source_uris_wo_version")),
				},
			},
			"source_uris_wo_version": schema.Int64Attribute{
				MarkdownDescription: "Any change of this number sends `source_uris_wo` to the service again. " +
					"For URLs read from the `redis_source_url` ephemeral resource of a database whose password a " +
					"`redis_source_url_password` of the same configuration rotates, set it to that resource's " +
					"`password_version`: it is known only after apply when the password is regenerated, so that the " +
					"same apply sends the new URL (the ephemeral resource must depend on the password resource). " +
					"New credentials for the same sources do not flush the destination: its syncers reconnect " +
					"with them and continue where they were. Requires `source_uris_wo`. The provider also keeps a " +
					"salted digest of the URLs it sent (in the resource's private state, never in the plan): URLs " +
					"that differ from it, or that are known only at apply time, are sent again without a new version, " +
					"and the plan warns that they are; so are they when a refresh finds that the service's source URLs " +
					"were changed outside Terraform.",
				Optional: true,
				Validators: []validator.Int64{
					int64validator.AlsoRequires(path.MatchRoot("source_uris_wo")),
				},
			},
			"sync": schema.StringAttribute{
				MarkdownDescription: "State of the sync: `enabled` (the default), `paused` (the destination keeps its " +
					"data and stops applying the sources' writes; `enabled` again resumes where it was, without a flush) " +
					"or `stopped` (likewise, but `enabled` again flushes the destination and loads it again, unless the sync stopped " +
					"because a source refused its password: then it continues where it stopped). The service " +
					"stops the sync by itself on an error it cannot retry (a wrong password, out of memory, a data type " +
					"it cannot load): the next plan then shows `stopped` -> `enabled`.",
				Optional: true,
				Computed: true,
				Default:  stringdefault.StaticString(api.SyncEnabled),
				Validators: []validator.String{
					noEcho(stringvalidator.OneOf(api.SyncEnabled, api.SyncPaused, api.SyncStopped)),
				},
			},
			"wait_for_sync": schema.BoolAttribute{
				MarkdownDescription: "When `sync` is `enabled`, make create and update wait until every source is " +
					"in sync, within the `create` or `update` timeout. Defaults to `true`.",
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(true),
			},
			"fail_after": schema.StringAttribute{
				MarkdownDescription: "While create or update waits for the sync, give up once every source has " +
					"been failing (not in sync, with a `last_error`) for this long, with an error that names each " +
					"source and its error, instead of waiting until the timeout. A duration such as `\"90s\"` or " +
					"`\"5m\"`; `\"0s\"` waits until the timeout. Defaults to `\"3m\"`.",
				Optional:   true,
				Computed:   true,
				Default:    stringdefault.StaticString(defaultFailAfterString),
				Validators: []validator.String{durationString()},
			},
			"status": schema.StringAttribute{
				MarkdownDescription: "The worst status among the sources: `in-sync`, `syncing` or `out-of-sync`.",
				Computed:            true,
			},
			"generation": schema.Int64Attribute{
				MarkdownDescription: "How many times the destination was flushed and loaded again from its sources " +
					"(each change of the source set, each restart of a stopped sync).",
				Computed: true,
			},
			"source_status": schema.MapNestedAttribute{
				MarkdownDescription: "The live status of each source, by address.",
				Computed:            true,
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"status": schema.StringAttribute{
							MarkdownDescription: "`syncing` (connecting or loading), `in-sync` or `out-of-sync` (paused, stopped or failing).",
							Computed:            true,
						},
						"lag": schema.Int64Attribute{
							MarkdownDescription: "How long, in milliseconds, the oldest write received from the source has waited to be applied. While the source is not `in-sync` (its link down, the source silent, a load under way, the sync paused or stopped), at least how long since it last was, or, never yet, since it was configured or the service started: the destination misses what the source did since.",
							Computed:            true,
						},
						"last_error": schema.StringAttribute{
							MarkdownDescription: "The last error of the sync with this source, without credentials; empty when it works.",
							Computed:            true,
						},
						"last_update": schema.StringAttribute{
							MarkdownDescription: "When the status last changed (RFC 3339).",
							Computed:            true,
						},
						"rdb_size": schema.Int64Attribute{
							MarkdownDescription: "Size in bytes of the source's last full copy (RDB).",
							Computed:            true,
						},
						"rdb_transferred": schema.Int64Attribute{
							MarkdownDescription: "Bytes of that copy loaded so far.",
							Computed:            true,
						},
						"compression_active": schema.BoolAttribute{
							MarkdownDescription: "Whether the source compresses what it sends (known once connected).",
							Computed:            true,
						},
						"compression_note": schema.StringAttribute{
							MarkdownDescription: "Why compression that was asked for is not active (for example, the " +
								"source is an open-source Redis); empty otherwise.",
							Computed: true,
						},
						"shards": schema.ListNestedAttribute{
							MarkdownDescription: "For a source that is a Redis Cluster, each shard, replicated by a syncer of " +
								"its own, by slots; empty for a source that is one server. The source's own fields sum " +
								"them up (the worst status, the largest lag, the first error).",
							Computed: true,
							NestedObject: schema.NestedAttributeObject{
								Attributes: map[string]schema.Attribute{
									"slots": schema.StringAttribute{
										MarkdownDescription: "The slots of the shard, as ranges (`0-5460`).", Computed: true,
									},
									"node": schema.StringAttribute{
										MarkdownDescription: "The node the shard is replicated from now (`host:port`).", Computed: true,
									},
									"role": schema.StringAttribute{
										MarkdownDescription: "That node's role: `master` or `replica`.", Computed: true,
									},
									"status": schema.StringAttribute{
										MarkdownDescription: "`syncing`, `in-sync` or `out-of-sync`.", Computed: true,
									},
									"lag": schema.Int64Attribute{
										MarkdownDescription: "Lag of the shard in milliseconds.", Computed: true,
									},
									"last_error": schema.StringAttribute{
										MarkdownDescription: "The last error of the shard's sync, without credentials.", Computed: true,
									},
									"full_syncs": schema.Int64Attribute{
										MarkdownDescription: "Full syncs of the shard since the Replica Of was configured or the service started.", Computed: true,
									},
									"partial_syncs": schema.Int64Attribute{
										MarkdownDescription: "Partial syncs (continued from the checkpoint, as after a failover of the shard).", Computed: true,
									},
								},
							},
						},
					},
				},
			},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Create: true, Update: true}),
		},
	}
	if r.destroying {
		resp.Schema.Attributes = withoutValidators(resp.Schema.Attributes)
	}
}

func (r *replicaOfResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFromProviderData(req.ProviderData, &resp.Diagnostics)
}

func (r *replicaOfResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	if r.destroying {
		return
	}
	var config replicaOfResourceModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &config)...)
	if resp.Diagnostics.HasError() {
		return
	}
	checkTimeouts(ctx, req.Config, &resp.Diagnostics)
	if !config.Source.IsNull() && !config.Source.IsUnknown() && len(config.Source.Elements()) == 0 {
		resp.Diagnostics.AddAttributeError(path.Root("source"), "No source",
			"A Replica Of needs at least one source. To end it (a for expression or a count that leaves no source, "+
				"say), remove the redis_replica_of resource instead, or give it count = 0: its destroy makes the "+
				"database writable again and keeps its data.")
	}
	r.credentials(ctx, config.SourceURIs, config.SourceURIsWO, config.Source, &resp.Diagnostics)
	if addrs := urisWithoutCredentials(ctx, config.SourceURIs); len(addrs) > 0 {
		resp.Diagnostics.AddWarning("A source URL without credentials in source_uris",
			fmt.Sprintf("source_uris holds a URL without a user or password, for %s. A source without a URL is reached "+
				"the same way (redis://host:port), so leave the URL out: the service cannot tell the two apart, and "+
				"an import (which reads back only the URLs that hold credentials) would otherwise be followed by a plan "+
				"that changes source_uris.", strings.Join(addrs, ", ")))
	}
}

// urisWithoutCredentials returns the addresses of the known URLs of a
// source_uris value that hold neither a user nor a password.
func urisWithoutCredentials(ctx context.Context, uris types.Set) []string {
	if uris.IsNull() || uris.IsUnknown() {
		return nil
	}
	var elems []types.String
	if diags := uris.ElementsAs(ctx, &elems, false); diags.HasError() {
		return nil
	}
	var addrs []string
	for _, e := range elems {
		if e.IsNull() || e.IsUnknown() {
			continue
		}
		if addr, err := sourceURIAddress(e.ValueString()); err == nil && !hasCredentials(e.ValueString()) {
			addrs = append(addrs, addr)
		}
	}
	return sortedUnique(addrs)
}

// credentials reads the source set and the URLs beside it, checks them, and
// returns the URLs by address.
func (r *replicaOfResource) credentials(ctx context.Context, uris types.Set, urisWO types.List, set types.Set, diags *diag.Diagnostics) ([]replicaSourceModel, credentialSet) {
	var creds credentialSet
	creds.add(ctx, path.Root("source_uris"), uris, diags)
	creds.add(ctx, path.Root("source_uris_wo"), urisWO, diags)
	sources, known := sourcesFromSet(ctx, set, diags)
	checkSources(sources, known, creds, diags)
	return sources, creds
}

// replicaChange is what a plan changes in the service's view of a replica.
//
// The service identifies a source by its address: new credentials, TLS
// settings or compression for the same addresses make its syncers reconnect
// and continue where they were. The destination is flushed and loaded again
// only when it becomes a replica, when the set of addresses changes, and when
// a stopped sync is enabled again.
type replicaChange struct {
	create           bool
	sourcesChanged   bool // the source set, the URLs or the write-only version
	addressesChanged bool // a source added or removed (or not known yet)
	syncChanged      bool
	restart          bool // stopped -> enabled or paused
	// resendWriteOnly: the write-only URLs differ from those sent last, or
	// are known only at apply time (replica_of_sent.go).
	resendWriteOnly bool
}

func (c replicaChange) flushes() bool { return c.create || c.addressesChanged || c.restart }

func planReplicaChange(plan replicaOfResourceModel, state *replicaOfResourceModel) replicaChange {
	if state == nil {
		return replicaChange{create: true}
	}
	ch := replicaChange{
		sourcesChanged: !plan.Source.Equal(state.Source) || !plan.SourceURIs.Equal(state.SourceURIs) ||
			!plan.SourceURIsWOVersion.Equal(state.SourceURIsWOVersion),
		syncChanged: !plan.Sync.Equal(state.Sync),
	}
	if !plan.Source.Equal(state.Source) {
		before, knownBefore := setAddresses(state.Source)
		after, knownAfter := setAddresses(plan.Source)
		ch.addressesChanged = !knownBefore || !knownAfter || !slices.Equal(before, after)
	}
	// Leaving stopped for paused owes the reload too: the service counts it
	// (generation) then, and flushes when the sync is enabled.
	ch.restart = state.Sync.ValueString() == api.SyncStopped && !plan.Sync.IsUnknown() && plan.Sync.ValueString() != api.SyncStopped
	return ch
}

// credentialsDropped returns the addresses of the sources that keep their
// place in the plan, had a URL with credentials in the state (source_uris,
// as applied or imported), and get none from the configuration (no URL, or
// one without credentials): the apply would reach them without a password. Nothing is said while a URL or an
// address is not known yet.
func credentialsDropped(ctx context.Context, state, plan replicaOfResourceModel, wo types.List) []string {
	var diags diag.Diagnostics
	var before, after credentialSet
	before.add(ctx, path.Root("source_uris"), state.SourceURIs, &diags)
	after.add(ctx, path.Root("source_uris"), plan.SourceURIs, &diags)
	after.add(ctx, path.Root("source_uris_wo"), wo, &diags)
	planned, known := setAddresses(plan.Source)
	if diags.HasError() || before.unknown || after.unknown || !known {
		return nil
	}
	stays := map[string]bool{}
	for _, a := range planned {
		stays[a] = true
	}
	var out []string
	for addr, uri := range before.byAddr {
		if stays[strings.ToLower(addr)] && hasCredentials(uri) && !hasCredentials(after.byAddr[addr]) {
			out = append(out, addr)
		}
	}
	return sortedUnique(out)
}

// setAddresses returns the sorted addresses of a `source` set, in lower
// case (host names are not case-sensitive, for the service either: the
// same address in another case is the same source); known is false when
// the set or an address is not known yet.
func setAddresses(set types.Set) (addrs []string, known bool) {
	if set.IsUnknown() {
		return nil, false
	}
	for _, e := range set.Elements() {
		obj, ok := e.(types.Object)
		if !ok || obj.IsUnknown() {
			return nil, false
		}
		a, ok := obj.Attributes()["address"].(types.String)
		if !ok || a.IsUnknown() {
			return nil, false
		}
		addrs = append(addrs, strings.ToLower(a.ValueString()))
	}
	return sortedUnique(addrs), true
}

func (r *replicaOfResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.destroying {
		return // destroy: the data stays
	}
	var plan replicaOfResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	var configSources types.Set
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("source"), &configSources)...)
	if resp.Diagnostics.HasError() {
		return
	}
	plan.Source = sourcesWithDefaults(ctx, configSources, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("source"), plan.Source)...)
	var state *replicaOfResourceModel
	if !req.State.Raw.IsNull() {
		state = &replicaOfResourceModel{}
		resp.Diagnostics.Append(req.State.Get(ctx, state)...)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	if state != nil && !plan.Source.Equal(state.Source) {
		// The defaults filled above may be all that differs from the state
		// (a compression set through the API, left out here): the framework
		// saw no change, and kept the status of the state.
		plan.Status, plan.Generation = types.StringUnknown(), types.Int64Unknown()
		plan.SourceStatus = types.MapUnknown(types.ObjectType{AttrTypes: sourceStatusAttrTypes})
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
	}
	ch := planReplicaChange(plan, state)
	if state != nil && !plan.DatabaseID.Equal(state.DatabaseID) {
		r.warnMoved(ctx, plan, *state, resp)
		return
	}
	if state != nil {
		var wo types.List
		resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("source_uris_wo"), &wo)...)
		if sentURIsDiffer(ctx, req.Private, wo) {
			ch.sourcesChanged, ch.resendWriteOnly = true, true
		}
		if addrs := credentialsDropped(ctx, *state, plan, wo); len(addrs) > 0 {
			// Not attached to source_uris: Terraform would print its
			// configuration line, which may hold other sources' passwords.
			resp.Diagnostics.AddWarning("Sources lose their credentials",
				fmt.Sprintf("The Replica Of of database %s has source URLs with credentials for %s, and this plan gives "+
					"them none (neither source_uris nor source_uris_wo holds a URL for them): the apply reconnects to them "+
					"without a password, and a source that asks for one stops with an authentication error. "+
					"A configuration generated by an import (terraform plan -generate-config-out) has source_uris = null, "+
					"since Terraform does not write sensitive values: set source_uris (or source_uris_wo) to the sources' "+
					"URLs, as before the import.", state.ID.ValueString(), strings.Join(addrs, ", ")))
		}
	}
	if state != nil && !ch.sourcesChanged && !ch.syncChanged {
		// Nothing the service sees changes (wait_for_sync, fail_after or
		// timeouts only): the status stays as it is, unless an earlier
		// apply could not see the sync complete: this one waits for it,
		// and the status is known after apply.
		plan.Generation = state.Generation
		plan.Status, plan.SourceStatus = state.Status, state.SourceStatus
		if awaitingSync(ctx, req.Private, plan) {
			plan.Status = types.StringUnknown()
			plan.SourceStatus = types.MapUnknown(types.ObjectType{AttrTypes: sourceStatusAttrTypes})
		}
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		return
	}
	if state != nil && state.Sync.ValueString() == api.SyncPaused && plan.Sync.ValueString() == api.SyncEnabled &&
		reloadOwed(ctx, req.Private) {
		// Paused by an apply that left a stopped sync: the reload counted
		// then happens now.
		ch.restart = true
	}
	if ch.restart && !ch.addressesChanged && stopResumable(ctx, req.Private) {
		// A sync stopped because a source refused its password continues
		// from its checkpoints when enabled again: no flush to warn of.
		// Taken from the refresh (the private state), not from the service
		// now: Terraform plans again at apply time, and that plan must
		// match this one. If the sync was stopped again since, the apply's
		// replica_no_flush makes the service refuse the update.
		ch.restart = false
	}
	if !ch.flushes() {
		// New credentials or settings for the same sources, or a new sync
		// state that does not restart: the destination is not flushed, so
		// the generation stays. The status does change.
		plan.Generation = state.Generation
		if ch.resendWriteOnly {
			// Nothing else in the plan differs from the state: an
			// unknown status makes it an update.
			plan.Status = types.StringUnknown()
			plan.SourceStatus = types.MapUnknown(types.ObjectType{AttrTypes: sourceStatusAttrTypes})
			if plan.SourceURIsWOVersion.Equal(state.SourceURIsWOVersion) {
				// The plan shows only the status changing: say why.
				resp.Diagnostics.AddWarning("The write-only source URLs are sent again", fmt.Sprintf(
					"The write-only source URLs (source_uris_wo) of the Replica Of of database %s changed since the last "+
						"apply, are known only at apply time, or the service's source URLs were changed outside Terraform, "+
						"although source_uris_wo_version did not change (a source's password regenerated, say): the apply "+
						"sends them again. The syncers reconnect with them and "+
						"continue where they were; nothing is flushed.", state.ID.ValueString()))
			}
		}
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		return
	}
	if ch.create && plan.DatabaseID.IsUnknown() {
		// The destination is created by the same apply: it holds no data
		// to lose. (Terraform plans a create again at apply time, when the
		// uid is known, and shows the warnings of both plans: warning here
		// too would print two.)
		return
	}
	// A `terraform apply` that plans too shows this warning twice for a
	// create (before the approval prompt and at the end; with
	// -auto-approve, once at the end with "one more similar warning"):
	// Terraform plans the resource again just before it applies it and
	// prints the warnings of both plans. That second call cannot be
	// told apart: for a create, PlanResourceChange gets the same config and
	// proposed state, a null prior state, no private data (the first
	// plan's never reaches the second) and the same client capabilities;
	// and warning from Create instead would warn after the user approved.
	// See hashicorp/terraform-plugin-framework#1306. The docs say so.
	summary, detail, db, missing := r.flushWarning(ctx, plan, state, ch)
	if missing {
		resp.Diagnostics.AddAttributeError(path.Root("database_id"), "No such database",
			fmt.Sprintf("The database %s does not exist on %s.", plan.DatabaseID.ValueString(), r.client.Endpoint()))
		return
	}
	if db != nil {
		// The service refuses a database as its own source, and a cycle
		// of Replica Of among its databases: said at plan time, not after
		// a warning that the apply flushes the destination.
		planned, _ := sourcesFromSet(ctx, plan.Source, &resp.Diagnostics)
		for _, addr := range ownSources(db, planned) {
			resp.Diagnostics.AddAttributeError(path.Root("source"), "A database cannot be a Replica Of itself",
				fmt.Sprintf("The source %s is the database %d (%q) itself, the destination of this Replica Of: remove it "+
					"from the sources.", addr, db.UID, db.Name))
		}
		if resp.Diagnostics.HasError() {
			return
		}
		if all, err := r.client.ListDatabases(ctx); err == nil {
			if cycle := replicaCycle(db, planned, all); cycle != "" {
				resp.Diagnostics.AddAttributeError(path.Root("source"), "A replication cycle",
					fmt.Sprintf("With these sources, the databases of %s would replicate from each other in a cycle, which "+
						"the service refuses: %s. Remove the source that closes it. To reverse a Replica Of, remove the "+
						"current one in an apply of its own first (terraform apply -target=<its address> of a configuration "+
						"without it): Terraform does not order the removal of one resource before the creation of another.",
						r.client.Endpoint(), cycle))
				return
			}
		}
	}
	resp.Diagnostics.AddAttributeWarning(path.Root("source"), summary, detail)
}

// warnMoved warns of the flush of a new database_id, which replaces the
// Replica Of: Terraform plans the replacement's create again, without the
// prior state, and does not show that plan's warnings. A database created
// by the same apply (an unknown id) holds no data.
func (r *replicaOfResource) warnMoved(ctx context.Context, plan, state replicaOfResourceModel, resp *resource.ModifyPlanResponse) {
	if plan.DatabaseID.IsUnknown() {
		return
	}
	summary, detail, _, missing := r.flushWarning(ctx, plan, nil, replicaChange{create: true})
	if missing {
		resp.Diagnostics.AddAttributeError(path.Root("database_id"), "No such database",
			fmt.Sprintf("The database %s does not exist on %s.", plan.DatabaseID.ValueString(), r.client.Endpoint()))
		return
	}
	old := "database " + state.DatabaseID.ValueString()
	if uid, err := parseDatabaseID(state.DatabaseID.ValueString()); err == nil && r.client != nil {
		if db, err := findDatabaseByID(ctx, r.client, uid); err == nil {
			old += " (" + strconv.Quote(db.Name) + ")"
		}
	}
	resp.Diagnostics.AddAttributeWarning(path.Root("database_id"), summary,
		detail+" This plan moves the Replica Of: "+old+" stops being a Replica Of and keeps its data.")
}

// ownSources returns the known addresses of sources that name db itself
// (see namesDatabase), as the service checks.
func ownSources(db *api.Database, sources []replicaSourceModel) []string {
	var out []string
	for _, s := range sources {
		if !s.Address.IsUnknown() && !s.Address.IsNull() && namesDatabase(s.Address.ValueString(), db) {
			out = append(out, s.Address.ValueString())
		}
	}
	return sortedUnique(out)
}

// namesDatabase says whether addr (host:port) is one of the ports of db,
// on its host as the service advertises it, localhost or a loopback
// address: the service connects to the sources, so these are its own host.
func namesDatabase(addr string, db *api.Database) bool {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port == 0 {
		return false
	}
	ports := map[int]bool{db.Port: true, db.Endpoint.Port: true, db.ReplicationPort: true}
	for _, n := range db.Endpoints {
		ports[n.Port], ports[n.ReplicationPort] = true, true
	}
	if !ports[port] {
		return false
	}
	ip := net.ParseIP(host)
	return strings.EqualFold(host, db.Endpoint.Host) || strings.EqualFold(host, "localhost") ||
		(ip != nil && (ip.IsLoopback() || ip.String() == db.Endpoint.Host))
}

// replicaCycle describes the replication cycle that dst closes with the
// sources planned, among the databases all of its instance and their
// Replica Of ("a <- b, b <- a"), or returns "".
func replicaCycle(dst *api.Database, planned []replicaSourceModel, all []api.Database) string {
	byUID := map[int]*api.Database{}
	for i := range all {
		byUID[all[i].UID] = &all[i]
	}
	byUID[dst.UID] = dst
	local := func(addr string) *api.Database {
		for _, d := range all {
			if namesDatabase(addr, &d) {
				return byUID[d.UID]
			}
		}
		return nil
	}
	sources := func(d *api.Database) []string {
		if d.UID == dst.UID {
			return sourceAddresses(planned)
		}
		return apiSourceAddresses(d.ReplicaSources)
	}
	var path []string
	visited := map[int]bool{}
	var walk func(d *api.Database) bool
	walk = func(d *api.Database) bool {
		for _, addr := range sources(d) {
			src := local(addr)
			if src == nil {
				continue
			}
			path = append(path, d.Name+" <- "+src.Name)
			if src.UID == dst.UID {
				return true
			}
			if !visited[src.UID] {
				visited[src.UID] = true
				if walk(src) {
					return true
				}
			}
			path = path[:len(path)-1]
		}
		return false
	}
	if walk(dst) {
		return strings.Join(path, ", ")
	}
	return ""
}

// readersDuringLoad is what the readers of a destination see while it is
// loaded (README, "Readers keep the previous data during a reload").
const readersDuringLoad = "Until the load completes, readers of a one-server destination with memory to spare " +
	"keep its previous data, then see the new dataset whole; a sharded destination, or one without " +
	"memory for two copies, is emptied first, and its readers see it fill up."

// flushWarning describes what the apply of a plan that flushes the
// destination will do: which database, from which sources, and why.
// missing says that the destination does not exist (the service said so;
// an error reaching it says nothing).
func (r *replicaOfResource) flushWarning(ctx context.Context, plan replicaOfResourceModel, state *replicaOfResourceModel, ch replicaChange) (summary, detail string, db *api.Database, missing bool) {
	var diags diag.Diagnostics
	dest := "the destination database"
	if !plan.DatabaseID.IsUnknown() {
		dest = "database " + plan.DatabaseID.ValueString()
		if uid, err := parseDatabaseID(plan.DatabaseID.ValueString()); err == nil && r.client != nil {
			found, err := findDatabaseByID(ctx, r.client, uid)
			if err == nil {
				db = found
				dest += " (" + strconv.Quote(db.Name) + ")"
			} else if client.IsNotFound(err) {
				return "", "", nil, true
			}
		}
	}
	planned, known := sourcesFromSet(ctx, plan.Source, &diags)
	all := "its sources (some addresses are known only after apply)"
	if known {
		all = strings.Join(sourceAddresses(planned), ", ")
	}

	if ch.create {
		return "Replica Of flushes " + dest,
			fmt.Sprintf("Making %s a Replica Of deletes its data, then loads every source: %s. "+
				readersDuringLoad, dest, all), db, false
	}

	var changes []string
	prior, _ := sourcesFromSet(ctx, state.Source, &diags)
	// The addresses that were sources and stay (nil when unknown): an
	// added source is "added", not given "new credentials".
	var remaining map[string]bool
	if known {
		remaining = map[string]bool{}
		before := map[string]bool{}
		for _, s := range prior {
			before[s.Address.ValueString()] = true
		}
		for _, s := range planned {
			if before[s.Address.ValueString()] {
				remaining[s.Address.ValueString()] = true
			}
		}
		added, removed, changed := diffSources(prior, planned)
		if len(added) > 0 {
			changes = append(changes, "added: "+strings.Join(added, ", "))
		}
		if len(removed) > 0 {
			changes = append(changes, "removed: "+strings.Join(removed, ", "))
		}
		if len(changed) > 0 {
			changes = append(changes, "new settings: "+strings.Join(changed, ", "))
		}
	} else if !plan.Source.Equal(state.Source) {
		changes = append(changes, "the source set is known after apply")
	}
	if !plan.SourceURIs.Equal(state.SourceURIs) {
		if c := credentialChanges(ctx, state.SourceURIs, plan.SourceURIs, remaining); c != "" {
			changes = append(changes, c)
		}
	}
	if !plan.SourceURIsWOVersion.Equal(state.SourceURIsWOVersion) {
		changes = append(changes, "source_uris_wo_version changed: the write-only source URLs are sent again")
	} else if ch.resendWriteOnly {
		changes = append(changes, "the write-only source URLs differ from those sent last, or are known only after apply: they are sent again")
	}
	if ch.restart && state.Sync.ValueString() == api.SyncPaused {
		changes = append(changes, "the sync, paused after it was stopped, is enabled: the reload counted then happens now")
	} else if ch.restart && plan.Sync.ValueString() == api.SyncPaused {
		changes = append(changes, "the stopped sync is paused: the reload it owes is counted now (generation), "+
			"and the flush and load happen when the sync is enabled")
	} else if ch.restart {
		changes = append(changes, "the stopped sync is enabled again")
	}
	return "Replica Of re-replicates " + dest,
		fmt.Sprintf("This plan changes the Replica Of of %s (%s). The service will flush the destination and "+
			"load it again from all its sources: %s. "+readersDuringLoad, dest, strings.Join(changes, "; "), all), db, false
}

func sourceAddresses(sources []replicaSourceModel) []string {
	out := make([]string, 0, len(sources))
	for _, s := range sources {
		out = append(out, s.Address.ValueString())
	}
	return sortedUnique(out)
}

func sortedUnique(s []string) []string {
	m := map[string]bool{}
	for _, v := range s {
		m[v] = true
	}
	return sortedKeys(m)
}

// diffSources compares two source sets by address.
func diffSources(before, after []replicaSourceModel) (added, removed, changed []string) {
	b := map[string]replicaSourceModel{}
	for _, s := range before {
		b[s.Address.ValueString()] = s
	}
	a := map[string]replicaSourceModel{}
	for _, s := range after {
		a[s.Address.ValueString()] = s
	}
	for _, addr := range sortedKeys(a) {
		old, ok := b[addr]
		switch {
		case !ok:
			added = append(added, addr)
		case !sameSourceSettings(old, a[addr]):
			changed = append(changed, addr)
		}
	}
	for _, addr := range sortedKeys(b) {
		if _, ok := a[addr]; !ok {
			removed = append(removed, addr)
		}
	}
	return added, removed, changed
}

func sameSourceSettings(x, y replicaSourceModel) bool {
	return x.Encryption.ValueBool() == y.Encryption.ValueBool() &&
		x.ServerCert.ValueString() == y.ServerCert.ValueString() &&
		x.Compression.ValueInt64() == y.Compression.ValueInt64() &&
		readFrom(x) == readFrom(y)
}

// readFrom is the node a source's shards are read from, its default
// spelled out.
func readFrom(s replicaSourceModel) string {
	if v := s.ReadFrom.ValueString(); v != "" {
		return v
	}
	return api.ReadFromMaster
}

// credentialChanges names the addresses whose URL changes, never the URLs.
// Only the addresses of remaining count (a removed or added source gets no
// "new credentials"), all when it is nil; "" when none is left. A URL
// without credentials is the same as none: a source without a URL is
// reached that way.
func credentialChanges(ctx context.Context, before, after types.Set, remaining map[string]bool) string {
	if after.IsUnknown() {
		return "new source credentials (known after apply)"
	}
	var diags diag.Diagnostics
	var b, a credentialSet
	b.add(ctx, path.Root("source_uris"), before, &diags)
	a.add(ctx, path.Root("source_uris"), after, &diags)
	var addrs []string
	changed := func(addr string) bool {
		before, after := b.byAddr[addr], a.byAddr[addr]
		return before != after && (hasCredentials(before) || hasCredentials(after))
	}
	for addr := range a.byAddr {
		if changed(addr) {
			addrs = append(addrs, addr)
		}
	}
	for addr := range b.byAddr {
		if _, ok := a.byAddr[addr]; !ok && changed(addr) {
			addrs = append(addrs, addr)
		}
	}
	if remaining != nil {
		addrs = slices.DeleteFunc(addrs, func(addr string) bool { return !remaining[addr] })
	}
	if a.unknown {
		return "new source credentials (some known after apply)"
	}
	if len(addrs) == 0 {
		return ""
	}
	return "new credentials for " + strings.Join(sortedUnique(addrs), ", ")
}

func (r *replicaOfResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan, config replicaOfResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &config)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Create(ctx, defaultReplicaOfCreateTimeout)
	resp.Diagnostics.Append(diags...)
	uid, err := parseDatabaseID(plan.DatabaseID.ValueString())
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("database_id"), "Invalid database id", err.Error())
	}
	sources, creds := r.credentials(ctx, plan.SourceURIs, config.SourceURIsWO, plan.Source, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx = tflog.SetField(ctx, "destination", uid)

	db, err := findDatabaseByID(ctx, r.client, uid)
	if err != nil {
		if client.IsNotFound(err) {
			resp.Diagnostics.AddAttributeError(path.Root("database_id"), "No such database",
				fmt.Sprintf("The database %d does not exist on %s.", uid, r.client.Endpoint()))
			return
		}
		resp.Diagnostics.AddError(fmt.Sprintf("Could not read the database %d", uid), err.Error())
		return
	}
	if len(db.ReplicaSources) > 0 {
		addAlreadyReplicaOf(&resp.Diagnostics, db)
		return
	}

	list := expandReplicaSources(sources, creds.byAddr)
	sync := plan.Sync.ValueString()
	tflog.Info(ctx, "making the database a Replica Of", map[string]any{
		"sources": strings.Join(sourceAddresses(sources), ", "), "sync": sync,
	})
	// Conditional on the generation read above: another apply (another
	// resource on the same database_id, another configuration) that made
	// it a Replica Of since then makes this one fail, not take it over.
	gen := db.ReplicaGeneration
	var retries atomic.Int32
	in := api.UpdateDatabaseRequest{ReplicaSources: &list, ReplicaSync: &sync, IfReplicaGeneration: &gen}
	if _, err := r.client.UpdateDatabase(client.WithRetryCount(ctx, &retries), uid, in); err != nil {
		// Interrupted (Ctrl-C cancels ctx) while the request was out, the
		// service may have taken it: read beyond the interruption.
		interrupted := ctx.Err() != nil
		readCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		now, rerr := findDatabaseByID(readCtx, r.client, uid)
		cancel()
		switch {
		case (client.IsConflict(err) && retries.Load() > 0 || interrupted) && rerr == nil && now.ReplicaGeneration == gen+1 &&
			sameReplicaSources(now.ReplicaSources, list):
			// This request made it a Replica Of: its answer was lost (a
			// proxy's timeout, say) and the client sent it again, which
			// the condition on the generation refused; or Terraform was
			// interrupted after the service took it. Left out of the
			// state, it would make every later apply fail ("already a
			// Replica Of").
			tflog.Info(ctx, "the database is the Replica Of this create asked for; an earlier attempt of the request made it one")
		case client.IsConflict(err) && rerr == nil && len(now.ReplicaSources) > 0:
			addAlreadyReplicaOf(&resp.Diagnostics, now)
			return
		default:
			resp.Diagnostics.AddError(fmt.Sprintf("Could not make the database %d a Replica Of", uid), redactSecrets(err.Error(), list2uris(list)...))
			return
		}
	}
	recordSentURIs(ctx, resp.Private, config.SourceURIsWO, &resp.Diagnostics)
	recordAppliedURIs(ctx, resp.Private, config.SourceURIsWO, list, &resp.Diagnostics)
	plan.ID = plan.DatabaseID
	r.finishApply(ctx, uid, &plan, syncWaitOf(plan, timeout, &resp.Diagnostics), true, &resp.State, resp.Private, &resp.Diagnostics)
}

// tookUpdate says whether the service holds what update in asked of the
// database uid, read beyond an interruption of ctx.
func (r *replicaOfResource) tookUpdate(ctx context.Context, uid int, in api.UpdateDatabaseRequest) bool {
	readCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	now, err := findDatabaseByID(readCtx, r.client, uid)
	if err != nil {
		return false
	}
	if in.ReplicaSources != nil && !sameReplicaSources(now.ReplicaSources, *in.ReplicaSources) {
		return false
	}
	return in.ReplicaSync == nil || now.ReplicaSync == *in.ReplicaSync
}

// sameReplicaSources says whether the service's sources are those of list,
// credentials and settings included, in any order.
func sameReplicaSources(have []api.ReplicaSourceStatus, list []api.ReplicaSource) bool {
	if len(have) != len(list) {
		return false
	}
	key := func(s api.ReplicaSource) string {
		return fmt.Sprintf("%s\x00%t\x00%s\x00%d\x00%s", s.URI, s.Encryption, s.ServerCert, s.Compression, s.ReadFrom)
	}
	want := map[string]int{}
	for _, s := range list {
		want[key(s)]++
	}
	for _, s := range have {
		k := key(s.ReplicaSource)
		if want[k] == 0 {
			return false
		}
		want[k]--
	}
	return true
}

// addAlreadyReplicaOf says that database db, which a create was to make a
// Replica Of, already is one: it is imported, not created.
func addAlreadyReplicaOf(diags *diag.Diagnostics, db *api.Database) {
	diags.AddAttributeError(path.Root("database_id"), "The database is already a Replica Of",
		fmt.Sprintf("The database %d (%q) is already a Replica Of %d source(s): %s. Manage it with Terraform by "+
			"importing it (terraform import <address of this resource> %d) instead of creating it.",
			db.UID, db.Name, len(db.ReplicaSources), strings.Join(apiSourceAddresses(db.ReplicaSources), ", "), db.UID))
}

// awaitingSyncKey is set in the private state while an apply's wait for the
// sync is unfinished (it timed out, or the API could not be reached): the
// next plan then plans an update that waits again, instead of nothing.
const awaitingSyncKey = "awaiting_sync"

// stopResumableKey (private state) records that the refresh found the sync
// stopped because a source refused its password (replica_stop_resumable):
// the plan that enables it again shows no flush.
const stopResumableKey = "replica_stop_resumable"

func recordStopResumable(ctx context.Context, db *api.Database, private interface {
	SetKey(context.Context, string, []byte) diag.Diagnostics
}, diags *diag.Diagnostics) {
	var v []byte
	if db.ReplicaSync == api.SyncStopped && db.ReplicaStopResumable {
		v = []byte("true")
	}
	diags.Append(private.SetKey(ctx, stopResumableKey, v)...)
}

// reloadOwedKey (private state) records that an apply paused a stopped
// sync, which counts the reload that the sync owes (a new generation) and
// leaves it for when the sync is enabled. A refresh that finds the sync
// other than paused clears it.
const reloadOwedKey = "replica_reload_owed"

func reloadOwed(ctx context.Context, private interface {
	GetKey(context.Context, string) ([]byte, diag.Diagnostics)
}) bool {
	if private == nil {
		return false
	}
	v, _ := private.GetKey(ctx, reloadOwedKey)
	return string(v) == "true"
}

func stopResumable(ctx context.Context, private interface {
	GetKey(context.Context, string) ([]byte, diag.Diagnostics)
}) bool {
	if private == nil {
		return false
	}
	v, _ := private.GetKey(ctx, stopResumableKey)
	return string(v) == "true"
}

type stateSetter interface {
	Set(context.Context, any) diag.Diagnostics
}

type privateSetter interface {
	SetKey(context.Context, string, []byte) diag.Diagnostics
}

// finishApply saves what exists, waits for the sync when asked, and saves
// the final status. Saving before waiting means that an apply that fails
// while waiting leaves the resource in the state, not forgotten.
//
// A create whose wait ends with the load still progressing (the timeout
// passed) or with the API unreachable ends with a warning, not an error:
// Terraform taints a resource whose create failed and replaces it at the
// next apply, which would flush the destination and start the load again
// from zero. The next plan keeps waiting instead (awaitingSyncKey). A wait
// that Terraform interrupted (Ctrl-C) is the same: the sources are
// configured, only the wait was cut short.
func (r *replicaOfResource) finishApply(ctx context.Context, uid int, plan *replicaOfResourceModel, w syncWait, create bool,
	state stateSetter, private privateSetter, diags *diag.Diagnostics) {
	planned := plan.Generation
	// The change is made: what it made is read and saved even when
	// Terraform was interrupted meanwhile (it cancels ctx), so that the
	// resource is recorded as it is rather than failed.
	readCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	db, err := findDatabaseByID(readCtx, r.client, uid)
	if err != nil && create {
		// The Replica Of is configured on the service: a create left out
		// of the state would make every later apply fail ("already a
		// Replica Of"), and a tainted one would be replaced, flushing the
		// destination. It is kept, unread, as a create whose wait meets an
		// outage is; the next refresh reads it and the next apply waits.
		if plan.Status.IsUnknown() {
			plan.Status = types.StringValue(api.SourceSyncing)
		}
		if plan.Generation.IsUnknown() {
			plan.Generation = types.Int64Value(0)
		}
		if plan.SourceStatus.IsUnknown() {
			plan.SourceStatus = types.MapValueMust(types.ObjectType{AttrTypes: sourceStatusAttrTypes}, map[string]attr.Value{})
		}
		diags.Append(private.SetKey(ctx, awaitingSyncKey, []byte("true"))...)
		diags.Append(state.Set(ctx, plan)...)
		diags.AddWarning(fmt.Sprintf("The Replica Of of database %d could not be read after it was made", uid),
			redactSecrets(err.Error())+"\n\nThe service took the sources; the resource is created and kept (not tainted), "+
				"and the next refresh reads it. The next plan shows it as an update of status, and the next apply waits for "+
				"the sync, without a flush or a reload.")
		return
	}
	if err != nil {
		diags.AddError(fmt.Sprintf("Could not read the database %d", uid), err.Error())
		return
	}
	flattenAppliedStatus(db, plan, planned, diags)
	if !plan.WaitForSync.ValueBool() || plan.Sync.ValueString() != api.SyncEnabled {
		diags.Append(private.SetKey(ctx, awaitingSyncKey, nil)...)
		diags.Append(state.Set(ctx, plan)...)
		return
	}
	diags.Append(private.SetKey(ctx, awaitingSyncKey, []byte("true"))...)
	diags.Append(state.Set(ctx, plan)...)
	if diags.HasError() {
		return
	}
	db, err = waitForReplicaSync(ctx, r.client, uid, w)
	if db != nil && len(db.ReplicaSources) > 0 {
		flattenAppliedStatus(db, plan, planned, diags)
		diags.Append(state.Set(ctx, plan)...)
	}
	switch {
	case err == nil:
		diags.Append(private.SetKey(ctx, awaitingSyncKey, nil)...)
	case create && resumable(err):
		diags.AddWarning(fmt.Sprintf("The Replica Of of database %d is not in sync yet", uid),
			err.Error()+"\n\nThe resource is created and kept (not tainted): the service goes on loading the sources, "+
				"and the next apply waits for the sync again, without a flush or a reload. The next plan shows it as an "+
				"update of status. Sources: "+describeSources(db)+".")
	default:
		diags.AddError(fmt.Sprintf("The Replica Of of database %d is not in sync", uid), err.Error())
	}
}

// syncWaitOf is how an apply of m waits, within timeout.
func syncWaitOf(m replicaOfResourceModel, timeout time.Duration, diags *diag.Diagnostics) syncWait {
	w := syncWait{timeout: timeout, failAfter: defaultFailAfter}
	if !m.FailAfter.IsNull() && !m.FailAfter.IsUnknown() {
		d, err := time.ParseDuration(m.FailAfter.ValueString())
		if err != nil {
			diags.AddAttributeError(path.Root("fail_after"), "Invalid duration", err.Error())
		}
		w.failAfter = d
	}
	return w
}

func list2uris(list []api.ReplicaSource) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = s.URI
	}
	return out
}

func apiSourceAddresses(in []api.ReplicaSourceStatus) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = sourceAddress(s.URI)
	}
	return sortedUnique(out)
}

func (r *replicaOfResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state replicaOfResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	uid, err := parseDatabaseID(state.ID.ValueString())
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("id"), "Invalid database id", err.Error())
		return
	}
	// Right after ImportState, the state holds the id only (source is
	// required otherwise): nothing to import is said as such, rather than
	// as Terraform's "no object exists with the given id".
	importing := state.Source.IsNull()
	db, err := findDatabaseByID(ctx, r.client, uid)
	if client.IsNotFound(err) && importing {
		resp.Diagnostics.AddError("No such database", fmt.Sprintf("The database %d does not exist on %s: import a "+
			"Replica Of by the uid of its destination database.", uid, r.client.Endpoint()))
		return
	}
	if client.IsNotFound(err) {
		tflog.Warn(ctx, "the destination database no longer exists, removing its Replica Of from the state", map[string]any{"uid": uid})
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("Could not read the database %d", uid), err.Error())
		return
	}
	if readOnlyView(db) {
		// A read-only API user sees addresses instead of URLs: read as
		// such, every source would look replaced and the plan would
		// re-replicate the destination.
		resp.Diagnostics.AddError("A read-only API user", fmt.Sprintf("The service answered the sources of database %d "+
			"without their URLs, as it does for its read-only (viewer) user: the provider cannot read a Replica Of "+
			"with it. Give the provider the admin user of %s (username and password, or REDIS_REPLICAD_USERNAME "+
			"and REDIS_REPLICAD_PASSWORD).", uid, r.client.Endpoint()))
		return
	}
	if len(db.ReplicaSources) == 0 && importing {
		resp.Diagnostics.AddError("Not a Replica Of", fmt.Sprintf("The database %d (%q) has no sources: there is no "+
			"Replica Of to import. Apply a redis_replica_of for it instead (which flushes it and loads its sources).", uid, db.Name))
		return
	}
	if len(db.ReplicaSources) == 0 {
		tflog.Warn(ctx, "the database is no longer a Replica Of, removing it from the state", map[string]any{"uid": uid})
		resp.State.RemoveResource(ctx)
		return
	}
	if !state.SourceURIsWOVersion.IsNull() && appliedURIsChanged(ctx, req.Private, db.ReplicaSources) {
		// The service's URLs are not those the last apply sent: the
		// write-only ones may have been changed outside Terraform.
		markSentURIsChanged(ctx, resp.Private, &resp.Diagnostics)
	}
	flattenReplicaOf(ctx, db, &state, &resp.Diagnostics)
	if state.SourceURIs.IsNull() {
		// No URL is recorded as [], which a configuration that leaves
		// source_uris out plans as it is (emptySetAsInState).
		state.SourceURIs = types.SetValueMust(types.StringType, []attr.Value{})
	}
	recordStopResumable(ctx, db, resp.Private, &resp.Diagnostics)
	if db.ReplicaSync != api.SyncPaused {
		resp.Diagnostics.Append(resp.Private.SetKey(ctx, reloadOwedKey, nil)...)
	}
	if db.ReplicaSyncStatus == api.SourceInSync {
		// The wait an earlier apply could not finish is over.
		resp.Diagnostics.Append(resp.Private.SetKey(ctx, awaitingSyncKey, nil)...)
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *replicaOfResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state, config replicaOfResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &config)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Update(ctx, defaultReplicaOfUpdateTimeout)
	resp.Diagnostics.Append(diags...)
	uid, err := parseDatabaseID(state.ID.ValueString())
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("id"), "Invalid database id", err.Error())
	}
	sources, creds := r.credentials(ctx, plan.SourceURIs, config.SourceURIsWO, plan.Source, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx = tflog.SetField(ctx, "destination", uid)

	ch := planReplicaChange(plan, &state)
	if sentURIsDiffer(ctx, req.Private, config.SourceURIsWO) {
		ch.sourcesChanged, ch.resendWriteOnly = true, true
	}
	if ch.restart && !config.SourceURIsWO.IsNull() {
		// The service may have stopped the sync because the credentials it
		// holds for a write-only source were changed behind Terraform's back
		// (they cannot be read back and compared): enabling it again with
		// them would fail again. Send the URLs of the configuration too.
		ch.sourcesChanged = true
	}
	var in api.UpdateDatabaseRequest
	var list []api.ReplicaSource
	// A known generation in the plan is the plan's word that the
	// destination is not flushed: the service refuses (409) an update that
	// would flush it after all (the sync stopped again since the refresh).
	var noFlush *bool
	if !plan.Generation.IsUnknown() && !plan.Generation.IsNull() {
		yes := true
		noFlush = &yes
	}
	if ch.sourcesChanged {
		list = expandReplicaSources(sources, creds.byAddr)
		in.ReplicaSources = &list
	}
	if ch.restart && ch.sourcesChanged && !ch.addressesChanged {
		// Send the sources first, with the sync still stopped, then
		// enable it in a request of its own, which the service answers as
		// the plan said: a flush and a full load, or, for a sync stopped
		// because a source refused its password (replica_stop_resumable),
		// a resume from the checkpoints with the new credentials.
		tflog.Info(ctx, "updating the sources of the stopped Replica Of before enabling it", map[string]any{
			"sources": strings.Join(sourceAddresses(sources), ", "),
		})
		stopped := api.SyncStopped
		if err := r.updateNoFlush(ctx, uid, api.UpdateDatabaseRequest{ReplicaSources: &list, ReplicaSync: &stopped, ReplicaNoFlush: noFlush}, &resp.Diagnostics); err != nil {
			addUpdateError(&resp.Diagnostics, uid, err, list)
			if client.IsWouldFlush(err) {
				// Refused: the state stays the prior one, not the plan.
				resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
			}
			return
		}
		in.ReplicaSources = nil
	}
	if ch.syncChanged || ch.sourcesChanged {
		// With new sources, the sync state is sent too: the service may
		// have stopped the sync since the refresh, and the plan says what
		// it must be after the apply.
		sync := plan.Sync.ValueString()
		in.ReplicaSync = &sync
	}
	if in.ReplicaSources == nil && in.ReplicaSync == nil {
		if awaitingSync(ctx, req.Private, plan) {
			// A wait that an earlier apply could not finish.
			tflog.Info(ctx, "waiting for the sync that the last apply did not see complete")
			r.finishApply(ctx, uid, &plan, syncWaitOf(plan, timeout, &resp.Diagnostics), false, &resp.State, resp.Private, &resp.Diagnostics)
			return
		}
		// wait_for_sync, fail_after or timeouts only.
		plan.Status, plan.Generation, plan.SourceStatus = state.Status, state.Generation, state.SourceStatus
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
		return
	}
	tflog.Info(ctx, "updating the Replica Of", map[string]any{
		"sources_changed": ch.sourcesChanged, "sources": strings.Join(sourceAddresses(sources), ", "),
		"sync": plan.Sync.ValueString(), "flush": ch.flushes(),
	})
	in.ReplicaNoFlush = noFlush
	if err := r.updateNoFlush(ctx, uid, in, &resp.Diagnostics); err != nil {
		if ctx.Err() == nil || !r.tookUpdate(ctx, uid, in) {
			addUpdateError(&resp.Diagnostics, uid, err, list)
			if client.IsWouldFlush(err) {
				// Refused: the state stays the prior one, not the plan.
				resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
			}
			return
		}
		// Interrupted (Ctrl-C) after the service took it: recorded as
		// applied, its wait left to the next apply (awaitingSyncKey), as
		// for an interrupted wait.
		tflog.Info(ctx, "Terraform was interrupted after the service took the update of the Replica Of")
	}
	if state.Sync.ValueString() == api.SyncStopped && plan.Sync.ValueString() == api.SyncPaused && noFlush == nil {
		// The reload counted now happens when the sync is enabled: the
		// plan that enables it shows it.
		resp.Diagnostics.Append(resp.Private.SetKey(ctx, reloadOwedKey, []byte("true"))...)
	}
	if ch.sourcesChanged {
		recordSentURIs(ctx, resp.Private, config.SourceURIsWO, &resp.Diagnostics)
		recordAppliedURIs(ctx, resp.Private, config.SourceURIsWO, list, &resp.Diagnostics)
	}
	r.finishApply(ctx, uid, &plan, syncWaitOf(plan, timeout, &resp.Diagnostics), false, &resp.State, resp.Private, &resp.Diagnostics)
}

// updateNoFlush sends the update in. A service older than replica_no_flush
// refuses the field as unknown: the update is then sent again without it,
// with a warning that this service cannot refuse a flush the plan did not
// show, rather than failing every update until the service is upgraded.
func (r *replicaOfResource) updateNoFlush(ctx context.Context, uid int, in api.UpdateDatabaseRequest, diags *diag.Diagnostics) error {
	_, err := r.client.UpdateDatabase(ctx, uid, in)
	if err == nil || in.ReplicaNoFlush == nil || !client.IsUnknownField(err, "replica_no_flush") {
		return err
	}
	in.ReplicaNoFlush = nil
	if _, err = r.client.UpdateDatabase(ctx, uid, in); err != nil {
		return err
	}
	diags.AddWarning(fmt.Sprintf("The service of database %d does not check the plan's \"no flush\"", uid),
		"This redis-replicad is older than the provider: it does not know replica_no_flush, so it could not refuse "+
			"to flush the destination had its sync been stopped again since the plan. Upgrade redis-replicad.")
	return nil
}

// addUpdateError says why an update of the Replica Of of database uid
// failed, without the credentials of list.
func addUpdateError(diags *diag.Diagnostics, uid int, err error, list []api.ReplicaSource) {
	msg := redactSecrets(err.Error(), list2uris(list)...)
	if client.IsWouldFlush(err) {
		diags.AddError(fmt.Sprintf("The Replica Of of database %d changed since the plan", uid),
			"The plan said the destination would not be flushed, and the service says the update would flush it now: "+
				"nothing was changed. Run terraform plan again: it shows the flush, if it is still owed.\n\n"+msg)
		return
	}
	diags.AddError(fmt.Sprintf("Could not update the Replica Of of database %d", uid), msg)
}

// awaitingSync reports whether an earlier apply left a wait for the sync
// unfinished, and the plan m still asks to wait.
func awaitingSync(ctx context.Context, private interface {
	GetKey(context.Context, string) ([]byte, diag.Diagnostics)
}, m replicaOfResourceModel) bool {
	if private == nil || !m.WaitForSync.ValueBool() || m.Sync.ValueString() != api.SyncEnabled {
		return false
	}
	v, _ := private.GetKey(ctx, awaitingSyncKey)
	return len(v) > 0
}

func (r *replicaOfResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state replicaOfResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	uid, err := parseDatabaseID(state.ID.ValueString())
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("id"), "Invalid database id", err.Error())
		return
	}
	none := []api.ReplicaSource{}
	tflog.Info(ctx, "removing Replica Of; the data stays", map[string]any{"destination": uid})
	if _, err := r.client.UpdateDatabase(ctx, uid, api.UpdateDatabaseRequest{ReplicaSources: &none}); err != nil {
		if client.IsNotFound(err) || (client.IsConflict(err) && destinationBeingDeleted(ctx, r.client, uid)) {
			// The Replica Of goes with its database: a destroy that
			// removes both without a reference between them (a
			// configuration generated by an import names the uid) deletes
			// them side by side.
			return
		}
		resp.Diagnostics.AddError(fmt.Sprintf("Could not remove the Replica Of of database %d", uid), err.Error())
	}
}

// destinationBeingDeleted reports whether the database uid is gone or being
// deleted (status deleting: stopped for good, its sources with it).
func destinationBeingDeleted(ctx context.Context, c *client.Client, uid int) bool {
	db, err := c.GetDatabase(ctx, uid)
	return client.IsNotFound(err) || (err == nil && db.Status == api.StatusDeleting)
}

func (r *replicaOfResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if _, err := parseDatabaseID(req.ID); err != nil {
		resp.Diagnostics.AddError("Invalid import id", err.Error()+": import a Replica Of by the uid of its destination database")
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("database_id"), req.ID)...)
}

// flattenReplicaOf copies everything the service says about db's Replica Of
// into m. The timeouts and the write-only settings are left as they are.
func flattenReplicaOf(ctx context.Context, db *api.Database, m *replicaOfResourceModel, diags *diag.Diagnostics) {
	m.ID = types.StringValue(strconv.Itoa(db.UID))
	m.DatabaseID = m.ID
	prior, _ := sourcesFromSet(ctx, m.Source, diags)
	set, d := types.SetValueFrom(ctx, types.ObjectType{AttrTypes: replicaSourceAttrTypes}, flattenSources(db.ReplicaSources, prior))
	diags.Append(d...)
	m.Source = set
	woInUse := !m.SourceURIsWOVersion.IsNull()
	m.SourceURIs = flattenSourceURIs(ctx, db.ReplicaSources, m.SourceURIs, woInUse, diags)
	m.Sync = types.StringValue(db.ReplicaSync)
	if m.WaitForSync.IsNull() || m.WaitForSync.IsUnknown() {
		m.WaitForSync = types.BoolValue(true) // after an import
	}
	if m.FailAfter.IsNull() || m.FailAfter.IsUnknown() {
		m.FailAfter = types.StringValue(defaultFailAfterString) // after an import
	}
	flattenReplicaOfStatus(db, m, diags)
}

// flattenReplicaOfStatus copies the computed status of db into m.
func flattenReplicaOfStatus(db *api.Database, m *replicaOfResourceModel, diags *diag.Diagnostics) {
	m.Status = types.StringValue(db.ReplicaSyncStatus)
	m.Generation = types.Int64Value(db.ReplicaGeneration)
	m.SourceStatus = flattenSourceStatus(db.ReplicaSources, diags)
}

// flattenAppliedStatus is flattenReplicaOfStatus after an apply whose plan
// knew the generation (a change that does not flush). Terraform refuses a
// result that differs from a known planned value, so when the service
// flushed the destination anyway (on its own, during the apply), the planned
// generation is kept, with a warning, until the next refresh records it.
func flattenAppliedStatus(db *api.Database, m *replicaOfResourceModel, planned types.Int64, diags *diag.Diagnostics) {
	flattenReplicaOfStatus(db, m, diags)
	if planned.IsUnknown() || planned.IsNull() || planned.Equal(m.Generation) {
		return
	}
	diags.AddWarning("The destination was flushed during the apply",
		fmt.Sprintf("The service flushed database %d and loaded it again from its sources during the apply (generation %d, "+
			"then %d), although this change does not flush it: another change, or a restart of a stopped sync, did. The next "+
			"refresh records the new generation.", db.UID, planned.ValueInt64(), db.ReplicaGeneration))
	m.Generation = planned
}
