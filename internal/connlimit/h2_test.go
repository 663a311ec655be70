package connlimit

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An HTTP/2 connection (the API's browsers and curl speak it) counts as
// idle once its streams have answered: a connection past the bound
// displaces it rather than waiting behind it.
func TestAnHTTP2ConnectionThatAnsweredIsDisplaced(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	l := New(srv.Listener, 1)
	srv.Listener = l
	srv.Config.ConnContext = l.ConnContext
	srv.Config.ConnState = l.ConnState
	srv.Config.Handler = l.Track(srv.Config.Handler)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()

	h2 := srv.Client()
	resp, err := h2.Get(srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 2, resp.ProtoMajor, "the first client speaks HTTP/2")

	// Another client, HTTP/1.1 on a connection of its own.
	tc := h2.Transport.(*http.Transport).TLSClientConfig.Clone()
	tc.NextProtos = nil
	other := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: tc, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}}
	resp, err = other.Get(srv.URL)
	require.NoError(t, err, "served while the HTTP/2 connection sits idle")
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
}
