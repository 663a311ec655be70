package certs

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func leaf(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	require.NotNil(t, b, "a PEM certificate")
	c, err := x509.ParseCertificate(b.Bytes)
	require.NoError(t, err)
	return c
}

// A certificate issued by a start with another --advertise-host is issued
// again, from the same CA and with the same key, so that clients that check
// the host name accept it and pins of the key hold.
func TestLeafIsReissuedWhenItsNamesChange(t *testing.T) {
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir, "test CA")
	require.NoError(t, err)
	first, firstKey, err := ca.LoadOrIssue(dir, "proxy", []string{"127.0.0.1", "localhost"}, false)
	require.NoError(t, err)
	require.NoError(t, leaf(t, first).VerifyHostname("127.0.0.1"))

	again, againKey, err := ca.LoadOrIssue(dir, "proxy", []string{"127.0.0.1", "localhost"}, false)
	require.NoError(t, err)
	assert.Equal(t, first, again, "the same names: the stored certificate is kept")
	assert.Equal(t, firstKey, againKey)

	moved, movedKey, err := ca.LoadOrIssue(dir, "proxy", []string{"replicad.example", "localhost", "127.0.0.1"}, false)
	require.NoError(t, err)
	c := leaf(t, moved)
	assert.NoError(t, c.VerifyHostname("replicad.example"))
	assert.NoError(t, c.CheckSignatureFrom(ca.Cert), "issued by the same CA")
	assert.Equal(t, firstKey, movedKey, "the key is kept")
	onDisk, err := os.ReadFile(filepath.Join(dir, "proxy.pem"))
	require.NoError(t, err)
	assert.Equal(t, moved, onDisk, "the new certificate is the one stored")

	// A client certificate must keep its client usage.
	node, _, err := ca.LoadOrIssue(dir, "node", []string{"127.0.0.1"}, true)
	require.NoError(t, err)
	assert.Contains(t, leaf(t, node).ExtKeyUsage, x509.ExtKeyUsageClientAuth)
}

// Files that a crash of the first start left empty or cut short are made
// again where that is safe, and are otherwise a clear error.
func TestDamagedFilesAreMadeAgainOnlyWhenSafe(t *testing.T) {
	issued := []string{"api", "proxy", "node"}
	t.Run("a CA cut short before it signed anything is made anew", func(t *testing.T) {
		dir := t.TempDir()
		_, err := OpenCA(dir, "test CA", issued, nil)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.pem"), nil, 0o644))
		ca, err := OpenCA(dir, "test CA", issued, nil)
		require.NoError(t, err)
		assert.True(t, ca.Cert.IsCA)
	})
	t.Run("a CA key cut short after it signed is an error naming it", func(t *testing.T) {
		dir := t.TempDir()
		ca, err := OpenCA(dir, "test CA", issued, nil)
		require.NoError(t, err)
		_, _, err = ca.LoadOrIssue(dir, "proxy", []string{"127.0.0.1"}, false)
		require.NoError(t, err)
		key, err := os.ReadFile(filepath.Join(dir, "ca-key.pem"))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "ca-key.pem"), key[:len(key)/2], 0o600))
		_, err = OpenCA(dir, "test CA", issued, nil)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "ca-key.pem")
		assert.Contains(t, err.Error(), "backup")
		cut, _ := os.ReadFile(filepath.Join(dir, "ca-key.pem"))
		assert.Len(t, cut, len(key)/2, "the damaged file is left as it is")
	})
	t.Run("an empty leaf certificate is issued again from the CA", func(t *testing.T) {
		dir := t.TempDir()
		ca, err := OpenCA(dir, "test CA", issued, nil)
		require.NoError(t, err)
		_, key, err := ca.LoadOrIssue(dir, "proxy", []string{"127.0.0.1"}, false)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "proxy.pem"), nil, 0o644))
		certPEM, again, err := ca.LoadOrIssue(dir, "proxy", []string{"127.0.0.1"}, false)
		require.NoError(t, err)
		assert.NoError(t, leaf(t, certPEM).CheckSignatureFrom(ca.Cert))
		assert.Equal(t, key, again)
	})
	t.Run("an empty leaf key gets a new key and certificate", func(t *testing.T) {
		dir := t.TempDir()
		ca, err := OpenCA(dir, "test CA", issued, nil)
		require.NoError(t, err)
		_, _, err = ca.LoadOrIssue(dir, "node", []string{"127.0.0.1"}, true)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "node-key.pem"), nil, 0o600))
		certPEM, key, err := ca.LoadOrIssue(dir, "node", []string{"127.0.0.1"}, true)
		require.NoError(t, err)
		assert.NotEmpty(t, key)
		assert.NoError(t, leaf(t, certPEM).CheckSignatureFrom(ca.Cert))
	})
	t.Run("a pinned self-signed certificate cut short is an error", func(t *testing.T) {
		dir := t.TempDir()
		c, _, err := LoadOrCreateSelfSigned(dir, "syncer", "syncer")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "syncer.pem"), c[:len(c)/3], 0o644))
		_, _, err = LoadOrCreateSelfSigned(dir, "syncer", "syncer")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "syncer.pem")
	})
	t.Run("a key written without its certificate is certified", func(t *testing.T) {
		dir := t.TempDir()
		_, key, err := LoadOrCreateSelfSigned(dir, "syncer", "syncer")
		require.NoError(t, err)
		require.NoError(t, os.Remove(filepath.Join(dir, "syncer.pem")))
		_, again, err := LoadOrCreateSelfSigned(dir, "syncer", "syncer")
		require.NoError(t, err)
		assert.Equal(t, key, again)
	})
}

// Writes leave no temporary file behind, and secrets are never readable by
// others, not even while being written.
func TestWritesAreWholeAndPrivate(t *testing.T) {
	dir := t.TempDir()
	// A temporary file that a write cut short left is cleaned up.
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".ca-key.pem.tmp-123"), []byte("half"), 0o600))
	_, err := LoadOrCreateCA(dir, "test CA")
	require.NoError(t, err)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"ca.pem", "ca-key.pem"}, names)
	st, err := os.Stat(filepath.Join(dir, "ca-key.pem"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}
