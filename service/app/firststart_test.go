package app_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redisurl"
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// startOn starts an instance with cfg (its data directory, ports and
// logger filled in when empty) and stops it at the end of the test.
func startOn(t *testing.T, cfg app.Config) (*servicetest.Instance, error) {
	t.Helper()
	if cfg.PortMin == 0 {
		cfg.PortMin, cfg.PortMax, cfg.Listen = servicetest.PortWindow(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testLogWriter{t}, nil))
	}
	cfg.Name = "test"
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := app.Start(c, cfg)
	if err != nil {
		return nil, err
	}
	i := &servicetest.Instance{App: a, URL: a.URL(), Username: a.AdminUser(), Password: a.AdminPassword(), CACert: string(a.CACert()), DataDir: cfg.DataDir}
	t.Cleanup(func() { stopApp(t, i) })
	select {
	case <-a.Started():
	case <-c.Done():
		t.Fatal("the databases did not come back within a minute")
	}
	return i, nil
}

func stopApp(t *testing.T, i *servicetest.Instance) {
	if i.App == nil {
		return
	}
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := i.App.Stop(c); err != nil {
		t.Logf("stop: %v", err)
	}
	i.App = nil
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

// tlsHandshake connects to addr and checks the server's certificate
// against the instance's CA for serverName, as a client that verifies
// host names does.
func tlsHandshake(caPEM, addr, serverName string) error {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(caPEM)) {
		return fmt.Errorf("no CA certificate")
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: serverName})
	if err != nil {
		return err
	}
	return conn.Close()
}

// A restart with another --advertise-host reissues the certificates that
// databases and replication endpoints present, from the same CA: clients
// that verify the host name they were given (the new advertised one) fail
// otherwise, and the CA they were given earlier still verifies.
func TestAnotherAdvertiseHostReissuesTheDatabasesCertificates(t *testing.T) {
	servicetest.RequireRedisServer(t)
	portMin, portMax, listen := servicetest.PortWindow(t)
	cfg := app.Config{DataDir: t.TempDir(), PortMin: portMin, PortMax: portMax, Listen: listen, AdvertiseHost: "127.0.0.1"}
	i, err := startOn(t, cfg)
	require.NoError(t, err)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "secure", MemorySize: 32 << 20, TLSMode: api.TLSEnabled})
	caPEM := i.CACert
	require.NoError(t, tlsHandshake(caPEM, fmt.Sprintf("127.0.0.1:%d", db.Port), "127.0.0.1"))
	stopApp(t, i)

	// Loopback answers on all of 127/8: the new name is one a client can
	// be given and verify, while the service still binds 127.0.0.1.
	cfg.Listen = i.URL[len("https://"):]
	cfg.AdvertiseHost = "127.0.0.9"
	i, err = startOn(t, cfg)
	require.NoError(t, err)
	assert.Equal(t, caPEM, i.CACert, "the CA is kept")
	var got api.Database
	code, e := call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", db.UID), nil, &got)
	require.Equal(t, 200, code, "%v", e)
	require.Equal(t, "127.0.0.9", got.Endpoint.Host)
	eventually(t, 30*time.Second, "the database presents a certificate for the advertised host", func() error {
		return tlsHandshake(caPEM, fmt.Sprintf("127.0.0.1:%d", db.Port), "127.0.0.9")
	})
	assert.NoError(t, tlsHandshake(caPEM, fmt.Sprintf("127.0.0.1:%d", got.ReplicationPort), "127.0.0.9"), "the replication endpoint too")
	var cluster api.Cluster
	code, e = call(t, i, "GET", "/v1/cluster", nil, &cluster)
	require.Equal(t, 200, code, "%v", e)
	onDisk, err := os.ReadFile(filepath.Join(cfg.DataDir, "proxy.pem"))
	require.NoError(t, err)
	assert.Equal(t, string(onDisk), cluster.ProxyCert, "/v1/cluster gives the certificate in use")
	node, err := tls.LoadX509KeyPair(filepath.Join(cfg.DataDir, "node.pem"), filepath.Join(cfg.DataDir, "node-key.pem"))
	require.NoError(t, err)
	assert.NoError(t, node.Leaf.VerifyHostname("127.0.0.9"), "node.pem names the advertised host too")
}

