package provider

import (
	"context"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/stretchr/testify/assert"

	"github.com/replicad/terraform-provider-redis/internal/api"
)

func sourceSet(addrs ...string) types.Set {
	var elems []attr.Value
	for _, a := range addrs {
		elems = append(elems, types.ObjectValueMust(replicaSourceAttrTypes, map[string]attr.Value{
			"address": types.StringValue(a), "encryption": types.BoolNull(),
			"server_cert": types.StringNull(), "compression": types.Int64Null(), "read_from": types.StringNull(),
		}))
	}
	return types.SetValueMust(types.ObjectType{AttrTypes: replicaSourceAttrTypes}, elems)
}

// A source added, with or without a URL, is "added", not "new
// credentials"; a URL without credentials is no credential change.
func TestFlushWarningNamesAddedSourcesOnce(t *testing.T) {
	ctx := context.Background()
	r := &replicaOfResource{}
	state := replicaOfResourceModel{
		DatabaseID: types.StringValue("3"), Source: sourceSet("127.0.0.1:23780"),
		SourceURIs: stringSet(t, "redis://:pw-one@127.0.0.1:23780"), SourceURIsWOVersion: types.Int64Null(),
		Sync: types.StringValue(api.SyncEnabled),
	}
	for name, tc := range map[string]struct {
		uris      types.Set
		want, not []string
	}{
		"an added source whose URL has no password": {
			uris: stringSet(t, "redis://:pw-one@127.0.0.1:23780", "redis://127.0.0.1:23781"),
			want: []string{"added: 127.0.0.1:23781"}, not: []string{"new credentials"},
		},
		"an added source with a password": {
			uris: stringSet(t, "redis://:pw-one@127.0.0.1:23780", "redis://:pw-two@127.0.0.1:23781"),
			want: []string{"added: 127.0.0.1:23781"}, not: []string{"new credentials"},
		},
		"an added source and new credentials for another": {
			uris: stringSet(t, "redis://:pw-three@127.0.0.1:23780", "redis://127.0.0.1:23781"),
			want: []string{"added: 127.0.0.1:23781", "new credentials for 127.0.0.1:23780"},
			not:  []string{"new credentials for 127.0.0.1:23780, 127.0.0.1:23781", "pw-"},
		},
	} {
		plan := state
		plan.Source = sourceSet("127.0.0.1:23780", "127.0.0.1:23781")
		plan.SourceURIs = tc.uris
		ch := planReplicaChange(plan, &state)
		_, detail, _, _ := r.flushWarning(ctx, plan, &state, ch)
		for _, w := range tc.want {
			assert.Contains(t, detail, w, name)
		}
		for _, n := range tc.not {
			assert.NotContains(t, detail, n, name)
		}
	}
}

// A URL without credentials in source_uris is what an import cannot read
// back (the service has the same URL for a source without one): the plan
// warns about it, naming the address only.
func TestURIsWithoutCredentials(t *testing.T) {
	ctx := context.Background()
	got := urisWithoutCredentials(ctx, stringSet(t, "redis://:pw-secret@127.0.0.1:23780", "redis://127.0.0.1:23781", "redis://user:pw@10.0.0.1:1"))
	assert.Equal(t, []string{"127.0.0.1:23781"}, got)
	assert.Empty(t, urisWithoutCredentials(ctx, stringSet(t, "redis://:pw-secret@127.0.0.1:23780")))
	assert.Empty(t, urisWithoutCredentials(ctx, types.SetNull(types.StringType)))
	assert.Empty(t, urisWithoutCredentials(ctx, types.SetUnknown(types.StringType)))
}

// A source that keeps its place but whose URL with credentials is gone from
// the configuration (or replaced by one without credentials) is named; one
// given its URL in source_uris_wo, or removed, or whose URL is not known
// yet, is not.
func TestCredentialsDropped(t *testing.T) {
	ctx := context.Background()
	const a, b = "10.0.0.1:6379", "10.0.0.2:6379"
	state := replicaOfResourceModel{
		Source:     sourceSet(a, b),
		SourceURIs: stringSet(t, "redis://:pw-a@"+a, "redis://:pw-b@"+b),
	}
	nullWO := types.ListNull(types.StringType)
	for name, tc := range map[string]struct {
		source types.Set
		uris   types.Set
		wo     types.List
		want   []string
	}{
		"generated config":           {sourceSet(a, b), types.SetNull(types.StringType), nullWO, []string{a, b}},
		"one left":                   {sourceSet(a, b), stringSet(t, "redis://:pw-a@"+a), nullWO, []string{b}},
		"without credentials":        {sourceSet(a, b), stringSet(t, "redis://:pw-a@"+a, "redis://"+b), nullWO, []string{b}},
		"moved to write-only":        {sourceSet(a, b), types.SetNull(types.StringType), woList("redis://:pw-a@"+a, "redis://:pw-b@"+b), nil},
		"removed with its URL":       {sourceSet(a), stringSet(t, "redis://:pw-a@"+a), nullWO, nil},
		"URLs unknown":               {sourceSet(a, b), types.SetUnknown(types.StringType), nullWO, nil},
		"write-only unknown":         {sourceSet(a, b), types.SetNull(types.StringType), types.ListUnknown(types.StringType), nil},
		"addresses unknown":          {types.SetUnknown(types.ObjectType{AttrTypes: replicaSourceAttrTypes}), types.SetNull(types.StringType), nullWO, nil},
		"new password, same address": {sourceSet(a, b), stringSet(t, "redis://:new-a@"+a, "redis://:new-b@"+b), nullWO, nil},
	} {
		plan := replicaOfResourceModel{Source: tc.source, SourceURIs: tc.uris}
		got := credentialsDropped(ctx, state, plan, tc.wo)
		if tc.want == nil {
			assert.Empty(t, got, name)
		} else {
			assert.Equal(t, tc.want, got, name)
		}
	}
}
