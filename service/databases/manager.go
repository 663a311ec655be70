// Package databases runs the redis-server processes of the service: one child
// per database, with its own directory, generated config, port, persistence
// and ACL users. A child that dies is restarted.
package databases

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/atomicfile"
	"github.com/replicad/terraform-provider-redis/service/store"
)

// Config of a Manager.
type Config struct {
	RedisServer string // path of redis-server
	DataDir     string // databases live in DataDir/dbs/<uid>
	BindHost    string // interface the databases listen on
	// AdvertiseHost is the host clients reach the databases at: the nodes
	// of a sharded database announce it (MOVED, CLUSTER SHARDS).
	AdvertiseHost string
	TLS           TLSFiles
	Logger        *slog.Logger

	// OnRestart, when set, is told (on a goroutine of its own) that the
	// redis-server of database uid, or of one of its nodes, started again
	// after it had exited: it may hold less than it had applied
	// (appendfsync everysec), which writers of a destination must learn
	// even when they have nothing to send.
	OnRestart func(uid int)

	// AOF rewrites (see rewrite.go); zero values mean the defaults.
	RewriteCheck     time.Duration // how often databases are looked at (500 ms)
	MinRewriteGrowth int64         // least AOF growth that triggers a rewrite (64 MiB)
}

// TLSFiles are what databases with TLS present and trust.
type TLSFiles struct {
	CertFile, KeyFile string // the instance's proxy certificate
	CAFile            string // the instance's CA
	// NodeCertFile and NodeKeyFile are the client certificate (of the
	// CA) the nodes of a sharded database present to each other.
	NodeCertFile, NodeKeyFile string
	// NoTLS: the redis-server was built without TLS (NewManager finds
	// out), so the cluster bus of a database without TLS stays plain.
	NoTLS bool
}

// FindRedisServer resolves the redis-server binary, with an error that says
// how to install it when it is missing, or when what the path names is not
// a redis-server of version 7 or later (ACL users, CLUSTER SHARDS, the AOF
// of several files).
func FindRedisServer(path string) (string, error) {
	if path == "" {
		path = "redis-server"
	}
	p, err := exec.LookPath(path)
	if err != nil {
		return "", fmt.Errorf("redis-server not found (%v): install Redis 7 or later, for example `apt-get install -y redis-server`, or pass --redis-server", err)
	}
	// Each redis-server starts in its database's directory, where a
	// relative path (--redis-server ./bin/redis-server) names nothing.
	if p, err = filepath.Abs(p); err != nil {
		return "", fmt.Errorf("redis-server %q: %w", path, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, p, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version failed (%v): --redis-server must name a redis-server of Redis 7 or later", p, err)
	}
	major, ok := redisMajor(string(out))
	if !ok {
		return "", fmt.Errorf("%s is not a redis-server (its --version said %q): --redis-server must name a redis-server of Redis 7 or later", p, strings.TrimSpace(string(out)))
	}
	if major < 7 {
		return "", fmt.Errorf("%s is Redis %d: the service needs Redis 7 or later", p, major)
	}
	return p, nil
}

// tlsBuilt says whether the redis-server binary knows TLS: one built
// without it stops at a tls-* directive of its configuration. It is given
// one, then a directive nobody knows, on its standard input, and says
// which line it stopped at; it never starts serving.
func tlsBuilt(binary string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "-")
	cmd.Stdin = strings.NewReader("tls-cluster no\nno-such-directive-of-redis-replicad 1\n")
	out, _ := cmd.CombinedOutput()
	return !strings.Contains(string(out), ">>> 'tls-cluster")
}

// redisMajor reads the major version from what redis-server --version
// prints ("Redis server v=7.0.15 sha=...").
func redisMajor(version string) (int, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(version), "Redis server v=")
	if !ok {
		return 0, false
	}
	major, _, _ := strings.Cut(rest, ".")
	n, err := strconv.Atoi(major)
	return n, err == nil
}

// Manager owns the processes. Its methods are safe for concurrent use.
type Manager struct {
	cfg    Config
	ctx    context.Context // lives until Close; parent of every process
	runDir string          // the sockets' directory, removed by Close

	mu      sync.Mutex
	procs   map[int]*process
	clients map[int]*redis.Client
	current map[int]store.Database // as last ensured, by process key
	// clusters are the clustered databases by uid (their nodes' records
	// are in current, under nodeKey).
	clusters map[int]store.Database
	cancel   context.CancelFunc

	rewriterDone chan struct{} // closed when scheduleRewrites returns

	files map[int]*sync.Mutex // by process key: see filesLock
}

