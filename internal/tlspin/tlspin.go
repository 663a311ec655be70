// Package tlspin owns how redis-replicad reads certificates given as PEM
// text and trusts them, on both sides of a replication link: a destination
// trusts a source by its server_cert (the very certificate, or the CA that
// signed it), and a replication endpoint admits only the client
// certificates a database lists (compared byte for byte: pinned, whoever
// issued them). The provider validates the same text with the same parser.
package tlspin

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ParseCertificate reads text that holds exactly one PEM certificate, and
// says why when it does not.
func ParseCertificate(text string) (*x509.Certificate, error) {
	block, rest := pem.Decode([]byte(text))
	if block == nil {
		return nil, errors.New("the value is not PEM: a certificate begins with -----BEGIN CERTIFICATE-----")
	}
	if block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("the PEM block is a %q, not a CERTIFICATE", block.Type)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the certificate does not parse: %v", err)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		if next, _ := pem.Decode(rest); next != nil {
			return nil, errors.New("the value holds more than one PEM block: give one certificate")
		}
		return nil, errors.New("text follows the certificate's PEM block (after -----END CERTIFICATE-----): give the certificate alone")
	}
	return c, nil
}

// RequireClientCerts makes a server configuration admit only clients that
// present one of allowed (PEM), compared byte for byte.
func RequireClientCerts(cfg *tls.Config, allowed []string) error {
	var pinned []*x509.Certificate
	for i, p := range allowed {
		c, err := ParseCertificate(p)
		if err != nil {
			return fmt.Errorf("client certificate %d: %w", i, err)
		}
		pinned = append(pinned, c)
	}
	cfg.ClientAuth = tls.RequireAnyClientCert
	cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("a client certificate is required")
		}
		for _, a := range pinned {
			if bytes.Equal(a.Raw, raw[0]) {
				if why := outsideValidity(a, time.Now()); why != "" {
					return fmt.Errorf("the client certificate is among the database's client_certificates, but it %s: the destination instance needs a new syncer certificate, listed in client_certificates", why)
				}
				return nil
			}
		}
		return errors.New("the client certificate is not among the database's client_certificates")
	}
	return nil
}

// outsideValidity says how c is not valid at now ("" when it is).
func outsideValidity(c *x509.Certificate, now time.Time) string {
	switch {
	case now.After(c.NotAfter):
		return "expired on " + c.NotAfter.UTC().Format(time.RFC3339)
	case now.Before(c.NotBefore):
		return "is not valid before " + c.NotBefore.UTC().Format(time.RFC3339)
	}
	return ""
}

// TrustServer makes a client configuration trust a server by serverCert
// (PEM): the server must present exactly that certificate, or, when it is a
// CA, one that it signed. Host names are not checked: sources are often
// reached by IP address or through tunnels whose names are not in their
// certificates, and the pin is stronger than a name.
func TrustServer(cfg *tls.Config, serverCert string) error {
	want, err := ParseCertificate(serverCert)
	if err != nil {
		return fmt.Errorf("server_cert: %w", err)
	}
	cfg.InsecureSkipVerify = true // verification is ours, below
	cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("the source presented no certificate")
		}
		leaf, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return err
		}
		if bytes.Equal(leaf.Raw, want.Raw) {
			// A pin names the certificate, not a time without end: one
			// that expired (or is not valid yet) is refused, as any TLS
			// client refuses it.
			if why := outsideValidity(leaf, time.Now()); why != "" {
				return fmt.Errorf("the source presents the server_cert given for this source, but it %s: give the source a valid certificate, and set it as server_cert", why)
			}
			return nil
		}
		if !want.IsCA && sameKey(leaf.PublicKey, want.PublicKey) {
			// The pinned certificate issued again with its key (a
			// source instance does so when its names change, or as the
			// certificate nears its end): the handshake proved that
			// the source holds that key, which is what the pin trusts;
			// within the new certificate's validity, as above.
			if why := outsideValidity(leaf, time.Now()); why != "" {
				return fmt.Errorf("the source presents a certificate with the key of the server_cert given for this source, but it %s: give the source a valid certificate, and set it as server_cert", why)
			}
			return nil
		}
		if want.IsCA {
			roots := x509.NewCertPool()
			roots.AddCert(want)
			inter := x509.NewCertPool()
			for _, r := range raw[1:] {
				if c, err := x509.ParseCertificate(r); err == nil {
					inter.AddCert(c)
				}
			}
			_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			if err == nil {
				return nil
			}
			var invalid x509.CertificateInvalidError
			if errors.As(err, &invalid) {
				// Signed by it, but not valid (expired, say): that is
				// what to fix, not which certificate to trust.
				return fmt.Errorf("the source's certificate is signed by the server_cert given for this source, but is not valid: %w", err)
			}
		}
		if !want.IsCA && bytes.Equal(leaf.RawIssuer, want.RawIssuer) {
			// A pinned leaf whose source now presents another of the
			// same issuer: what changed is most likely the source.
			return errors.New("the source's certificate is not trusted: it is not the server_cert given for this source, nor signed by it, but has the same issuer (the source's instance issued its certificate again, with a new key?): give its current proxy_cert, or its ca_cert, which follows such changes")
		}
		return errors.New("the source's certificate is not trusted: it is not the server_cert given for this source, nor signed by it")
	}
	return nil
}

// sameKey says whether two public keys are one.
func sameKey(a, b any) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && b != nil && k.Equal(b)
}
