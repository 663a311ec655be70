package app_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// Every change sent after the state file was deleted under the running
// service is refused with 503 (the service cannot record it: it is not
// the request that is wrong, nor the service broken), with a message that
// names the state file and what to do, and no secret; nothing of it is
// made, and the running databases keep running with their data.
func TestAChangeAfterTheStateFileWasDeletedIsRefusedAsUnavailable(t *testing.T) {
	i := servicetest.Start(t)
	const password = "app-password-of-kept"
	kept := mustCreate(t, i, api.CreateDatabaseRequest{Name: "kept", MemorySize: 16 << 20, AuthenticationRedisPass: password})
	require.NoError(t, dbClient(t, kept, password).Set(ctx(t), "k", "v", 0).Err())
	var url api.SourceURL
	code, e := call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d/source_url", kept.UID), nil, &url)
	require.Equal(t, http.StatusOK, code, "%v", e)
	statePath := filepath.Join(i.DataDir, "state.db")
	require.NoError(t, os.Remove(statePath))

	memory, name, newPassword := int64(32<<20), "renamed", "new-password-never-made"
	path := fmt.Sprintf("/v1/bdbs/%d", kept.UID)
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "lost", MemorySize: 16 << 20, AuthenticationRedisPass: "lost-password-1"}},
		{"PUT", path, api.UpdateDatabaseRequest{Name: &name, MemorySize: &memory, AuthenticationRedisPass: &newPassword}},
		{"DELETE", path, nil},
		{"POST", path + "/actions/regenerate_admin_password", nil},
		{"PUT", path + "/admin_password_keepers", api.AdminPasswordKeepersRequest{Keepers: map[string]string{"k": "v"}}},
	} {
		code, e := call(t, i, c.method, c.path, c.body, nil)
		assert.Equal(t, http.StatusServiceUnavailable, code, "%s %s: %v", c.method, c.path, e)
		assert.Equal(t, api.CodeUnavailable, e.Code, "%s %s", c.method, c.path)
		assert.Contains(t, e.Description, statePath, "%s %s: the message names the state file", c.method, c.path)
		assert.Contains(t, e.Description, "deleted or replaced", "%s %s", c.method, c.path)
		for _, secret := range []string{password, newPassword, "lost-password-1", url.URI} {
			assert.NotContains(t, e.Description, secret, "%s %s: the message holds a secret", c.method, c.path)
		}
	}

	// Nothing was made or changed, and the database serves as before.
	var dbs []api.Database
	code, e = call(t, i, "GET", "/v1/bdbs", nil, &dbs)
	require.Equal(t, http.StatusOK, code, "reads still answer: %v", e)
	require.Len(t, dbs, 1)
	got := dbs[0]
	assert.Equal(t, "kept", got.Name)
	assert.Equal(t, int64(16<<20), got.MemorySize)
	assert.Equal(t, password, got.AuthenticationRedisPass)
	assert.Equal(t, api.StatusActive, got.Status)
	var after api.SourceURL
	code, e = call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d/source_url", kept.UID), nil, &after)
	require.Equal(t, http.StatusOK, code, "%v", e)
	assert.Equal(t, url.URI, after.URI, "the admin password was not regenerated")
	v, err := dbClient(t, kept, password).Get(ctx(t), "k").Result()
	require.NoError(t, err, "the database still serves with its password")
	assert.Equal(t, "v", v)
	assert.Equal(t, []int{kept.UID}, serverUIDs(t, i.DataDir), "no files of another database")
	assert.False(t, strings.Contains(i.RecentLogs(), newPassword), "the log holds a password")
}
