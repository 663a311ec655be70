// Package controller carries out the API's requests: it validates them,
// records the result in the store, and makes the running databases and
// syncers match it.
package controller

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/replicad/terraform-provider-redis/internal/cluster"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/databases"
	"github.com/replicad/terraform-provider-redis/service/store"
)

// Replicator runs the Replica Of syncers of destinations.
type Replicator interface {
	// Configure makes the syncers of destination d match its stored Replica
	// Of settings (none when it is not a replica).
	Configure(ctx context.Context, d store.Database)
	// Remove stops the syncers of destination uid.
	Remove(uid int)
	// Status returns the live status of each source of d, in d's order.
	Status(d store.Database) []api.ReplicaSourceStatus
	// Loading says whether destination uid is being reloaded from its
	// sources (flushed, not every source loaded yet), and how far in
	// percent (-1: unknown).
	Loading(uid int) (bool, float64)
	// ProbeCompression tells whether a source can compress:
	// replication.ErrCannotCompress when it says it cannot.
	ProbeCompression(ctx context.Context, src api.ReplicaSource) error
}

// Databases runs the databases' processes (databases.Manager).
type Databases interface {
	// Start runs d's process without waiting for it to answer.
	Start(d store.Database) error
	// Ensure makes d's process run as stored, restarting it when its
	// listening port changes, and waits until its settings are applied.
	Ensure(ctx context.Context, d store.Database) error
	// Create starts a new database and waits until it serves; on error
	// nothing of it remains, and a port taken by another program is a
	// *databases.PortInUseError.
	Create(ctx context.Context, d store.Database) error
	// Remove stops database uid and deletes its files.
	Remove(uid int) error
	// Status says how database uid stands, without I/O.
	Status(uid int) (status string, loadedPercent float64)
	// Problem says why a database that is down does not serve (empty otherwise).
	Problem(uid int) string
	// Degraded says why a database whose process runs does not fully
	// serve (it has not answered for a while, or cannot write its AOF,
	// so refuses writes); empty otherwise.
	Degraded(uid int) string
	// SettingsPending says why a database's latest settings are not
	// applied yet (they are retried); empty when they are.
	SettingsPending(uid int) string
	// RemoveLeftovers deletes the directories of the uids below next
	// that keep does not hold, and says which.
	RemoveLeftovers(keep map[int]bool, next int) ([]int, error)
	// PortFree says whether nothing listens on port.
	PortFree(port int) bool
	// Topology is the cluster of a clustered database as its nodes see it.
	Topology(ctx context.Context, uid int) (cluster.Topology, error)
	// MemoryInUse is the most memory one node of d uses toward its
	// maxmemory; an error when a node cannot tell (it does not answer,
	// or still loads its data).
	MemoryInUse(ctx context.Context, d store.Database) (int64, error)
}

// Gateway serves the replication endpoints of databases (the port of their
// source URL).
type Gateway interface {
	Ensure(d store.Database) error
	Remove(uid int)
	// SourceURL is the URL destinations replicate from d with, its
	// endpoint advertised as host: the gateway owns who logs in there.
	SourceURL(d store.Database, host string) string
}

// Config of a Controller.
type Config struct {
	Store         *store.Store
	Databases     Databases
	Replicator    Replicator
	Gateway       Gateway
	AdvertiseHost string
	PortMin       int
	PortMax       int
	Cluster       api.Cluster
	Logger        *slog.Logger
	// AdminPasswordGrace is how long the previous admin password of a
	// database stays valid after a regeneration; 0 for none.
	AdminPasswordGrace time.Duration
}

// Controller implements the API's Backend.
type Controller struct {
	cfg Config
	// mu serialises the recording of changes, which are checked against
	// every database; turns serialises their application to each
	// database's processes (turns.go).
	mu    sync.Mutex
	turns turns
	// creating holds the uids whose create is under way (under mu): their
	// records say Creating, and Start must not take them for those of
	// creates that a previous life of the service never finished (the
	// API serves while Start runs).
	creating map[int]bool
	// topo is what the nodes of the sharded databases last said of their
	// clusters, for the reads of the API (topology.go).
	topo topologies

	// Replication endpoints retried in the background (endpoints.go).
	downMu sync.Mutex
	epDown endpointsDown
	// deleteFailed says why the delete of a database did not finish, by
	// uid (under downMu).
	deleteFailed map[int]string
	retryCtx     context.Context
	stopRetries  context.CancelFunc
	retries      sync.WaitGroup
	// carried ends the changes carried through after their clients
	// stopped waiting (carryThrough) when the service stops: they are
	// recorded, and applied at the next start.
	carried    context.Context
	endCarried context.CancelFunc

	// nextPort is where the search for a free port starts: after the last
	// port given. A port that a deleted database released goes to a new
	// database only once the range has been gone through, so that the
	// deleted one's destinations meanwhile find nothing there (the source
	// is unreachable) rather than another database, which refuses their
	// password and stops their sync.
	nextPort atomic.Int64
}

// New returns a Controller; Close stops what it runs in the background.
func New(cfg Config) *Controller {
	c := &Controller{cfg: cfg}
	c.retryCtx, c.stopRetries = context.WithCancel(context.Background())
	c.carried, c.endCarried = context.WithCancel(context.Background())
	return c
}

// EndRequests ends the changes in flight, those whose clients stopped
// waiting included: the service stops, and must not wait for a
// redis-server that does not answer. What they recorded is applied at the
// next start.
func (c *Controller) EndRequests() { c.endCarried() }

