package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redisurl"
	"github.com/replicad/terraform-provider-redis/internal/replcompress"
	"github.com/replicad/terraform-provider-redis/internal/tlspin"
	"github.com/replicad/terraform-provider-redis/service/replication"
	"github.com/replicad/terraform-provider-redis/service/store"
)

// validateSync checks replica_sync and returns its effective value.
func validateSync(sync string, replica bool) (string, error) {
	switch sync {
	case "":
		if replica {
			return api.SyncEnabled, nil
		}
		return "", nil
	case api.SyncEnabled, api.SyncPaused, api.SyncStopped:
		if !replica {
			return "", invalid("replica_sync %q needs replica_sources: the database is not a Replica Of anything", sync)
		}
		return sync, nil
	}
	return "", invalid("replica_sync %q is invalid: use enabled, paused or stopped", sync)
}

// applyReplicaChange applies the Replica Of part of an update to d. A new
// source set, or enabling a stopped sync, starts a new generation: the
// destination is flushed and loaded again from every source.
func (c *Controller) applyReplicaChange(d *store.Database, req api.UpdateDatabaseRequest) error {
	wasStopped := d.ReplicaSync == api.SyncStopped
	wasResumable := wasStopped && d.ReplicaStopResumable
	generation := d.ReplicaGeneration
	bumped := false
	if req.ReplicaSources != nil {
		next := *req.ReplicaSources
		if !sameSources(d.ReplicaSources, next) {
			d.ReplicaGeneration++
			bumped = true
		}
		d.ReplicaSources = next
		if len(next) == 0 {
			d.ReplicaSources, d.ReplicaSync = nil, ""
		}
	}
	sync := d.ReplicaSync
	if req.ReplicaSync != nil {
		sync = *req.ReplicaSync
	}
	sync, err := validateSync(sync, d.IsReplica())
	if err != nil {
		return err
	}
	// Restarting a stopped sync flushes and reloads, whatever else the
	// request changes (new credentials for the same sources included),
	// unless it stopped because a source refused the credentials: then
	// every batch was applied with its checkpoint or not at all, and the
	// syncers continue from the checkpoints.
	if wasStopped && sync != api.SyncStopped && !bumped && !d.ReplicaStopResumable {
		// Paused first, then enabled, too: the reload is owed from the
		// stop (a batch the destination refused may be missing).
		d.ReplicaGeneration++
	}
	if req.ReplicaNoFlush != nil && *req.ReplicaNoFlush && d.IsReplica() && d.ReplicaGeneration != generation {
		// The client showed its user no flush (a plan): the database
		// changed since it was read (a sync stopped again, and no longer
		// resumable), and the user is to see the flush before it happens.
		// d.ReplicaSync is still the value read.
		return &api.Error{Code: api.CodeWouldFlush, Description: fmt.Sprintf("this update would flush database %d and load every source again, but it asks for no flush "+
			"(replica_no_flush): the Replica Of changed since it was read (replica_sync is %q, replica_stop_resumable %t). "+
			"Nothing was changed: read it again (with Terraform: run terraform plan again, which shows the flush)",
			d.UID, d.ReplicaSync, wasResumable)}
	}
	d.ReplicaSync = sync
	if sync != api.SyncStopped || bumped {
		d.ReplicaStopErrors, d.ReplicaStopResumable = nil, false // they were about the sync that stopped
	}
	return nil
}

// sameSources says whether two source lists name the same sources, as sets
// of addresses: order has no meaning, and new credentials, certificates or
// compression for the same address are the same source (its syncer
// reconnects and continues; nothing is reloaded).
func sameSources(a, b []api.ReplicaSource) bool {
	return slices.Equal(sourceAddrs(a), sourceAddrs(b))
}

func sourceAddrs(list []api.ReplicaSource) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		if u, err := redisurl.Parse(s.URI); err == nil {
			out = append(out, u.Key())
		} else {
			out = append(out, s.URI)
		}
	}
	slices.Sort(out)
	return out
}