// Files that a kill -9 during the first start left empty are made again
// when nothing can depend on them, and a damaged CA that signed the other
// certificates stops the start with an error that names it.
func TestEmptyFilesOfAnInterruptedFirstStart(t *testing.T) {
	servicetest.RequireRedisServer(t)
	portMin, portMax, listen := servicetest.PortWindow(t)
	cfg := app.Config{DataDir: t.TempDir(), PortMin: portMin, PortMax: portMax, Listen: listen}
	i, err := startOn(t, cfg)
	require.NoError(t, err)
	cfg.Listen = i.URL[len("https://"):]
	stopApp(t, i)

	for _, f := range []string{"proxy.pem", "node-key.pem", "api.pem", "admin-password", "instance-id"} {
		require.NoError(t, os.Truncate(filepath.Join(cfg.DataDir, f), 0), f)
	}
	i, err = startOn(t, cfg)
	require.NoError(t, err, "empty leaf certificates and secrets are made again")
	assert.NotEmpty(t, i.Password)
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, "admin-password"))
	require.NoError(t, err)
	assert.Equal(t, i.Password+"\n", string(b))
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "secure", MemorySize: 32 << 20, TLSMode: api.TLSEnabled})
	eventually(t, 30*time.Second, "the database serves TLS with the reissued certificate", func() error {
		return tlsHandshake(i.CACert, fmt.Sprintf("127.0.0.1:%d", db.Port), "127.0.0.1")
	})
	stopApp(t, i)

	require.NoError(t, os.Truncate(filepath.Join(cfg.DataDir, "ca-key.pem"), 0))
	_, err = startOn(t, cfg)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ca-key.pem")
	assert.Contains(t, err.Error(), "empty")
}

// Deleting the state file under a running instance does not let a second
// instance start on its data directory (the lock was the state file's, and
// went with it), and the running one refuses changes it would lose.
func TestDeletedStateFileDoesNotLetASecondInstanceIn(t *testing.T) {
	i := servicetest.Start(t)
	require.NoError(t, os.Remove(filepath.Join(i.DataDir, "state.db")))
	before := topFiles(t, i.DataDir)
	_, err := startOn(t, app.Config{DataDir: i.DataDir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "another redis-replicad serves this data directory")
	assert.Equal(t, before, topFiles(t, i.DataDir), "the refused instance changed the data directory")
	_, err = os.Stat(filepath.Join(i.DataDir, "state.db"))
	assert.ErrorIs(t, err, os.ErrNotExist, "the refused instance made no state file")

	// The running instance refuses changes, which the deleted file would
	// have lost at its next start although it answered them as done.
	code, e := call(t, i, "POST", "/v1/bdbs", api.CreateDatabaseRequest{Name: "lost", MemorySize: 16 << 20}, nil)
	assert.Equal(t, 503, code)
	assert.Contains(t, e.Description, "state file was deleted or replaced")
	code, _ = call(t, i, "GET", "/v1/bdbs", nil, nil)
	assert.Equal(t, 200, code, "reads still answer")

	// The first instance's stop releases the directory.
	i.Stop(t)
	_, err = startOn(t, app.Config{DataDir: i.DataDir})
	require.NoError(t, err)
}

// A data directory that is a symbolic link works as its target does (the
// lock is the target's, whichever name a second instance uses), and one
// whose target is missing says so: mkdir's "file exists" named the link.
func TestDataDirectoryThatIsASymbolicLink(t *testing.T) {
	base := t.TempDir()
	link := filepath.Join(base, "dangling")
	require.NoError(t, os.Symlink(filepath.Join(base, "nowhere"), link))
	_, err := startOn(t, app.Config{DataDir: link, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "symbolic link to "+filepath.Join(base, "nowhere"))

	i := servicetest.Start(t)
	other := filepath.Join(base, "another-name")
	require.NoError(t, os.Symlink(i.DataDir, other))
	_, err = startOn(t, app.Config{DataDir: other, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "another redis-replicad serves this data directory")
}

// --advertise-host takes an IPv6 address in brackets too, as a URL writes
// it: the endpoints name it bare, and its certificates are not issued
// again at every start ("[::1]" went into them as a DNS name, which never
// matched). A value that is no host (a port, 0.0.0.0) is refused.
func TestAdvertiseHostInBrackets(t *testing.T) {
	servicetest.RequireRedisServer(t)
	portMin, portMax, listen := servicetest.PortWindow(t)
	cfg := app.Config{DataDir: t.TempDir(), PortMin: portMin, PortMax: portMax, Listen: listen, AdvertiseHost: "[::1]"}
	i, err := startOn(t, cfg)
	require.NoError(t, err)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "v6", MemorySize: 16 << 20})
	assert.Equal(t, "::1", db.Endpoint.Host)
	var su api.SourceURL
	code, e := call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d/source_url", db.UID), nil, &su)
	require.Equal(t, 200, code, "%v", e)
	src, err := redisurl.Parse(su.URI)
	require.NoError(t, err, "the source URL parses")
	assert.Equal(t, "::1", src.Host)
	before, err := os.ReadFile(filepath.Join(cfg.DataDir, "proxy.pem"))
	require.NoError(t, err)
	stopApp(t, i)
	cfg.Listen = i.URL[len("https://"):]
	i, err = startOn(t, cfg)
	require.NoError(t, err)
	stopApp(t, i)
	after, err := os.ReadFile(filepath.Join(cfg.DataDir, "proxy.pem"))
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after), "proxy.pem is not issued again by a start with the same --advertise-host")

	for _, bad := range []string{"1.2.3.4:5", "0.0.0.0", "[::]", "a host"} {
		cfg.AdvertiseHost = bad
		_, err := startOn(t, cfg)
		require.Error(t, err, bad)
		assert.Contains(t, err.Error(), "--advertise-host", bad)
	}
}