// Start brings every stored database back: its replication endpoint, its
// process, then its syncers. It does not wait for the databases to answer
// (one replaying a large AOF takes a while): their status says loading
// meanwhile, and WaitStarted tells when they are all up.
func (c *Controller) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	all, err := c.cfg.Store.List()
	if err != nil {
		return fmt.Errorf("read databases from the state file: %w", err)
	}
	if err := c.restoreNextPort(all); err != nil {
		return err
	}
	kept := all[:0]
	deleting := map[int]bool{} // whose unfinished delete failed again: their files stay
	for _, d := range all {
		if d.Creating && c.creating[d.UID] {
			continue // its create, under way, starts it
		}
		if d.Deleting {
			// A delete that did not finish (its files could not be
			// removed, or the service died during it): finished now,
			// before anything starts it again.
			err := c.removeDeleted(d.UID)
			if err == nil {
				err = c.dropDeletedRecord(d.UID)
			}
			if err != nil {
				c.cfg.Logger.Error("finish the delete of a database; it stays deleting", "uid", d.UID, "name", d.Name, "err", err)
				deleting[d.UID] = true
				continue
			}
			c.cfg.Logger.Warn("finished the delete of a database that an earlier delete left unfinished", "uid", d.UID, "name", d.Name)
			continue
		}
		if d.Creating {
			// Its create never answered: a failed request leaves nothing.
			// (DropUnfinished, before the API served, removed those it
			// found.) The record first, so that nobody reads it while its
			// processes end; its files go after, or with the leftovers of
			// the next start.
			c.cfg.Logger.Warn("removing a database whose creation did not finish", "uid", d.UID, "name", d.Name)
			if err := c.cfg.Store.Delete(d.UID); err != nil && !errors.Is(err, store.ErrNotFound) {
				// The other databases still come back; the next start
				// removes it.
				c.cfg.Logger.Error("remove the record of a database whose creation did not finish", "uid", d.UID, "err", err)
				continue
			}
			if err := c.cfg.Databases.Remove(d.UID); err != nil {
				c.cfg.Logger.Error("remove the files of an unfinished database", "uid", d.UID, "err", err)
			}
			continue
		}
		kept = append(kept, d)
	}
	all = kept
	c.removeLeftovers(all, deleting)
	for i, d := range all {
		all[i] = c.giveNodesReplicationPorts(d)
	}
	for _, d := range all {
		// One database that cannot start (its port taken by another
		// program, say) must not keep the others and the API down: its
		// process keeps being retried, and its status says so.
		if err := c.cfg.Gateway.Ensure(d); err != nil {
			c.cfg.Logger.Error("replication endpoint did not start; retrying in the background", "uid", d.UID, "name", d.Name, "err", err)
			c.setEndpointDown(d.UID, err)
			c.retries.Add(1)
			go c.retryEndpoint(c.retryCtx, d.UID)
		}
		if err := c.cfg.Databases.Start(d); err != nil {
			c.cfg.Logger.Error("database did not start; retrying in the background", "uid", d.UID, "name", d.Name, "err", err)
			c.setNotStarted(d.UID, err)
			c.retries.Add(1)
			go c.retryStart(c.retryCtx, d.UID)
			continue
		}
		c.cfg.Logger.Info("database starting", "uid", d.UID, "name", d.Name, "port", d.Port)
	}
	for _, d := range all {
		if d.IsReplica() {
			c.cfg.Replicator.Configure(ctx, d)
		}
	}
	return nil
}

// DropUnfinished removes the records of the creates that a previous life
// of the service never finished (it died during them): those requests were
// never answered, so nobody may read the databases they were making, nor
// find their names taken. It runs before the API serves; Start then removes
// their files and processes with the other leftovers.
func (c *Controller) DropUnfinished() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	all, err := c.cfg.Store.List()
	if err != nil {
		return fmt.Errorf("read databases from the state file: %w", err)
	}
	for _, d := range all {
		if !d.Creating || c.creating[d.UID] {
			continue
		}
		c.cfg.Logger.Warn("removing a database whose creation did not finish", "uid", d.UID, "name", d.Name)
		if err := c.cfg.Store.Delete(d.UID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("remove the record of unfinished database %d: %w", d.UID, err)
		}
	}
	// A create that comes before Start must not give the ports of a
	// database deleted before the restart either.
	return c.restoreNextPort(all)
}

// restoreNextPort sets where the search for a free port goes on: where the
// state file says, and past every port of the range that all hold. It
// never goes back (a create may have moved it on already).
func (c *Controller) restoreNextPort(all []store.Database) error {
	next, err := c.cfg.Store.NextPort()
	if err != nil {
		return fmt.Errorf("read the next port from the state file: %w", err)
	}
	raise := func(p int) {
		if int64(p) > c.nextPort.Load() {
			c.nextPort.Store(int64(p))
		}
	}
	raise(next)
	for _, d := range all {
		for _, p := range d.Ports() {
			// Ports a request named outside the range say nothing of
			// where the range was given up to.
			if p >= c.cfg.PortMin && p <= c.cfg.PortMax {
				raise(p + 1)
			}
		}
	}
	return nil
}

// startGrace is how long a database that neither answers nor loads is
// waited for at start before the instance calls itself started anyway (its
// port taken, say: it keeps being retried, and its status says so).
const startGrace = 10 * time.Second

// removeLeftovers deletes the files of deleted databases that a delete
// interrupted by the service's death left (its record gone, its files
// not). A failure is logged: it costs disk, not service.
func (c *Controller) removeLeftovers(all []store.Database, keepToo map[int]bool) {
	next, err := c.cfg.Store.NextUID()
	if err != nil {
		c.cfg.Logger.Error("read the next uid from the state file", "err", err)
		return
	}
	keep := map[int]bool{}
	for _, d := range all {
		keep[d.UID] = true
	}
	for uid := range c.creating {
		keep[uid] = true // its create, under way, owns its files
	}
	for uid := range keepToo {
		keep[uid] = true
	}
	removed, err := c.cfg.Databases.RemoveLeftovers(keep, next)
	for _, uid := range removed {
		c.cfg.Logger.Warn("removed the files of a deleted database, which its delete had left (the service stopped during it)", "uid", uid)
	}
	if err != nil {
		c.cfg.Logger.Error("remove the files of deleted databases", "err", err)
	}
}

