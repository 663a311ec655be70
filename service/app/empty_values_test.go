package app_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// An update that gives tls_mode or replica_sync as "" (an unset variable
// rendered as a string) is refused, and changes nothing: "" turned the
// TLS of a replica_ssl database off, and enabled a paused sync (a stopped
// one was flushed and loaded again).
func TestAnUpdateWithAnEmptyModeIsRefused(t *testing.T) {
	i := servicetest.Start(t)
	src := mustCreate(t, i, api.CreateDatabaseRequest{Name: "src", MemorySize: 16 << 20})
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dest", MemorySize: 16 << 20, TLSMode: api.TLSReplicaSSL,
		ReplicaSources: []api.ReplicaSource{{URI: sourceURL(t, i, src.UID)}}, ReplicaSync: api.SyncPaused})
	require.Equal(t, api.TLSReplicaSSL, db.TLSMode)
	require.Equal(t, api.SyncPaused, db.ReplicaSync)

	empty := ""
	path := fmt.Sprintf("/v1/bdbs/%d", db.UID)
	for _, c := range []struct {
		req  api.UpdateDatabaseRequest
		says string
	}{
		{api.UpdateDatabaseRequest{TLSMode: &empty}, `tls_mode "" is invalid`},
		{api.UpdateDatabaseRequest{ReplicaSync: &empty}, `replica_sync "" is invalid`},
	} {
		code, e := call(t, i, "PUT", path, c.req, nil)
		assert.Equal(t, http.StatusBadRequest, code, "%v", e)
		assert.Contains(t, e.Description, c.says)
	}
	got := getDB(t, i, db.UID)
	assert.Equal(t, api.TLSReplicaSSL, got.TLSMode, "TLS stays as it was")
	assert.Equal(t, api.SyncPaused, got.ReplicaSync, "the sync stays paused")
	assert.Equal(t, db.ReplicaGeneration, got.ReplicaGeneration, "nothing is reloaded")
}