// NewManager returns a Manager with no processes.
func NewManager(cfg Config) (*Manager, error) {
	// The sockets through which the service talks to its databases as
	// their all-powerful user: in a directory this process creates, mode
	// 0700, under a name nobody can guess. A predictable name in the shared
	// temporary directory could be created first by another local user,
	// who would then be handed the internal password.
	removePreviousRunDir(cfg)
	runDir, err := os.MkdirTemp("", "redis-replicad-")
	if err != nil {
		return nil, fmt.Errorf("create the directory of the databases' sockets: %w", err)
	}
	if cfg.DataDir != "" {
		if err := atomicfile.Write(filepath.Join(cfg.DataDir, runDirFile), []byte(runDir), 0o600); err != nil {
			cfg.Logger.Warn("record the directory of the databases' sockets", "err", err)
		}
	}
	if cfg.TLS.NodeCertFile != "" && !tlsBuilt(cfg.RedisServer) {
		cfg.TLS.NoTLS = true
		cfg.Logger.Warn("redis-server was built without TLS: the cluster bus of sharded databases is not authenticated (keep their bus ports private), and databases with TLS cannot start", "redis_server", cfg.RedisServer)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{cfg: cfg, ctx: ctx, cancel: cancel, runDir: runDir, procs: map[int]*process{}, clients: map[int]*redis.Client{}, current: map[int]store.Database{},
		clusters:     map[int]store.Database{},
		rewriterDone: make(chan struct{})}
	go m.scheduleRewrites(ctx)
	return m, nil
}

// runDirFile, in the data directory, names the sockets' directory of the
// last Manager of that data directory (the state file's lock makes it one
// at a time).
const runDirFile = "sockets-dir"

// removePreviousRunDir removes the sockets' directory of the data
// directory's previous run, which Close did not remove if the service was
// killed (kill -9, a crash): each such run would otherwise leave one in the
// shared temporary directory. Only a directory of the temporary directory
// named as NewManager names them is removed (the file is the service's
// own, mode 0600).
func removePreviousRunDir(cfg Config) {
	if cfg.DataDir == "" {
		return
	}
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, runDirFile))
	if err != nil {
		return
	}
	dir := filepath.Clean(string(b))
	if filepath.Dir(dir) != filepath.Clean(os.TempDir()) || !strings.HasPrefix(filepath.Base(dir), "redis-replicad-") {
		return
	}
	st, err := os.Lstat(dir)
	if err != nil || !st.IsDir() {
		return
	}
	if err := os.RemoveAll(dir); err != nil && cfg.Logger != nil {
		cfg.Logger.Warn("remove the sockets' directory of the previous run", "dir", dir, "err", err)
	}
}

// Dir is where the files of database uid live.
func (m *Manager) Dir(uid int) string {
	if uid < 0 {
		return m.nodeDir(uid) // a node of a clustered database
	}
	return filepath.Join(m.cfg.DataDir, "dbs", strconv.Itoa(uid))
}

// Socket is the unix socket through which the service itself talks to
// database uid, whatever TLS its TCP port requires. It lives in a short
// directory of this process's own (see NewManager), since socket paths are
// limited to about 100 bytes.
func (m *Manager) Socket(uid int) string {
	return filepath.Join(m.runDir, strconv.Itoa(uid)+".sock")
}

