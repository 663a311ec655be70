package replication

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/store"
)

// A source stored by an earlier version whose URL the parser now refuses
// has no syncer: its status must say so, not read as a sync in progress.
func TestStatusOfAStoredSourceThatNoLongerParses(t *testing.T) {
	m := &Manager{dests: map[int]*destination{}}
	d := store.Database{UID: 7, ReplicaSources: []api.ReplicaSource{{URI: "redis://:pw-secret@a%FF:6379"}}}
	m.dests[d.UID] = &destination{m: m, db: d}

	got := m.Status(d)
	require.Len(t, got, 1)
	assert.Equal(t, api.SourceOutOfSync, got[0].Status)
	assert.Contains(t, got[0].LastError, "no longer valid")
	assert.NotContains(t, got[0].LastError, "pw-secret")
}
