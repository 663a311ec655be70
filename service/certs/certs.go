// Package certs makes the certificates an instance generates for itself on
// first start: a CA, and leaf certificates signed by it. They are written to
// the data directory and reused on every later start; a leaf certificate
// whose names no longer match the instance's, or that a crash left
// unreadable, is issued again from the same CA.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/atomicfile"
)

// CA is a certificate authority with its key.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
	// Logger gets a warning whenever a certificate is issued again.
	Logger *slog.Logger
}

// LoadOrCreateCA reads dir/ca.pem and dir/ca-key.pem, creating them first if
// absent. See OpenCA.
func LoadOrCreateCA(dir, commonName string) (*CA, error) {
	return OpenCA(dir, commonName, nil, nil)
}

// OpenCA reads dir/ca.pem and dir/ca-key.pem, creating them first if absent.
// A CA that cannot be read (empty, cut short, a key that is not the
// certificate's) is made anew only when none of the certificates named
// issued (dir/<name>.pem) exists: then the first start that wrote it died
// before anything trusted it. Otherwise it is an error that says what to do.
func OpenCA(dir, commonName string, issued []string, log *slog.Logger) (*CA, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	atomicfile.RemoveLeftovers(certPath)
	atomicfile.RemoveLeftovers(keyPath)
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	if certErr == nil && keyErr == nil {
		ca, err := parseCA(certPEM, keyPEM)
		if err == nil {
			ca.Logger = log
			return ca, nil
		}
		certErr = err
	}
	for _, err := range []error{certErr, keyErr} {
		if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, errDamaged) {
			return nil, fmt.Errorf("read the instance CA: %w", err)
		}
	}
	bothMissing := errors.Is(certErr, os.ErrNotExist) && errors.Is(keyErr, os.ErrNotExist)
	if !bothMissing {
		why := certErr
		if why == nil {
			why = keyErr
		}
		var signed []string
		for _, name := range issued {
			if st, err := os.Stat(filepath.Join(dir, name+".pem")); err == nil && st.Size() > 0 {
				signed = append(signed, name+".pem")
			}
		}
		if len(signed) > 0 {
			return nil, fmt.Errorf("the instance CA (%s, %s) cannot be used: %w; it has signed %v, which clients and destinations trust, so it is not made anew: restore both files from a backup, or remove them with every certificate it signed to start with a new CA (its clients must then be given the new ca.pem)",
				certPath, keyPath, why, signed)
		}
		log.Warn("the instance CA was cut short by an earlier start that did not finish, and nothing it signed exists: making a new one", "path", certPath, "why", why)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if keyPEM, err = encodeKey(key); err != nil {
		return nil, err
	}
	if err := writePair(certPath, keyPath, certPEM, keyPEM); err != nil {
		return nil, err
	}
	ca, err := parseCA(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	ca.Logger = log
	return ca, nil
}

// LoadOrIssue reads dir/<name>.pem and dir/<name>-key.pem, issuing them from
// ca first if absent. hosts become DNS names or IP addresses of the
// certificate; client adds the client-auth usage. A stored certificate that
// does not name every host (a start with another --advertise-host issued
// it), is not ca's, lacks a usage, expires within a month or cannot be read
// is issued again, with the same key when the key is intact: whoever
// trusts the CA trusts the new one at once.
func (ca *CA) LoadOrIssue(dir, name string, hosts []string, client bool) (certPEM, keyPEM []byte, err error) {
	certPath, keyPath := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	atomicfile.RemoveLeftovers(certPath)
	atomicfile.RemoveLeftovers(keyPath)
	usages := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if client {
		usages = append(usages, x509.ExtKeyUsageClientAuth)
	}
	key, why := ca.reusable(certPath, keyPath, hosts, usages)
	if why == "" {
		c, _ := os.ReadFile(certPath)
		k, _ := os.ReadFile(keyPath)
		return c, k, nil
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		NotAfter:    time.Now().AddDate(5, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: usages,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if why != "absent" && ca.Logger != nil {
		ca.Logger.Warn("issuing a certificate again from the instance CA", "certificate", certPath, "why", why, "key_kept", key != nil)
	}
	return create(certPath, keyPath, tmpl, ca.Cert, ca.Key, key)
}

// reusable says why the stored pair cannot serve ("" when it can, "absent"
// when there is none), and gives its key when that alone is sound.
func (ca *CA) reusable(certPath, keyPath string, hosts []string, usages []x509.ExtKeyUsage) (*ecdsa.PrivateKey, string) {
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	var key *ecdsa.PrivateKey
	if keyErr == nil {
		key, keyErr = parseKey(keyPEM)
	}
	if errors.Is(certErr, os.ErrNotExist) && errors.Is(keyErr, os.ErrNotExist) {
		return nil, "absent"
	}
	if keyErr != nil {
		return nil, fmt.Sprintf("its key cannot be used: %v", keyErr)
	}
	if certErr != nil {
		return key, fmt.Sprintf("the certificate cannot be read: %v", certErr)
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return key, err.Error()
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return key, "the certificate is not the key's"
	}
	if cert.CheckSignatureFrom(ca.Cert) != nil {
		return key, "the instance CA did not sign it"
	}
	if time.Until(cert.NotAfter) < 30*24*time.Hour {
		return key, "it expires within a month"
	}
	for _, u := range usages {
		if !slices.Contains(cert.ExtKeyUsage, u) {
			return key, "it lacks a usage"
		}
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); h == "" || ip != nil && ip.IsUnspecified() {
			continue
		}
		if cert.VerifyHostname(h) != nil {
			return key, fmt.Sprintf("it does not name %s", h)
		}
	}
	return nil, ""
}

// LoadOrCreateSelfSigned reads dir/<name>.pem and its key, creating a
// self-signed client and server certificate first if absent. Such a
// certificate is its own trust anchor, so a peer can pin it exactly: one
// that cannot be read is therefore an error, not made anew, unless only
// its certificate is missing (a first start died between the two writes).
func LoadOrCreateSelfSigned(dir, name, commonName string) (certPEM, keyPEM []byte, err error) {
	certPath, keyPath := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	atomicfile.RemoveLeftovers(certPath)
	atomicfile.RemoveLeftovers(keyPath)
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	var key *ecdsa.PrivateKey
	if keyErr == nil {
		key, keyErr = parseKey(keyPEM)
	}
	switch {
	case errors.Is(certErr, os.ErrNotExist) && (keyErr == nil || errors.Is(keyErr, os.ErrNotExist)):
		// Never made, or made up to its key (written first).
	case certErr != nil || keyErr != nil:
		why := certErr
		if why == nil {
			why = keyErr
		}
		return nil, nil, fmt.Errorf("certificate %s cannot be used: %w; peers may pin it, so it is not made anew: restore %s and %s from a backup, or remove both to make a new one (and give it to the peers that pinned the old)",
			certPath, why, filepath.Base(certPath), filepath.Base(keyPath))
	default:
		cert, err := parseCert(certPEM)
		if err == nil && !key.PublicKey.Equal(cert.PublicKey) {
			err = errors.New("the certificate is not the key's")
		}
		if err != nil {
			return nil, nil, fmt.Errorf("certificate %s cannot be used: %w; peers may pin it, so it is not made anew: restore %s and %s from a backup, or remove both to make a new one (and give it to the peers that pinned the old)",
				certPath, err, filepath.Base(certPath), filepath.Base(keyPath))
		}
		return certPEM, keyPEM, nil
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: commonName},
		DNSNames:              []string{name},
		NotAfter:              time.Now().AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	return create(certPath, keyPath, tmpl, nil, nil, key)
}

// create makes a certificate from tmpl for key (a new one when nil), signed
// by parent (itself when parent is nil), and writes both files.
func create(certPath, keyPath string, tmpl, parent *x509.Certificate, parentKey, key *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	newKey := key == nil
	if newKey {
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, nil, err
		}
	}
	tmpl.SerialNumber = serial()
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate %s: %w", filepath.Base(certPath), err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if keyPEM, err = encodeKey(key); err != nil {
		return nil, nil, err
	}
	if !newKey {
		// The key on disk is this one already.
		return certPEM, keyPEM, atomicfile.Write(certPath, certPEM, 0o644)
	}
	return certPEM, keyPEM, writePair(certPath, keyPath, certPEM, keyPEM)
}

