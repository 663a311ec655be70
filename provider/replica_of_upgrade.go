package provider

import (
	"context"
	"encoding/json"

	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"

	"github.com/replicad/terraform-provider-redis/internal/api"
)

// replicaOfSchemaVersion is the version of the redis_replica_of schema.
// Version 1 gave `encryption`, `compression` and `read_from` of each source,
// and `fail_after`, their defaults in the schema (Computed): version 0 wrote
// null for a default left out of the configuration, and the service's
// value when it was written out, so that one spelling planned an update
// that changed nothing after the other, or after an import.
const replicaOfSchemaVersion = 1

var _ resource.ResourceWithUpgradeState = (*replicaOfResource)(nil)

func (r *replicaOfResource) UpgradeState(context.Context) map[int64]resource.StateUpgrader {
	return map[int64]resource.StateUpgrader{
		// Without a prior schema: the change is to values, not to the
		// attributes, so the JSON of the state is edited as it is.
		0: {StateUpgrader: upgradeReplicaOfStateV0},
	}
}

// upgradeReplicaOfStateV0 fills the defaults that a version 0 state left
// null, so that a plan without a refresh (-refresh=false) shows no change
// either.
func upgradeReplicaOfStateV0(_ context.Context, req resource.UpgradeStateRequest, resp *resource.UpgradeStateResponse) {
	if req.RawState == nil || len(req.RawState.JSON) == 0 {
		resp.Diagnostics.AddError("Unable to upgrade the state of a Replica Of", "The prior state (version 0) holds no JSON.")
		return
	}
	var state map[string]any
	if err := json.Unmarshal(req.RawState.JSON, &state); err != nil {
		// The error names no value: encoding/json says where, not what.
		resp.Diagnostics.AddError("Unable to upgrade the state of a Replica Of", "read the prior state (version 0): "+err.Error())
		return
	}
	upgradeReplicaOfDefaultsV0(state)
	out, err := json.Marshal(state)
	if err != nil {
		resp.Diagnostics.AddError("Unable to upgrade the state of a Replica Of", "write the upgraded state: "+err.Error())
		return
	}
	resp.DynamicValue = &tfprotov6.DynamicValue{JSON: out}
}

// upgradeReplicaOfDefaultsV0 sets the null defaults of a version 0 state,
// as decoded from its JSON, to their values.
func upgradeReplicaOfDefaultsV0(state map[string]any) {
	if v, ok := state["fail_after"]; !ok || v == nil {
		state["fail_after"] = defaultFailAfterString
	}
	sources, _ := state["source"].([]any)
	for _, s := range sources {
		src, ok := s.(map[string]any)
		if !ok {
			continue
		}
		for name, def := range map[string]any{"encryption": false, "compression": 0, "read_from": api.ReadFromMaster} {
			if v, ok := src[name]; !ok || v == nil {
				src[name] = def
			}
		}
	}
}
