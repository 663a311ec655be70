package replication_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/internal/redisurl"
	"github.com/replicad/terraform-provider-redis/internal/replproto"
	"github.com/replicad/terraform-provider-redis/service/certs"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

func (a *apiClient) cluster() api.Cluster {
	a.t.Helper()
	var c api.Cluster
	if code, body := a.do("GET", "/v1/cluster", nil, &c); code != 200 {
		a.t.Fatalf("cluster: %d %s", code, body)
	}
	return c
}

// waitSourceError polls until the first source of uid reports an error
// containing want, and returns the database.
func (a *apiClient) waitSourceError(uid int, want string) api.Database {
	a.t.Helper()
	var db api.Database
	redistest.Eventually(a.t, time.Minute, fmt.Sprintf("source error %q", want), func() error {
		db = a.get(uid)
		s := db.ReplicaSources[0]
		if s.Status != api.SourceOutOfSync || !strings.Contains(s.LastError, want) {
			return fmt.Errorf("status %s, last_error %q", s.Status, s.LastError)
		}
		return nil
	})
	return db
}

// twoRegions starts two instances: a source database in "us" that requires
// TLS for replication and admits eu's syncer certificate.
func twoRegions(t *testing.T) (us, eu *apiClient, src api.Database) {
	us = newAPI(t, servicetest.Start(t))
	eu = newAPI(t, servicetest.Start(t))
	src = us.create(api.CreateDatabaseRequest{Name: "orders", MemorySize: 64 << 20, TLSMode: api.TLSReplicaSSL,
		ClientCertificates: []string{eu.cluster().SyncerCert}})
	writeDataset(t, destClient(t, src, 0), "", 200)
	return us, eu, src
}

func TestEncryptedReplicationBetweenInstances(t *testing.T) {
	us, eu, src := twoRegions(t)
	dst := eu.create(api.CreateDatabaseRequest{Name: "orders-eu", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{
		URI: us.sourceURL(src.UID), Encryption: true, ServerCert: us.cluster().ProxyCert}}})
	eu.waitInSync(dst.UID, time.Minute)
	sc := destClient(t, src, 0)
	sc.Set(redistest.Ctx(t), "written-after", "tls", 0)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)

	// Replacing the allowed certificates with the same one plus another
	// keeps the session and loads nothing again.
	other := eu.cluster().ProxyCert
	certs := []string{eu.cluster().SyncerCert, other}
	us.update(src.UID, api.UpdateDatabaseRequest{ClientCertificates: &certs})
	sc.Set(redistest.Ctx(t), "after-cert-update", "1", 0)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)
	if m := eu.metrics(); metric(m, "replicad_replica_full_syncs_total") != 1 {
		t.Fatalf("a certificate update reloaded the destination:\n%s", grep(m, "syncs_total"))
	}
}

func TestWrongServerCertIsRefused(t *testing.T) {
	us, eu, src := twoRegions(t)
	dst := eu.create(api.CreateDatabaseRequest{Name: "orders-eu", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{
		URI: us.sourceURL(src.UID), Encryption: true, ServerCert: eu.cluster().ProxyCert}}})
	eu.waitSourceError(dst.UID, "not trusted")
	if n := destClient(t, dst, 0).DBSize(redistest.Ctx(t)).Val(); n != 0 {
		t.Fatalf("%d keys applied from an untrusted source", n)
	}
}

func TestSourceRequiringTLSRefusesPlainAndUnknownClients(t *testing.T) {
	us, eu, src := twoRegions(t)
	plain := eu.create(api.CreateDatabaseRequest{Name: "plain", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{
		URI: us.sourceURL(src.UID)}}})
	eu.waitSourceError(plain.UID, "TLS is required")

	// A third instance whose syncer certificate the source does not list.
	stranger := newAPI(t, servicetest.Start(t))
	dst := stranger.create(api.CreateDatabaseRequest{Name: "stranger", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{
		URI: us.sourceURL(src.UID), Encryption: true, ServerCert: us.cluster().ProxyCert}}})
	stranger.waitSourceError(dst.UID, "TLS")
	if n := destClient(t, dst, 0).DBSize(redistest.Ctx(t)).Val(); n != 0 {
		t.Fatalf("%d keys reached a client the source does not admit", n)
	}
	if m := us.metrics(); metric(m, "replicad_gateway_refused_sessions_total", `reason="plaintext"`) < 1 || metric(m, "replicad_gateway_refused_sessions_total", `reason="tls"`) < 1 {
		t.Fatalf("refusals not counted:\n%s", grep(m, "refused"))
	}
	// Admitting the stranger's certificate lets it in, without restarting it.
	certs := []string{eu.cluster().SyncerCert, stranger.cluster().SyncerCert}
	us.update(src.UID, api.UpdateDatabaseRequest{ClientCertificates: &certs})
	stranger.waitInSync(dst.UID, time.Minute)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), destClient(t, src, 0))
}