// errDamaged marks a file that exists but cannot be read as what it must be.
var errDamaged = errors.New("damaged")

func parseCert(certPEM []byte) (*x509.Certificate, error) {
	if len(certPEM) == 0 {
		return nil, fmt.Errorf("the certificate file is empty (%w)", errDamaged)
	}
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("the certificate file holds no PEM certificate: cut short? (%w)", errDamaged)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse the certificate: %v (%w)", err, errDamaged)
	}
	return c, nil
}

func parseKey(keyPEM []byte) (*ecdsa.PrivateKey, error) {
	if len(keyPEM) == 0 {
		return nil, fmt.Errorf("the key file is empty (%w)", errDamaged)
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, fmt.Errorf("the key file holds no PEM key: cut short? (%w)", errDamaged)
	}
	k, err := x509.ParseECPrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse the key: %v (%w)", err, errDamaged)
	}
	return k, nil
}

func parseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("the CA key is not the CA certificate's (%w)", errDamaged)
	}
	return &CA{Cert: cert, Key: key, CertPEM: certPEM}, nil
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// writePair writes the key first: a crash between the two writes leaves a
// key without its certificate, which the next start certifies.
func writePair(certPath, keyPath string, certPEM, keyPEM []byte) error {
	if err := atomicfile.Write(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	return atomicfile.Write(certPath, certPEM, 0o644)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}