// Addr is the TCP address of a database's port as seen from this host.
func (m *Manager) Addr(port int) string {
	host := m.cfg.BindHost
	if host == "" || host == "0.0.0.0" || host == "*" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// Ensure makes database d run as stored: it starts its process when none
// runs, then applies the live settings (ACL users, maxmemory) once it
// answers. The config file is rewritten first, so a restart keeps them.
func (m *Manager) Ensure(ctx context.Context, d store.Database) error {
	if d.Clustered() {
		m.remember(d)
		// Every node is brought to the record, whatever another did: a
		// node that does not answer has its settings applied once it
		// does (reapplyLater), and must not keep the others at the
		// settings of before.
		var errs error
		for i := range d.Nodes {
			err := m.ensureOne(ctx, nodeDatabase(d, i))
			switch {
			case err == nil:
			case errs == nil:
				errs = fmt.Errorf("node %d: %w", i, err)
			default:
				errs = fmt.Errorf("%w; node %d: %w", errs, i, err) // one line, for the API's answer
			}
		}
		return errs
	}
	return m.ensureOne(ctx, d)
}

// applyWait bounds how long a change waits for its redis-server to take
// its settings; past it, they are applied in the background
// (reapplyLater). The API holds the controller's lock meanwhile, so one
// database that does not answer must not hold every other change long.
const applyWait = 15 * time.Second

// ensureOne is Ensure of one process.
func (m *Manager) ensureOne(ctx context.Context, d store.Database) error {
	p, err := m.launch(d, false)
	if err != nil {
		return m.filesNotWritten(ctx, d, err)
	}
	ctx, cancel := context.WithTimeout(ctx, applyWait)
	defer cancel()
	if err := m.applyLive(ctx, d); err != nil {
		m.reapplyLater(d.UID, p, err)
		return fmt.Errorf("%w; the change is recorded, and is applied as soon as its redis-server answers", err)
	}
	return nil
}

// filesNotWritten handles a change of d whose files could not be written
// (why: its disk full, say), which is recorded: its running server takes
// it all the same, its files are written again in the background until
// they are, and until then the database's last_error says so. The record
// and the server must not disagree until the next change. A change of its
// port or TLS mode, which only a restart takes, is not applied (the server
// keeps serving as it did); it is at the next change or start.
func (m *Manager) filesNotWritten(ctx context.Context, d store.Database, why error) error {
	m.mu.Lock()
	p := m.procs[d.UID]
	prev, known := m.current[d.UID]
	live := p != nil && known && portTLS(prev) == portTLS(d) && prev.Port == d.Port
	if live {
		m.current[d.UID] = d
	}
	m.mu.Unlock()
	if !live {
		return why
	}
	p.mu.Lock()
	p.filesPending = true
	p.mu.Unlock()
	actx, cancel := context.WithTimeout(ctx, applyWait)
	_ = m.applyLive(actx, d)
	cancel()
	m.reapplyLater(d.UID, p, fmt.Errorf("its files could not be written, so a restart of its redis-server would undo the change: %w", why))
	return fmt.Errorf("%w; the change is recorded and applied to the running redis-server, and its files are written as soon as they can be", why)
}

// reapplyLater keeps applying the latest settings of uid to p in the
// background until an apply succeeds or p stops. An apply the API gave up
// on (the server did not answer in time, the caller went away) must still
// reach the server: the record and the server would otherwise disagree
// until its next restart. Until then the database's last_error says so.
func (m *Manager) reapplyLater(uid int, p *process, why error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.applyErr = why.Error()
	if p.reapplying || p.ctx == nil {
		return
	}
	p.reapplying = true
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		for {
			// Each attempt waits up to 30 s for the server to answer, so
			// it applies as soon as the server does: a destination's
			// application user must not write meanwhile.
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(time.Second):
			}
			m.mu.Lock()
			d, known := m.current[uid]
			m.mu.Unlock()
			var err error
			if known {
				p.mu.Lock()
				files := p.filesPending
				p.mu.Unlock()
				if files {
					if err = m.rewriteFiles(uid); err == nil {
						p.mu.Lock()
						p.filesPending = false
						p.mu.Unlock()
					} else {
						err = fmt.Errorf("its files could not be written, so a restart of its redis-server would undo the change: %w", err)
					}
				}
				if err == nil {
					ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
					err = m.applyLive(ctx, d)
					cancel()
				}
			}
			p.mu.Lock()
			if err == nil || !known {
				p.reapplying = false
				p.mu.Unlock()
				if known {
					m.cfg.Logger.Info("the latest settings of a database are applied after all", "uid", uid)
				}
				return
			}
			p.applyErr = err.Error()
			p.mu.Unlock()
		}
	}()
}

// remember records a clustered database under its uid, so that Status and
// Remove find its nodes (node 0's record is kept under its own key).
func (m *Manager) remember(d store.Database) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clusters[d.UID] = d
}

// Start makes database d run as stored without waiting for it to answer:
// its live settings are applied once it does (a restarted service replaying
// a large AOF must not wait for it). Its status says where it stands.
func (m *Manager) Start(d store.Database) error {
	if d.Clustered() {
		m.remember(d)
		for i := range d.Nodes {
			if _, err := m.launch(nodeDatabase(d, i), false); err != nil {
				return fmt.Errorf("node %d: %w", i, err)
			}
		}
		return nil
	}
	m.mu.Lock()
	_, running := m.procs[d.UID]
	m.mu.Unlock()
	if !running {
		m.removeLoadLeftovers(d.UID)
	}
	_, err := m.launch(d, false)
	return err
}

// removeLoadLeftovers removes what a load of database uid that the
// service's death cut short left in its directory: the RDB file it was
// writing (CreateRDB), the reload server's directory (StartShadow), the
// dataset being swapped in (LoadRDB). The next load of the database, which
// removes them too, may never come (its Replica Of ended, or it loads
// another way). Called before its process starts: no load of it runs.
func (m *Manager) removeLoadLeftovers(uid int) {
	dir := m.Dir(uid)
	left, _ := filepath.Glob(filepath.Join(dir, "load-*.rdb"))
	left = append(left, filepath.Join(dir, "dump.rdb"), filepath.Join(dir, "reload"))
	for _, p := range left {
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			m.cfg.Logger.Warn("remove what a load cut short left", "uid", uid, "path", p, "err", err)
			continue
		}
		m.cfg.Logger.Info("removed what a load cut short by the service's death left", "uid", uid, "path", p)
	}
}

// PortInUseError says that another program holds the port a new database
// was to listen on.
type PortInUseError struct{ Port int }

func (e *PortInUseError) Error() string {
	return fmt.Sprintf("port %d is in use by another program on this host", e.Port)
}