func TestCompressedReplication(t *testing.T) {
	us := newAPI(t, servicetest.Start(t))
	eu := newAPI(t, servicetest.Start(t))
	src := us.create(api.CreateDatabaseRequest{Name: "text", MemorySize: 128 << 20})
	sc := destClient(t, src, 0)
	ctx := redistest.Ctx(t)
	pipe := sc.Pipeline()
	for n := range 5000 {
		pipe.Set(ctx, fmt.Sprint("doc:", n), strings.Repeat("compressible text ", 50), 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	dst := eu.create(api.CreateDatabaseRequest{Name: "text-eu", MemorySize: 128 << 20, ReplicaSources: []api.ReplicaSource{{
		URI: us.sourceURL(src.UID), Compression: 6}}})
	db := eu.waitInSync(dst.UID, time.Minute)
	if !db.ReplicaSources[0].CompressionActive {
		t.Fatalf("compression not active: %+v", db.ReplicaSources[0])
	}
	assert.Equal(t, "zstd", db.ReplicaSources[0].CompressionCodec, "two instances of this version compress with zstd")
	for n := range 500 {
		sc.Set(ctx, fmt.Sprint("later:", n), strings.Repeat("more text ", 30), 0)
	}
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)
	m := us.metrics()
	wire, plain := metric(m, "replicad_gateway_sent_wire_bytes_total"), metric(m, "replicad_gateway_sent_bytes_total")
	if wire <= 0 || plain <= 0 || wire*5 > plain {
		t.Fatalf("compression did not shrink the traffic: %v bytes on the wire for %v", wire, plain)
	}
	t.Logf("compression: %.0f bytes on the wire for %.0f (%.1fx)", wire, plain, plain/wire)
	// The destination sees the same: fewer bytes on the wire than it decodes.
	em := eu.metrics()
	if in, decoded := metric(em, "replicad_replica_wire_bytes_received_total"), metric(em, "replicad_replica_bytes_received_total"); in <= 0 || in*5 > decoded {
		t.Fatalf("destination metrics: %v wire bytes for %v decoded", in, decoded)
	}

	// An open-source Redis cannot compress: the API says so at once.
	oss := redistest.Start(t, "--requirepass", "pw-123456")
	bad := []api.ReplicaSource{{URI: oss.URL(), Compression: 3}}
	code, body := eu.do("POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "from-oss", MemorySize: 64 << 20, ReplicaSources: bad}, nil)
	if code != 400 || !strings.Contains(body, "compression applies only between redis-replicad instances") || strings.Contains(body, "pw-123456") {
		t.Fatalf("compression from an open-source Redis: %d %s", code, body)
	}
}

// A destination instance that predates zstd asks for DEFLATE (its
// compression request offers no codec): the gateway of this version
// compresses with DEFLATE, and the destination reads the whole RDB and the
// stream after it. The same session with the offer gets zstd.
func TestCompressedFullSyncForOlderAndNewerDestinations(t *testing.T) {
	us := newAPI(t, servicetest.Start(t))
	src := us.create(api.CreateDatabaseRequest{Name: "text", MemorySize: 128 << 20})
	sc := destClient(t, src, 0)
	ctx := redistest.Ctx(t)
	pipe := sc.Pipeline()
	for n := range 3000 {
		pipe.Set(ctx, fmt.Sprint("doc:", n), strings.Repeat("compressible text ", 40), 0)
	}
	_, err := pipe.Exec(ctx)
	require.NoError(t, err)
	u, err := redisurl.Parse(us.sourceURL(src.UID))
	require.NoError(t, err)
	for _, tc := range []struct {
		name   string
		noZstd bool
		codec  string
	}{{"older destination", true, replproto.CodecDeflate}, {"this version", false, replproto.CodecZstd}} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := replproto.Dial(ctx, replproto.Options{Addr: u.Addr(), Username: u.Username, Password: u.Password,
				Compression: 3, NoZstd: tc.noZstd, AckInterval: time.Second})
			require.NoError(t, err)
			defer conn.Close()
			syn, err := conn.Handshake(ctx, "", 0)
			require.NoError(t, err)
			require.True(t, syn.Full)
			assert.Equal(t, tc.codec, conn.Codec())
			r, err := conn.RDB(ctx)
			require.NoError(t, err)
			payload, err := io.ReadAll(r)
			require.NoError(t, err)
			require.NoError(t, r.Close())
			require.True(t, bytes.HasPrefix(payload, []byte("REDIS")), "an RDB payload: %.16q", payload)
			for _, n := range []int{0, 1234, 2999} {
				assert.True(t, bytes.Contains(payload, []byte(fmt.Sprint("doc:", n))), "doc:%d in the RDB", n)
			}
			// The stream after it, compressed the same way.
			require.NoError(t, sc.Set(ctx, "after-rdb", "streamed", 0).Err())
			for {
				cmd, err := conn.ReadCommand(ctx)
				require.NoError(t, err)
				if len(cmd.Args) == 3 && string(cmd.Args[1]) == "after-rdb" {
					assert.Equal(t, "streamed", string(cmd.Args[2]))
					break
				}
			}
			assert.Less(t, conn.WireBytes()*3, int64(len(payload)), "compressed on the wire")
		})
	}
}

