// Package app assembles a redis-replicad instance: state file, certificates,
// database processes, syncers and the HTTPS API.
package app

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/replicad/terraform-provider-redis/internal/connlimit"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/atomicfile"
	"github.com/replicad/terraform-provider-redis/internal/dirlock"
	"github.com/replicad/terraform-provider-redis/internal/redisurl"
	apiserver "github.com/replicad/terraform-provider-redis/service/api"
	"github.com/replicad/terraform-provider-redis/service/certs"
	"github.com/replicad/terraform-provider-redis/service/controller"
	"github.com/replicad/terraform-provider-redis/service/databases"
	"github.com/replicad/terraform-provider-redis/service/gateway"
	"github.com/replicad/terraform-provider-redis/service/replication"
	"github.com/replicad/terraform-provider-redis/service/store"
	"github.com/replicad/terraform-provider-redis/service/telemetry"
	"github.com/replicad/terraform-provider-redis/service/ui"
)

// DefaultAdminPasswordGrace is how long a regenerated admin password keeps
// opening replication sessions: long enough for the terraform apply that
// regenerated it to give the destinations the new URL.
const DefaultAdminPasswordGrace = 15 * time.Minute

// Version of the service, reported by /v1/cluster and `redis-replicad
// version`. Release builds set it from git (make build, goreleaser):
// -ldflags "-X github.com/replicad/terraform-provider-redis/service/app.Version=v1.2.3".
var Version = "dev"

// Config of an instance. Zero values get the documented defaults.
type Config struct {
	DataDir       string
	Listen        string // host:port of the API; port 0 picks one
	Name          string // cluster name; default: the host name
	AdminUser     string // default "admin"
	AdminPassword string // default: generated once into DataDir/admin-password
	TLSCert       string // PEM file; default: generated from the instance's CA
	TLSKey        string
	RedisServer   string // default: redis-server from PATH
	PortMin       int    // default 12000
	PortMax       int    // default 12999
	AdvertiseHost string // default: the listen host
	Logger        *slog.Logger
	// AdminPasswordGrace: how long a database's admin password stays valid
	// for replication after a regeneration. Default 15 minutes; negative
	// for none.
	AdminPasswordGrace time.Duration
	// MaxConcurrentLoads bounds the full loads that run at once (0: the
	// number of CPUs, at least 2).
	MaxConcurrentLoads int
	// FileLoadRawLimit: see replication.Config (0: its default).
	FileLoadRawLimit int
	// NoLinkLoad, NoMergedLoad, MergeReadyTimeout, LinkReplTimeout: see
	// replication.Config.
	NoLinkLoad, NoMergedLoad bool
	// NoMasterLink: see replication.Config. For tests.
	NoMasterLink                       bool
	MergeReadyTimeout, LinkReplTimeout time.Duration
	// ViewerUser and ViewerPassword, when set, are a read-only user of the
	// API, the console and /metrics.
	ViewerUser     string
	ViewerPassword string
	// MaxAPIConnections bounds the API's open connections (0: 1024), so
	// that a flood of connections cannot use up the file descriptors that
	// the databases' restarts, logs and replication need. A connection
	// past it closes an idle one of the address holding the most
	// (package connlimit), so a flood does not lock others out.
	MaxAPIConnections int
}

// App is a running instance.
type App struct {
	cfg      Config
	store    *store.Store
	lock     *dirlock.Lock // of the data directory, released last
	dbs      *databases.Manager
	repl     *replication.Manager
	gw       *gateway.Gateway
	ctrl     *controller.Controller
	console  *ui.Console
	listener net.Listener
	http     *http.Server
	caPEM    []byte
	served   chan struct{}
	// endRequests ends the contexts of the API's requests in flight, at
	// Stop once they have had stopGrace to finish.
	endRequests context.CancelFunc

	// Startup: the databases and syncers come back in the background.
	stopStartup context.CancelFunc
	started     chan struct{} // closed once every database is up (or given up on)
	startupDone chan struct{} // closed when the startup goroutine returns
}

// startup brings the stored databases and syncers back, then waits for the
// databases to serve; started is closed at the end whatever happened.
func (a *App) startup(ctx context.Context) {
	defer close(a.startupDone)
	defer close(a.started)
	began := time.Now()
	if err := a.ctrl.Start(ctx); err != nil {
		a.cfg.Logger.Error("bring the databases back", "err", err)
		return
	}
	if err := a.ctrl.WaitStarted(ctx); err != nil {
		return
	}
	a.cfg.Logger.Info("every database is back", "in", time.Since(began).Round(time.Millisecond))
}