// Create starts a new database and waits until it serves. When it cannot
// (its port taken by another program, between the check and the start, as
// a second instance on the same host can do), it leaves nothing behind: no
// process, no files; a taken port is a *PortInUseError.
func (m *Manager) Create(ctx context.Context, d store.Database) (err error) {
	if err := m.setAsideForeignDir(d.UID); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			m.stopAll(d)
			if rmErr := os.RemoveAll(m.Dir(d.UID)); rmErr != nil {
				m.cfg.Logger.Error("remove the files of a database that failed to start", "uid", d.UID, "err", rmErr)
			}
		}
	}()
	if d.Clustered() {
		m.remember(d)
		return m.createCluster(ctx, d)
	}
	if !m.PortFree(d.Port) {
		return &PortInUseError{Port: d.Port}
	}
	p, err := m.launch(d, true)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	applied := make(chan error, 1)
	go func() { applied <- m.applyLive(ctx, d) }()
	select {
	case err := <-applied:
		return err
	case exit := <-p.exited:
		cancel()
		<-applied
		tail := startLog(m.Dir(d.UID))
		if strings.Contains(tail, "Address already in use") {
			return &PortInUseError{Port: d.Port}
		}
		// Its files go with the failed create: say what its log said.
		return fmt.Errorf("start database %d: %w; redis-server said: %s", d.UID, exit, lastLines(tail, 3))
	}
}

// setAsideForeignDir moves away a directory that a new database's uid
// already has: the state file does not know it (it was lost, or restored
// from a backup older than the directory), so it holds another database's
// data, which the new one would have loaded as its own. It is kept, under
// a name the service never uses (dbs/<uid>.set-aside-<time>), for whoever
// knows what it is.
func (m *Manager) setAsideForeignDir(uid int) error {
	dir := m.Dir(uid)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("look for files of a previous database %d: %w", uid, err)
	}
	// Not ours if a server still runs there (a kill -9 of the service
	// while the state file was being replaced, say).
	endLeftovers(m.ctx, m.cfg.Logger, dir, m.cfg.RedisServer, true, nil)
	aside := fmt.Sprintf("%s.set-aside-%s", dir, time.Now().UTC().Format("20060102T150405.000000000"))
	if err := os.Rename(dir, aside); err != nil {
		return fmt.Errorf("set aside the files of an unknown database found in %s: %w", dir, err)
	}
	m.cfg.Logger.Warn("a new database's directory held the files of a database the state file does not know (was the state file lost, or restored from an older backup?): they are kept aside, not loaded", "uid", uid, "kept_in", aside)
	return nil
}

// startLog is what a redis-server that failed to start in dir said: the end
// of its log, or of its standard output and error when it wrote no log
// (it could not read its configuration, or enter its directory).
func startLog(dir string) string {
	if tail := logTail(filepath.Join(dir, "redis.log")); strings.TrimSpace(tail) != "" {
		return tail
	}
	return logTail(filepath.Join(dir, "stdout.log"))
}

// logTail is the end of a log file ("" when there is none).
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 16<<10 {
		_, _ = f.Seek(-16<<10, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// lastLines is the last n non-empty lines of text, joined by " | ".
func lastLines(text string, n int) string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out[max(0, len(out)-n):], " | ")
}

// launch writes d's files and starts its process when none runs (fresh: d
// was just created).
func (m *Manager) launch(d store.Database, fresh bool) (*process, error) {
	mu := m.filesLock(d.UID)
	mu.Lock()
	defer mu.Unlock()
	m.mu.Lock()
	prev, known := m.current[d.UID]
	_, running := m.procs[d.UID]
	m.mu.Unlock()
	if !running {
		m.removeWriteLeftovers(d.UID)
	}
	// The files first: a write that fails (a full disk) leaves the
	// previous files and the running server as they were.
	confPath, err := m.writeFiles(d)
	if err != nil {
		return nil, err
	}
	// Only enabled puts TLS on the database's port: replica_ssl is the
	// replication endpoint's (the gateway's), and a restart would cost the
	// applications their connections and every destination a full
	// resync (a new replication ID).
	restart := running && known && (portTLS(prev) != portTLS(d) || prev.Port != d.Port)
	if restart {
		// Its listening port changes protocol (or number): only a new
		// process picks that up.
		m.stop(d.UID)
	}
	dir := m.Dir(d.UID)
	m.mu.Lock()
	m.current[d.UID] = d
	p, running := m.procs[d.UID]
	if !running {
		uid, password := d.UID, d.InternalPassword
		p = &process{uid: uid, binary: m.cfg.RedisServer, dir: dir, confPath: confPath, addr: m.Addr(d.Port), log: m.cfg.Logger, fresh: fresh,
			applyTurn: make(chan struct{}, 1)}
		p.started = func(ctx context.Context) {
			go m.watch(ctx, uid, p, password)
			p.mu.Lock()
			restarted := p.restarts > 0
			p.mu.Unlock()
			if restarted && m.cfg.OnRestart != nil {
				db, _ := splitKey(uid)
				go m.cfg.OnRestart(db)
			}
			m.afterStart(ctx, uid)
		}
		m.procs[d.UID] = p
		p.start(m.ctx)
	}
	// The pool is kept while its socket and password stay and its server
	// was not just replaced: closing it would fail whoever holds it now (an
	// apply waiting for the server to answer, a status read).
	old := m.clients[d.UID]
	if old != nil && !restart && old.Options().Addr == m.Socket(d.UID) && old.Options().Password == d.InternalPassword {
		old = nil
	} else {
		m.clients[d.UID] = redis.NewClient(&redis.Options{
			Network: "unix", Addr: m.Socket(d.UID), Username: InternalUser, Password: d.InternalPassword,
			MaxRetries: -1, DialTimeout: 2 * time.Second, PoolSize: 4,
		})
	}
	m.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return p, nil
}