// WaitStarted returns once every database restored by Start is active,
// failed, or has not come up within startGrace; one that is loading its data
// is waited for as long as it loads.
func (c *Controller) WaitStarted(ctx context.Context) error {
	all, err := c.cfg.Store.List()
	if err != nil {
		return fmt.Errorf("read databases from the state file: %w", err)
	}
	began := time.Now()
	for {
		waiting := 0
		for _, d := range all {
			if d.Deleting {
				continue // nothing of it starts
			}
			switch st, _ := c.cfg.Databases.Status(d.UID); st {
			case api.StatusLoading:
				waiting++
			case api.StatusPending:
				if time.Since(began) < startGrace {
					waiting++
				}
			}
		}
		if waiting == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func invalid(format string, a ...any) error {
	return &api.Error{Code: api.CodeInvalidRequest, Description: fmt.Sprintf(format, a...)}
}

func conflict(format string, a ...any) error {
	return &api.Error{Code: api.CodeConflict, Description: fmt.Sprintf(format, a...)}
}

func notFound(uid int) error {
	return &api.Error{Code: api.CodeNotFound, Description: fmt.Sprintf("database %d does not exist", uid)}
}

var nameRE = regexp.MustCompile(api.NamePattern)

// sameName says whether two database names clash. Names are unique without
// regard to case ("orders" and "ORDERS" cannot coexist), as host names are:
// a name that differs only in case is a mistake waiting to happen.
func sameName(a, b string) bool { return strings.EqualFold(a, b) }

func validateName(name string) error {
	if !nameRE.MatchString(name) {
		return invalid("name %q is invalid: use 1 to 63 letters, digits, '-' or '_', starting with a letter or digit", name)
	}
	return nil
}

func validateMemory(n int64) error {
	if n < api.MinMemorySize || n > api.MaxMemorySize {
		return invalid("memory_size %d is out of range: it is in bytes, from %d (4 MiB) to %d (1 TiB)", n, int64(api.MinMemorySize), int64(api.MaxMemorySize))
	}
	return nil
}

// validatePassword: see api.CheckPassword.
func validatePassword(pw string) error {
	if err := api.CheckPassword(pw); err != nil {
		return invalid("authentication_redis_pass %v", err)
	}
	return nil
}

func newSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// CreateDatabase validates req, records the database and starts it.
//
// A create received is carried through when its client stops waiting (a
// timeout, an interrupt, a proxy that cut the connection), from its checks
// on: it ends as it would have with the client there, which finds the
// database by its name. Dropped with the request, it would be neither made
// nor said to have failed, or made unchecked (a source asked whether it
// can compress, cut off).
func (c *Controller) CreateDatabase(ctx context.Context, req api.CreateDatabaseRequest) (api.Database, error) {
	ctx, done := c.carryThrough(ctx, "create", "name", req.Name)
	db, err := c.createDatabase(ctx, req)
	done(err)
	return db, err
}

func (c *Controller) createDatabase(ctx context.Context, req api.CreateDatabaseRequest) (api.Database, error) {
	if err := validateName(req.Name); err != nil {
		return api.Database{}, err
	}
	if err := validateMemory(req.MemorySize); err != nil {
		return api.Database{}, err
	}
	if req.Port != 0 && (req.Port < api.MinPort || req.Port > 65535) {
		return api.Database{}, invalid("port %d is out of range %d-65535 (ports below %d are reserved for system services)", req.Port, api.MinPort, api.MinPort)
	}
	if req.AuthenticationRedisPass == "" {
		req.AuthenticationRedisPass = newSecret()
	} else if err := validatePassword(req.AuthenticationRedisPass); err != nil {
		return api.Database{}, err
	}
	sync, err := validateSync(req.ReplicaSync, len(req.ReplicaSources) > 0)
	if err != nil {
		return api.Database{}, err
	}
	if err := c.checkCompression(ctx, req.ReplicaSources); err != nil {
		return api.Database{}, err
	}
	if req.TLSMode == "" {
		req.TLSMode = api.TLSDisabled
	}
	if err := validateTLS(req.TLSMode, req.ClientCertificates); err != nil {
		return api.Database{}, err
	}
	if err := pinsNeedTLS(req.TLSMode, req.ClientCertificates); err != nil {
		return api.Database{}, err
	}
	if err := validateSharding(req); err != nil {
		return api.Database{}, err
	}

	c.mu.Lock()
	now := time.Now().UTC()
	d := store.Database{
		Name: req.Name, Port: req.Port, MemorySize: req.MemorySize,
		RedisPassword: req.AuthenticationRedisPass, AdminPassword: newSecret(), InternalPassword: newSecret(),
		TLSMode: req.TLSMode, ClientCertificates: req.ClientCertificates,
		ReplicaSources: req.ReplicaSources, ReplicaSync: sync, CreatedAt: now, UpdatedAt: now,
		ShardsCount: max(req.ShardsCount, 1), Replication: req.Replication, OSSCluster: req.OSSCluster,
		Creating: true,
	}
	if d.IsReplica() {
		d.ReplicaGeneration = 1
	}
	autoPort := d.Port == 0
	d, err = c.cfg.Store.Create(d, func(d *store.Database, existing []store.Database) error {
		for _, o := range existing {
			if sameName(o.Name, d.Name) {
				return conflict("a database named %q already exists (uid %d%s): names are unique regardless of case", o.Name, o.UID, deletingNote(o))
			}
		}
		if d.Port == 0 {
			port, err := c.freePort(existing, nil)
			if err != nil {
				return err
			}
			d.Port = port
		} else if err := c.checkPort(d.Port, existing); err != nil {
			return err
		}
		port, err := c.freePort(existing, map[int]bool{d.Port: true})
		if err != nil {
			return err
		}
		d.ReplicationPort = port
		if err := c.nodePorts(d, existing); err != nil {
			return err
		}
		// The uid is assigned after this check; 0 is never a real uid.
		if err := c.validateSources(*d, existing); err != nil {
			return err
		}
		return c.refuseSourcesBeingDeleted(*d, nil, existing)
	})
	if err == nil {
		c.recordNextPort()
		if c.creating == nil {
			c.creating = map[int]bool{}
		}
		c.creating[d.UID] = true
		defer func() {
			c.mu.Lock()
			delete(c.creating, d.UID)
			c.mu.Unlock()
		}()
		// The record holds its name and ports; its processes start in its
		// own turn, without Controller.mu: a redis-server slow to come up
		// (for up to 30 s, at each port tried) must not hold the changes,
		// creates and deletes of the other databases. A change or a
		// delete of this one waits for its turn, which is taken before
		// Controller.mu is let go: a change that took it first would
		// apply the record to processes not started yet. (A uid is never
		// used twice, so nobody holds its turn: this does not wait.)
		release := c.turns.take(d.UID)
		defer release()
	}
	c.mu.Unlock()
	if err != nil {
		return api.Database{}, err
	}
	c.cfg.Logger.Info("database created", "uid", d.UID, "name", d.Name, "port", d.Port)
	// Each step of the start has its own deadline (ctx is not the
	// client's: see CreateDatabase).
	d, err = c.startNew(ctx, d, autoPort)
	if err == nil {
		var done store.Database
		done, err = c.cfg.Store.Update(d.UID, func(n *store.Database, _ []store.Database) error {
			if n.Deleting {
				return store.ErrNotFound // a DELETE of it came while it started
			}
			n.Creating = false
			return nil
		})
		if err == nil {
			d = done
		} else {
			c.cfg.Replicator.Remove(d.UID)
			c.cfg.Gateway.Remove(d.UID)
			if rmErr := c.cfg.Databases.Remove(d.UID); rmErr != nil {
				c.cfg.Logger.Error("remove the files of a database that failed to be recorded", "uid", d.UID, "err", rmErr)
			}
			if errors.Is(err, store.ErrNotFound) {
				// A delete of it came while it started.
				err = conflict("database %d was deleted while it was being created", d.UID)
			} else {
				err = fmt.Errorf("record database %d as created: %w", d.UID, err)
			}
		}
	}
	if err != nil {
		// A failed create leaves nothing behind: startNew removed the
		// process, its files and its endpoint; the record goes too.
		if delErr := c.cfg.Store.Delete(d.UID); delErr != nil && !errors.Is(delErr, store.ErrNotFound) {
			c.cfg.Logger.Error("remove the record of a database that failed to start", "uid", d.UID, "err", delErr)
		}
		c.cfg.Logger.Warn("database creation failed; nothing was kept", "uid", d.UID, "name", d.Name, "err", err)
		return api.Database{}, err
	}
	if d.IsReplica() {
		c.cfg.Replicator.Configure(ctx, d)
	}
	return c.view(ctx, d, time.Time{}), nil
}

// portAttempts bounds how often a new database moves to other ports when
// the ones it was given turn out to be taken (by another instance on the
// same host creating a database at the same moment, say).
const portAttempts = 8

// startNew starts a database just recorded: its replication endpoint, then
// its process. A port found taken at that moment is replaced by another free
// one when the service chose it, and is a conflict naming it when the user
// did (auto says which). On error nothing of d runs and its files are gone;
// the caller removes its record.
func (c *Controller) startNew(ctx context.Context, d store.Database, auto bool) (store.Database, error) {
	tried := map[int]bool{}
	for attempt := 1; ; attempt++ {
		err := c.cfg.Gateway.Ensure(d)
		taken := 0
		if err != nil {
			if !errors.Is(err, syscall.EADDRINUSE) {
				return d, err
			}
			taken = d.ReplicationPort
		} else if err = c.cfg.Databases.Create(ctx, d); err != nil {
			c.cfg.Gateway.Remove(d.UID)
			var inUse *databases.PortInUseError
			if !errors.As(err, &inUse) {
				return d, err
			}
			taken = inUse.Port // the database's own, or a node's
		} else {
			return d, nil
		}
		if taken == d.Port && !auto {
			return d, conflict("port %d is in use by another program on this host", taken)
		}
		if attempt == portAttempts {
			return d, conflict("could not find a free port for the database after %d attempts: port %d is in use by another program on this host", attempt, taken)
		}
		tried[taken] = true
		c.cfg.Logger.Warn("a port chosen for a new database is taken; choosing another", "uid", d.UID, "port", taken)
		c.mu.Lock()
		next, uerr := c.cfg.Store.Update(d.UID, func(n *store.Database, others []store.Database) error {
			avoid := maps.Clone(tried)
			if taken == n.Port {
				port, err := c.freePort(others, avoid)
				if err != nil {
					return err
				}
				n.Port = port
			}
			avoid[n.Port] = true
			if taken == n.ReplicationPort || n.ReplicationPort == n.Port {
				port, err := c.freePort(others, avoid)
				if err != nil {
					return err
				}
				n.ReplicationPort = port
			}
			// Nodes other than the first take ports from the range
			// whoever chose the database's port.
			n.Nodes = nil
			for _, p := range n.Ports() {
				avoid[p] = true
			}
			return c.nodePortsAvoiding(n, others, avoid)
		})
		if uerr == nil {
			c.recordNextPort()
		}
		c.mu.Unlock()
		if uerr != nil {
			return d, uerr
		}
		d = next
	}
}

// ensure makes the database's process and replication endpoint match d.
// The endpoint is updated even when the process's apply fails (the change
// is recorded, and applied later): a regenerated password must not be
// recorded for the database and refused by its endpoint.
func (c *Controller) ensure(ctx context.Context, d store.Database) error {
	dbErr := c.cfg.Databases.Ensure(ctx, d)
	if err := c.cfg.Gateway.Ensure(d); err != nil {
		return errors.Join(dbErr, err)
	}
	return dbErr
}

func (c *Controller) checkPort(port int, existing []store.Database) error {
	for _, o := range existing {
		if slices.Contains(o.Ports(), port) {
			return conflict("port %d is taken by database %d (%s%s)", port, o.UID, o.Name, deletingNote(o))
		}
	}
	if !c.cfg.Databases.PortFree(port) {
		return conflict("port %d is in use by another program on this host", port)
	}
	return nil
}

// recordNextPort keeps nextPort in the state file, under c.mu after a
// write that gave ports: a restart of the service must not give the ports
// of a database deleted before it to the next database at once. The records'
// own ports are the floor at start, so a failure here costs only that.
func (c *Controller) recordNextPort() {
	if err := c.cfg.Store.SetNextPort(int(c.nextPort.Load())); err != nil {
		c.cfg.Logger.Warn("record the next port to give in the state file", "err", err)
	}
}

// freePort picks the first free port of the range, other than those of
// avoid.
func (c *Controller) freePort(existing []store.Database, avoid map[int]bool) (int, error) {
	used := maps.Clone(avoid)
	if used == nil {
		used = map[int]bool{}
	}
	for _, o := range existing {
		for _, p := range o.Ports() {
			used[p] = true
		}
	}
	n := c.cfg.PortMax - c.cfg.PortMin + 1
	start := int(c.nextPort.Load())
	if start < c.cfg.PortMin || start > c.cfg.PortMax {
		start = c.cfg.PortMin
	}
	for k := range max(n, 0) {
		p := c.cfg.PortMin + (start-c.cfg.PortMin+k)%n
		if !used[p] && c.cfg.Databases.PortFree(p) {
			c.nextPort.Store(int64(p + 1))
			return p, nil
		}
	}
	return 0, conflict("no free port left in the range %d-%d", c.cfg.PortMin, c.cfg.PortMax)
}

// UpdateDatabase applies the fields req sets; nothing changes when any is invalid.
//
// An update received is carried through when its client stops waiting, as
// a create is, from its checks on: dropped with the request once recorded,
// a node of a sharded database could keep the settings of before; and a
// new source asked whether it can compress, cut off, was taken for one
// that could not be asked, and recorded.
func (c *Controller) UpdateDatabase(ctx context.Context, uid int, req api.UpdateDatabaseRequest) (api.Database, error) {
	ctx, done := c.carryThrough(ctx, "update", "uid", uid)
	db, err := c.updateDatabase(ctx, uid, req)
	done(err)
	return db, err
}

func (c *Controller) updateDatabase(ctx context.Context, uid int, req api.UpdateDatabaseRequest) (api.Database, error) {
	// A database missing or being deleted says so first: the checks below
	// ask its redis-server and the new sources, which would answer about
	// something else (its server stopped), seconds each. The record's
	// update checks again.
	switch cur, err := c.cfg.Store.Get(uid); {
	case errors.Is(err, store.ErrNotFound):
		return api.Database{}, notFound(uid)
	case err == nil && cur.Deleting:
		return api.Database{}, errDeleting(uid)
	}
	if req.Name != nil {
		if err := validateName(*req.Name); err != nil {
			return api.Database{}, err
		}
	}
	// "" is no mode (an unset variable rendered as a string): taken as
	// the default, it turned TLS off, and enabled a paused or stopped sync.
	if req.TLSMode != nil && *req.TLSMode == "" {
		return api.Database{}, invalid("tls_mode \"\" is invalid: use disabled, enabled or replica_ssl, or leave tls_mode out to keep it")
	}
	if req.ReplicaSync != nil && *req.ReplicaSync == "" {
		return api.Database{}, invalid("replica_sync \"\" is invalid: use enabled, paused or stopped, or leave replica_sync out to keep it")
	}
	if req.MemorySize != nil {
		if err := validateMemory(*req.MemorySize); err != nil {
			return api.Database{}, err
		}
		if err := c.checkMemoryFits(ctx, uid, *req.MemorySize); err != nil {
			return api.Database{}, err
		}
	}
	if req.AuthenticationRedisPass != nil {
		if err := validatePassword(*req.AuthenticationRedisPass); err != nil {
			return api.Database{}, err
		}
	}
	if req.ReplicaSources != nil {
		if err := c.checkCompression(ctx, *req.ReplicaSources); err != nil {
			return api.Database{}, err
		}
	}
	c.mu.Lock()
	var before store.Database
	d, err := c.cfg.Store.Update(uid, func(d *store.Database, others []store.Database) error {
		if d.Deleting {
			return errDeleting(uid)
		}
		before = *d
		if g := req.IfReplicaGeneration; g != nil && *g != shownGeneration(*d) {
			return conflict("the Replica Of of database %d changed since it was read (replica_generation is %d, not %d): read it again", d.UID, shownGeneration(*d), *g)
		}
		if req.Name != nil {
			for _, o := range others {
				if o.UID != d.UID && sameName(o.Name, *req.Name) {
					return conflict("a database named %q already exists (uid %d%s): names are unique regardless of case", o.Name, o.UID, deletingNote(o))
				}
			}
			d.Name = *req.Name
		}
		if req.MemorySize != nil {
			d.MemorySize = *req.MemorySize
		}
		if req.AuthenticationRedisPass != nil {
			d.RedisPassword = *req.AuthenticationRedisPass
		}
		if err := checkShardingChange(*d, req); err != nil {
			return err
		}
		if req.TLSMode != nil {
			d.TLSMode = *req.TLSMode
		}
		if req.ClientCertificates != nil {
			d.ClientCertificates = *req.ClientCertificates
		}
		if err := validateTLS(d.TLSMode, d.ClientCertificates); err != nil {
			return err
		}
		if req.TLSMode != nil || req.ClientCertificates != nil {
			if err := pinsNeedTLS(d.TLSMode, d.ClientCertificates); err != nil {
				return err
			}
		}
		if err := c.applyReplicaChange(d, req); err != nil {
			return err
		}
		d.UpdatedAt = time.Now().UTC()
		if err := c.validateSources(*d, others); err != nil {
			return err
		}
		return c.refuseSourcesBeingDeleted(*d, before.ReplicaSources, others)
	})
	c.mu.Unlock()
	if errors.Is(err, store.ErrNotFound) {
		return api.Database{}, notFound(uid)
	}
	if err != nil {
		return api.Database{}, err
	}
	c.cfg.Logger.Info("database updated", "uid", d.UID, "name", d.Name)
	d, err = c.applyLatest(ctx, uid, before.IsReplica() || d.IsReplica())
	if err != nil {
		return api.Database{}, err
	}
	return c.view(ctx, d, time.Time{}), nil
}

// carryThrough detaches ctx from its request's cancellation for a change
// (see CreateDatabase), and logs it when the client stops waiting: nobody
// reads the answer then, so the log says how the change ended. Each step
// has its own deadline; the service's stop ends it (EndRequests). done is
// called with the outcome.
func (c *Controller) carryThrough(ctx context.Context, what string, attrs ...any) (detached context.Context, done func(error)) {
	stop := context.AfterFunc(ctx, func() {
		c.cfg.Logger.Info("the client of the "+what+" stopped waiting; it is carried through", attrs...)
	})
	detached, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stopEnd := context.AfterFunc(c.carried, cancel)
	return detached, func(err error) {
		stopEnd()
		cancel()
		if stop() {
			return // the client is there to read the outcome
		}
		if err != nil {
			c.cfg.Logger.Warn("the "+what+" whose client stopped waiting ended with an error", append(attrs, "err", err)...)
			return
		}
		c.cfg.Logger.Info("the "+what+" whose client stopped waiting is made", attrs...)
	}
}

// checkMemoryFits refuses a memory_size that leaves a node of database uid
// less than what it uses now: Redis would refuse every write, and, on a
// destination, every replicated one. A lowering is refused too while a
// node cannot tell what it uses (stopped, busy, loading its data): it was
// recorded unchecked, and applied once the node answered. The data may
// still grow past the limit later, as it may at any size.
func (c *Controller) checkMemoryFits(ctx context.Context, uid int, size int64) error {
	d, err := c.cfg.Store.Get(uid)
	if err != nil || size >= d.MemorySize {
		return nil // not found is said later; a raise always fits
	}
	per := size / int64(d.Shards())
	used, err := c.cfg.Databases.MemoryInUse(ctx, d)
	if err != nil {
		return conflict("memory_size %d cannot be lowered now: what the database holds cannot be told, since %v; try again once it answers (a raise is always accepted)", size, err)
	}
	if used > per {
		what := "the database uses"
		if d.Shards() > 1 {
			what = fmt.Sprintf("leaves %d bytes per shard, and a shard uses", per)
		}
		return invalid("memory_size %d is too small: %s %d bytes now, and Redis would refuse every write (delete data first, or keep memory_size above that)", size, what, used)
	}
	return nil
}

// DeleteDatabase stops a database and removes its files. Its record says
// Deleting meanwhile and goes last: a delete whose files could not be
// removed answers an error and keeps the record (status deleting), which a
// DELETE again or the next start finishes; it never leaves files that no
// record accounts for behind a 404.
func (c *Controller) DeleteDatabase(ctx context.Context, uid int) error {
	if err := c.markDeleting(uid); err != nil {
		return err
	}
	// The processes go in the database's turn: after any change of it
	// that is being applied, and without holding the other databases'
	// changes while a redis-server that does not answer is stopped.
	release := c.turns.take(uid)
	defer release()
	if _, err := c.cfg.Store.Get(uid); errors.Is(err, store.ErrNotFound) {
		// Gone meanwhile: a DELETE that raced this one finished it, or
		// the create under way gave up on seeing it deleting.
		return nil
	}
	err := c.removeDeleted(uid)
	if err == nil {
		c.mu.Lock()
		err = c.dropDeletedRecord(uid)
		c.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("database %d is stopped, but its delete did not finish: %w; it is kept with status %q until its files are gone: DELETE it again (a restart of the service retries too)", uid, err, api.StatusDeleting)
	}
	c.cfg.Logger.Info("database deleted", "uid", uid)
	return nil
}

// removeDeleted stops what runs of the database uid, whose record says
// Deleting, and removes its files. Called in uid's turn, or by Start
// before anything runs.
func (c *Controller) removeDeleted(uid int) error {
	c.forgetTopology(uid)
	c.cfg.Replicator.Remove(uid)
	c.cfg.Gateway.Remove(uid)
	if err := c.cfg.Databases.Remove(uid); err != nil {
		c.setDeleteFailed(uid, err)
		return err
	}
	return nil
}

// dropDeletedRecord removes the record of uid once its files are gone.
// Called under c.mu.
func (c *Controller) dropDeletedRecord(uid int) error {
	if err := c.cfg.Store.Delete(uid); err != nil && !errors.Is(err, store.ErrNotFound) {
		err = fmt.Errorf("remove its record: %w", err)
		c.setDeleteFailed(uid, err)
		return err
	}
	c.setDeleteFailed(uid, nil)
	return nil
}

// setDeleteFailed records why the delete of uid did not finish (nil: it did).
func (c *Controller) setDeleteFailed(uid int, err error) {
	c.downMu.Lock()
	defer c.downMu.Unlock()
	if err == nil {
		delete(c.deleteFailed, uid)
		return
	}
	if c.deleteFailed == nil {
		c.deleteFailed = map[int]string{}
	}
	c.deleteFailed[uid] = err.Error()
}

// deleteProblem is what last_error says of a database whose delete did not
// finish.
func (c *Controller) deleteProblem(uid int) string {
	c.downMu.Lock()
	defer c.downMu.Unlock()
	why := c.deleteFailed[uid]
	if why == "" {
		return "its delete did not finish: DELETE it again"
	}
	return "its delete did not finish (" + why + "): DELETE it again"
}

// deletingNote tells, in a conflict with o, that o is only waiting for its
// delete to finish: the user's way out is to finish it.
func deletingNote(o store.Database) string {
	if !o.Deleting {
		return ""
	}
	return fmt.Sprintf(", being deleted: DELETE /v1/bdbs/%d again to finish its delete and free it", o.UID)
}

// errDeleting refuses a change of a database whose delete began.
func errDeleting(uid int) error {
	return conflict("database %d is being deleted (status %q): DELETE it again to finish, or wait for the delete under way", uid, api.StatusDeleting)
}

// markDeleting records that uid is being deleted.
func (c *Controller) markDeleting(uid int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	all, err := c.cfg.Store.List()
	if err != nil {
		return err
	}
	for _, o := range all {
		if o.UID == uid {
			continue
		}
		for _, s := range o.ReplicaSources {
			if c.localSource(s.URI, all) == uid {
				// Allowed, as in Redis Enterprise: the destination will report
				// the source as unreachable. Say so in the log.
				c.cfg.Logger.Warn("deleting a database that is a Replica Of source", "uid", uid, "destination", o.UID)
			}
		}
	}
	_, err = c.cfg.Store.Update(uid, func(d *store.Database, _ []store.Database) error {
		if d.Deleting {
			return errUnchanged // a DELETE again: it finishes the first
		}
		d.Deleting = true
		d.UpdatedAt = time.Now().UTC()
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return notFound(uid)
	}
	if errors.Is(err, errUnchanged) {
		return nil
	}
	return err
}

// GetDatabase returns one database with its live status.
func (c *Controller) GetDatabase(ctx context.Context, uid int) (api.Database, error) {
	d, err := c.cfg.Store.Get(uid)
	if errors.Is(err, store.ErrNotFound) {
		return api.Database{}, notFound(uid)
	}
	if err != nil {
		return api.Database{}, err
	}
	return c.view(ctx, d, time.Now().Add(topologyReadWait)), nil
}

// ListDatabases returns every database. It answers at once whatever the
// databases do: the clusters' topologies are refreshed side by side and
// waited for together, briefly (topologyFor).
func (c *Controller) ListDatabases(ctx context.Context) ([]api.Database, error) {
	all, err := c.cfg.Store.List()
	if err != nil {
		return nil, err
	}
	for _, d := range all {
		_, _ = c.refreshTopology(d)
	}
	deadline := time.Now().Add(topologyReadWait)
	out := make([]api.Database, 0, len(all))
	for _, d := range all {
		out = append(out, c.view(ctx, d, deadline))
	}
	return out, nil
}

// SourceURL is the URL other databases replicate from uid with.
func (c *Controller) SourceURL(_ context.Context, uid int) (api.SourceURL, error) {
	d, err := c.cfg.Store.Get(uid)
	if errors.Is(err, store.ErrNotFound) {
		return api.SourceURL{}, notFound(uid)
	}
	if err != nil {
		return api.SourceURL{}, err
	}
	if d.Deleting {
		// Its redis-server is stopped for good: a destination given
		// this URL would never sync.
		return api.SourceURL{}, conflict("database %d is being deleted (status %q): it is no source to replicate from", uid, api.StatusDeleting)
	}
	return api.SourceURL{URI: c.sourceURL(d), AdminPasswordKeepers: d.AdminPasswordKeepers}, nil
}

func (c *Controller) sourceURL(d store.Database) string {
	return c.cfg.Gateway.SourceURL(d, c.cfg.AdvertiseHost)
}

// RegenerateAdminPassword gives the admin user a new password. The old one
// keeps opening replication sessions for the grace period
// (Config.AdminPasswordGrace), so that the destinations replicating with it
// can be given the new URL (by the same terraform apply) without an
// authentication error, which would stop their sync. Once the grace period
// is over, the gateway closes the sessions of the old password. A password
// older than that is refused at once. The request's keepers are stored
// with the new password (and the old password's are dropped).
func (c *Controller) RegenerateAdminPassword(ctx context.Context, uid int, req api.RegenerateAdminPasswordRequest) (api.AdminPassword, error) {
	if err := req.Validate(); err != nil {
		return api.AdminPassword{}, &api.Error{Code: api.CodeInvalidRequest, Description: err.Error()}
	}
	c.mu.Lock()
	now := time.Now().UTC()
	d, err := c.cfg.Store.Update(uid, func(d *store.Database, _ []store.Database) error {
		if d.Deleting {
			return errDeleting(uid)
		}
		d.PreviousAdminPassword, d.PreviousAdminPasswordUntil = "", time.Time{}
		if c.cfg.AdminPasswordGrace > 0 {
			d.PreviousAdminPassword, d.PreviousAdminPasswordUntil = d.AdminPassword, now.Add(c.cfg.AdminPasswordGrace)
		}
		d.AdminPassword = newSecret()
		d.AdminPasswordKeepers = maps.Clone(req.Keepers)
		if len(d.AdminPasswordKeepers) == 0 {
			d.AdminPasswordKeepers = nil
		}
		d.UpdatedAt = now
		return nil
	})
	c.mu.Unlock()
	if errors.Is(err, store.ErrNotFound) {
		return api.AdminPassword{}, notFound(uid)
	}
	if err != nil {
		return api.AdminPassword{}, err
	}
	// The gateway closes the sessions of the old password when its grace
	// period ends (at once without one). The answer is about the password
	// this request made, even if another regeneration raced it. Only the
	// replication endpoint checks the admin password: the redis-server is
	// not waited for (one that does not answer held the answer, which
	// then lacked the password in force).
	if err := c.applyToEndpoint(uid); err != nil {
		return api.AdminPassword{}, err
	}
	out := api.AdminPassword{AuthenticationAdminPass: d.AdminPassword, URI: c.sourceURL(d), AdminPasswordKeepers: d.AdminPasswordKeepers}
	if d.PreviousAdminPassword != "" {
		out.PreviousPasswordValidUntil = d.PreviousAdminPasswordUntil
	}
	c.cfg.Logger.Info("admin password regenerated", "uid", uid, "old_password_valid_until", out.PreviousPasswordValidUntil)
	return out, nil
}

// RecordAdminPasswordKeepers tags the current admin password of uid with
// keepers when it has none, without regenerating it (Terraform records the
// keepers of an imported password so). Keepers already there stay: others
// are a conflict, the same ones are accepted again (a retried request).
func (c *Controller) RecordAdminPasswordKeepers(_ context.Context, uid int, req api.AdminPasswordKeepersRequest) (api.SourceURL, error) {
	if err := req.Validate(); err != nil {
		return api.SourceURL{}, &api.Error{Code: api.CodeInvalidRequest, Description: err.Error()}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d, err := c.cfg.Store.Update(uid, func(d *store.Database, _ []store.Database) error {
		if d.Deleting {
			return errDeleting(uid)
		}
		if d.AdminPasswordKeepers != nil {
			if maps.Equal(d.AdminPasswordKeepers, req.Keepers) {
				return errUnchanged
			}
			return conflict("the admin password of database %d already has keepers; regenerate it to give it others", uid)
		}
		d.AdminPasswordKeepers = maps.Clone(req.Keepers)
		d.UpdatedAt = time.Now().UTC()
		return nil
	})
	if errors.Is(err, errUnchanged) {
		d, err = c.cfg.Store.Get(uid)
	}
	if errors.Is(err, store.ErrNotFound) {
		return api.SourceURL{}, notFound(uid)
	}
	if err != nil {
		return api.SourceURL{}, err
	}
	return api.SourceURL{URI: c.sourceURL(d), AdminPasswordKeepers: d.AdminPasswordKeepers}, nil
}

// shownGeneration is the replica_generation of d as the API shows it: none
// (0) for a database that is not a Replica Of, whatever it counted while
// it was one.
func shownGeneration(d store.Database) int64 {
	if !d.IsReplica() {
		return 0
	}
	return d.ReplicaGeneration
}

// errUnchanged aborts a store update that has nothing to write.
var errUnchanged = errors.New("unchanged")

// MarkStopped records that the sync of a destination stopped on an error
// (authentication, out of memory, unsupported data), unless its Replica Of
// settings changed since: failed is the configuration that failed, and a
// newer one (new credentials for the same sources, say) must not be stopped
// by the failure of the old. Enabling it again flushes and reloads, unless
// resumable: a source refused the credentials, and the destination continues
// from its checkpoints.
func (c *Controller) MarkStopped(ctx context.Context, failed store.Database, why map[string]string, resumable bool) {
	c.mu.Lock()
	_, err := c.cfg.Store.Update(failed.UID, func(d *store.Database, _ []store.Database) error {
		if d.ReplicaGeneration != failed.ReplicaGeneration || d.ReplicaSync != api.SyncEnabled ||
			!slices.Equal(d.ReplicaSources, failed.ReplicaSources) {
			return errStale
		}
		d.ReplicaSync, d.ReplicaStopErrors, d.ReplicaStopResumable = api.SyncStopped, why, resumable
		d.UpdatedAt = time.Now().UTC()
		return nil
	})
	c.mu.Unlock()
	if err != nil {
		return
	}
	release := c.turns.take(failed.UID)
	defer release()
	if d, err := c.cfg.Store.Get(failed.UID); err == nil {
		c.cfg.Replicator.Configure(ctx, d) // the latest record: see applyLatest
	}
}

var errStale = errors.New("stale")

// Cluster describes this instance.
func (c *Controller) Cluster(context.Context) (api.Cluster, error) { return c.cfg.Cluster, nil }

// view is the API form of d with its live status; deadline is that of
// endpoints.
func (c *Controller) view(ctx context.Context, d store.Database, deadline time.Time) api.Database {
	status, progress := c.cfg.Databases.Status(d.UID)
	out := api.Database{
		UID: d.UID, Name: d.Name, Port: d.Port, MemorySize: d.MemorySize,
		Status:                  status,
		LoadingProgress:         progress,
		Endpoint:                api.Endpoint{Host: c.cfg.AdvertiseHost, Port: d.Port},
		AuthenticationRedisPass: d.RedisPassword,
		ReplicationPort:         d.ReplicationPort,
		TLSMode:                 d.TLSMode,
		ClientCertificates:      d.ClientCertificates,
		ReplicaSources:          []api.ReplicaSourceStatus{},
		CreatedAt:               d.CreatedAt, UpdatedAt: d.UpdatedAt,
	}
	down := c.cfg.Databases.Problem(d.UID)
	out.LastError = joinProblems(down, c.startProblem(d.UID), c.cfg.Databases.Degraded(d.UID), c.cfg.Databases.SettingsPending(d.UID), c.endpointProblem(d.UID))
	if out.TLSMode == "" {
		out.TLSMode = api.TLSDisabled
	}
	if out.ClientCertificates == nil {
		out.ClientCertificates = []string{}
	}
	if d.Deleting {
		out.Status, out.LoadingProgress = api.StatusDeleting, 0
		out.LastError = c.deleteProblem(d.UID)
	}
	if d.Creating {
		// Its create is under way, and may yet fail and take it away:
		// pending (Redis Enterprise's status of a database being
		// created), whatever its redis-server says.
		out.Status, out.LoadingProgress = api.StatusPending, 0
	}
	out.ShardsCount, out.Replication, out.OSSCluster = d.Shards(), d.Replication, d.OSSCluster
	out.Endpoints = c.endpoints(ctx, d, deadline)
	if d.IsReplica() {
		// While a reload runs, readers see part of the data: the
		// database says so.
		if loading, progress := c.cfg.Replicator.Loading(d.UID); loading && out.Status == api.StatusActive {
			out.Status, out.LoadingProgress = api.StatusLoading, max(progress, 0)
		}
		out.ReplicaSync = d.ReplicaSync
		out.ReplicaGeneration = d.ReplicaGeneration
		out.ReplicaStopResumable = d.ReplicaSync == api.SyncStopped && d.ReplicaStopResumable
		out.ReplicaSources = c.cfg.Replicator.Status(d)
		destinationNotServing(out.ReplicaSources, status)
		destinationDown(out.ReplicaSources, down)
		out.ReplicaSyncStatus = aggregate(out.ReplicaSources)
	}
	return out
}

// joinProblems joins the non-empty ones with "; ".
func joinProblems(problems ...string) string {
	return strings.Join(slices.DeleteFunc(problems, func(p string) bool { return p == "" }), "; ")
}

// destinationDown marks every source out of sync while the destination's
// redis-server is down (problem says why): nothing of theirs is applied,
// whatever their syncers last saw, which may be a moment old.
func destinationDown(sources []api.ReplicaSourceStatus, problem string) {
	if problem == "" {
		return
	}
	for i := range sources {
		sources[i].Status = api.SourceOutOfSync
		sources[i].LastError = "the destination is down: " + problem
	}
}

// destinationNotServing marks the sources that say in-sync as syncing while
// the destination's redis-server starts or replays its AOF (status, its
// process's): it applies nothing meanwhile, and what a syncer queued in
// the last second before its restart does not show in its lag.
func destinationNotServing(sources []api.ReplicaSourceStatus, status string) {
	if status != api.StatusPending && status != api.StatusLoading {
		return
	}
	for i := range sources {
		if sources[i].Status == api.SourceInSync {
			sources[i].Status = api.SourceSyncing
		}
	}
}

// aggregate is the worst status of the sources.
func aggregate(sources []api.ReplicaSourceStatus) string {
	rank := map[string]int{api.SourceInSync: 0, api.SourceSyncing: 1, api.SourceOutOfSync: 2}
	worst := api.SourceInSync
	for _, s := range sources {
		if rank[s.Status] > rank[worst] {
			worst = s.Status
		}
	}
	return worst
}