// health is what /healthz says: "starting" while the databases come back,
// then "ok".
func (a *App) health() string {
	select {
	case <-a.started:
		return "ok"
	default:
		return "starting"
	}
}

// Started is closed once every database restored at start serves (or did
// not come up within its grace period: it keeps being retried).
func (a *App) Started() <-chan struct{} { return a.started }

// Start opens the state, brings every database and syncer back and serves
// the API. It returns once the API accepts connections.
func Start(ctx context.Context, cfg Config) (*App, error) {
	if err := defaults(&cfg); err != nil {
		return nil, err
	}
	// Every line about a database carries its name beside its uid.
	names := telemetry.NewNames(nil)
	log := slog.New(telemetry.NewLogHandler(cfg.Logger.Handler(), names))
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		if target, lerr := os.Readlink(cfg.DataDir); lerr == nil {
			// mkdir's "file exists" would name the link, which exists.
			return nil, fmt.Errorf("create data directory: %s is a symbolic link to %s, which is not a directory: create that directory, or give another --data-dir", cfg.DataDir, target)
		}
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	// The data directory's lock first: a second instance on it is refused
	// before it writes anything there (secrets, certificates). It locks the
	// directory itself: the state file's own lock went with the file when
	// someone deleted it, and let a second instance in.
	lock, err := dirlock.Acquire(ctx, cfg.DataDir, 5*time.Second)
	if held := (*dirlock.HeldError)(nil); errors.As(err, &held) {
		return nil, fmt.Errorf("data directory %s is locked by %s: another redis-replicad serves this data directory (stop it first, or give this one another --data-dir)", cfg.DataDir, held.Holder())
	}
	if err != nil {
		return nil, fmt.Errorf("lock the data directory: %w", err)
	}
	if why := lock.Unsupported(); why != nil {
		log.Warn("the data directory's filesystem cannot lock a directory: only the state file's lock keeps a second instance out, and deleting state.db under this one would let one in", "err", why)
	}
	st, err := store.Open(filepath.Join(cfg.DataDir, "state.db"))
	if err != nil {
		lock.Close()
		return nil, err
	}
	owned := false // once the App owns st and lock, its closeParts closes them
	defer func() {
		if !owned {
			st.Close()
			lock.Close()
		}
	}()
	redisServer, err := databases.FindRedisServer(cfg.RedisServer)
	if err != nil {
		return nil, err
	}
	if cfg.AdminPassword == "" {
		if cfg.AdminPassword, err = loadOrCreateSecret(filepath.Join(cfg.DataDir, "admin-password"), log); err != nil {
			return nil, err
		}
	}
	ca, err := certs.OpenCA(cfg.DataDir, "redis-replicad "+cfg.Name+" CA", []string{"api", "proxy", "node"}, log)
	if err != nil {
		return nil, fmt.Errorf("load or create the instance CA: %w", err)
	}
	tlsCert, err := apiCertificate(cfg, ca)
	if err != nil {
		return nil, err
	}
	// The databases' certificates name every address they are reached at:
	// the advertised host, the address they listen on, and loopback. A
	// start where these changed issues them again (same CA, same key).
	proxyPEM, proxyKey, err := ca.LoadOrIssue(cfg.DataDir, "proxy", databaseHosts(cfg), false)
	if err != nil {
		return nil, err
	}
	proxyCert, err := tls.X509KeyPair(proxyPEM, proxyKey)
	if err != nil {
		return nil, fmt.Errorf("load proxy certificate: %w", err)
	}
	// The nodes of a sharded database with TLS talk to each other (cluster
	// bus, replica links) as clients with this certificate of the
	// instance's CA, which every database trusts.
	if _, _, err := ca.LoadOrIssue(cfg.DataDir, "node", databaseHosts(cfg), true); err != nil {
		return nil, err
	}
	// The syncer certificate is self-signed: a source pins it as it is,
	// whoever the source's CA is (redis-server's own TLS included).
	syncerPEM, syncerKey, err := certs.LoadOrCreateSelfSigned(cfg.DataDir, "syncer", "redis-replicad syncer "+cfg.Name)
	if err != nil {
		return nil, err
	}
	syncerCert, err := tls.X509KeyPair(syncerPEM, syncerKey)
	if err != nil {
		return nil, fmt.Errorf("load syncer certificate: %w", err)
	}

	// The instance's name in the lineages that find replication cycles
	// across instances (see package replication): random once, kept.
	instanceID, err := loadOrCreateSecret(filepath.Join(cfg.DataDir, "instance-id"), log)
	if err != nil {
		return nil, err
	}
	stored, err := st.List()
	if err != nil {
		return nil, fmt.Errorf("read the state: %w", err)
	}
	for _, d := range stored {
		names.Set(d.UID, d.Name)
	}
	// A database being created is logged about (its syncers start) before
	// the API call that creates it returns: its name is read from the store.
	// A read transaction is safe here: it ends before the log call returns,
	// also when the caller is inside a write transaction.
	names.Load = func(uid int) (string, bool) {
		d, err := st.Get(uid)
		return d.Name, err == nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a := &App{cfg: cfg, store: st, lock: lock, caPEM: ca.CertPEM, served: make(chan struct{}), started: make(chan struct{}), startupDone: make(chan struct{})}
	owned = true
	a.dbs, err = databases.NewManager(databases.Config{RedisServer: redisServer, DataDir: cfg.DataDir, BindHost: bindHost(cfg.Listen), Logger: log,
		AdvertiseHost: cfg.AdvertiseHost,
		// Set below, before any database starts, so before any restarts.
		OnRestart: func(uid int) { a.repl.DestinationRestarted(uid) },
		TLS: databases.TLSFiles{CertFile: filepath.Join(cfg.DataDir, "proxy.pem"), KeyFile: filepath.Join(cfg.DataDir, "proxy-key.pem"), CAFile: filepath.Join(cfg.DataDir, "ca.pem"),
			NodeCertFile: filepath.Join(cfg.DataDir, "node.pem"), NodeKeyFile: filepath.Join(cfg.DataDir, "node-key.pem")}})
	if err != nil {
		st.Close()
		lock.Close()
		return nil, err
	}
	a.gw = gateway.New(log, reg)
	a.repl = replication.NewManager(replication.Config{Destinations: destinations{a.dbs}, Registerer: reg, Logger: log, SyncerCert: syncerCert,
		MaxConcurrentLoads: cfg.MaxConcurrentLoads, FileLoadRawLimit: cfg.FileLoadRawLimit, NoLinkLoad: cfg.NoLinkLoad, NoMasterLink: cfg.NoMasterLink, NoMergedLoad: cfg.NoMergedLoad, MergeReadyTimeout: cfg.MergeReadyTimeout, LinkReplTimeout: cfg.LinkReplTimeout, InstanceID: instanceID,
		OnStopped: func(failed store.Database, why map[string]string, resumable bool) {
			a.ctrl.MarkStopped(context.Background(), failed, why, resumable)
		},
		LocalEndpointDown: func(uri string) string { return a.ctrl.EndpointDownAt(uri) }})
	a.ctrl = controller.New(controller.Config{
		Store: st, Databases: a.dbs, Replicator: a.repl, AdvertiseHost: cfg.AdvertiseHost,
		Gateway: &gatewayAdapter{gw: a.gw, dbs: a.dbs, bindHost: bindHost(cfg.Listen), proxyCert: proxyCert, advertiseHost: cfg.AdvertiseHost, lineage: a.repl.Lineage},
		PortMin: cfg.PortMin, PortMax: cfg.PortMax, Logger: log, AdminPasswordGrace: max(cfg.AdminPasswordGrace, 0),
		Cluster: api.Cluster{Name: cfg.Name, Version: Version, CACert: string(ca.CertPEM), ProxyCert: string(proxyPEM), SyncerCert: string(syncerPEM)},
	})
	// Before the API serves: no one may read a database whose create was
	// never answered.
	if err := a.ctrl.DropUnfinished(); err != nil {
		a.closeParts()
		return nil, err
	}
	a.listener, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		a.closeParts()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	maxConns := cfg.MaxAPIConnections
	if maxConns <= 0 {
		maxConns = defaultMaxAPIConnections
	}
	limited := connlimit.New(a.listener, maxConns)
	a.listener = limited
	certPEMs := map[string][]byte{"ca": ca.CertPEM, "proxy": proxyPEM, "syncer": syncerPEM}
	if len(tlsCert.Certificate) > 0 {
		certPEMs["api"] = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsCert.Certificate[0]})
	}
	reg.MustRegister(telemetry.NewStatusCollector(telemetry.Source{
		Version: Version, Databases: a.ctrl.ListDatabases, MemoryUsed: a.memoryUsed, Certificates: certPEMs,
	}))
	gatherer := telemetry.NamedGatherer{Gatherer: reg, Names: names}
	a.console = ui.Start(ui.Config{
		Name: cfg.Name, Version: Version, Certificates: certPEMs, Databases: a.ctrl.ListDatabases,
		MemoryUsed: a.memoryUsed, Gatherer: reg, Logger: log,
	})
	handler := apiserver.NewHandler(apiserver.Config{
		Username: cfg.AdminUser, Password: cfg.AdminPassword,
		ViewerUsername: cfg.ViewerUser, ViewerPassword: cfg.ViewerPassword,
		Backend: &namedBackend{Controller: a.ctrl, names: names},
		Metrics: promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}), Logger: log,
		Console: a.console.Files(), ConsoleData: a.console.Data(),
		Health: a.health,
	})
	reqCtx, endRequests := context.WithCancel(context.Background())
	a.endRequests = func() {
		endRequests()
		a.ctrl.EndRequests() // and the changes whose clients stopped waiting
	}
	a.http = &http.Server{
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
		ConnContext:       limited.ConnContext,
		ConnState:         limited.ConnState,
		Handler:           limited.Track(handler),
		TLSConfig:         certs.ServerTLS(tlsCert),
		ReadHeaderTimeout: 10 * time.Second,
		// A request's body (4 MiB at most) arrives within a minute, and a
		// kept-alive connection is closed after two idle minutes: an
		// unauthenticated client cannot hold connections for ever.
		ReadTimeout: time.Minute,
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	// The API serves before the databases are back: a restart whose
	// databases replay large AOFs must not hide it. Meanwhile /healthz says
	// "starting" and each database says "loading".
	go func() {
		defer close(a.served)
		if err := a.http.ServeTLS(a.listener, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("API server stopped", "err", err)
		}
	}()
	startCtx, cancel := context.WithCancel(context.Background())
	a.stopStartup = cancel
	go a.startup(startCtx)
	log.Info("redis-replicad serving; databases coming back", "api", a.URL(), "data_dir", cfg.DataDir, "name", cfg.Name)
	return a, nil
}

