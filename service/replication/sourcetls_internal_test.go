package replication

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
)

// A record stored before the API refused a rediss:// source without
// encryption is not dialed in plain text: its password would go in the
// clear to whatever answers. The sync stops, saying what to set.
func TestARedissSourceWithoutEncryptionIsNotDialedInPlainText(t *testing.T) {
	m := &Manager{}
	cfg, err := m.sourceTLS(api.ReplicaSource{URI: "rediss://admin:s3cret-pw@source.example:6379"})
	require.Error(t, err)
	assert.Nil(t, cfg)
	assert.Contains(t, err.Error(), "encryption is off")
	assert.NotContains(t, err.Error(), "s3cret-pw", "the password never shows")

	cfg, err = m.sourceTLS(api.ReplicaSource{URI: "redis://admin:s3cret-pw@source.example:6379"})
	require.NoError(t, err, "a redis:// source without encryption is plain text, as asked")
	assert.Nil(t, cfg)
}
