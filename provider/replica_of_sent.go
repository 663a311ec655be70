package provider

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// Write-only source URLs are never in the plan or the state, so Terraform
// cannot see them change: a source database replaced at the same address,
// with a new password, planned an update (its address unknown until the
// apply) that the apply then dropped, and the sync stopped on the old
// password. The provider keeps a salted digest of the URLs it sent in the
// resource's private state, and sends them again whenever the
// configuration's differ, or are known only at apply time.
const sentURIsKey = "source_uris_wo_sent"

type sentURIs struct {
	Salt string `json:"salt"`
	Sum  string `json:"sum"`
}

type privateGetter interface {
	GetKey(context.Context, string) ([]byte, diag.Diagnostics)
}

// writeOnlyURIs returns the URLs of a source_uris_wo value; known is false
// when the list or one of them is known only at apply time.
func writeOnlyURIs(list types.List) (uris []string, known bool) {
	if list.IsUnknown() {
		return nil, false
	}
	for _, e := range list.Elements() {
		s, ok := e.(types.String)
		if !ok || s.IsUnknown() {
			return nil, false
		}
		uris = append(uris, s.ValueString())
	}
	return uris, true
}

// uriDigest is the HMAC-SHA256 of the URLs, in any order, under salt.
func uriDigest(salt []byte, uris []string) string {
	sorted := slices.Clone(uris)
	slices.Sort(sorted)
	mac := hmac.New(sha256.New, salt)
	mac.Write([]byte(strings.Join(sorted, "\n")))
	return hex.EncodeToString(mac.Sum(nil))
}

// sentURIsDiffer says whether the write-only URLs of the configuration may
// differ from those the provider sent last. Without a record (a resource
// imported, or applied by an earlier version), only source_uris_wo_version
// says so, as before.
func sentURIsDiffer(ctx context.Context, private privateGetter, list types.List) bool {
	if private == nil || list.IsNull() {
		return false
	}
	raw, _ := private.GetKey(ctx, sentURIsKey)
	var rec sentURIs
	if len(raw) == 0 || json.Unmarshal(raw, &rec) != nil {
		return false
	}
	salt, err := hex.DecodeString(rec.Salt)
	if err != nil {
		return false
	}
	uris, known := writeOnlyURIs(list)
	return !known || !hmac.Equal([]byte(uriDigest(salt, uris)), []byte(rec.Sum))
}

// recordSentURIs keeps the digest of the write-only URLs just sent, under a
// new random salt (nothing when the configuration has none).
func recordSentURIs(ctx context.Context, private privateSetter, list types.List, diags *diag.Diagnostics) {
	uris, known := writeOnlyURIs(list)
	if list.IsNull() || !known {
		diags.Append(private.SetKey(ctx, sentURIsKey, nil)...)
		return
	}
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	raw, err := json.Marshal(sentURIs{Salt: hex.EncodeToString(salt), Sum: uriDigest(salt, uris)})
	if err != nil {
		diags.AddError("Could not record the write-only source URLs sent", err.Error())
		return
	}
	diags.Append(private.SetKey(ctx, sentURIsKey, raw)...)
}
