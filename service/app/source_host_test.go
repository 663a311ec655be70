package app_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// A source URL's host may be percent-encoded: "a%FF" decodes to bytes that
// are not UTF-8, and the syncer's metric labels panicked on them, taking
// the whole service down (and down again at each start, the source being
// stored). Such a host, and any that is neither a name nor an IP address,
// is refused, and the service keeps serving.
func TestSourceHostThatIsNotANameIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-replicad")
	}
	i := servicetest.Start(t)
	other := mustCreate(t, i, api.CreateDatabaseRequest{Name: "plain", MemorySize: 64 << 20})
	for _, uri := range []string{"redis://a%FF:6379", "redis://:pw-secret@h%C3%A9:6379", `redis://<img>"x':6379`} {
		code, e := call(t, i, "POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20,
			ReplicaSources: []api.ReplicaSource{{URI: uri}}}, nil)
		assert.Equal(t, 400, code, "create with source %s: %+v", uri, e)
		assert.Contains(t, e.Description, "host", "the error says what is wrong")
		assert.NotContains(t, e.Description, "pw-secret")

		on := []api.ReplicaSource{{URI: uri}}
		code, e = call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", other.UID), api.UpdateDatabaseRequest{ReplicaSources: &on}, nil)
		assert.Equal(t, 400, code, "update with source %s: %+v", uri, e)
	}
	code, body := i.Request(t, i.Username, i.Password, "GET", "/metrics", nil)
	require.Equal(t, 200, code)
	assert.True(t, strings.Contains(string(body), "replicad_database_up{"), "the service still serves its metrics")
	var dbs []api.Database
	call(t, i, "GET", "/v1/bdbs", nil, &dbs)
	require.Len(t, dbs, 1, "nothing was created")
	assert.Empty(t, dbs[0].ReplicaSources, "nothing was changed")
}
