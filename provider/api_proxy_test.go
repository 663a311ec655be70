package provider

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

// startAPIProxy serves the API of e through a TLS reverse proxy, for the
// tests of answers that a proxy loses or holds. Each request, its body read
// (and still readable), goes to handle with forward, which passes a request
// to the service and writes its answer to w. It returns the provider block
// that points at the proxy.
func startAPIProxy(t *testing.T, e *testAccEnv, handle func(w http.ResponseWriter, r *http.Request, body []byte, forward func(w http.ResponseWriter, r *http.Request))) string {
	t.Helper()
	backend, err := url.Parse(e.inst.URL)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM([]byte(e.inst.CACert)))
	proxy := httputil.NewSingleHostReverseProxy(backend)
	proxy.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		handle(w, r, body, proxy.ServeHTTP)
	}))
	t.Cleanup(srv.Close)
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	return fmt.Sprintf(`
provider "redis" {
  endpoint = %s
  username = %s
  password = %s
  ca_cert  = %s
}
`, hclString(srv.URL), hclString(e.inst.Username), hclString(e.inst.Password), hclString(ca))
}

// testAccCLIProxiedConfig is the start of a configuration run by
// testAccCLI whose provider block is providerConfig (a proxy's).
func testAccCLIProxiedConfig(providerConfig string) string {
	return `
terraform {
  required_providers {
    redis = { source = "replicad/redis" }
  }
}
` + providerConfig
}