func TestTLSDatabaseForApplications(t *testing.T) {
	i := servicetest.Start(t)
	a := newAPI(t, i)
	db := a.create(api.CreateDatabaseRequest{Name: "secure", MemorySize: 32 << 20, TLSMode: api.TLSEnabled})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(a.cluster().CACert))
	addr := fmt.Sprintf("%s:%d", db.Endpoint.Host, db.Endpoint.Port)
	tc := redis.NewClient(&redis.Options{Addr: addr, Password: db.AuthenticationRedisPass, MaxRetries: -1,
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: db.Endpoint.Host}})
	defer tc.Close()
	ctx := redistest.Ctx(t)
	redistest.Eventually(t, 30*time.Second, "a TLS client works", func() error {
		return tc.Set(ctx, "k", "over tls", 0).Err()
	})
	if err := destClient(t, db, 0).Ping(ctx).Err(); err == nil {
		t.Fatal("a plain-text client was accepted by a TLS-only database")
	}
	// Switching TLS off keeps the data and accepts plain text again.
	off := api.TLSDisabled
	a.update(db.UID, api.UpdateDatabaseRequest{TLSMode: &off})
	if v, err := destClient(t, db, 0).Get(ctx, "k").Result(); v != "over tls" {
		t.Fatalf("after tls_mode=disabled: %q %v", v, err)
	}
}

// Pinned client certificates of a database that requires TLS apply to its
// own port at once, without a restart: a pin shuts out clients without that
// certificate, and removing it revokes the certificate.
func TestPinnedClientCertificatesApplyToTheDatabasePortAtOnce(t *testing.T) {
	i := servicetest.Start(t)
	a := newAPI(t, i)
	db := a.create(api.CreateDatabaseRequest{Name: "secure", MemorySize: 32 << 20, TLSMode: api.TLSEnabled})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(a.cluster().CACert))
	certPEM, keyPEM := selfSignedClient(t)
	clientCert, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	ctx := redistest.Ctx(t)
	ping := func(cert *tls.Certificate) error {
		cfg := &tls.Config{RootCAs: pool, ServerName: db.Endpoint.Host}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("%s:%d", db.Endpoint.Host, db.Endpoint.Port), Password: db.AuthenticationRedisPass,
			MaxRetries: -1, TLSConfig: cfg, DialTimeout: 2 * time.Second})
		defer c.Close()
		return c.Ping(ctx).Err()
	}
	redistest.Eventually(t, 30*time.Second, "a TLS client without a certificate is served", func() error { return ping(nil) })
	pid := i.App.Databases().PID(ctx, db.UID)

	a.update(db.UID, api.UpdateDatabaseRequest{ClientCertificates: &[]string{string(certPEM)}})
	require.Error(t, ping(nil), "a client without the pinned certificate is refused")
	require.NoError(t, ping(&clientCert), "the pinned certificate is served")

	a.update(db.UID, api.UpdateDatabaseRequest{ClientCertificates: &[]string{}})
	require.Error(t, ping(&clientCert), "an unpinned certificate is revoked")
	require.NoError(t, ping(nil))
	assert.Equal(t, pid, i.App.Databases().PID(ctx, db.UID), "no restart")
}

