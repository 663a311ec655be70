package provider

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
)

func TestCanonicalAddress(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:6379":     "127.0.0.1:6379",
		"cache.internal:80":  "cache.internal:80",
		"[::1]:6379":         "[::1]:6379",
		"127.0.0.1:06379":    "127.0.0.1:6379",
		"cache.internal":     "",
		":6379":              "",
		"host:0":             "",
		"host:65536":         "",
		"host:http":          "",
		"user@host:6379":     "",
		"redis://host:6379":  "",
		"a b:6379":           "",
		"[::1]:6379:1":       "",
		"127.0.0.1:6379\n":   "",
		"127.0.0.1:6379/0":   "",
		"[fe80::1%eth0]:100": "", // the service's URLs take no zone
	} {
		got, err := canonicalAddress(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("canonicalAddress(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestRedactSecrets(t *testing.T) {
	uris := []string{"redis://admin:p%40ss%2Fw0rd@10.0.0.1:6379", "redis://:plain-secret@10.0.0.2:6379", "redis://10.0.0.3:6379"}
	for in, want := range map[string]string{
		"AUTH failed for redis://admin:p%40ss%2Fw0rd@10.0.0.1:6379": "AUTH failed for redis://xxxxx@10.0.0.1:6379",
		"password p@ss/w0rd rejected":                               "password xxxxx rejected",
		"password p%40ss%2Fw0rd rejected":                           "password xxxxx rejected",
		"dial redis://u:other@10.0.0.9:1 failed":                    "dial redis://xxxxx@10.0.0.9:1 failed",
		`"rediss://:plain-secret@h:1"`:                              `"rediss://xxxxx@h:1"`,
		"no secret here: 10.0.0.3:6379":                             "no secret here: 10.0.0.3:6379",
	} {
		if got := redactSecrets(in, uris...); got != want {
			t.Errorf("redactSecrets(%q) = %q, want %q", in, got, want)
		}
	}
}

func stringList(t *testing.T, values ...string) types.List {
	t.Helper()
	elems := make([]attr.Value, len(values))
	for i, v := range values {
		elems[i] = types.StringValue(v)
	}
	l, d := types.ListValue(types.StringType, elems)
	if d.HasError() {
		t.Fatal(d)
	}
	return l
}

func stringSet(t *testing.T, values ...string) types.Set {
	t.Helper()
	return types.SetValueMust(types.StringType, stringList(t, values...).Elements())
}

// setStrings returns the elements of a set of strings, sorted.
func setStrings(t *testing.T, s types.Set) []string {
	t.Helper()
	if s.IsNull() {
		return nil
	}
	var out []string
	require.False(t, s.ElementsAs(context.Background(), &out, false).HasError())
	slices.Sort(out)
	return out
}

func listStrings(t *testing.T, l types.List) []string {
	t.Helper()
	if l.IsNull() {
		return nil
	}
	var out []string
	if d := l.ElementsAs(context.Background(), &out, false); d.HasError() {
		t.Fatal(d)
	}
	return out
}

func source(addr string) replicaSourceModel {
	return replicaSourceModel{
		Address: types.StringValue(addr), Encryption: types.BoolNull(),
		ServerCert: types.StringNull(), Compression: types.Int64Null(), ReadFrom: types.StringNull(),
	}
}

func TestCredentialsAndExpand(t *testing.T) {
	ctx := context.Background()
	var diags diag.Diagnostics
	var creds credentialSet
	creds.add(ctx, path.Root("source_uris"), stringList(t, "redis://admin:secret-1@10.0.0.1:6379"), &diags)
	creds.add(ctx, path.Root("source_uris_wo"), stringList(t, "redis://:secret-2@10.0.0.2:6379"), &diags)
	sources := []replicaSourceModel{source("10.0.0.2:6379"), source("10.0.0.1:6379"), source("10.0.0.3:6379")}
	sources[2].Compression = types.Int64Value(3)
	checkSources(sources, true, creds, &diags)
	if diags.HasError() {
		t.Fatal(diagSummaries(diags))
	}
	got := expandReplicaSources(sources, creds.byAddr)
	want := []api.ReplicaSource{
		{URI: "redis://10.0.0.3:6379", Compression: 3},
		{URI: "redis://:secret-2@10.0.0.2:6379"},
		{URI: "redis://admin:secret-1@10.0.0.1:6379"},
	}
	if len(got) != len(want) {
		t.Fatalf("expand = %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("expand[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestCredentialErrorsHideThePassword(t *testing.T) {
	ctx := context.Background()
	var diags diag.Diagnostics
	var creds credentialSet
	creds.add(ctx, path.Root("source_uris"), stringList(t,
		"http://admin:hunter2-secret@10.0.0.1:6379",
		"redis://:hunter3-secret@10.0.0.2:6379",
		"redis://:hunter4-secret@10.0.0.2:6379",
	), &diags)
	checkSources([]replicaSourceModel{source("10.0.0.1:6379")}, true, creds, &diags)
	text := diagSummaries(diags)
	for _, want := range []string{"Invalid source URL", "Source URL given twice", "Source URL without a source: A URL in source_uris or source_uris_wo is for 10.0.0.2:6379"} {
		if !strings.Contains(text, want) {
			t.Errorf("the diagnostics do not say %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "hunter") {
		t.Errorf("a password shows in the diagnostics:\n%s", text)
	}
	for _, d := range diags {
		if _, ok := d.(diag.DiagnosticWithPath); ok {
			t.Errorf("the diagnostic %q is attached to an attribute, whose configuration line may hold a password", d.Summary())
		}
	}
}

func TestCheckSourcesUnknown(t *testing.T) {
	var diags diag.Diagnostics
	var creds credentialSet
	creds.add(context.Background(), path.Root("source_uris"), stringList(t, "redis://:pw-123@10.0.0.9:1"), &diags)
	unknown := source("")
	unknown.Address = types.StringUnknown()
	// A URL may be for a source whose address is not known yet.
	checkSources([]replicaSourceModel{unknown}, false, creds, &diags)
	if diags.HasError() {
		t.Fatal(diagSummaries(diags))
	}
}

// TestFlattenSourcesReadsDefaults: the options that have a default are read
// with it, whether the prior state had them null (an import, a state of
// schema version 0) or written out, so that either spelling plans nothing.
func TestFlattenSourcesReadsDefaults(t *testing.T) {
	prior := []replicaSourceModel{source("10.0.0.1:6379"), source("10.0.0.2:6379")}
	prior[1].Compression = types.Int64Value(0) // written out in the configuration
	in := []api.ReplicaSourceStatus{
		{ReplicaSource: api.ReplicaSource{URI: "redis://admin:x-123@10.0.0.1:6379"}},
		{ReplicaSource: api.ReplicaSource{URI: "redis://10.0.0.2:6379", ReadFrom: api.ReadFromReplica}},
		{ReplicaSource: api.ReplicaSource{URI: "redis://10.0.0.3:6379", Encryption: true, Compression: 2}},
	}
	got := flattenSources(in, prior)
	for i, s := range got {
		if s.Compression.IsNull() || s.Encryption.IsNull() || s.ReadFrom.IsNull() {
			t.Errorf("source %d has a null default: %+v", i+1, s)
		}
	}
	if got[0].Address.ValueString() != "10.0.0.1:6379" || got[0].Compression.ValueInt64() != 0 ||
		got[0].Encryption.ValueBool() || got[0].ReadFrom.ValueString() != api.ReadFromMaster || !got[0].ServerCert.IsNull() {
		t.Errorf("source 1 = %+v", got[0])
	}
	if got[1].ReadFrom.ValueString() != api.ReadFromReplica {
		t.Errorf("source 2 = %+v", got[1])
	}
	if !got[2].Encryption.ValueBool() || got[2].Compression.ValueInt64() != 2 || !got[2].ServerCert.IsNull() {
		t.Errorf("source 3 = %+v", got[2])
	}
}

// TestUpgradeReplicaOfStateV0 fills the defaults a version 0 state left
// null and keeps every other value.
func TestUpgradeReplicaOfStateV0(t *testing.T) {
	raw := `{"id":"3","database_id":"3","fail_after":null,"sync":"enabled","wait_for_sync":true,` +
		`"source":[{"address":"10.0.0.1:6379","encryption":null,"server_cert":null,"compression":null,"read_from":null},` +
		`{"address":"10.0.0.2:6379","encryption":true,"server_cert":"PEM","compression":3,"read_from":"replica"}]}`
	var resp resource.UpgradeStateResponse
	upgradeReplicaOfStateV0(context.Background(), resource.UpgradeStateRequest{RawState: &tfprotov6.RawState{JSON: []byte(raw)}}, &resp)
	require.False(t, resp.Diagnostics.HasError(), "%v", resp.Diagnostics)
	require.NotNil(t, resp.DynamicValue)
	var got map[string]any
	require.NoError(t, json.Unmarshal(resp.DynamicValue.JSON, &got))
	assert.Equal(t, "3m", got["fail_after"])
	assert.Equal(t, "3", got["id"])
	assert.Equal(t, []any{
		map[string]any{"address": "10.0.0.1:6379", "encryption": false, "server_cert": nil, "compression": float64(0), "read_from": "master"},
		map[string]any{"address": "10.0.0.2:6379", "encryption": true, "server_cert": "PEM", "compression": float64(3), "read_from": "replica"},
	}, got["source"])

	resp = resource.UpgradeStateResponse{}
	upgradeReplicaOfStateV0(context.Background(), resource.UpgradeStateRequest{RawState: &tfprotov6.RawState{JSON: []byte("{")}}, &resp)
	assert.True(t, resp.Diagnostics.HasError(), "a state that is no JSON is upgraded")
}

func TestFlattenSourceURIs(t *testing.T) {
	ctx := context.Background()
	in := []api.ReplicaSourceStatus{
		{ReplicaSource: api.ReplicaSource{URI: "redis://admin:new-pw-1@10.0.0.1:6379"}},
		{ReplicaSource: api.ReplicaSource{URI: "redis://:pw-2@10.0.0.2:6379"}},
		{ReplicaSource: api.ReplicaSource{URI: "redis://10.0.0.3:6379"}},
	}
	for _, tc := range []struct {
		name  string
		prior types.Set
		wo    bool
		want  []string
	}{
		{"refresh takes the service's URL", stringSet(t, "redis://:pw-2@10.0.0.2:6379", "redis://admin:old@10.0.0.1:6379"), false,
			[]string{"redis://:pw-2@10.0.0.2:6379", "redis://admin:new-pw-1@10.0.0.1:6379"}},
		{"import fills every URL with credentials", types.SetNull(types.StringType), false,
			[]string{"redis://:pw-2@10.0.0.2:6379", "redis://admin:new-pw-1@10.0.0.1:6379"}},
		{"write-only URLs are not read back", types.SetNull(types.StringType), true, nil},
		{"with write-only URLs, only the listed ones", stringSet(t, "redis://admin:old@10.0.0.1:6379", "redis://:gone@10.0.0.4:1"), true,
			[]string{"redis://admin:new-pw-1@10.0.0.1:6379"}},
	} {
		var diags diag.Diagnostics
		got := setStrings(t, flattenSourceURIs(ctx, in, tc.prior, tc.wo, &diags))
		assert.False(t, diags.HasError(), "%s: %v", tc.name, diags)
		assert.Equal(t, tc.want, got, tc.name)
	}
}

func TestFlattenSourceStatus(t *testing.T) {
	var diags diag.Diagnostics
	m := flattenSourceStatus([]api.ReplicaSourceStatus{{
		ReplicaSource: api.ReplicaSource{URI: "redis://admin:pw-9876@10.0.0.1:6379"},
		Status:        api.SourceOutOfSync, Lag: 12, RDBSize: 100, RDBTransferred: 40,
		LastError: "AUTH with redis://admin:pw-9876@10.0.0.1:6379 failed: pw-9876 is wrong",
	}}, &diags)
	require.False(t, diags.HasError(), "%v", diags)
	obj, ok := m.Elements()["10.0.0.1:6379"].(types.Object)
	require.True(t, ok, "no status for 10.0.0.1:6379: %v", m)
	got := obj.Attributes()["last_error"].(types.String).ValueString()
	assert.NotContains(t, got, "pw-9876")
	assert.Contains(t, got, "redis://xxxxx@10.0.0.1:6379")
}

func TestDiffSources(t *testing.T) {
	a := []replicaSourceModel{source("10.0.0.1:1"), source("10.0.0.2:1"), source("10.0.0.3:1")}
	b := []replicaSourceModel{source("10.0.0.3:1"), source("10.0.0.1:1"), source("10.0.0.4:1")}
	b[1].Compression = types.Int64Value(4)
	added, removed, changed := diffSources(a, b)
	assert.Equal(t, []string{"10.0.0.4:1"}, added)
	assert.Equal(t, []string{"10.0.0.2:1"}, removed)
	assert.Equal(t, []string{"10.0.0.1:1"}, changed)
	// compression = 0 and no compression are the same setting.
	c := []replicaSourceModel{source("10.0.0.1:1")}
	c[0].Compression = types.Int64Value(0)
	_, _, changed = diffSources(a[:1], c)
	assert.Empty(t, changed, "null and 0 differ")
}

func TestDescribeUnsynced(t *testing.T) {
	got := describeUnsynced(&api.Database{ReplicaSync: api.SyncEnabled, ReplicaSources: []api.ReplicaSourceStatus{
		{ReplicaSource: api.ReplicaSource{URI: "redis://admin:pw-5555@10.0.0.1:6379"}, Status: api.SourceInSync},
		{ReplicaSource: api.ReplicaSource{URI: "redis://admin:pw-6666@10.0.0.2:6379"}, Status: api.SourceSyncing,
			RDBSize: 1000, RDBTransferred: 250, LastError: "slow: pw-6666"},
	}})
	assert.Equal(t, "source 10.0.0.2:6379 is syncing (initial load: 250 of 1000 bytes), last error: slow: xxxxx", got)
}

func TestPlanReplicaChange(t *testing.T) {
	set := func(addrs ...string) types.Set {
		var elems []attr.Value
		for _, a := range addrs {
			o, _ := types.ObjectValue(replicaSourceAttrTypes, map[string]attr.Value{
				"address": types.StringValue(a), "encryption": types.BoolNull(),
				"server_cert": types.StringNull(), "compression": types.Int64Null(), "read_from": types.StringNull(),
			})
			elems = append(elems, o)
		}
		s, _ := types.SetValue(types.ObjectType{AttrTypes: replicaSourceAttrTypes}, elems)
		return s
	}
	state := replicaOfResourceModel{Source: set("a:1", "b:1"), SourceURIs: types.SetNull(types.StringType),
		SourceURIsWOVersion: types.Int64Null(), Sync: types.StringValue(api.SyncStopped)}
	plan := state
	plan.Source = set("b:1", "a:1")
	if ch := planReplicaChange(plan, &state); ch.sourcesChanged || ch.flushes() {
		t.Errorf("reordering is a change: %+v", ch)
	}
	plan.Sync = types.StringValue(api.SyncEnabled)
	if ch := planReplicaChange(plan, &state); !ch.restart || !ch.flushes() || ch.sourcesChanged {
		t.Errorf("restarting a stopped sync: %+v", ch)
	}
	plan.Sync = state.Sync
	plan.SourceURIsWOVersion = types.Int64Value(2)
	if ch := planReplicaChange(plan, &state); !ch.sourcesChanged {
		t.Errorf("a new write-only version: %+v", ch)
	}
	if ch := planReplicaChange(plan, nil); !ch.create || !ch.flushes() {
		t.Errorf("create: %+v", ch)
	}

	// New settings or credentials for the same addresses: sent, no flush.
	plan = state
	plan.Sync = types.StringValue(api.SyncEnabled)
	state.Sync = plan.Sync
	plan.Source = set("a:1", "b:1")
	elems := plan.Source.Elements()
	o := elems[0].(types.Object).Attributes()
	o["compression"] = types.Int64Value(3)
	elems[0] = types.ObjectValueMust(replicaSourceAttrTypes, o)
	plan.Source = types.SetValueMust(types.ObjectType{AttrTypes: replicaSourceAttrTypes}, elems)
	plan.SourceURIs = stringSet(t, "redis://:pw-1@a:1")
	if ch := planReplicaChange(plan, &state); !ch.sourcesChanged || ch.addressesChanged || ch.flushes() {
		t.Errorf("new settings and credentials: %+v", ch)
	}
	// A source added, or an address not known yet: a flush.
	plan.Source = set("a:1", "b:1", "c:1")
	if ch := planReplicaChange(plan, &state); !ch.addressesChanged || !ch.flushes() {
		t.Errorf("a source added: %+v", ch)
	}
	plan.Source = types.SetUnknown(types.ObjectType{AttrTypes: replicaSourceAttrTypes})
	if ch := planReplicaChange(plan, &state); !ch.addressesChanged || !ch.flushes() {
		t.Errorf("unknown sources: %+v", ch)
	}
}

func TestLoadProgress(t *testing.T) {
	s := func(status string, size, done int64) api.ReplicaSourceStatus {
		return api.ReplicaSourceStatus{Status: status, RDBSize: size, RDBTransferred: done}
	}
	assert.Equal(t, "25.0% of the initial load (250 of 1000 bytes)", loadProgress(s(api.SourceSyncing, 1000, 250)))
	assert.Equal(t, "4096 bytes of the initial load (its size is not known yet)", loadProgress(s(api.SourceSyncing, 0, 4096)))
	assert.Equal(t, "", loadProgress(s(api.SourceSyncing, 0, 0)))
	assert.Equal(t, "", loadProgress(s(api.SourceInSync, 1000, 1000)))
}

// An address without a URL is sent as redis://address, which the service
// parses back to the same address.
func TestExpandedAddressParsesBack(t *testing.T) {
	for _, addr := range []string{"10.0.0.1:6379", "[::1]:6379", "[fd00::5]:100", "cache.internal:6380"} {
		got := expandReplicaSources([]replicaSourceModel{source(addr)}, nil)
		back, err := sourceURIAddress(got[0].URI)
		if assert.NoError(t, err, addr) {
			assert.Equal(t, addr, back)
		}
	}
}

// A URL whose host is the source's in another case is said so: adding a
// source with the URL's spelling, as a URL for no source is told to, would
// list one source twice.
func TestSourceURLInAnotherCase(t *testing.T) {
	ctx := context.Background()
	var diags diag.Diagnostics
	var creds credentialSet
	creds.add(ctx, path.Root("source_uris"), stringList(t, "redis://:hunter2-secret@Cache.Internal:6379"), &diags)
	checkSources([]replicaSourceModel{source("cache.internal:6379")}, true, creds, &diags)
	require.True(t, diags.HasError())
	text := diagSummaries(diags)
	assert.Contains(t, text, "Source URL spelled otherwise: A URL in source_uris or source_uris_wo is for Cache.Internal:6379, "+
		"and the source's address is cache.internal:6379: write the host the same way in both, in the same case")
	assert.NotContains(t, text, "Add a source")
	assert.NotContains(t, text, "hunter2")
}

// One server named twice, its IP address spelled two ways, is one source
// listed twice (two syncers would apply its writes twice), as a host name
// in two cases is; and a URL for a source spelled another way says so.
func TestSourceListedTwiceAsTwoSpellingsOfAnIP(t *testing.T) {
	ctx := context.Background()
	for _, pair := range [][2]string{
		{"[::1]:6379", "[0:0::1]:6379"},
		{"127.0.0.1:6379", "[::ffff:127.0.0.1]:6379"},
		{"[2001:db8::1]:6379", "[2001:DB8::1]:6379"},
		{"cache.internal:6379", "Cache.Internal:6379"},
	} {
		var diags diag.Diagnostics
		checkSources([]replicaSourceModel{source(pair[0]), source(pair[1])}, true, credentialSet{}, &diags)
		assert.Contains(t, diagSummaries(diags), "Source listed twice", "%s and %s", pair[0], pair[1])

		var creds credentialSet
		diags = nil
		creds.add(ctx, path.Root("source_uris"), stringList(t, "redis://:hunter2-secret@"+pair[1]), &diags)
		checkSources([]replicaSourceModel{source(pair[0])}, true, creds, &diags)
		text := diagSummaries(diags)
		assert.Contains(t, text, "Source URL spelled otherwise", "%s and %s", pair[0], pair[1])
		assert.NotContains(t, text, "Add a source")
	}
	var diags diag.Diagnostics
	checkSources([]replicaSourceModel{source("[::1]:6379"), source("[::2]:6379")}, true, credentialSet{}, &diags)
	assert.False(t, diags.HasError(), diagSummaries(diags))
}
