package app_test

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// A database given its own source URL with the host spelled another way
// that still reaches this host (0.0.0.0 and [::], which a connection takes
// for a local address, or localhost. with its final dot) is refused as
// itself, and so is a cycle through such a spelling: accepted, the update
// flushed the database's data, and only the syncer's run-time cycle check
// then stopped it.
func TestASourceThatIsTheDatabaseItselfInAnotherSpellingIsRefused(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "self", MemorySize: 16 << 20})
	other := mustCreate(t, i, api.CreateDatabaseRequest{Name: "other", MemorySize: 16 << 20})
	require.NoError(t, dbClient(t, db, db.AuthenticationRedisPass).Set(ctx(t), "kept", "v", 0).Err())
	own, err := url.Parse(sourceURL(t, i, db.UID))
	require.NoError(t, err)

	for _, host := range []string{"0.0.0.0", "::", "localhost.", "LocalHost."} {
		u := *own
		u.Host = net.JoinHostPort(host, own.Port())
		sources := []api.ReplicaSource{{URI: u.String()}}
		code, e := call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", db.UID), api.UpdateDatabaseRequest{ReplicaSources: &sources}, nil)
		assert.Equal(t, http.StatusBadRequest, code, "%s: %v", host, e)
		assert.Contains(t, e.Description, "is this database itself", host)

		// A cycle through that spelling: other replicates from db, and db
		// would replicate from other.
		code, e = call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", other.UID), api.UpdateDatabaseRequest{ReplicaSources: &sources}, nil)
		require.Equal(t, http.StatusOK, code, "%s: %v", host, e)
		ou, err := url.Parse(sourceURL(t, i, other.UID))
		require.NoError(t, err)
		ou.Host = net.JoinHostPort(host, ou.Port())
		back := []api.ReplicaSource{{URI: ou.String()}}
		code, e = call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", db.UID), api.UpdateDatabaseRequest{ReplicaSources: &back}, nil)
		assert.Equal(t, http.StatusBadRequest, code, "%s: %v", host, e)
		assert.Contains(t, e.Description, "replication cycle", host)
		none := []api.ReplicaSource{}
		code, e = call(t, i, "PUT", fmt.Sprintf("/v1/bdbs/%d", other.UID), api.UpdateDatabaseRequest{ReplicaSources: &none}, nil)
		require.Equal(t, http.StatusOK, code, "%s: %v", host, e)
	}
	got := getDB(t, i, db.UID)
	assert.Empty(t, got.ReplicaSources, "the database is no Replica Of")
	v, err := dbClient(t, db, db.AuthenticationRedisPass).Get(ctx(t), "kept").Result()
	require.NoError(t, err, "the database's data stays")
	assert.Equal(t, "v", v)
}
