// Package store keeps the service's state in a bbolt file: the databases it
// runs, with their secrets and Replica Of configuration. It is the source of
// truth; redis-server configs are generated from it at every start.
package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/api"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var (
	bucketDatabases = []byte("databases")
	bucketMeta      = []byte("meta")
	keyNextUID      = []byte("next_uid")
	keyNextPort     = []byte("next_port")
)

// ErrNotFound is returned for an unknown uid.
var ErrNotFound = errors.New("not found")

// Database is the stored record of one database.
type Database struct {
	UID        int       `json:"uid"`
	Name       string    `json:"name"`
	Port       int       `json:"port"`
	MemorySize int64     `json:"memory_size"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`

	// Secrets: the application user's, the admin user's (used by remote
	// syncers to replicate from this database) and the service's own.
	RedisPassword    string `json:"redis_password"`
	AdminPassword    string `json:"admin_password"`
	InternalPassword string `json:"internal_password"`
	// PreviousAdminPassword, the admin password before the last
	// regeneration, still opens replication sessions until
	// PreviousAdminPasswordUntil, so that destinations can be given the
	// new source URL before the old one stops working.
	PreviousAdminPassword      string    `json:"previous_admin_password,omitempty"`
	PreviousAdminPasswordUntil time.Time `json:"previous_admin_password_until,omitzero"`
	// AdminPasswordKeepers is the caller's tag of the current admin
	// password (api.RegenerateAdminPasswordRequest.Keepers); a
	// regeneration replaces it.
	AdminPasswordKeepers map[string]string `json:"admin_password_keepers,omitempty"`

	// ReplicationPort is where the replication gateway serves this
	// database to destinations (the port of its source URL).
	ReplicationPort int `json:"replication_port"`
	// TLSMode is api.TLSDisabled, api.TLSEnabled or api.TLSReplicaSSL.
	TLSMode string `json:"tls_mode,omitempty"`
	// ClientCertificates (PEM) may replicate from this database over TLS.
	ClientCertificates []string `json:"client_certificates,omitempty"`

	ReplicaSources []api.ReplicaSource `json:"replica_sources,omitempty"`
	ReplicaSync    string              `json:"replica_sync,omitempty"`
	// ReplicaStopErrors says why a stopped sync stopped: each source's
	// last error, by its address (host:port), so that the status still
	// says it after a restart of the service. Empty unless ReplicaSync
	// is stopped.
	ReplicaStopErrors map[string]string `json:"replica_stop_errors,omitempty"`
	// ReplicaStopResumable says that the sync stopped because a source
	// refused its credentials: enabling it again continues from the
	// destination's checkpoints instead of reloading.
	ReplicaStopResumable bool `json:"replica_stop_resumable,omitempty"`
	// ReplicaGeneration changes whenever the destination must be flushed and
	// reloaded from all sources (source set changed, stopped then enabled).
	ReplicaGeneration int64 `json:"replica_generation,omitempty"`

	// ShardsCount (0 or 1: one redis-server), Replication (a replica per
	// shard) and OSSCluster describe a sharded database: a Redis Cluster of
	// Nodes, see Clustered.
	ShardsCount int  `json:"shards_count,omitempty"`
	Replication bool `json:"replication,omitempty"`
	OSSCluster  bool `json:"oss_cluster,omitempty"`
	// Nodes of a clustered database: the masters first (node i serves
	// shard i), then, with Replication, the replica of each master in the
	// same order. Node 0's Port is the database's Port.
	Nodes []Node `json:"nodes,omitempty"`

	// Creating is set until the request that created the database has
	// started it: a record still creating when the service starts belongs
	// to a request that never answered (the service died), and goes.
	Creating bool `json:"creating,omitempty"`
	// Deleting is set by a DELETE before it stops the database and removes
	// its files, and the record goes once they are gone: a delete that
	// could not remove them (or that the service's death cut short) is
	// finished by the next DELETE or start, rather than leaving files and
	// ports that no record accounts for.
	Deleting bool `json:"deleting,omitempty"`
}

// Node is one redis-server of a clustered database.
type Node struct {
	// Port is where clients reach it; BusPort is its cluster bus (Redis's
	// default, Port+10000, could fall on another database's port).
	Port    int `json:"port"`
	BusPort int `json:"bus_port"`
	// ReplicationPort is where the replication gateway serves this node
	// to destinations: the node address that the database's replication
	// endpoint gives in CLUSTER SHARDS. 0 for a database recorded before
	// sharded databases could be sources.
	ReplicationPort int `json:"replication_port,omitempty"`
}

