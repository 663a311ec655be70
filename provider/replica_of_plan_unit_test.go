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