// URL is the base URL of the API.
func (a *App) URL() string { return "https://" + a.listener.Addr().String() }

// Addr is the API's listening address.
func (a *App) Addr() string { return a.listener.Addr().String() }

// AdminUser and AdminPassword are the API credentials.
func (a *App) AdminUser() string     { return a.cfg.AdminUser }
func (a *App) AdminPassword() string { return a.cfg.AdminPassword }

// CACert is the PEM of the CA that signed the API certificate.
func (a *App) CACert() []byte { return a.caPEM }

// Databases gives tests access to the processes (to kill a child, say).
func (a *App) Databases() *databases.Manager { return a.dbs }

// Stop shuts the API, the syncers and the databases down.
func (a *App) Stop(ctx context.Context) error {
	// A request in flight has a moment to finish; then its context ends,
	// so that a change waiting for a redis-server that does not answer
	// (it is recorded, and applied once the server answers) does not
	// hold the stop.
	end := time.AfterFunc(stopGrace, a.endRequests)
	defer end.Stop()
	err := a.http.Shutdown(ctx)
	a.endRequests()
	<-a.served
	a.stopStartup()
	<-a.startupDone
	a.closeParts()
	return err
}

// defaultMaxAPIConnections: see Config.MaxAPIConnections. Terraform, the
// console and monitoring need a few dozen.
const defaultMaxAPIConnections = 1024