// selfSignedClient is a client certificate and its key, in PEM.
func selfSignedClient(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "app"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// Turning TLS on under a running destination closes its plain session, and
// its status says why until it is given encryption; then it continues
// where it was, without a reload. Turning TLS off again lets the
// destination go back to plain text, again without a reload.
func TestTLSModeChangedUnderARunningDestination(t *testing.T) {
	a := newAPI(t, servicetest.Start(t))
	src := a.create(api.CreateDatabaseRequest{Name: "src", MemorySize: 64 << 20})
	sc := destClient(t, src, 0)
	writeDataset(t, sc, "", 100)
	plain := []api.ReplicaSource{{URI: a.sourceURL(src.UID)}}
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20, ReplicaSources: plain})
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	ctx := redistest.Ctx(t)
	fullSyncs := func() float64 { return metric(a.metrics(), "replicad_replica_full_syncs_total") }
	require.Equal(t, 1.0, fullSyncs())

	runID := func() string {
		for _, l := range strings.Split(sc.Info(ctx, "server").Val(), "\r\n") {
			if v, ok := strings.CutPrefix(l, "run_id:"); ok {
				return v
			}
		}
		return ""
	}
	before := runID()
	require.NotEmpty(t, before)

	on, off := api.TLSReplicaSSL, api.TLSDisabled
	a.update(src.UID, api.UpdateDatabaseRequest{TLSMode: &on})
	// replica_ssl is the replication endpoint's business: the database's
	// own port, its clients and its replication history stay.
	assert.Equal(t, before, runID(), "tls_mode replica_ssl restarted the source's redis-server")
	sc.Set(ctx, "while-tls-required", "1", 0)
	db := a.waitSourceError(dst.UID, "TLS is required")
	assert.NotEqual(t, api.SourceInSync, db.ReplicaSources[0].Status)

	encrypted := []api.ReplicaSource{{URI: a.sourceURL(src.UID), Encryption: true, ServerCert: a.cluster().ProxyCert}}
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &encrypted})
	a.waitInSync(dst.UID, time.Minute)
	eventuallyEqual(t, time.Minute, dc, sc)
	assert.Equal(t, 1.0, fullSyncs(), "encryption given for the same source reloaded the destination\n%s", grep(a.metrics(), "syncs_total"))

	a.update(src.UID, api.UpdateDatabaseRequest{TLSMode: &off})
	assert.Equal(t, before, runID(), "tls_mode disabled restarted the source's redis-server")
	// The TLS session goes on: an endpoint without TLS refuses new TLS
	// sessions only.
	sc.Set(ctx, "after-tls-off", "1", 0)
	eventuallyEqual(t, time.Minute, dc, sc)
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &plain})
	sc.Set(ctx, "back-to-plain", "1", 0)
	a.waitInSync(dst.UID, time.Minute)
	eventuallyEqual(t, time.Minute, dc, sc)
	assert.Equal(t, 1.0, fullSyncs(), "going back to plain text reloaded the destination\n%s", grep(a.metrics(), "syncs_total"))
	assert.Equal(t, api.SourceInSync, a.get(dst.UID).ReplicaSources[0].Status)
}

// Compression changed on a running sync reconnects and continues, without
// a reload, and the source's status says whether it is active.
func TestCompressionChangedOnARunningSync(t *testing.T) {
	a := newAPI(t, servicetest.Start(t))
	src := a.create(api.CreateDatabaseRequest{Name: "src", MemorySize: 64 << 20})
	sc := destClient(t, src, 0)
	writeDataset(t, sc, "", 100)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{URI: a.sourceURL(src.UID)}}})
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	ctx := redistest.Ctx(t)
	for _, level := range []int{3, 6, 1, 0, 4} {
		sources := []api.ReplicaSource{{URI: a.sourceURL(src.UID), Compression: level}}
		a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &sources})
		sc.Set(ctx, fmt.Sprint("after-level-", level), strings.Repeat("x", 1000), 0)
		eventuallyEqual(t, time.Minute, dc, sc)
		redistest.Eventually(t, time.Minute, fmt.Sprint("compression_active at level ", level), func() error {
			s := a.get(dst.UID).ReplicaSources[0]
			if s.Status != api.SourceInSync || s.CompressionActive != (level > 0) {
				return fmt.Errorf("status %s, compression_active %v, codec %q, note %q", s.Status, s.CompressionActive, s.CompressionCodec, s.CompressionNote)
			}
			return nil
		})
	}
	assert.Equal(t, 1.0, metric(a.metrics(), "replicad_replica_full_syncs_total"), "a compression change reloaded the destination\n%s", grep(a.metrics(), "syncs_total"))
}