// Clustered says whether the database is a Redis Cluster (shards_count > 1
// or oss_cluster) rather than one redis-server.
func (d *Database) Clustered() bool { return d.ShardsCount > 1 || d.OSSCluster }

// Shards is the number of shards (masters) of the database, at least 1.
func (d *Database) Shards() int { return max(d.ShardsCount, 1) }

// Ports are every port the database holds: its own, its replication
// endpoint's and its cluster nodes' (with their replication endpoints).
func (d *Database) Ports() []int {
	out := []int{d.Port, d.ReplicationPort}
	for _, n := range d.Nodes {
		out = append(out, n.Port, n.BusPort)
		if n.ReplicationPort != 0 {
			out = append(out, n.ReplicationPort)
		}
	}
	return out
}

// IsReplica says whether the database is a Replica Of destination.
func (d *Database) IsReplica() bool { return len(d.ReplicaSources) > 0 }

// Store is a bbolt-backed state file.
type Store struct {
	db   *bolt.DB
	path string
	// file is the state file as opened, to tell whether path still names
	// it (see update).
	file os.FileInfo
}

// Open opens (or creates) the state file at path, mode 0600: it holds secrets.
// A damaged file is an error that says so, and is left as it is: every
// record is read once here, so that damage shows now rather than as a
// failure (or a panic of bbolt) in the middle of a request.
func Open(path string) (s *Store, err error) {
	// bbolt panics on some damaged pages (its freelist, a branch), and
	// reads the freelist of a file cut short past its end, a fault of the
	// memory map that would end the process: a panic too, caught here.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, damaged(path, fmt.Errorf("%v", r))
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open state file %s: it is locked: another redis-replicad serves this data directory (%w)", path, err)
	}
	if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) || errors.Is(err, bolterrors.ErrVersionMismatch) ||
		err != nil && strings.Contains(err.Error(), "file size too small") {
		return nil, damaged(path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	if err := readAll(db, path); err != nil {
		db.Close()
		return nil, damaged(path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketDatabases, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise state file %s: %w", path, err)
	}
	file, err := os.Stat(path)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	return &Store{db: db, path: path, file: file}, nil
}

// ErrFileGone is the error of a change made after the state file was
// deleted or replaced under the running service.
var ErrFileGone = errors.New("the state file was deleted or replaced under the running service")

// ErrCannotPersist is (wraps) the error of a change that could not be
// written to the state file, which is then not made: the request was
// right, and so is the service, but it cannot keep changes now. Its error
// also says Unavailable, which the API answers with 503.
var ErrCannotPersist = errors.New("the change could not be written to the state file")

// persistError is an ErrCannotPersist that says why.
type persistError struct{ err error }

func (e *persistError) Error() string       { return e.err.Error() }
func (e *persistError) Unwrap() []error     { return []error{ErrCannotPersist, e.err} }
func (e *persistError) Unavailable() bool   { return true }
func cannotPersist(err error) *persistError { return &persistError{err: err} }

// update runs a write transaction, unless the state file is no longer the
// one this Store has open: bbolt would go on writing the deleted file,
// which nobody reads at the next start, so a change answered as done
// would be lost then. A transaction that fn approved but that could not
// be written (a full disk, an I/O error) is rolled back, and an
// ErrCannotPersist too; what fn refuses is returned as it is.
func (s *Store) update(fn func(tx *bolt.Tx) error) error {
	if now, err := os.Stat(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return cannotPersist(fmt.Errorf("the state file %s cannot be checked (%v): changes are refused until it can", s.path, err))
	} else if err != nil || !os.SameFile(now, s.file) {
		return cannotPersist(fmt.Errorf("%w (%s): changes are refused, since the next start would not see them; what runs keeps running: stop the service and restore the file from a backup", ErrFileGone, s.path))
	}
	var fnErr error
	err := s.db.Update(func(tx *bolt.Tx) error {
		fnErr = fn(tx)
		return fnErr
	})
	if err != nil && fnErr == nil {
		return cannotPersist(fmt.Errorf("write the state file %s: %w; the change is not made", s.path, err))
	}
	return err
}

// damaged is the error of a state file that cannot be read.
func damaged(path string, err error) error {
	return fmt.Errorf("state file %s is damaged (%w): the service does not start on it, and left it as it is; restore it from a backup", path, err)
}

// readAll reads every record of the file at path once (see Open).
func readAll(db *bolt.DB, path string) (err error) {
	// A page past the end of a file cut short is a fault of the memory
	// map, which would end the process: a panic, caught here, instead.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return db.View(func(tx *bolt.Tx) error {
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		if tx.Size() > st.Size() {
			return fmt.Errorf("cut short: its pages take %d bytes, the file has %d", tx.Size(), st.Size())
		}
		if b := tx.Bucket(bucketMeta); b != nil {
			for _, k := range [][]byte{keyNextUID, keyNextPort} {
				if v := b.Get(k); v != nil && len(v) != 8 {
					return fmt.Errorf("meta %s holds %d bytes, not 8", k, len(v))
				}
			}
		}
		if tx.Bucket(bucketDatabases) == nil {
			return nil
		}
		_, err = listTx(tx)
		return err
	})
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

func uidKey(uid int) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, uint64(uid))
	return k
}