// checkSourceList checks what of a source list needs nothing but the list:
// count, URLs, compression levels, read_from, TLS settings, duplicates.
func checkSourceList(sources []api.ReplicaSource) error {
	if len(sources) > api.MaxReplicaSources {
		return invalid("a database can have at most %d replica sources, not %d", api.MaxReplicaSources, len(sources))
	}
	seen := map[string]bool{}
	for i, s := range sources {
		u, err := redisurl.Parse(s.URI)
		if err != nil {
			return invalid("replica_sources[%d]: %v", i, err)
		}
		if err := replcompress.CheckLevel(s.Compression); err != nil {
			return invalid("replica_sources[%d] (%s): %v", i, u, err)
		}
		if s.ReadFrom != "" && s.ReadFrom != api.ReadFromMaster && s.ReadFrom != api.ReadFromReplica {
			return invalid("replica_sources[%d] (%s): read_from %q is invalid: use master or replica (which node of each shard of a clustered source to replicate from)", i, u, s.ReadFrom)
		}
		if u.TLS && !s.Encryption {
			// The syncer connects as encryption says, whatever the scheme:
			// it would send the password in plain text to whatever answers.
			return invalid("replica_sources[%d] (%s): the URL is rediss:// but encryption is off: TLS is set by encryption (with server_cert), not by the URL's scheme", i, u)
		}
		if s.Encryption && s.ServerCert == "" {
			return invalid("replica_sources[%d] (%s): encryption needs server_cert: the source instance's proxy_cert, or the CA of an open-source Redis", i, u)
		}
		if s.ServerCert != "" {
			if _, err := tlspin.ParseCertificate(s.ServerCert); err != nil {
				return invalid("replica_sources[%d] (%s): server_cert: %v", i, u, err)
			}
			if !s.Encryption {
				return invalid("replica_sources[%d] (%s): server_cert is set but encryption is off", i, u)
			}
		}
		// One server in two spellings (a name's case, an IP's forms) is
		// listed twice (sameSources compares the same keys).
		if seen[u.Key()] {
			return invalid("replica_sources[%d]: %s is listed twice", i, u)
		}
		seen[u.Key()] = true
	}
	return nil
}

// validateSources checks d's sources: URLs, count, duplicates, itself, and
// cycles among this instance's databases. others are every other database.
func (c *Controller) validateSources(d store.Database, others []store.Database) error {
	if err := checkSourceList(d.ReplicaSources); err != nil {
		return err
	}
	for i, s := range d.ReplicaSources {
		u, _ := redisurl.Parse(s.URI)
		if c.isLocalHost(u.Host) && slices.Contains(d.Ports(), u.Port) {
			return invalid("replica_sources[%d]: %s is this database itself", i, u)
		}
	}
	if d.UID == 0 {
		// A new database has no port others could name yet... except its
		// requested port: cycles through it are checked below all the same.
		d.UID = -1
	}
	all := append(slices.Clone(others), d)
	if cycle := c.findCycle(d.UID, all); cycle != "" {
		return invalid("replica_sources would form a replication cycle: %s", cycle)
	}
	return nil
}

// refuseSourcesBeingDeleted refuses a source that d did not have before
// (none, for a create) and that is a database of this instance being
// deleted: its redis-server is stopped for good, and the destination would
// only ever fail to reach it. A source it had already stays (the
// destination's other changes go on).
func (c *Controller) refuseSourcesBeingDeleted(d store.Database, before []api.ReplicaSource, all []store.Database) error {
	had := map[string]bool{}
	for _, s := range before {
		if u, err := redisurl.Parse(s.URI); err == nil {
			had[u.Key()] = true
		}
	}
	for i, s := range d.ReplicaSources {
		u, err := redisurl.Parse(s.URI)
		if err != nil || had[u.Key()] {
			continue
		}
		uid := c.localSource(s.URI, all)
		for _, o := range all {
			if o.UID == uid && uid != 0 && o.Deleting {
				return invalid("replica_sources[%d] (%s) is database %d of this instance, which is being deleted (status %q): it is no source to replicate from", i, u, uid, api.StatusDeleting)
			}
		}
	}
	return nil
}

// localSource returns the uid of the database of this instance that uri
// names, or 0.
func (c *Controller) localSource(uri string, all []store.Database) int {
	u, err := redisurl.Parse(uri)
	if err != nil || !c.isLocalHost(u.Host) {
		return 0
	}
	for _, o := range all {
		if slices.Contains(o.Ports(), u.Port) {
			return o.UID
		}
	}
	return 0
}

