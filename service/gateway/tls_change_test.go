package gateway

import (
	"bufio"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/resp"
	"github.com/replicad/terraform-provider-redis/internal/tlspin"
	"github.com/replicad/terraform-provider-redis/service/certs"
)

// psyncStreams sends PSYNC on c and says whether the session streams: a
// +FULLRESYNC, rather than an error or a closed connection.
func psyncStreams(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(resp.AppendCommandStrings(nil, "PSYNC", "?", "-1")); err != nil {
		return false
	}
	v, err := resp.NewReader(bufio.NewReader(c)).ReadValue()
	if err != nil {
		require.ErrorIs(t, err, io.EOF, "closed by the gateway, not by the test's deadline")
		return false
	}
	return v.Type == resp.SimpleString && len(v.Str) > 10 && string(v.Str[:10]) == "FULLRESYNC"
}

// tlsLogin opens a TLS session with certificate cert and authenticates.
func tlsLogin(t *testing.T, addr string, cert tls.Certificate) net.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	login(t, c)
	return c
}

func login(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Write(resp.AppendCommandStrings(nil, "AUTH", "admin", "secret"))
	require.NoError(t, err)
	v, err := resp.NewReader(bufio.NewReader(c)).ReadValue()
	require.NoError(t, err)
	require.Equal(t, "OK", string(v.Str))
}

// A session is held to the endpoint's settings of when it starts to
// replicate, not of when it connected: one that logged in just before TLS
// became required, or before its client certificate was removed from
// client_certificates, must not replicate (plain, or with a certificate no
// longer listed) after the change; the sessions the new settings admit
// replicate.
func TestASessionLoggedInBeforeATLSChangeIsHeldToTheNewSettings(t *testing.T) {
	dir := t.TempDir()
	pair := func(name string) (tls.Certificate, string) {
		c, k, err := certs.LoadOrCreateSelfSigned(dir, name, name)
		require.NoError(t, err)
		kp, err := tls.X509KeyPair(c, k)
		require.NoError(t, err)
		return kp, string(c)
	}
	proxy, _ := pair("proxy")
	a, aPEM := pair("client-a")
	b, bPEM := pair("client-b")
	serverTLS := func(pinned ...string) *tls.Config {
		cfg := certs.ServerTLS(proxy)
		if len(pinned) > 0 {
			require.NoError(t, tlspin.RequireClientCerts(cfg, pinned))
		}
		return cfg
	}

	up := startFakeRedis(t)
	g := New(slog.New(&logLines{}), prometheus.NewRegistry())
	t.Cleanup(g.Close)
	ep := Endpoint{UID: 1, Listen: freeLoopbackAddr(t), AdminUser: "admin", AdminPassword: "secret",
		UpstreamNetwork: "tcp", UpstreamAddr: up.ln.Addr().String(), UpstreamUser: "admin", UpstreamPassword: "x"}

	t.Run("TLS becomes required", func(t *testing.T) {
		ep := ep
		require.NoError(t, g.Ensure(ep))
		plain, err := net.Dial("tcp", ep.Listen)
		require.NoError(t, err)
		t.Cleanup(func() { plain.Close() })
		login(t, plain)
		ep.TLS = serverTLS()
		require.NoError(t, g.Ensure(ep))
		require.False(t, psyncStreams(t, plain), "a plain session replicates from an endpoint that requires TLS")
		require.True(t, psyncStreams(t, tlsLogin(t, ep.Listen, a)), "a TLS session replicates")
	})

	t.Run("a pinned certificate is removed", func(t *testing.T) {
		ep := ep
		ep.TLS = serverTLS(aPEM, bPEM)
		require.NoError(t, g.Ensure(ep))
		ca, cb := tlsLogin(t, ep.Listen, a), tlsLogin(t, ep.Listen, b)
		ep.TLS = serverTLS(bPEM)
		require.NoError(t, g.Ensure(ep))
		require.False(t, psyncStreams(t, ca), "a session whose certificate is no longer listed replicates")
		require.True(t, psyncStreams(t, cb), "a session whose certificate is still listed replicates")
	})
}

// A TLS handshake that never completes (a record header, then nothing; or
// garbage that starts like a TLS record) is closed when the handshake time
// is up, and a destination still gets in.
func TestStalledTLSHandshakesAreClosed(t *testing.T) {
	c, k, err := certs.LoadOrCreateSelfSigned(t.TempDir(), "proxy", "proxy")
	require.NoError(t, err)
	kp, err := tls.X509KeyPair(c, k)
	require.NoError(t, err)
	up := startFakeRedis(t)
	g := New(slog.New(&logLines{}), prometheus.NewRegistry())
	g.handshakeTimeout = time.Second
	t.Cleanup(g.Close)
	ep := Endpoint{UID: 1, Listen: freeLoopbackAddr(t), AdminUser: "admin", AdminPassword: "secret", TLS: certs.ServerTLS(kp),
		UpstreamNetwork: "tcp", UpstreamAddr: up.ln.Addr().String(), UpstreamUser: "admin", UpstreamPassword: "x"}
	require.NoError(t, g.Ensure(ep))
	for name, first := range map[string]string{"a record header only": "\x16\x03\x01", "garbage": "\x16garbage\r\n*1\r\n$4\r\nPING\r\n"} {
		raw, err := net.Dial("tcp", ep.Listen)
		require.NoError(t, err)
		defer raw.Close()
		raw.SetDeadline(time.Now().Add(20 * time.Second))
		_, err = raw.Write([]byte(first))
		require.NoError(t, err)
		start := time.Now()
		io.ReadAll(raw)
		require.Less(t, time.Since(start), 10*time.Second, "%s: closed by the gateway, not by the test's deadline", name)
	}
	require.True(t, psyncStreams(t, tlsLogin(t, ep.Listen, kp)))
}

// A client that offers TLS 1.0 or 1.1 only (a downgrade) is refused at
// the handshake, at once, and TLS 1.2 and 1.3 clients replicate.
func TestOldTLSVersionsAreRefused(t *testing.T) {
	c, k, err := certs.LoadOrCreateSelfSigned(t.TempDir(), "proxy", "proxy")
	require.NoError(t, err)
	kp, err := tls.X509KeyPair(c, k)
	require.NoError(t, err)
	up := startFakeRedis(t)
	g := New(slog.New(&logLines{}), prometheus.NewRegistry())
	t.Cleanup(g.Close)
	ep := Endpoint{UID: 1, Listen: freeLoopbackAddr(t), AdminUser: "admin", AdminPassword: "secret", TLS: certs.ServerTLS(kp),
		UpstreamNetwork: "tcp", UpstreamAddr: up.ln.Addr().String(), UpstreamUser: "admin", UpstreamPassword: "x"}
	require.NoError(t, g.Ensure(ep))
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		d := &net.Dialer{Timeout: 10 * time.Second}
		start := time.Now()
		_, err := tls.DialWithDialer(d, "tcp", ep.Listen, &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v})
		require.Error(t, err, "%s", tls.VersionName(v))
		require.Contains(t, err.Error(), "protocol version", "%s", tls.VersionName(v))
		require.Less(t, time.Since(start), 5*time.Second)
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		c, err := tls.Dial("tcp", ep.Listen, &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v})
		require.NoError(t, err, "%s", tls.VersionName(v))
		t.Cleanup(func() { c.Close() })
		login(t, c)
		require.True(t, psyncStreams(t, c), "%s", tls.VersionName(v))
	}
}