// A destination whose syncer certificate is removed from the source's
// client_certificates is cut off at once and says why; listed again, it
// continues without a reload.
func TestAClientCertificateRemovedCutsItsDestinationOff(t *testing.T) {
	us, eu, src := twoRegions(t)
	dst := eu.create(api.CreateDatabaseRequest{Name: "orders-eu", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{
		URI: us.sourceURL(src.UID), Encryption: true, ServerCert: us.cluster().ProxyCert}}})
	eu.waitInSync(dst.UID, time.Minute)
	sc, dc := destClient(t, src, 0), destClient(t, dst, 0)
	ctx := redistest.Ctx(t)

	other, _ := selfSignedClient(t)
	only := []string{string(other)}
	us.update(src.UID, api.UpdateDatabaseRequest{ClientCertificates: &only})
	sc.Set(ctx, "after-removal", "1", 0)
	eu.waitSourceError(dst.UID, "client certificate")
	assert.Zero(t, dc.Exists(ctx, "after-removal").Val(), "a write reached a destination whose certificate was removed")

	again := []string{string(other), eu.cluster().SyncerCert}
	us.update(src.UID, api.UpdateDatabaseRequest{ClientCertificates: &again})
	eu.waitInSync(dst.UID, time.Minute)
	eventuallyEqual(t, time.Minute, dc, sc)
	assert.Equal(t, 1.0, metric(eu.metrics(), "replicad_replica_full_syncs_total"), "listing the certificate again reloaded the destination\n%s", grep(eu.metrics(), "syncs_total"))
}

// A plain-text destination of an open-source Redis's TLS port, and a TLS
// destination of its plain port, say what to change.
func TestOpenSourceRedisTLSPortMismatch(t *testing.T) {
	dir := t.TempDir()
	ca, err := certs.LoadOrCreateCA(dir, "oss test CA")
	require.NoError(t, err)
	_, _, err = ca.LoadOrIssue(dir, "node", []string{"127.0.0.1"}, false)
	require.NoError(t, err)
	tlsPort := redistest.FreePort(t)
	oss := redistest.Start(t, "--requirepass", "oss-secret", "--tls-port", fmt.Sprint(tlsPort),
		"--tls-cert-file", filepath.Join(dir, "node.pem"), "--tls-key-file", filepath.Join(dir, "node-key.pem"),
		"--tls-ca-cert-file", filepath.Join(dir, "ca.pem"), "--tls-auth-clients", "no")
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	require.NoError(t, err)
	a := newAPI(t, servicetest.Start(t))

	plain := a.create(api.CreateDatabaseRequest{Name: "plain-to-tls", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{
		URI: fmt.Sprintf("redis://:oss-secret@127.0.0.1:%d", tlsPort)}}})
	db := a.waitSourceError(plain.UID, "TLS")
	assert.NotContains(t, db.ReplicaSources[0].LastError, "oss-secret")

	tlsToPlain := a.create(api.CreateDatabaseRequest{Name: "tls-to-plain", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{
		URI: oss.URL(), Encryption: true, ServerCert: string(caPEM)}}})
	db = a.waitSourceError(tlsToPlain.UID, "does not speak TLS")
	assert.Contains(t, db.ReplicaSources[0].LastError, "encryption = false")
	assert.NotContains(t, db.ReplicaSources[0].LastError, "oss-secret")

	ok := a.create(api.CreateDatabaseRequest{Name: "tls", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{
		URI: fmt.Sprintf("rediss://:oss-secret@127.0.0.1:%d", tlsPort), Encryption: true, ServerCert: string(caPEM)}}})
	a.waitInSync(ok.UID, time.Minute)
}

// client_certificates pin the TLS clients of the replication endpoint:
// with tls_mode disabled the endpoint has no TLS, and any client that knows
// the password would replicate, in plain text. The API refuses the
// combination rather than ignore the pins.
func TestClientCertificatesNeedTLS(t *testing.T) {
	a := newAPI(t, servicetest.Start(t))
	pin, _ := selfSignedClient(t)
	code, body := a.do("POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "pinned-plain", MemorySize: 64 << 20,
		ClientCertificates: []string{string(pin)}}, nil)
	require.Equal(t, 400, code, body)
	assert.Contains(t, body, "tls_mode")

	db := a.create(api.CreateDatabaseRequest{Name: "pinned", MemorySize: 64 << 20, TLSMode: api.TLSReplicaSSL,
		ClientCertificates: []string{string(pin)}})
	off := api.TLSDisabled
	code, body = a.do("PUT", fmt.Sprintf("/v1/bdbs/%d", db.UID), api.UpdateDatabaseRequest{TLSMode: &off}, nil)
	require.Equal(t, 400, code, body)
	assert.Equal(t, api.TLSReplicaSSL, a.get(db.UID).TLSMode, "nothing changed")
	// Both at once is fine.
	none := []string{}
	a.update(db.UID, api.UpdateDatabaseRequest{TLSMode: &off, ClientCertificates: &none})
}
