package provider

import (
	"context"
	"fmt"
	"regexp"
	"strconv"

	"github.com/hashicorp/terraform-plugin-framework-validators/datasourcevalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/client"
)

var (
	_ datasource.DataSource                     = (*databaseDataSource)(nil)
	_ datasource.DataSourceWithConfigure        = (*databaseDataSource)(nil)
	_ datasource.DataSourceWithConfigValidators = (*databaseDataSource)(nil)
)

type databaseDataSource struct {
	client *client.Client
	// destroying: a database that does not exist is a warning (see
	// destroyCommand and missingWhileDestroying).
	destroying bool
}

type databaseDataSourceModel struct {
	ID         types.String `tfsdk:"id"`
	Name       types.String `tfsdk:"name"`
	MemorySize types.Int64  `tfsdk:"memory_size"`
	Port       types.Int64  `tfsdk:"port"`
	Password   types.String `tfsdk:"password"`
	Endpoint   types.String `tfsdk:"endpoint"`
	Status     types.String `tfsdk:"status"`

	TLSMode             types.String `tfsdk:"tls_mode"`
	ClientCertificates  types.Set    `tfsdk:"client_certificates"`
	ReplicationEndpoint types.String `tfsdk:"replication_endpoint"`

	ShardsCount types.Int64 `tfsdk:"shards_count"`
	Replication types.Bool  `tfsdk:"replication"`
	OSSCluster  types.Bool  `tfsdk:"oss_cluster"`
	Endpoints   types.List  `tfsdk:"endpoints"`
}

func (d *databaseDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_database"
}

func (d *databaseDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Reads a database of `redis-replicad`, selected by `id` or by `name` (exactly one of them).",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "The database's uid, as a string. Set either `id` or `name`.",
				Optional:            true,
				Computed:            true,
				Validators: []validator.String{
					noEcho(stringvalidator.RegexMatches(regexp.MustCompile(`^[1-9][0-9]*$`), "must be a database uid, a positive integer such as \"3\"")),
				},
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Name of the database. Set either `id` or `name`; a name that several databases share is an error.",
				Optional:            true,
				Computed:            true,
				Validators:          []validator.String{stringvalidator.LengthAtLeast(1)},
			},
			"memory_size": schema.Int64Attribute{
				MarkdownDescription: "Memory limit of the database in bytes.",
				Computed:            true,
			},
			"port": schema.Int64Attribute{
				MarkdownDescription: "TCP port of the database.",
				Computed:            true,
			},
			"password": schema.StringAttribute{
				MarkdownDescription: "Password of the database's `default` user.",
				Computed:            true,
				Sensitive:           true,
			},
			"endpoint": schema.StringAttribute{
				MarkdownDescription: "Where applications reach the database, as `host:port`.",
				Computed:            true,
			},
			"status": schema.StringAttribute{
				MarkdownDescription: "Status of the database: `pending` (starting), `loading` (loading its data: after a restart, or reloaded from its Replica Of sources), `active` (answering), `failed`, or `deleting` (a delete that could not remove its files yet; a DELETE again finishes it).",
				Computed:            true,
			},
			"tls_mode": schema.StringAttribute{
				MarkdownDescription: "TLS of the database: " + tlsModeDescription + ".",
				Computed:            true,
			},
			"client_certificates": schema.SetAttribute{
				MarkdownDescription: "PEM client certificates allowed to replicate from this database over TLS; " +
					"empty when any TLS client that knows the source URL's password may.",
				Computed:    true,
				ElementType: types.StringType,
			},
			"replication_endpoint": schema.StringAttribute{
				MarkdownDescription: "Where destinations replicate this database from, as `host:port` (the address " +
					"of its source URL): the `address` of a `redis_replica_of` source.",
				Computed: true,
			},
			"shards_count": schema.Int64Attribute{
				MarkdownDescription: "Number of shards; above 1 the database is a Redis Cluster.",
				Computed:            true,
			},
			"replication": schema.BoolAttribute{
				MarkdownDescription: "Whether each shard has a replica.",
				Computed:            true,
			},
			"oss_cluster": schema.BoolAttribute{
				MarkdownDescription: "Whether the database is a Redis Cluster even with one shard.",
				Computed:            true,
			},
			"endpoints": schema.ListAttribute{
				MarkdownDescription: "Every `redis-server` of the database, as `host:port`, masters first.",
				Computed:            true,
				ElementType:         types.StringType,
			},
		},
	}
}

func (d *databaseDataSource) ConfigValidators(context.Context) []datasource.ConfigValidator {
	return []datasource.ConfigValidator{
		datasourcevalidator.ExactlyOneOf(path.MatchRoot("id"), path.MatchRoot("name")),
	}
}

func (d *databaseDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientFromProviderData(req.ProviderData, &resp.Diagnostics)
}

func (d *databaseDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var config databaseDataSourceModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &config)...)
	if resp.Diagnostics.HasError() {
		return
	}

	var db *api.Database
	if !config.ID.IsNull() {
		uid, err := parseDatabaseID(config.ID.ValueString())
		if err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("id"), "Invalid database id", err.Error())
			return
		}
		db, err = findDatabaseByID(ctx, d.client, uid)
		if d.destroying && client.IsNotFound(err) {
			missingWhileDestroying(fmt.Sprintf("The database %d does not exist", uid), &resp.Diagnostics)
			// Empty values rather than null, which a required argument
			// of a resource would refuse.
			resp.Diagnostics.Append(resp.State.Set(ctx, &databaseDataSourceModel{
				ID: config.ID, Name: types.StringValue(config.Name.ValueString()), MemorySize: types.Int64Value(0),
				Port: types.Int64Value(0), Password: types.StringValue(""), Endpoint: types.StringValue(""),
				Status: types.StringValue(""), TLSMode: types.StringValue(""),
				ClientCertificates: types.SetValueMust(types.StringType, nil), ReplicationEndpoint: types.StringValue(""),
				ShardsCount: types.Int64Value(0), Replication: types.BoolValue(false), OSSCluster: types.BoolValue(false),
				Endpoints: types.ListValueMust(types.StringType, nil),
			})...)
			return
		}
		if err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("id"), "Could not read the database "+strconv.Itoa(uid), err.Error())
			return
		}
	} else {
		var err error
		db, err = findDatabaseByName(ctx, d.client, config.Name.ValueString())
		if err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("name"), "Could not find the database", err.Error())
			return
		}
	}

	state, diags := flattenDatabaseDataSource(db)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func flattenDatabaseDataSource(db *api.Database) (databaseDataSourceModel, diag.Diagnostics) {
	// The resource's flattening, so that both read the service alike.
	var r databaseResourceModel
	r.ClientCertificates = types.SetValueMust(types.StringType, nil) // none: an empty set, not null
	diags := flattenDatabase(db, &r)
	return databaseDataSourceModel{
		ID:         types.StringValue(strconv.Itoa(db.UID)),
		Name:       types.StringValue(db.Name),
		MemorySize: types.Int64Value(db.MemorySize),
		Port:       types.Int64Value(int64(db.Port)),
		Password:   types.StringValue(db.AuthenticationRedisPass),
		Endpoint:   types.StringValue(databaseEndpoint(db)),
		Status:     types.StringValue(db.Status),

		TLSMode:             r.TLSMode,
		ClientCertificates:  r.ClientCertificates,
		ReplicationEndpoint: r.ReplicationEndpoint,

		ShardsCount: r.ShardsCount,
		Replication: r.Replication,
		OSSCluster:  r.OSSCluster,
		Endpoints:   r.Endpoints,
	}, diags
}