// List returns every database, ordered by uid.
func (s *Store) List() ([]Database, error) {
	var out []Database
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDatabases).ForEach(func(_, v []byte) error {
			var d Database
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("decode database record: %w", err)
			}
			out = append(out, d)
			return nil
		})
	})
	return out, err
}

// Get returns one database.
func (s *Store) Get(uid int) (Database, error) {
	var d Database
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketDatabases).Get(uidKey(uid))
		if v == nil {
			return ErrNotFound
		}
		return json.Unmarshal(v, &d)
	})
	return d, err
}

// NextUID is the uid the next database created gets: every uid below it
// was given once (uids are never given again).
func (s *Store) NextUID() (int, error) {
	next := 1
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyNextUID); v != nil {
			next = int(binary.BigEndian.Uint64(v))
		}
		return nil
	})
	return next, err
}

// NextPort is where the controller's search for a free port starts (see
// SetNextPort); 0 when none was recorded.
func (s *Store) NextPort() (int, error) {
	next := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyNextPort); v != nil {
			next = int(binary.BigEndian.Uint64(v))
		}
		return nil
	})
	return next, err
}

// SetNextPort records where the search for a free port starts: after the
// last port given, so that the ports of a deleted database are not given
// again, after a restart either, before the range has been gone through.
func (s *Store) SetNextPort(port int) error {
	return s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyNextPort, uidKey(port))
	})
}

// Create stores a new database under a fresh uid, after check has approved
// (and completed, say with a free port) it against every existing database
// inside the same transaction, so that uniqueness checks cannot race.
func (s *Store) Create(d Database, check func(d *Database, existing []Database) error) (Database, error) {
	err := s.update(func(tx *bolt.Tx) error {
		all, err := listTx(tx)
		if err != nil {
			return err
		}
		if err := check(&d, all); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		next := 1
		if v := meta.Get(keyNextUID); v != nil {
			next = int(binary.BigEndian.Uint64(v))
		}
		d.UID = next
		if err := meta.Put(keyNextUID, uidKey(next+1)); err != nil {
			return err
		}
		return putTx(tx, d)
	})
	return d, err
}

// Update applies change to the stored record of uid inside one transaction;
// check sees every other database. Nothing is written when either fails.
func (s *Store) Update(uid int, change func(d *Database, others []Database) error) (Database, error) {
	var out Database
	err := s.update(func(tx *bolt.Tx) error {
		all, err := listTx(tx)
		if err != nil {
			return err
		}
		var others []Database
		found := false
		for _, d := range all {
			if d.UID == uid {
				out, found = d, true
			} else {
				others = append(others, d)
			}
		}
		if !found {
			return ErrNotFound
		}
		if err := change(&out, others); err != nil {
			return err
		}
		return putTx(tx, out)
	})
	return out, err
}

// Delete removes a database record.
func (s *Store) Delete(uid int) error {
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDatabases)
		if b.Get(uidKey(uid)) == nil {
			return ErrNotFound
		}
		return b.Delete(uidKey(uid))
	})
}

func listTx(tx *bolt.Tx) ([]Database, error) {
	var out []Database
	err := tx.Bucket(bucketDatabases).ForEach(func(_, v []byte) error {
		var d Database
		if err := json.Unmarshal(v, &d); err != nil {
			return fmt.Errorf("decode database record: %w", err)
		}
		out = append(out, d)
		return nil
	})
	return out, err
}

func putTx(tx *bolt.Tx, d Database) error {
	v, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketDatabases).Put(uidKey(d.UID), v)
}