// isLocalHost says whether host names this host: its advertised name,
// localhost, a loopback address, or the unspecified address (0.0.0.0, ::),
// which a connection takes for a local one. A name's final dot (the root)
// changes nothing.
func (c *Controller) isLocalHost(host string) bool {
	name := strings.TrimSuffix(host, ".")
	if strings.EqualFold(host, c.cfg.AdvertiseHost) || strings.EqualFold(name, strings.TrimSuffix(c.cfg.AdvertiseHost, ".")) ||
		strings.EqualFold(name, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified() || ip.String() == c.cfg.AdvertiseHost)
}

// findCycle follows the local Replica Of edges from start and describes the
// first path back to start, or returns "".
func (c *Controller) findCycle(start int, all []store.Database) string {
	byPort := map[int]store.Database{}
	byUID := map[int]store.Database{}
	for _, d := range all {
		for _, p := range d.Ports() {
			if p != 0 {
				byPort[p] = d
			}
		}
		byUID[d.UID] = d
	}
	var path []string
	visited := map[int]bool{}
	var walk func(uid int) bool
	walk = func(uid int) bool {
		d := byUID[uid]
		for _, s := range d.ReplicaSources {
			u, err := redisurl.Parse(s.URI)
			if err != nil || !c.isLocalHost(u.Host) {
				continue
			}
			src, ok := byPort[u.Port]
			if !ok {
				continue
			}
			path = append(path, d.Name+" <- "+src.Name)
			if src.UID == start {
				return true
			}
			if !visited[src.UID] {
				visited[src.UID] = true
				if walk(src.UID) {
					return true
				}
			}
			path = path[:len(path)-1]
		}
		return false
	}
	if walk(start) {
		return strings.Join(path, ", ")
	}
	return ""
}

// validateTLS checks tls_mode and the client certificates (PEM).
// pinsNeedTLS refuses client_certificates on a database whose replication
// endpoint has no TLS: the pins would be ignored, and any client that knows
// the password would replicate, in plain text. Checked when a request sets
// either field, so that a database recorded before keeps taking updates of
// the others.
func pinsNeedTLS(mode string, certs []string) error {
	if len(certs) > 0 && (mode == "" || mode == api.TLSDisabled) {
		return invalid("client_certificates pin the TLS clients of the replication endpoint, which has no TLS with tls_mode %q: any client that knows the password would replicate, in plain text; set tls_mode to replica_ssl or enabled, or remove client_certificates", api.TLSDisabled)
	}
	return nil
}

func validateTLS(mode string, certs []string) error {
	switch mode {
	case "", api.TLSDisabled, api.TLSEnabled, api.TLSReplicaSSL:
	default:
		return invalid("tls_mode %q is invalid: use disabled, enabled or replica_ssl", mode)
	}
	for i, c := range certs {
		if _, err := tlspin.ParseCertificate(c); err != nil {
			return invalid("client_certificates[%d]: %v", i, err)
		}
	}
	return nil
}

// checkCompression refuses compression for sources that say they cannot
// compress (open-source Redis servers: only a redis-replicad replication
// endpoint can). A source that cannot be asked now (unreachable, say) is
// accepted; its status will tell whether compression is active. A list
// refused whatever the sources answer is refused first, without asking
// any; the others are asked side by side: each question to a source that
// does not answer waits for its timeout.
func (c *Controller) checkCompression(ctx context.Context, sources []api.ReplicaSource) error {
	if err := checkSourceList(sources); err != nil {
		return err
	}
	refused := make([]bool, len(sources))
	var wg sync.WaitGroup
	for i, s := range sources {
		if s.Compression == 0 {
			continue
		}
		wg.Go(func() {
			refused[i] = errors.Is(c.cfg.Replicator.ProbeCompression(ctx, s), replication.ErrCannotCompress)
		})
	}
	wg.Wait()
	for i, s := range sources {
		if refused[i] {
			return invalid("replica_sources[%d] (%s): compression applies only between redis-replicad instances, and this source cannot compress (an open-source Redis?): set compression to 0", i, redisurl.Redact(s.URI))
		}
	}
	return nil
}
