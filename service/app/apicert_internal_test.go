package app

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/service/certs"
)

// The API's certificate names the --listen host, also when it is a prefix of
// the advertised one (127.0.0.2 beside 127.0.0.21), and a certificate from a
// start with other hosts is issued again.
func TestAPICertificateNamesTheListenHost(t *testing.T) {
	dir := t.TempDir()
	ca, err := certs.LoadOrCreateCA(dir, "test CA")
	require.NoError(t, err)
	cert, err := apiCertificate(Config{DataDir: dir, Listen: "127.0.0.2:9443", AdvertiseHost: "127.0.0.21"}, ca)
	require.NoError(t, err)
	require.NotNil(t, cert.Leaf)
	assert.NoError(t, cert.Leaf.VerifyHostname("127.0.0.2"))
	assert.NoError(t, cert.Leaf.VerifyHostname("127.0.0.21"))

	// The next start listens elsewhere and advertises a name.
	cert, err = apiCertificate(Config{DataDir: dir, Listen: "10.1.2.3:9443", AdvertiseHost: "replicad.example"}, ca)
	require.NoError(t, err)
	assert.NoError(t, cert.Leaf.VerifyHostname("10.1.2.3"))
	assert.NoError(t, cert.Leaf.VerifyHostname("replicad.example"))
}

// The databases' certificates name the --listen address too, where the
// databases listen, but not an address that means every interface.
func TestDatabaseCertificatesNameTheListenAddress(t *testing.T) {
	assert.Equal(t, []string{"db.example", "localhost", "127.0.0.1", "10.1.2.3"}, databaseHosts(Config{Listen: "10.1.2.3:9443", AdvertiseHost: "db.example"}))
	assert.Equal(t, []string{"db.example", "localhost", "127.0.0.1"}, databaseHosts(Config{Listen: "0.0.0.0:9443", AdvertiseHost: "db.example"}))
	assert.Equal(t, []string{"db.example", "localhost", "127.0.0.1"}, databaseHosts(Config{Listen: ":9443", AdvertiseHost: "db.example"}))
	assert.Len(t, databaseHosts(Config{Listen: "127.0.0.1:9443", AdvertiseHost: "127.0.0.1"}), 3, "loopback is named already")
}
