package replication_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// writeServerCert writes a self-signed server certificate for 127.0.0.1,
// valid from notBefore to notAfter, as name.pem and name-key.pem in dir;
// it returns the certificate's PEM.
func writeServerCert(t *testing.T, dir, name string, notBefore, notAfter time.Time) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore, NotAfter: notAfter, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".pem"), certPEM, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+"-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return string(certPEM)
}

// An open-source Redis source whose certificate, pinned as server_cert,
// has expired is refused with a last_error that says it expired (it was
// trusted: a pin ignored the dates). Once the source has a new certificate
// and server_cert names it, the sync starts; a later rotation of the
// source's certificate, followed by server_cert, continues the stream
// without a reload, and the destination equals the source key by key.
func TestAnExpiredPinnedSourceCertificateIsRefusedThenRotated(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	expired := writeServerCert(t, dir, "expired", now.Add(-48*time.Hour), now.Add(-time.Hour))
	tlsPort := redistest.FreePort(t)
	oss := redistest.Start(t, "--requirepass", "oss-secret", "--tls-port", fmt.Sprint(tlsPort),
		"--tls-cert-file", filepath.Join(dir, "expired.pem"), "--tls-key-file", filepath.Join(dir, "expired-key.pem"),
		"--tls-auth-clients", "no")
	sc := oss.Client()
	ctx := redistest.Ctx(t)
	writeDataset(t, sc, "", 50)
	a := newAPI(t, servicetest.Start(t))
	uri := fmt.Sprintf("rediss://:oss-secret@127.0.0.1:%d", tlsPort)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{
		URI: uri, Encryption: true, ServerCert: expired}}})
	db := a.waitSourceError(dst.UID, "the source presents the server_cert given for this source, but it expired on")
	assert.NotContains(t, db.ReplicaSources[0].LastError, "oss-secret")

	rotate := func(name string) {
		t.Helper()
		pemText := writeServerCert(t, dir, name, now.Add(-time.Hour), now.Add(24*time.Hour))
		require.NoError(t, sc.Do(ctx, "CONFIG", "SET", "tls-cert-file", filepath.Join(dir, name+".pem"), "tls-key-file", filepath.Join(dir, name+"-key.pem")).Err())
		sources := []api.ReplicaSource{{URI: uri, Encryption: true, ServerCert: pemText}}
		a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &sources})
	}
	rotate("first")
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	eventuallyEqual(t, time.Minute, dc, sc)
	full := metric(a.metrics(), "replicad_replica_full_syncs_total")

	rotate("second")
	require.NoError(t, sc.Set(ctx, "after-rotation", "1", time.Hour).Err())
	eventuallyEqual(t, time.Minute, dc, sc)
	a.waitInSync(dst.UID, time.Minute)
	assert.Equal(t, full, metric(a.metrics(), "replicad_replica_full_syncs_total"), "the rotation reloaded the destination")
}
