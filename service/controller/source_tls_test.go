package controller

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/store"
)

// A rediss:// URL asks for TLS, but the syncer connects as encryption says:
// without encryption it would send the source's password in plain text to
// whatever answers at that address. The API refuses it, as the provider
// does, with an error that does not show the password.
func TestValidateSourcesRefusesARedissURLWithoutEncryption(t *testing.T) {
	c := &Controller{cfg: Config{AdvertiseHost: "10.1.1.1"}}
	d := store.Database{UID: 5, Name: "d", Port: 500, ReplicationPort: 501, ReplicaSources: []api.ReplicaSource{
		{URI: "rediss://admin:s3cret-pw@cache.example.com:6380"},
	}}
	err := c.validateSources(d, nil)
	require.Error(t, err, "a rediss:// source without encryption")
	require.Contains(t, err.Error(), "rediss://")
	require.Contains(t, err.Error(), "encryption")
	require.NotContains(t, err.Error(), "s3cret-pw")
}
