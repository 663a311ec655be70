package tlspin_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/tlspin"
)

type keyPair struct {
	cert *x509.Certificate
	pem  string
	tls  tls.Certificate
}

// issue makes a certificate signed by parent (self-signed when nil).
func issue(t *testing.T, name string, isCA bool, parent *keyPair, parentKey *ecdsa.PrivateKey) (keyPair, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: isCA, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent.cert, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return keyPair{cert: c, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		tls: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}, key
}

// handshake runs a TLS handshake over loopback; the client's error.
func handshake(t *testing.T, server, client *tls.Config) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		tc := tls.Server(c, server)
		if tc.Handshake() == nil {
			_, _ = tc.Write([]byte("x")) // the client reads it: a refused client cert shows there
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Read(make([]byte, 1))
	return err
}

func TestTrustServerPinsOrChainsToTheGivenCertificate(t *testing.T) {
	ca, caKey := issue(t, "ca", true, nil, nil)
	leaf, _ := issue(t, "source", false, &ca, caKey)
	other, _ := issue(t, "other", false, nil, nil)
	server := &tls.Config{Certificates: []tls.Certificate{leaf.tls}}
	for name, c := range map[string]struct {
		trust string
		ok    bool
	}{"the very certificate": {leaf.pem, true}, "its CA": {ca.pem, true}, "another certificate": {other.pem, false}} {
		client := &tls.Config{}
		require.NoError(t, tlspin.TrustServer(client, c.trust))
		err := handshake(t, server, client)
		if c.ok {
			assert.NoError(t, err, name)
		} else {
			assert.ErrorContains(t, err, "not trusted", name)
		}
	}
	assert.Error(t, tlspin.TrustServer(&tls.Config{}, "not a certificate"))
}

func TestRequireClientCertsAdmitsOnlyThePinned(t *testing.T) {
	srv, _ := issue(t, "endpoint", false, nil, nil)
	allowed, _ := issue(t, "syncer", false, nil, nil)
	stranger, _ := issue(t, "stranger", false, nil, nil)
	server := &tls.Config{Certificates: []tls.Certificate{srv.tls}}
	require.NoError(t, tlspin.RequireClientCerts(server, []string{allowed.pem}))
	trust := func(cert *keyPair) *tls.Config {
		c := &tls.Config{}
		require.NoError(t, tlspin.TrustServer(c, srv.pem))
		if cert != nil {
			c.Certificates = []tls.Certificate{cert.tls}
		}
		return c
	}
	assert.NoError(t, handshake(t, server, trust(&allowed)))
	assert.Error(t, handshake(t, server, trust(&stranger)))
	assert.Error(t, handshake(t, server, trust(nil)))
	assert.Error(t, tlspin.RequireClientCerts(&tls.Config{}, []string{"junk"}))
}

func TestParseCertificateSaysWhy(t *testing.T) {
	c, _ := issue(t, "unit", false, nil, nil)
	_, err := tlspin.ParseCertificate(c.pem)
	require.NoError(t, err)
	for text, want := range map[string]string{
		"":                            "not PEM",
		c.pem + c.pem:                 "more than one PEM block",
		c.pem + "subject=CN = unit\n": "text follows the certificate's PEM block",
		"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n": `"PRIVATE KEY", not a CERTIFICATE`,
		"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n": "does not parse",
	} {
		_, err := tlspin.ParseCertificate(text)
		assert.ErrorContains(t, err, want)
	}
}

// FuzzParseCertificate: any text gets a certificate or an error, never a
// panic; a certificate it accepts encodes back to one PEM block.
func FuzzParseCertificate(f *testing.F) {
	f.Add("")
	f.Add("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	f.Add("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
	f.Add("-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIB\n-----END CERTIFICATE-----\ntrailing")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := tlspin.ParseCertificate(text)
		if err == nil && (c == nil || len(c.Raw) == 0) {
			t.Fatalf("no error and no certificate for %q", text)
		}
	})
}

