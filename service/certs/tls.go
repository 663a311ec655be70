package certs

import "crypto/tls"

// ServerTLS is the TLS configuration every server of the service offers
// (the API, replication endpoints): TLS 1.2 and 1.3, and with 1.2 only the
// AEAD cipher suites with forward secrecy (Go's defaults still include
// CBC-SHA1 suites for old clients).
func ServerTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}

// OpenSSLCiphers is the same TLS 1.2 policy for redis-server's tls-ciphers.
const OpenSSLCiphers = "ECDHE+AESGCM:ECDHE+CHACHA20"
