package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
)

// oldServiceAPI answers PUT /v1/bdbs/1 as a redis-replicad older than
// replica_no_flush: its decoder refuses fields it does not know, in the
// words of the service's decodeBody.
type oldServiceAPI struct {
	bodies []string
}

func (o *oldServiceAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	o.bodies = append(o.bodies, string(body))
	var old struct {
		ReplicaSources *[]api.ReplicaSource `json:"replica_sources,omitempty"`
		ReplicaSync    *string              `json:"replica_sync,omitempty"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&old); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(api.Error{Code: api.CodeInvalidRequest, Description: "malformed JSON body: " + err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(api.Database{UID: 1, ReplicaSync: api.SyncEnabled})
}

// A provider newer than its service still applies: the service refuses
// replica_no_flush as unknown, the update goes again without it, and the
// user is warned that this service cannot refuse a flush the plan did not
// show. Without the fallback every update failed until the service was
// upgraded.
func TestAnUpdateReachesAServiceOlderThanReplicaNoFlush(t *testing.T) {
	o := &oldServiceAPI{}
	r := &replicaOfResource{client: newFakeClient(t, o)}
	yes, enabled := true, api.SyncEnabled
	var diags diag.Diagnostics
	require.NoError(t, r.updateNoFlush(context.Background(), 1, api.UpdateDatabaseRequest{ReplicaSync: &enabled, ReplicaNoFlush: &yes}, &diags))
	require.Len(t, o.bodies, 2, "sent again without the field")
	assert.Contains(t, o.bodies[0], `"replica_no_flush":true`)
	assert.NotContains(t, o.bodies[1], "replica_no_flush")
	assert.Contains(t, o.bodies[1], `"replica_sync":"enabled"`)
	require.Len(t, diags, 1)
	assert.Equal(t, diag.SeverityWarning, diags[0].Severity())
	assert.Contains(t, diags[0].Detail(), "Upgrade redis-replicad")

	// Any other refusal is the answer, not sent twice.
	o.bodies = nil
	diags = nil
	err := r.updateNoFlush(context.Background(), 1, api.UpdateDatabaseRequest{ReplicaSync: &enabled, Name: &enabled}, &diags)
	require.Error(t, err)
	assert.Len(t, o.bodies, 1)
	assert.Empty(t, diags)
}