// A source certificate signed by the given CA but expired says so: the fix
// is a new certificate at the source, not another server_cert here.
func TestTrustServerSaysWhenTheSignedCertificateIsNotValid(t *testing.T) {
	ca, caKey := issue(t, "ca", true, nil, nil)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(99), Subject: pkix.Name{CommonName: "expired"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, caKey)
	require.NoError(t, err)
	server := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client := &tls.Config{}
	require.NoError(t, tlspin.TrustServer(client, ca.pem))
	err = handshake(t, server, client)
	require.Error(t, err)
	assert.ErrorContains(t, err, "signed by the server_cert given for this source, but is not valid")
	assert.ErrorContains(t, err, "expired")
}

// selfSigned makes a self-signed certificate valid from notBefore to
// notAfter.
func selfSigned(t *testing.T, name string, notBefore, notAfter time.Time) keyPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore, NotAfter: notAfter, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return keyPair{cert: c, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		tls: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

// A pinned certificate, server_cert or one of client_certificates, is
// refused outside its validity (expired, or not valid yet), with an error
// that says which and when, as any TLS peer refuses it; within it, it is
// trusted.
func TestAPinnedCertificateOutsideItsValidityIsRefused(t *testing.T) {
	now := time.Now()
	for name, tc := range map[string]struct {
		cert keyPair
		want string
	}{
		"expired":       {selfSigned(t, "old", now.Add(-48*time.Hour), now.Add(-time.Hour)), "expired on"},
		"not yet valid": {selfSigned(t, "early", now.Add(time.Hour), now.Add(48*time.Hour)), "is not valid before"},
		"valid":         {selfSigned(t, "good", now.Add(-time.Hour), now.Add(time.Hour)), ""},
	} {
		t.Run(name+" server_cert", func(t *testing.T) {
			client := &tls.Config{MinVersion: tls.VersionTLS12}
			require.NoError(t, tlspin.TrustServer(client, tc.cert.pem))
			err := handshake(t, &tls.Config{Certificates: []tls.Certificate{tc.cert.tls}}, client)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "the source presents the server_cert given for this source, but it "+tc.want)
		})
		t.Run(name+" client certificate", func(t *testing.T) {
			srv, _ := issue(t, "server", false, nil, nil)
			server := &tls.Config{Certificates: []tls.Certificate{srv.tls}}
			require.NoError(t, tlspin.RequireClientCerts(server, []string{tc.cert.pem}))
			err := handshake(t, server, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{tc.cert.tls}})
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err, "the server refuses the client")
		})
	}
}

// A source instance issues its proxy certificate again, with the same key,
// when its names change: a destination that pinned the old one goes on
// trusting it, since the handshake proves the source holds the pinned
// key. It stopped syncing with "not trusted" until given the new one.
func TestTrustServerFollowsThePinnedCertificateIssuedAgainWithItsKey(t *testing.T) {
	ca, caKey := issue(t, "ca", true, nil, nil)
	pinned, key := issue(t, "proxy", false, &ca, caKey)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano() + 1), Subject: pkix.Name{CommonName: "proxy"},
		DNSNames:  []string{"new-name.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(2 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, caKey)
	require.NoError(t, err)
	again := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}

	client := &tls.Config{}
	require.NoError(t, tlspin.TrustServer(client, pinned.pem))
	assert.NoError(t, handshake(t, &tls.Config{Certificates: []tls.Certificate{again}}, client),
		"the pinned certificate issued again with its key")

	// Issued again with its key but expired: refused, as the pinned one
	// would be.
	tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = big.NewInt(time.Now().UnixNano()+2), time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
	der, err = x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, caKey)
	require.NoError(t, err)
	expired := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	client = &tls.Config{}
	require.NoError(t, tlspin.TrustServer(client, pinned.pem))
	assert.ErrorContains(t, handshake(t, &tls.Config{Certificates: []tls.Certificate{expired}}, client), "expired on")

	// Another key of the same CA is not the pinned certificate.
	sibling, _ := issue(t, "proxy", false, &ca, caKey)
	client = &tls.Config{}
	require.NoError(t, tlspin.TrustServer(client, pinned.pem))
	err = handshake(t, &tls.Config{Certificates: []tls.Certificate{sibling.tls}}, client)
	assert.ErrorContains(t, err, "not trusted")
	assert.ErrorContains(t, err, "give its current proxy_cert, or its ca_cert", "says what to give when the source's certificate was issued anew")
}