// stopGrace is how long Stop lets the API's requests in flight finish.
const stopGrace = 3 * time.Second

func (a *App) closeParts() {
	if a.console != nil {
		a.console.Close()
	}
	if a.ctrl != nil {
		a.ctrl.Close()
	}
	a.repl.Close()
	a.gw.Close()
	a.dbs.Close()
	a.store.Close()
	a.lock.Close()
}

func defaults(cfg *Config) error {
	if cfg.DataDir == "" {
		return errors.New("a data directory is required (--data-dir)")
	}
	// redis-server runs in its database's directory: a relative path
	// there would name another place (and the logs it points to).
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("data directory %q: %w", cfg.DataDir, err)
	}
	cfg.DataDir = dir
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:9443"
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", cfg.Listen, err)
	}
	if cfg.AdvertiseHost == "" {
		cfg.AdvertiseHost = host
		if host == "" || host == "0.0.0.0" || host == "::" {
			cfg.AdvertiseHost = "127.0.0.1"
		}
	}
	// An IPv6 address may be given as a URL writes it; the endpoints,
	// source URLs and certificates take it bare ("[::1]" was a DNS name
	// in the certificates, which never matched it and were issued again
	// at every start).
	if h := cfg.AdvertiseHost; len(h) > 2 && h[0] == '[' && h[len(h)-1] == ']' {
		cfg.AdvertiseHost = h[1 : len(h)-1]
	}
	if ip := net.ParseIP(cfg.AdvertiseHost); !redisurl.ValidHost(cfg.AdvertiseHost) || len(cfg.AdvertiseHost) > 253 || ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("--advertise-host %q is not a host name or an IP address to reach this host at (no port, not 0.0.0.0 or ::): the databases' endpoints and source URLs name it", cfg.AdvertiseHost)
	}
	if cfg.Name == "" {
		cfg.Name, _ = os.Hostname()
	}
	if cfg.AdminUser == "" {
		cfg.AdminUser = "admin"
	}
	if cfg.AdminPasswordGrace == 0 {
		cfg.AdminPasswordGrace = DefaultAdminPasswordGrace
	}
	if cfg.PortMin == 0 && cfg.PortMax == 0 {
		cfg.PortMin, cfg.PortMax = 12000, 12999
	}
	if cfg.PortMin < 1 || cfg.PortMax > 65535 || cfg.PortMin > cfg.PortMax {
		return fmt.Errorf("port range %d-%d is invalid", cfg.PortMin, cfg.PortMax)
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if (cfg.ViewerUser == "") != (cfg.ViewerPassword == "") {
		return errors.New("--viewer-user and --viewer-password (or --viewer-password-file) go together: give both, or neither")
	}
	if cfg.ViewerUser != "" && cfg.ViewerUser == cfg.AdminUser {
		return errors.New("the viewer user must not be the admin user")
	}
	return nil
}

