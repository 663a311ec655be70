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
	"golang.org/x/crypto/argon2"

	"github.com/replicad/terraform-provider-redis/internal/api"
)

// Write-only source URLs are never in the plan or the state, so Terraform
// cannot see them change: a source database replaced at the same address,
// with a new password, planned an update (its address unknown until the
// apply) that the apply then dropped, and the sync stopped on the old
// password. The provider keeps a salted digest of the URLs it sent in the
// resource's private state, and sends them again whenever the
// configuration's differ, or are known only at apply time.
//
// The digest is argon2id, memory-hard, so that whoever reads the state
// cannot try a dictionary of passwords against it at the speed of a plain
// hash (a user-chosen requirepass, say). Records of earlier versions
// (HMAC-SHA256, no kdf) are still compared, and replaced at the next apply.
const sentURIsKey = "source_uris_wo_sent"

type sentURIs struct {
	KDF  string `json:"kdf,omitempty"` // "argon2id"; empty: HMAC-SHA256
	Salt string `json:"salt"`
	Sum  string `json:"sum"`
}

// The argon2id cost: about 20 ms and 19 MiB a digest, once per plan and
// apply of a resource with write-only URLs.
const (
	sentKDF        = "argon2id"
	argonTime      = 2
	argonMemoryKiB = 19 * 1024
)

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

// uriDigest is the digest of the URLs, in any order, under salt, with kdf:
// argon2id, or HMAC-SHA256 for a record of an earlier version.
func uriDigest(kdf string, salt []byte, uris []string) string {
	sorted := slices.Clone(uris)
	slices.Sort(sorted)
	joined := []byte(strings.Join(sorted, "\n"))
	if kdf == sentKDF {
		return hex.EncodeToString(argon2.IDKey(joined, salt, argonTime, argonMemoryKiB, 1, 32))
	}
	mac := hmac.New(sha256.New, salt)
	mac.Write(joined)
	return hex.EncodeToString(mac.Sum(nil))
}

// sentURIsDiffer says whether the write-only URLs of the configuration may
// differ from those the provider sent last. Without a record (a resource
// imported, or applied by an earlier version), only source_uris_wo_version
// says so, as before.
func sentURIsDiffer(ctx context.Context, private privateGetter, list types.List) bool {
	if list.IsNull() {
		return false
	}
	uris, known := writeOnlyURIs(list)
	differs, recorded := recordedDigestDiffers(ctx, private, sentURIsKey, uris)
	return recorded && (!known || differs)
}

// recordSentURIs keeps the digest of the write-only URLs just sent, under a
// new random salt (nothing when the configuration has none).
func recordSentURIs(ctx context.Context, private privateSetter, list types.List, diags *diag.Diagnostics) {
	uris, known := writeOnlyURIs(list)
	if list.IsNull() || !known {
		uris = nil
	} else {
		uris = append([]string{}, uris...)
	}
	recordDigest(ctx, private, sentURIsKey, uris, "the write-only source URLs sent", diags)
}

// recordDigest keeps under key, in the private state, the digest of values
// (in any order) under a new random salt; nil values remove the record.
// what names them in an error.
func recordDigest(ctx context.Context, private privateSetter, key string, values []string, what string, diags *diag.Diagnostics) {
	if values == nil {
		diags.Append(private.SetKey(ctx, key, nil)...)
		return
	}
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	raw, err := json.Marshal(sentURIs{KDF: sentKDF, Salt: hex.EncodeToString(salt), Sum: uriDigest(sentKDF, salt, values)})
	if err != nil {
		diags.AddError("Could not record "+what, err.Error())
		return
	}
	diags.Append(private.SetKey(ctx, key, raw)...)
}

// recordedDigestDiffers says whether values differ from those whose digest
// recordDigest kept under key; recorded is false without a (readable)
// record, and differs is then false too.
func recordedDigestDiffers(ctx context.Context, private privateGetter, key string, values []string) (differs, recorded bool) {
	if private == nil {
		return false, false
	}
	raw, _ := private.GetKey(ctx, key)
	var rec sentURIs
	if len(raw) == 0 || json.Unmarshal(raw, &rec) != nil {
		return false, false
	}
	salt, err := hex.DecodeString(rec.Salt)
	if err != nil {
		return false, false
	}
	return !hmac.Equal([]byte(uriDigest(rec.KDF, salt, values)), []byte(rec.Sum)), true
}

// appliedURIsKey holds a salted digest of every source URL the service was
// given with write-only URLs; the service returns them as given. A refresh
// that finds other URLs (credentials changed through the REST API, which
// Terraform cannot compare with a write-only value) marks the write-only
// URLs as differing from those sent (markSentURIsChanged), so that the plan
// sends them again, with a warning, as it does when the configuration's
// change.
const appliedURIsKey = "source_uris_applied"

// recordAppliedURIs keeps the digest of the URLs of list, the sources just
// sent, when the configuration has write-only URLs (nothing otherwise).
func recordAppliedURIs(ctx context.Context, private privateSetter, wo types.List, list []api.ReplicaSource, diags *diag.Diagnostics) {
	var uris []string
	if !wo.IsNull() {
		uris = append([]string{}, list2uris(list)...)
	}
	recordDigest(ctx, private, appliedURIsKey, uris, "the source URLs sent", diags)
}

// appliedURIsChanged says whether the service's source URLs differ from
// those recorded by recordAppliedURIs; false without a record.
func appliedURIsChanged(ctx context.Context, private privateGetter, in []api.ReplicaSourceStatus) bool {
	uris := make([]string, len(in))
	for i, s := range in {
		uris[i] = s.URI
	}
	differs, _ := recordedDigestDiffers(ctx, private, appliedURIsKey, uris)
	return differs
}

// markSentURIsChanged makes sentURIsDiffer report that the write-only URLs
// differ from those sent, whatever they are, until an apply sends them.
func markSentURIsChanged(ctx context.Context, private privateSetter, diags *diag.Diagnostics) {
	raw, err := json.Marshal(sentURIs{KDF: sentKDF, Salt: hex.EncodeToString([]byte("changed")), Sum: "changed outside Terraform"})
	if err != nil {
		diags.AddError("Could not record the source URLs changed", err.Error())
		return
	}
	diags.Append(private.SetKey(ctx, sentURIsKey, raw)...)
}
