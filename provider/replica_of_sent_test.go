package provider

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type memPrivate map[string][]byte

func (m memPrivate) GetKey(_ context.Context, k string) ([]byte, diag.Diagnostics) { return m[k], nil }
func (m memPrivate) SetKey(_ context.Context, k string, v []byte) diag.Diagnostics {
	if len(v) == 0 {
		delete(m, k)
	} else {
		m[k] = v
	}
	return nil
}

func woList(uris ...string) types.List {
	elems := make([]attr.Value, len(uris))
	for i, u := range uris {
		elems[i] = types.StringValue(u)
	}
	return types.ListValueMust(types.StringType, elems)
}

func TestSentURIsDiffer(t *testing.T) {
	ctx := context.Background()
	priv := memPrivate{}
	first := woList("redis://admin:pw-1@10.0.0.1:6379", "redis://:pw-2@10.0.0.2:6379")
	assert.False(t, sentURIsDiffer(ctx, priv, first), "nothing recorded (imported, or applied by an earlier version): only the version counts")

	var diags diag.Diagnostics
	recordSentURIs(ctx, priv, first, &diags)
	require.False(t, diags.HasError())
	assert.NotContains(t, string(priv[sentURIsKey]), "pw-1", "the private state holds a digest, not the URLs")
	var rec sentURIs
	require.NoError(t, json.Unmarshal(priv[sentURIsKey], &rec))
	assert.Len(t, rec.Salt, 32)

	assert.False(t, sentURIsDiffer(ctx, priv, first))
	assert.False(t, sentURIsDiffer(ctx, priv, woList("redis://:pw-2@10.0.0.2:6379", "redis://admin:pw-1@10.0.0.1:6379")), "order has no meaning")
	assert.True(t, sentURIsDiffer(ctx, priv, woList("redis://admin:pw-NEW@10.0.0.1:6379", "redis://:pw-2@10.0.0.2:6379")), "a new password")
	assert.True(t, sentURIsDiffer(ctx, priv, woList("redis://admin:pw-1@10.0.0.1:6379")), "one URL less")
	assert.True(t, sentURIsDiffer(ctx, priv, types.ListUnknown(types.StringType)), "known only at apply time")
	assert.True(t, sentURIsDiffer(ctx, priv, types.ListValueMust(types.StringType, []attr.Value{types.StringUnknown()})), "one URL known only at apply time")
	assert.False(t, sentURIsDiffer(ctx, priv, types.ListNull(types.StringType)), "no write-only URLs in the configuration")

	// A second record of the same URLs uses a new salt: equal URLs never
	// show as equal digests across resources or applies.
	before := rec.Sum
	recordSentURIs(ctx, priv, first, &diags)
	require.NoError(t, json.Unmarshal(priv[sentURIsKey], &rec))
	assert.NotEqual(t, before, rec.Sum)

	recordSentURIs(ctx, priv, types.ListNull(types.StringType), &diags)
	assert.Empty(t, priv[sentURIsKey], "write-only URLs removed: the record goes too")

	priv[sentURIsKey] = []byte("not json")
	assert.False(t, sentURIsDiffer(ctx, priv, first), "a record it cannot read counts as none")
}

// The digest is argon2id, not a fast hash that a reader of the state could
// try a dictionary against; a record of an earlier version (HMAC-SHA256, no
// kdf) is still compared.
func TestSentURIsDigestIsMemoryHard(t *testing.T) {
	ctx := context.Background()
	priv := memPrivate{}
	uris := woList("redis://:user-chosen@10.0.0.1:6379")
	var diags diag.Diagnostics
	recordSentURIs(ctx, priv, uris, &diags)
	var rec sentURIs
	require.NoError(t, json.Unmarshal(priv[sentURIsKey], &rec))
	assert.Equal(t, "argon2id", rec.KDF)
	salt, err := hex.DecodeString(rec.Salt)
	require.NoError(t, err)
	assert.NotEqual(t, uriDigest("", salt, []string{"redis://:user-chosen@10.0.0.1:6379"}), rec.Sum, "not the HMAC")

	old, err := json.Marshal(sentURIs{Salt: rec.Salt, Sum: uriDigest("", salt, []string{"redis://:user-chosen@10.0.0.1:6379"})})
	require.NoError(t, err)
	priv[sentURIsKey] = old
	assert.False(t, sentURIsDiffer(ctx, priv, uris), "an earlier version's record of the same URLs")
	assert.True(t, sentURIsDiffer(ctx, priv, woList("redis://:other@10.0.0.1:6379")), "an earlier version's record of other URLs")
}
