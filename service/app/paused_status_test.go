package app_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// A sync paused or stopped is out of sync as soon as the update that
// paused it has answered, everywhere: right after it, the read said
// syncing (a new session starting) until the syncer noticed the pause.
func TestAPausedSyncIsOutOfSyncOnceTheUpdateAnswers(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	i := servicetest.Start(t)
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	path := fmt.Sprintf("/v1/bdbs/%d", dst.UID)
	inSync := func() error {
		var db api.Database
		call(t, i, "GET", path, nil, &db)
		if db.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("status %s", db.ReplicaSyncStatus)
		}
		return nil
	}
	for round := range 10 {
		redistest.Eventually(t, time.Minute, "in sync", inSync)
		state := []string{api.SyncPaused, api.SyncStopped}[round%2]
		code, e := call(t, i, "PUT", path, api.UpdateDatabaseRequest{ReplicaSync: &state}, nil)
		require.Equal(t, 200, code, "%v", e)
		e2 := statusEverywhere(t, i, dst.UID)
		assert.Equal(t, api.SourceOutOfSync, e2.get.Status, "round %d: read right after the sync was %s", round, state)
		assert.Equal(t, api.SourceOutOfSync, e2.metricState, "round %d: metrics right after the sync was %s", round, state)
		enabled := api.SyncEnabled
		code, e = call(t, i, "PUT", path, api.UpdateDatabaseRequest{ReplicaSync: &enabled}, nil)
		require.Equal(t, 200, code, "%v", e)
	}
}