func bindHost(listen string) string {
	host, _, _ := net.SplitHostPort(listen)
	if host == "" || host == "::" {
		return "0.0.0.0"
	}
	return host
}

// databaseHosts are the names and addresses the databases' certificates
// name: the advertised host, loopback, and the --listen host when it is one
// address (the databases listen there too).
func databaseHosts(cfg Config) []string {
	hosts := []string{cfg.AdvertiseHost, "localhost", "127.0.0.1"}
	if h := bindHost(cfg.Listen); !slices.Contains(hosts, h) {
		if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

func apiCertificate(cfg Config, ca *certs.CA) (tls.Certificate, error) {
	if cfg.TLSCert != "" {
		c, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("load the API certificate (--tls-cert, --tls-key): %w", err)
		}
		return c, nil
	}
	hosts := []string{cfg.AdvertiseHost, "localhost", "127.0.0.1", "::1"}
	if h, _, _ := net.SplitHostPort(cfg.Listen); h != "" && !slices.Contains(hosts, h) {
		hosts = append(hosts, h)
	}
	// LoadOrIssue issues it again when a start with another --listen or
	// --advertise-host issued it: nobody pins the API's certificate (they
	// trust the CA).
	certPEM, keyPEM, err := ca.LoadOrIssue(cfg.DataDir, "api", hosts, false)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// loadOrCreateSecret reads a secret file, writing a new random secret (mode
// 0600) the first time. An empty file is what an earlier version's write,
// cut short by a crash of the first start, left: nobody can have read a
// secret from it, so a new one is made (and said).
func loadOrCreateSecret(path string, log *slog.Logger) (string, error) {
	atomicfile.RemoveLeftovers(path)
	if b, err := os.ReadFile(path); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, nil
		}
		log.Warn("a secret file is empty (an earlier start died while writing it): making a new secret", "path", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	buf := make([]byte, 24)
	_, _ = rand.Read(buf)
	s := base64.RawURLEncoding.EncodeToString(buf)
	if err := atomicfile.Write(path, []byte(s+"\n"), 0o600); err != nil {
		return "", err
	}
	return s, nil
}
