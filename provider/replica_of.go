package provider

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redisurl"
)

// Helpers of the redis_replica_of resource: the source set and the
// credentials beside it, flattening the service's answer, redaction and
// waiting for the sync.
//
// A source is named by its address (host:port) in the `source` set, which
// holds no secret, so that a plan shows which source is added, removed or
// changed. The URLs with credentials live in `source_uris` (sensitive) or
// `source_uris_wo` (write-only) and are matched to the sources by host:port.
// A credential inside the set would not do: Terraform cannot mark one element
// of a set as sensitive, so it would hide the whole set in every plan.
//
// `source_uris` is a set: Terraform compares sensitivity marks as well as
// values, and marks list elements by index, so a list that mixes sensitive
// and literal URLs plans an invisible update when reordered or imported. The
// framework names a set element by its value in its DEBUG and TRACE logs
// (attribute paths); main caps the framework's log level at INFO for that
// reason (see FrameworkLogLevel).

// replicaSourceModel is one element of the `source` set.
type replicaSourceModel struct {
	Address     types.String `tfsdk:"address"`
	Encryption  types.Bool   `tfsdk:"encryption"`
	ServerCert  types.String `tfsdk:"server_cert"`
	Compression types.Int64  `tfsdk:"compression"`
	ReadFrom    types.String `tfsdk:"read_from"`
}

var replicaSourceAttrTypes = map[string]attr.Type{
	"address":     types.StringType,
	"encryption":  types.BoolType,
	"server_cert": types.StringType,
	"compression": types.Int64Type,
	"read_from":   types.StringType,
}

// sourceStatusModel is the live status of one source, a value of the
// `source_status` map.
type sourceStatusModel struct {
	Status            types.String `tfsdk:"status"`
	Lag               types.Int64  `tfsdk:"lag"`
	LastError         types.String `tfsdk:"last_error"`
	LastUpdate        types.String `tfsdk:"last_update"`
	RDBSize           types.Int64  `tfsdk:"rdb_size"`
	RDBTransferred    types.Int64  `tfsdk:"rdb_transferred"`
	CompressionActive types.Bool   `tfsdk:"compression_active"`
	CompressionNote   types.String `tfsdk:"compression_note"`
	Shards            types.List   `tfsdk:"shards"`
}

// shardStatusAttrTypes are the attributes of one shard of a clustered
// source, an element of `source_status[*].shards`.
var shardStatusAttrTypes = map[string]attr.Type{
	"slots":         types.StringType,
	"node":          types.StringType,
	"role":          types.StringType,
	"status":        types.StringType,
	"lag":           types.Int64Type,
	"last_error":    types.StringType,
	"full_syncs":    types.Int64Type,
	"partial_syncs": types.Int64Type,
}

var sourceStatusAttrTypes = map[string]attr.Type{
	"status":             types.StringType,
	"lag":                types.Int64Type,
	"last_error":         types.StringType,
	"last_update":        types.StringType,
	"rdb_size":           types.Int64Type,
	"rdb_transferred":    types.Int64Type,
	"compression_active": types.BoolType,
	"compression_note":   types.StringType,
	"shards":             types.ListType{ElemType: types.ObjectType{AttrTypes: shardStatusAttrTypes}},
}