// writeFiles writes the files d's redis-server starts from, and says where
// its config is. They are replaced whole, and the trusted certificates of
// the previous config go only once the new config names others: a write
// that fails (a full disk) leaves the previous files, from which the
// server still starts again.
func (m *Manager) writeFiles(d store.Database) (string, error) {
	dir := m.Dir(d.UID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create directory of database %d: %w", d.UID, err)
	}
	confPath := filepath.Join(dir, "redis.conf")
	if err := writeClientCAs(dir, clientCAFile(d), m.cfg.TLS.CAFile, redisTrustedClients(d)); err != nil {
		return "", fmt.Errorf("write trusted client certificates of database %d: %w", d.UID, err)
	}
	if err := writeFileWhole(confPath, []byte(renderConfig(d, dir, m.bindHost(), m.cfg.AdvertiseHost, m.Socket(d.UID), m.cfg.TLS))); err != nil {
		return "", fmt.Errorf("write config of database %d: %w", d.UID, err)
	}
	removeOtherClientCAs(dir, clientCAFile(d))
	return confPath, nil
}

// filesLock is the lock under which the files of process key are written
// from its record (launch, rewriteFiles).
func (m *Manager) filesLock(key int) *sync.Mutex {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.files == nil {
		m.files = map[int]*sync.Mutex{}
	}
	if m.files[key] == nil {
		m.files[key] = &sync.Mutex{}
	}
	return m.files[key]
}

// rewriteFiles writes the files of process key from its latest record
// again, after a launch could not. A launch under way (which may be
// stopping the process, and waiting for its background work) is not
// waited for: this attempt fails, and the next one comes.
func (m *Manager) rewriteFiles(key int) error {
	mu := m.filesLock(key)
	if !mu.TryLock() {
		return errors.New("its files are being written")
	}
	defer mu.Unlock()
	m.mu.Lock()
	d, known := m.current[key]
	m.mu.Unlock()
	if !known {
		return nil
	}
	_, err := m.writeFiles(d)
	return err
}