// canonicalAddress checks a source address and returns it in the form the
// service reports it (host:port, IPv6 hosts in brackets, no leading zeros).
func canonicalAddress(s string) (string, error) {
	// The value is not shown when it does not parse: it may be a password,
	// or a URL with one (shown without it).
	host, portText, err := net.SplitHostPort(s)
	if err != nil || host == "" || strings.ContainsAny(host, " /@\t\r\n") {
		if r, ok := redactedURL(s); ok {
			return "", fmt.Errorf("a source address is a URL, %q, not a host:port address such as \"10.0.0.5:6379\" "+
				"or \"[::1]:6379\": give the address without the scheme and credentials, and the URL in source_uris or "+
				"source_uris_wo", r)
		}
		return "", fmt.Errorf("a source address is not a host:port address, such as \"10.0.0.5:6379\" or \"[::1]:6379\" %s", notShown)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return "", fmt.Errorf("the port of a source address must be a number between 1 and 65535 %s", notShown)
	}
	if strings.Contains(host, "%") {
		// The service's source URLs take no IPv6 zone: said at plan
		// time, not as an unparsable URL at apply time.
		return "", fmt.Errorf("a source address has an IPv6 zone (%%name), which the service does not take: give a global or unique local IPv6 address, or a host name")
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// sourceURIAddress parses a URL with credentials and returns its host:port.
// The error never holds the password.
func sourceURIAddress(uri string) (string, error) {
	u, err := redisurl.Parse(uri)
	if err != nil {
		return "", err
	}
	return u.Addr(), nil
}

// hasCredentials reports whether uri names a user or a password.
func hasCredentials(uri string) bool {
	u, err := redisurl.Parse(uri)
	return err == nil && (u.Password != "" || u.Username != "")
}

// credentialSet collects the source URLs of a configuration or a plan,
// by address.
type credentialSet struct {
	byAddr map[string]string
	// unknown is set when some URL is not known yet (plan time): the
	// matching could not be checked completely.
	unknown bool
}

// add reads the URLs of attribute attrPath (a set or a list of strings)
// into cs, reporting malformed URLs and addresses given twice.
//
// Its diagnostics name the attribute in their text but are not attached to
// it: Terraform would print the configuration line, where a password may be
// written out.
func (cs *credentialSet) add(ctx context.Context, attrPath path.Path, value attr.Value, diags *diag.Diagnostics) {
	if cs.byAddr == nil {
		cs.byAddr = map[string]string{}
	}
	if value == nil || value.IsNull() {
		return
	}
	if value.IsUnknown() {
		cs.unknown = true
		return
	}
	var elems []types.String
	switch v := value.(type) {
	case types.Set:
		diags.Append(v.ElementsAs(ctx, &elems, false)...)
	case types.List:
		diags.Append(v.ElementsAs(ctx, &elems, false)...)
	default:
		diags.AddError("Unexpected value", fmt.Sprintf("%s is a %T. This is a bug in the provider.", attrPath, value))
		return
	}
	for _, e := range elems {
		if e.IsUnknown() {
			cs.unknown = true
			continue
		}
		if e.IsNull() {
			diags.AddError("Missing source URL", fmt.Sprintf("An element of %s is null: every element must be a redis:// or rediss:// URL.", attrPath))
			continue
		}
		addr, err := sourceURIAddress(e.ValueString())
		if err != nil {
			diags.AddError("Invalid source URL", fmt.Sprintf("In %s: %s", attrPath, sourceURLError(e.ValueString(), err)))
			continue
		}
		if _, dup := cs.byAddr[addr]; dup {
			diags.AddError("Source URL given twice",
				fmt.Sprintf("Two source URLs (in source_uris or source_uris_wo) are for %s: give one URL per source.", addr))
			continue
		}
		cs.byAddr[addr] = e.ValueString()
	}
}

// sourcesWithDefaults is the planned `source` set: the configuration's, with
// the defaults of the options it leaves out. The schema's Default cannot do
// it: the framework finds the configuration of a set element by the
// element's planned value, which Terraform fills from the prior state for
// computed attributes, so that it found none and overwrote every option of
// the element with its default (read_from = "replica" planned "master").
func sourcesWithDefaults(ctx context.Context, config types.Set, diags *diag.Diagnostics) types.Set {
	if config.IsNull() || config.IsUnknown() {
		return config
	}
	var sources []replicaSourceModel
	diags.Append(config.ElementsAs(ctx, &sources, false)...)
	for i := range sources {
		s := &sources[i]
		if s.Encryption.IsNull() {
			s.Encryption = types.BoolValue(false)
		}
		if s.Compression.IsNull() {
			s.Compression = types.Int64Value(0)
		}
		if s.ReadFrom.IsNull() {
			s.ReadFrom = types.StringValue(api.ReadFromMaster)
		}
	}
	set, d := types.SetValueFrom(ctx, types.ObjectType{AttrTypes: replicaSourceAttrTypes}, sources)
	diags.Append(d...)
	return set
}

// sourcesFromSet reads the elements of the `source` set. known is false when
// the set, or the address of one of its elements, is not known yet.
func sourcesFromSet(ctx context.Context, set types.Set, diags *diag.Diagnostics) (sources []replicaSourceModel, known bool) {
	if set.IsNull() || set.IsUnknown() {
		return nil, !set.IsUnknown()
	}
	diags.Append(set.ElementsAs(ctx, &sources, false)...)
	known = true
	for _, s := range sources {
		if s.Address.IsUnknown() || s.Encryption.IsUnknown() || s.ServerCert.IsUnknown() || s.Compression.IsUnknown() || s.ReadFrom.IsUnknown() {
			known = false
		}
	}
	return sources, known
}

// checkSources reports what is wrong with a source set and the URLs beside
// it: malformed or repeated addresses, too many sources, and URLs that match
// no source. Unknown values are skipped.
func checkSources(sources []replicaSourceModel, known bool, creds credentialSet, diags *diag.Diagnostics) {
	if len(sources) > api.MaxReplicaSources {
		diags.AddAttributeError(path.Root("source"), "Too many sources",
			fmt.Sprintf("A database can be a Replica Of at most %d sources, not %d.", api.MaxReplicaSources, len(sources)))
	}
	seen, folded := map[string]bool{}, map[string]bool{}
	invalid := false
	for _, s := range sources {
		if s.Address.IsUnknown() || s.Address.IsNull() {
			continue
		}
		addr, err := canonicalAddress(s.Address.ValueString())
		if err != nil {
			diags.AddAttributeError(path.Root("source"), "Invalid source address", err.Error())
			invalid = true
			continue
		}
		if addr != s.Address.ValueString() {
			diags.AddAttributeError(path.Root("source"), "Invalid source address",
				fmt.Sprintf("Write the address %q as %q, the form the service reports.", s.Address.ValueString(), addr))
			invalid = true
			continue
		}
		// Host names are not case-sensitive, and an IP address has several
		// spellings: each is one server, whose writes two syncers would
		// apply twice.
		if folded[sourceKey(addr)] {
			diags.AddAttributeError(path.Root("source"), "Source listed twice",
				fmt.Sprintf("The source %s is listed twice (with different settings, or its host name in another case): "+
					"list each source once.", addr))
		}
		folded[sourceKey(addr)] = true
		seen[addr] = true
		checkSourceTLS(addr, s, creds.byAddr[addr], diags)
	}
	if !known || invalid {
		// A URL may be for a source whose address is not known yet, or
		// for one whose address is reported as invalid above.
		return
	}
	for _, addr := range sortedKeys(creds.byAddr) {
		if seen[addr] {
			continue
		}
		if folded[sourceKey(addr)] {
			// Adding a source with the URL's spelling, as said below, would
			// list one source twice.
			var source string
			for a := range seen {
				if sourceKey(a) == sourceKey(addr) {
					source = a
				}
			}
			diags.AddError("Source URL spelled otherwise",
				fmt.Sprintf("A URL in source_uris or source_uris_wo is for %s, and the source's address is %s: write the "+
					"host the same way in both, in the same case (the service names a source by the host:port of its URL).", addr, source))
			continue
		}
		diags.AddError("Source URL without a source",
			fmt.Sprintf("A URL in source_uris or source_uris_wo is for %s, which is not the address of any source (%s). "+
				"Add a source with address = %q, or remove the URL.", addr, strings.Join(sortedKeys(seen), ", "), addr))
	}
}

// sourceKey is what two addresses of one server have in common: the host
// in lower case, or, for an IP address, its canonical form ("[0:0::1]" and
// "[::1]", "[::ffff:10.0.0.5]" and "10.0.0.5" are one server).
func sourceKey(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return strings.ToLower(addr)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return net.JoinHostPort(ip.Unmap().String(), port)
	}
	return net.JoinHostPort(strings.ToLower(host), port)
}

// checkSourceTLS reports a source whose TLS settings cannot work: encryption
// without the certificate to trust, a certificate without encryption, or a
// rediss:// URL without encryption (the service connects as encryption says,
// whatever the scheme). uri may be empty.
func checkSourceTLS(addr string, s replicaSourceModel, uri string, diags *diag.Diagnostics) {
	if s.Encryption.IsUnknown() || s.ServerCert.IsUnknown() {
		return
	}
	encrypted := s.Encryption.ValueBool()
	hasCert := !s.ServerCert.IsNull() && strings.TrimSpace(s.ServerCert.ValueString()) != ""
	switch {
	case encrypted && !hasCert:
		diags.AddAttributeError(path.Root("source"), "Missing server_cert",
			fmt.Sprintf("The source %s has encryption = true but no server_cert: give the PEM certificate the source must "+
				"present, for another redis-replicad the proxy_cert of its redis_cluster data source, for an open-source "+
				"Redis the certificate of the CA that signed its certificate.", addr))
	case !encrypted && hasCert:
		diags.AddAttributeError(path.Root("source"), "server_cert without encryption",
			fmt.Sprintf("The source %s has a server_cert but not encryption = true: the syncer would connect in plain "+
				"text and ignore the certificate. Set encryption = true, or remove server_cert.", addr))
	}
	if uri != "" && !encrypted {
		if u, err := redisurl.Parse(uri); err == nil && u.TLS {
			diags.AddError("rediss:// URL without encryption",
				fmt.Sprintf("The URL for the source %s is rediss://, but the source does not have encryption = true: "+
					"TLS is set by encryption (with server_cert), not by the URL's scheme. Set encryption = true and "+
					"server_cert on the source.", addr))
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// expandReplicaSources builds the sources the service is given: each with
// its URL from creds, or redis://address when it has none. The order is the
// addresses' order, which the service ignores.
func expandReplicaSources(sources []replicaSourceModel, creds map[string]string) []api.ReplicaSource {
	out := make([]api.ReplicaSource, 0, len(sources))
	for _, s := range sources {
		addr := s.Address.ValueString()
		uri, ok := creds[addr]
		if !ok {
			uri = "redis://" + addr
		}
		out = append(out, api.ReplicaSource{
			URI:         uri,
			Encryption:  s.Encryption.ValueBool(),
			ServerCert:  s.ServerCert.ValueString(),
			Compression: int(s.Compression.ValueInt64()),
			ReadFrom:    s.ReadFrom.ValueString(),
		})
	}
	slices.SortFunc(out, func(a, b api.ReplicaSource) int { return strings.Compare(a.URI, b.URI) })
	return out
}

// flattenSources turns the service's sources into `source` set elements.
// server_cert, which has no default, stays null when the service has none
// and the prior element of the same address had it null.
func flattenSources(in []api.ReplicaSourceStatus, prior []replicaSourceModel) []replicaSourceModel {
	byAddr := map[string]replicaSourceModel{}
	for _, p := range prior {
		byAddr[p.Address.ValueString()] = p
	}
	out := make([]replicaSourceModel, 0, len(in))
	for _, s := range in {
		addr := sourceAddress(s.URI)
		p, had := byAddr[addr]
		// encryption, compression and read_from are computed (ModifyPlan
		// fills their defaults, see sourcesWithDefaults), so they are read
		// as they are, a default included, whether the configuration
		// writes it out or not.
		m := replicaSourceModel{
			Address:     types.StringValue(addr),
			Encryption:  types.BoolValue(s.Encryption),
			ServerCert:  types.StringValue(s.ServerCert),
			Compression: types.Int64Value(int64(s.Compression)),
			ReadFrom:    types.StringValue(s.ReadFrom),
		}
		if s.ReadFrom == "" {
			// Set before read_from existed, or through the API without it.
			m.ReadFrom = types.StringValue(api.ReadFromMaster)
		}
		if s.ServerCert == "" && (!had || p.ServerCert.IsNull()) {
			m.ServerCert = types.StringNull()
		}
		out = append(out, m)
	}
	return out
}

// readOnlyView says whether db is the service's answer to its read-only
// (viewer) user, which gives each source's address (host:port) instead of
// its URL; the admin user always gets redis:// or rediss:// URLs.
func readOnlyView(db *api.Database) bool {
	for _, s := range db.ReplicaSources {
		if !strings.Contains(s.URI, "://") {
			return true
		}
	}
	return false
}

// sourceAddress is the host:port of a source URL as the service returns it;
// a URL that does not parse is shown redacted (or not at all when it is not
// URL-like), so that the plan still shows that something differs.
func sourceAddress(uri string) string {
	if addr, err := sourceURIAddress(uri); err == nil {
		return addr
	}
	if r, ok := redactedURL(uri); ok {
		return r
	}
	return "(a source URL that does not parse)"
}

// flattenSourceURIs refreshes the `source_uris` value from the service's
// sources. Each URL of prior is replaced by the service's URL of the same
// address (dropped when the service has no such source). When the write-only
// URLs are not in use (woInUse false), every source URL of the service that
// holds credentials is included too: a password added through the API shows
// as a difference, and an import fills source_uris.
func flattenSourceURIs(ctx context.Context, in []api.ReplicaSourceStatus, prior types.Set, woInUse bool, diags *diag.Diagnostics) types.Set {
	service := map[string]string{}
	for _, s := range in {
		service[sourceAddress(s.URI)] = s.URI
	}
	var priorURIs []types.String
	if !prior.IsNull() && !prior.IsUnknown() {
		diags.Append(prior.ElementsAs(ctx, &priorURIs, false)...)
	}
	keep := map[string]bool{}
	var out []attr.Value
	add := func(uri string) {
		if !keep[uri] {
			keep[uri] = true
			out = append(out, types.StringValue(uri))
		}
	}
	for _, p := range priorURIs {
		addr, err := sourceURIAddress(p.ValueString())
		if err != nil {
			continue
		}
		if uri, ok := service[addr]; ok {
			add(uri)
		}
	}
	if !woInUse {
		for _, addr := range sortedKeys(service) {
			if hasCredentials(service[addr]) {
				add(service[addr])
			}
		}
	}
	if len(out) == 0 && (prior.IsNull() || prior.IsUnknown()) {
		return types.SetNull(types.StringType)
	}
	v, d := types.SetValue(types.StringType, out)
	diags.Append(d...)
	return v
}

// flattenSourceStatus builds the `source_status` map, keyed by address. The
// last errors are redacted with the URLs the service returned.
func flattenSourceStatus(in []api.ReplicaSourceStatus, diags *diag.Diagnostics) types.Map {
	objType := types.ObjectType{AttrTypes: sourceStatusAttrTypes}
	uris := make([]string, len(in))
	for i, s := range in {
		uris[i] = s.URI
	}
	elems := map[string]attr.Value{}
	for _, s := range in {
		lastUpdate := ""
		if !s.LastUpdate.IsZero() {
			lastUpdate = s.LastUpdate.UTC().Format(time.RFC3339)
		}
		shardType := types.ObjectType{AttrTypes: shardStatusAttrTypes}
		shards := make([]attr.Value, 0, len(s.Shards))
		for _, sh := range s.Shards {
			o, d := types.ObjectValue(shardStatusAttrTypes, map[string]attr.Value{
				"slots":         types.StringValue(sh.Slots),
				"node":          types.StringValue(sh.Node),
				"role":          types.StringValue(sh.Role),
				"status":        types.StringValue(sh.Status),
				"lag":           types.Int64Value(sh.Lag),
				"last_error":    types.StringValue(redactSecrets(sh.LastError, uris...)),
				"full_syncs":    types.Int64Value(int64(sh.FullSyncs)),
				"partial_syncs": types.Int64Value(int64(sh.PartialSyncs)),
			})
			diags.Append(d...)
			shards = append(shards, o)
		}
		shardList, d := types.ListValue(shardType, shards)
		diags.Append(d...)
		obj, d := types.ObjectValue(sourceStatusAttrTypes, map[string]attr.Value{
			"status":             types.StringValue(s.Status),
			"lag":                types.Int64Value(s.Lag),
			"last_error":         types.StringValue(redactSecrets(s.LastError, uris...)),
			"last_update":        types.StringValue(lastUpdate),
			"rdb_size":           types.Int64Value(s.RDBSize),
			"rdb_transferred":    types.Int64Value(s.RDBTransferred),
			"compression_active": types.BoolValue(s.CompressionActive),
			"compression_note":   types.StringValue(redactSecrets(s.CompressionNote, uris...)),
			"shards":             shardList,
		})
		diags.Append(d...)
		elems[sourceAddress(s.URI)] = obj
	}
	m, d := types.MapValue(objType, elems)
	diags.Append(d...)
	return m
}

// userinfoPattern finds the user-info part of anything that looks like a URL.
var userinfoPattern = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^\s/@"']*@`)

// redactSecrets removes from s the passwords of the given URLs, in every
// encoding they may appear in, and the user-info part of any URL.
func redactSecrets(s string, uris ...string) string {
	for _, uri := range uris {
		u, err := redisurl.Parse(uri)
		if err != nil || len(u.Password) < 3 {
			continue
		}
		for _, form := range []string{u.Password, url.QueryEscape(u.Password), url.PathEscape(u.Password)} {
			s = strings.ReplaceAll(s, form, "xxxxx")
		}
	}
	return userinfoPattern.ReplaceAllString(s, "${1}xxxxx@")
}

// describeUnsynced lists the sources of db that are not in sync, redacted,
// with their last errors.
func describeUnsynced(db *api.Database) string {
	if db == nil {
		return "the destination could not be read"
	}
	var parts []string
	for _, s := range db.ReplicaSources {
		if s.Status == api.SourceInSync {
			continue
		}
		p := fmt.Sprintf("source %s is %s", sourceAddress(s.URI), s.Status)
		if s.RDBSize > 0 && s.RDBTransferred < s.RDBSize {
			p += fmt.Sprintf(" (initial load: %d of %d bytes)", s.RDBTransferred, s.RDBSize)
		}
		if s.LastError != "" {
			p += ", last error: " + redactSecrets(s.LastError, s.URI)
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "replica_sync is " + strconv.Quote(db.ReplicaSync)
	}
	return strings.Join(parts, "; ")
}