// afterStart applies the live settings once a (re)started child answers;
// until then its application user has startRules (see renderConfig).
func (m *Manager) afterStart(ctx context.Context, uid int) {
	for ctx.Err() == nil {
		m.mu.Lock()
		d, ok := m.current[uid]
		m.mu.Unlock()
		if !ok {
			return
		}
		err := m.applyLive(ctx, d)
		if err == nil || ctx.Err() != nil {
			return
		}
		m.cfg.Logger.Warn("apply settings to a started redis-server; retrying", "uid", uid, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// applyLive pushes users and limits to a running database: its latest
// settings, whatever d holds. Applies take turns, and each reads the
// settings once it has its turn: the apply a start schedules could
// otherwise finish after the one of an update that came right after the
// create (Terraform creates a database, then makes it a Replica Of), and
// leave the application user of a destination able to write.
func (m *Manager) applyLive(ctx context.Context, d store.Database) error {
	p, pid, err := m.waitOwnChild(ctx, d.UID)
	if err != nil {
		return fmt.Errorf("database %d: %w", d.UID, err)
	}
	select {
	case p.applyTurn <- struct{}{}:
		defer func() { <-p.applyTurn }()
	case <-ctx.Done():
		return fmt.Errorf("database %d: wait for the apply of its settings under way: %w", d.UID, ctx.Err())
	}
	m.mu.Lock()
	if cur, ok := m.current[d.UID]; ok {
		d = cur
	}
	m.mu.Unlock()
	c := m.Client(d.UID)
	if err := WaitReady(ctx, c); err != nil {
		return fmt.Errorf("database %d: %w", d.UID, err)
	}
	for _, u := range []struct{ name, pw, rules string }{
		{AppUser, d.RedisPassword, appRules(d)},
		{AdminUser, AdminSecret(d), adminRules},
	} {
		args := []any{"ACL", "SETUSER"}
		for _, a := range aclArgs(u.name, u.pw, u.rules) {
			args = append(args, a)
		}
		if err := c.Do(ctx, args...).Err(); err != nil {
			return fmt.Errorf("set ACL user %s of database %d: %w", u.name, d.UID, err)
		}
	}
	if d.Clustered() {
		if err := masterAuth(ctx, c, d); err != nil {
			return fmt.Errorf("database %d: %w", d.UID, err)
		}
	}
	if err := c.ConfigSet(ctx, "maxmemory", strconv.FormatInt(d.MemorySize, 10)).Err(); err != nil {
		return fmt.Errorf("set maxmemory of database %d: %w", d.UID, err)
	}
	if d.TLSMode == api.TLSEnabled {
		// The pinned client certificates, which the config file holds for
		// the next start, apply to this one too.
		auth := "optional"
		if len(redisTrustedClients(d)) > 0 {
			auth = "yes"
		}
		if err := c.Do(ctx, "CONFIG", "SET", "tls-ca-cert-file", filepath.Join(m.Dir(d.UID), clientCAFile(d)), "tls-auth-clients", auth).Err(); err != nil {
			return fmt.Errorf("set the trusted client certificates of database %d: %w", d.UID, err)
		}
	}
	if err := c.ConfigSet(ctx, "client-output-buffer-limit", outputLimits(d.MemorySize)).Err(); err != nil {
		return fmt.Errorf("set the output-buffer limits of database %d: %w", d.UID, err)
	}
	p.markReady(pid)
	p.mu.Lock()
	p.applyErr = ""
	p.mu.Unlock()
	return nil
}

// waitOwnChild polls until the redis-server answering on the database's
// socket is the child this Manager started: a server of a previous life of
// the service may still be answering there while it shuts down.
func (m *Manager) waitOwnChild(ctx context.Context, uid int) (*process, int, error) {
	for {
		m.mu.Lock()
		p := m.procs[uid]
		m.mu.Unlock()
		if p == nil {
			return nil, 0, errors.New("not running")
		}
		if pid := p.childPID(); pid != 0 && m.PID(ctx, uid) == pid {
			return p, pid, nil
		}
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("its redis-server does not answer (starting, stopped or busy): %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Client is the service's own connection pool to database uid (nil if unknown).
func (m *Manager) Client(uid int) *redis.Client {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.clients[uid]
}

// processesOf returns the process of database uid, or the processes of its
// nodes (nil for a node not started) when it is clustered.
func (m *Manager) processesOf(uid int) (p *process, nodes []*process, clustered bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, clustered := m.clusters[uid]
	for _, k := range keys(d) {
		nodes = append(nodes, m.procs[k])
	}
	return m.procs[uid], nodes, clustered
}

// Problem says why database uid does not serve after its redis-server (or
// one of its nodes) ended, with what redis-server logged about it; empty
// while it serves, loads, or first starts. Like Status, it does no I/O
// but reading the end of a log of a server that ended.
func (m *Manager) Problem(uid int) string {
	p, nodes, clustered := m.processesOf(uid)
	now := time.Now()
	if !clustered {
		if p == nil {
			return ""
		}
		return p.problem(now)
	}
	for _, n := range nodes {
		if n == nil {
			continue
		}
		if why := n.problem(now); why != "" {
			return fmt.Sprintf("node %s: %s", n.addr, why)
		}
	}
	return ""
}

// Degraded says why database uid (any of its nodes), whose redis-server
// runs, does not fully serve: it has not answered for a while, or cannot
// write its AOF. Like Status, it does no I/O.
func (m *Manager) Degraded(uid int) string {
	p, nodes, clustered := m.processesOf(uid)
	if !clustered {
		nodes = []*process{p}
	}
	for _, n := range nodes {
		if n == nil {
			continue
		}
		if why := n.degraded(time.Now()); why != "" {
			if clustered {
				return fmt.Sprintf("node %s: %s", n.addr, why)
			}
			return why
		}
	}
	return ""
}

// SettingsPending says why the latest settings of database uid (any of
// its nodes) are not applied yet; empty when they are.
func (m *Manager) SettingsPending(uid int) string {
	p, nodes, clustered := m.processesOf(uid)
	if !clustered {
		nodes = []*process{p}
	}
	for _, n := range nodes {
		if n == nil {
			continue
		}
		if why := n.settingsPending(); why != "" {
			if clustered {
				return fmt.Sprintf("node %s: %s", n.addr, why)
			}
			return why
		}
	}
	return ""
}

// Status reports how database uid stands: pending, loading (replaying its
// AOF; progress in percent), active or failed. It does no I/O: it reads what
// the child's watcher last saw, so it answers at once however busy the
// child is.
func (m *Manager) Status(uid int) (status string, loadedPercent float64) {
	p, nodes, clustered := m.processesOf(uid)
	if clustered {
		statuses, progress := make([]string, len(nodes)), make([]float64, len(nodes))
		for i, n := range nodes {
			statuses[i] = api.StatusPending
			if n != nil {
				statuses[i], progress[i] = n.status(time.Now())
			}
		}
		return nodesStatus(statuses, progress)
	}
	if p == nil {
		return api.StatusPending, 0
	}
	return p.status(time.Now())
}

// MemoryUsed is the used_memory of database uid: of its redis-server, or
// summed over the masters of a sharded database (the data memory_size
// bounds; replicas hold copies). Like Status, it does no I/O: it reads what
// the watchers last saw, so that a scrape of the metrics or the console
// never waits for a busy or frozen server. ok is false when one of its
// servers has not answered lately (part of the sum would be missing).
func (m *Manager) MemoryUsed(uid int) (int64, bool) {
	p, nodes, clustered := m.processesOf(uid)
	now := time.Now()
	if !clustered {
		if p == nil {
			return 0, false
		}
		used, _, ok := p.memory(now)
		return used, ok
	}
	var total int64
	for _, n := range nodes {
		if n == nil {
			return 0, false
		}
		used, master, ok := n.memory(now)
		if !ok {
			return 0, false
		}
		if master {
			total += used
		}
	}
	return total, true
}

// PID returns the process id of the running child of uid, 0 if none (tests
// use it to kill a child).
func (m *Manager) PID(ctx context.Context, uid int) int {
	c := m.Client(uid)
	if c == nil {
		return 0
	}
	info, err := c.InfoMap(ctx, "server").Result()
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(info["Server"]["process_id"])
	return pid
}

// Remove stops database uid and deletes its files.
func (m *Manager) Remove(uid int) error {
	m.mu.Lock()
	d, clustered := m.clusters[uid]
	m.mu.Unlock()
	if clustered {
		m.stopAll(d)
	}
	m.stop(uid)
	// A server of a previous life of the service left there (a create
	// that its death cut short) must not hold the port or the files.
	endLeftovers(m.ctx, m.cfg.Logger, m.Dir(uid), m.cfg.RedisServer, true, nil)
	if err := os.RemoveAll(m.Dir(uid)); err != nil {
		return fmt.Errorf("remove files of database %d: %w", uid, err)
	}
	return nil
}

// RemoveLeftovers deletes the directories of databases that no longer
// exist: those of uids below next (given once) that keep does not hold.
// A delete that the service's death interrupted (its record gone, its
// files not yet) leaves one, with the deleted data in its AOF. A directory
// of a uid never given is left alone: it is not the service's. It returns
// the uids whose files it removed.
func (m *Manager) RemoveLeftovers(keep map[int]bool, next int) ([]int, error) {
	entries, err := os.ReadDir(filepath.Join(m.cfg.DataDir, "dbs"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list the databases' directories: %w", err)
	}
	var removed []int
	for _, e := range entries {
		uid, err := strconv.Atoi(e.Name())
		if err != nil || !e.IsDir() || uid <= 0 || uid >= next || keep[uid] {
			continue
		}
		endLeftovers(m.ctx, m.cfg.Logger, m.Dir(uid), m.cfg.RedisServer, true, nil)
		if err := os.RemoveAll(m.Dir(uid)); err != nil {
			return removed, fmt.Errorf("remove the files of deleted database %d: %w", uid, err)
		}
		removed = append(removed, uid)
	}
	return removed, nil
}

// stopAll stops every process of d and forgets it.
func (m *Manager) stopAll(d store.Database) {
	var wg sync.WaitGroup
	for _, k := range keys(d) {
		wg.Add(1)
		go func() { defer wg.Done(); m.stop(k) }()
	}
	wg.Wait()
	m.mu.Lock()
	delete(m.clusters, d.UID)
	m.mu.Unlock()
}

func (m *Manager) stop(uid int) {
	m.mu.Lock()
	p, c := m.procs[uid], m.clients[uid]
	delete(m.procs, uid)
	delete(m.clients, uid)
	delete(m.current, uid)
	m.mu.Unlock()
	if c != nil {
		c.Close()
	}
	if p != nil {
		p.stop()
	}
}

// Close stops every process.
func (m *Manager) Close() {
	m.mu.Lock()
	uids := make([]int, 0, len(m.procs))
	for uid := range m.procs {
		uids = append(uids, uid)
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, uid := range uids {
		wg.Add(1)
		go func() { defer wg.Done(); m.stop(uid) }()
	}
	wg.Wait()
	m.cancel()
	<-m.rewriterDone
	_ = os.RemoveAll(m.runDir)
}

func (m *Manager) bindHost() string {
	if m.cfg.BindHost == "" {
		return "127.0.0.1"
	}
	if m.cfg.BindHost == "0.0.0.0" || m.cfg.BindHost == "*" {
		return "* -::*"
	}
	return m.cfg.BindHost
}

// WaitReady polls PING until it answers or ctx ends (a starting
// redis-server, or one loading its AOF, does not answer yet).
func WaitReady(ctx context.Context, c *redis.Client) error {
	if c == nil {
		return errors.New("no client")
	}
	var last error
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		last = c.Ping(pctx).Err()
		cancel()
		// A server that cannot write its AOF (its disk full or
		// read-only) answers PING with MISCONF: it serves, and what the
		// service gives it (ACL SETUSER, CONFIG SET) writes nothing to
		// the AOF. Waiting for a PONG held its settings until the disk
		// had room, and every change of it behind them.
		if last == nil || strings.HasPrefix(last.Error(), "MISCONF") {
			return nil
		}
		if errors.Is(last, redis.ErrClosed) {
			// Never answers again: the caller takes the current pool.
			return fmt.Errorf("wait for redis-server to answer: %w", last)
		}
		// A server loading its AOF is asked more often: its application
		// user keeps startRules until this returns (applyLive).
		wait := 50 * time.Millisecond
		if strings.HasPrefix(last.Error(), "LOADING") {
			wait = 10 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for redis-server to answer: %w (last error: %v)", ctx.Err(), last)
		case <-time.After(wait):
		}
	}
}

// PortFree says whether nothing listens on port of the bind host.
func (m *Manager) PortFree(port int) bool {
	l, err := net.Listen("tcp", m.Addr(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// clientCAFile is the name of the file of what a TLS database trusts from
// clients: named after the pinned certificates, so that a change of them is
// a new path, which CONFIG SET tls-ca-cert-file applies to the running
// server (the same path would not be read again).
func clientCAFile(d store.Database) string {
	sum := sha256.Sum256([]byte(strings.Join(redisTrustedClients(d), "\n")))
	return "clients-" + hex.EncodeToString(sum[:6]) + ".pem"
}

// redisTrustedClients are the client certificates that d's redis-server
// trusts besides the instance's CA: its client_certificates, except on a
// sharded database, whose nodes trust the instance's CA alone. Redis has
// one list of trusted certificates for its port and its cluster bus, and a
// bus that admits a certificate admits a node of its holder's (CLUSTER
// MEET), which can take slots: a destination instance whose syncer
// certificate was pinned could take the cluster over. client_certificates
// pin who may replicate, which the replication endpoints enforce exactly
// on every database; a sharded database's TLS port then admits clients
// without a certificate, as a TLS database without pins does (the password
// still applies).
func redisTrustedClients(d store.Database) []string {
	if d.Clustered() {
		return nil
	}
	return d.ClientCertificates
}

// writeClientCAs writes name in dir, what a TLS database trusts from
// clients: the instance's CA (the service's own certificates) and the client
// certificates the database allows. Client certificates are trusted as
// given (pinned). The files of earlier pins stay (removeOtherClientCAs).
func writeClientCAs(dir, name, caFile string, clientCerts []string) error {
	var buf []byte
	if caFile != "" {
		ca, err := os.ReadFile(caFile)
		if err != nil {
			return err
		}
		buf = append(buf, ca...)
	}
	for _, c := range clientCerts {
		buf = append(buf, []byte(strings.TrimSpace(c)+"\n")...)
	}
	return writeFileWhole(filepath.Join(dir, name), buf)
}

// removeOtherClientCAs removes the files of earlier pins (all but name),
// once the config names name.
func removeOtherClientCAs(dir, name string) {
	if old, err := filepath.Glob(filepath.Join(dir, "clients*.pem")); err == nil {
		for _, f := range old {
			if filepath.Base(f) != name {
				_ = os.Remove(f)
			}
		}
	}
}

// removeWriteLeftovers removes the temporary files of writeFileWhole that
// a kill -9 of the service during a write left in the directory of process
// key. Called under the key's files lock, before its process starts: no
// write of them is under way.
func (m *Manager) removeWriteLeftovers(key int) {
	dir := m.Dir(key)
	for _, pattern := range []string{".redis.conf.*", ".clients-*.pem.*"} {
		left, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, p := range left {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				m.cfg.Logger.Warn("remove a temporary file that a write cut short left", "path", p, "err", err)
			}
		}
	}
}

// writeFileWhole replaces path (mode 0600) with data in one step: a write
// that fails halfway (a full disk) leaves the previous file, never part of
// the new one.
func writeFileWhole(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// MemoryInUse is the most memory that the data of a node of d takes
// toward its maxmemory (used_memory less mem_not_counted_for_evict, as
// Redis counts it before refusing a write, less its normal clients'
// buffers, which readers can make grow and shrink), over its nodes, asked
// at once. It fails when a node does not answer within a second (stopped,
// busy) or still loads its data: what it holds cannot be told then, and
// 0 would pass for "nothing".
func (m *Manager) MemoryInUse(ctx context.Context, d store.Database) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	ks := keys(d)
	type use struct {
		n   int64
		err error
	}
	uses := make(chan use, len(ks))
	for _, k := range ks {
		c := m.Client(k)
		if c == nil {
			uses <- use{err: errors.New("its redis-server does not run")}
			continue
		}
		go func() {
			info, err := c.InfoMap(ctx, "memory", "persistence").Result()
			if err != nil {
				uses <- use{err: fmt.Errorf("its redis-server does not answer (stopped or busy): %w", err)}
				return
			}
			if info["Persistence"]["loading"] == "1" {
				uses <- use{err: errors.New("its redis-server still loads its data")}
				return
			}
			field := func(name string) int64 {
				n, _ := strconv.ParseInt(info["Memory"][name], 10, 64)
				return n
			}
			uses <- use{n: field("used_memory") - field("mem_not_counted_for_evict") - field("mem_clients_normal")}
		}()
	}
	var most int64
	var errs []error
	for range ks {
		u := <-uses
		most = max(most, u.n)
		if u.err != nil {
			errs = append(errs, u.err)
		}
	}
	if len(errs) > 0 {
		return 0, errs[0]
	}
	return most, nil
}

// portTLS says whether d's own port speaks TLS: only tls_mode enabled puts
// it there (replica_ssl is the replication endpoint's, the gateway's), so
// only a change to or from enabled needs a new process.
func portTLS(d store.Database) bool { return d.TLSMode == api.TLSEnabled }
