// Package api holds the request and response types of the redis-replicad REST
// API. The service and the provider's client both use them, so the wire format
// cannot drift between the two. Field names follow the Redis Enterprise REST
// API where it has a name for the concept.
package api

import (
	"errors"
	"fmt"
	"time"
)

// Database statuses.
const (
	StatusPending = "pending" // created, redis-server not yet answering
	// StatusLoading: redis-server is loading its data (its AOF after a
	// restart); loading_progress says how far.
	StatusLoading = "loading"
	StatusActive  = "active" // redis-server answering
	StatusFailed  = "failed" // redis-server could not be started
	// StatusDeleting: a DELETE stopped it but could not remove its files
	// yet (last_error says why); a DELETE again, or the next start of the
	// service, finishes it.
	StatusDeleting = "deleting"
)

// Replica Of sync states (replica_sync).
const (
	SyncEnabled = "enabled"
	SyncPaused  = "paused"
	SyncStopped = "stopped"
)

// TLS modes of a database (tls_mode).
const (
	TLSDisabled   = "disabled"    // no TLS
	TLSEnabled    = "enabled"     // TLS for every client, replication included
	TLSReplicaSSL = "replica_ssl" // TLS for replication traffic only
)

// Per-source and aggregate replication statuses.
const (
	SourceSyncing   = "syncing"
	SourceInSync    = "in-sync"
	SourceOutOfSync = "out-of-sync"
)

// MaxReplicaSources is the largest number of sources a destination may have.
const MaxReplicaSources = 32

// NamePattern is what a database name may be: 1 to 63 letters, digits, '-'
// or '_', starting with a letter or digit. The service refuses any other;
// the provider checks it at plan time.
const NamePattern = `^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`

// Database ("bdb") as returned by GET /v1/bdbs/{uid}.
type Database struct {
	UID        int    `json:"uid"`
	Name       string `json:"name"`
	Port       int    `json:"port"`
	MemorySize int64  `json:"memory_size"`
	Status     string `json:"status"`
	// LoadingProgress is how far a loading database is, in percent.
	LoadingProgress float64 `json:"loading_progress,omitempty"`
	// LastError says why a pending or failed database does not serve
	// after its redis-server ended (what it logged: a port taken, a
	// full disk); empty otherwise.
	LastError string   `json:"last_error,omitempty"`
	Endpoint  Endpoint `json:"endpoint"`
	// ShardsCount, Replication and OSSCluster as created: with
	// shards_count > 1 or oss_cluster the database is a Redis Cluster and
	// Endpoints lists its nodes (any cluster-aware client starts from one).
	ShardsCount int            `json:"shards_count"`
	Replication bool           `json:"replication"`
	OSSCluster  bool           `json:"oss_cluster"`
	Endpoints   []NodeEndpoint `json:"endpoints"`
	// AuthenticationRedisPass is the password of the application user
	// "default"; absent in what the viewer user reads.
	AuthenticationRedisPass string `json:"authentication_redis_pass,omitempty"`
	// ReplicationPort is the port destinations replicate from (the port of
	// the source URL), served by the instance's replication gateway.
	ReplicationPort int `json:"replication_port"`
	// TLSMode is disabled, enabled (all clients) or replica_ssl (replication only).
	TLSMode string `json:"tls_mode"`
	// ClientCertificates (PEM) may replicate from this database over TLS;
	// empty means any client that speaks TLS (and knows the password).
	ClientCertificates []string `json:"client_certificates"`

	// Replica Of. Empty ReplicaSources means the database is not a replica.
	ReplicaSources []ReplicaSourceStatus `json:"replica_sources"`
	ReplicaSync    string                `json:"replica_sync,omitempty"`
	// ReplicaSyncStatus aggregates the per-source statuses: the worst of them.
	ReplicaSyncStatus string `json:"replica_sync_status,omitempty"`
	// ReplicaGeneration counts the times the source set changed; each change
	// flushes the destination and reloads every source.
	ReplicaGeneration int64 `json:"replica_generation,omitempty"`
	// ReplicaStopResumable says that a stopped sync stopped because a
	// source refused its password: enabling it again (with the new URL)
	// continues from the checkpoints, without a flush.
	ReplicaStopResumable bool `json:"replica_stop_resumable,omitempty"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Endpoint is where applications reach a database.
type Endpoint struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

// NodeEndpoint is one redis-server of a database: a master (it serves
// Slots) or a replica of the master at Master.
type NodeEndpoint struct {
	Host string `json:"host"`
	Port int    `json:"port"`
	Role string `json:"role"` // master or replica
	// Slots the node serves, as ranges ("0-5460"); empty for a replica.
	Slots string `json:"slots,omitempty"`
	// Master is host:port of the master of a replica.
	Master string `json:"master,omitempty"`
	// ReplicationPort is the port of the node's own replication endpoint,
	// where destinations stream its shard (they find it through the
	// database's source URL; open it to them as the database's
	// replication_port).
	ReplicationPort int `json:"replication_port,omitempty"`
}

// ReplicaSource is one source of a Replica Of destination, as written by a client.
type ReplicaSource struct {
	// URI is redis://[user]:password@host:port or redis://host:port.
	URI        string `json:"uri"`
	Encryption bool   `json:"encryption,omitempty"`
	ServerCert string `json:"server_cert,omitempty"`
	// Compression is 0 (off) to 6.
	Compression int `json:"compression,omitempty"`
	// ReadFrom says which node of each shard a clustered source is
	// replicated from: ReadFromMaster (the default, also when empty) or
	// ReadFromReplica, so that replication does not load the masters. A
	// source that is one server ignores it.
	ReadFrom string `json:"read_from,omitempty"`
}

// Values of ReplicaSource.ReadFrom.
const (
	ReadFromMaster  = "master"
	ReadFromReplica = "replica"
)

// ReplicaShardStatus is the status of one shard of a clustered source
// (a Redis Cluster): each shard is replicated by a syncer of its own, with
// its own checkpoint.
type ReplicaShardStatus struct {
	// Slots the shard holds, as ranges: "0-5460" or "0-99,200-300".
	Slots string `json:"slots"`
	// Node is the address of the server the shard is replicated from now,
	// and Role its role (master or replica).
	Node       string    `json:"node"`
	Role       string    `json:"role"`
	Status     string    `json:"status"`
	Lag        int64     `json:"lag"` // milliseconds
	LastError  string    `json:"last_error,omitempty"`
	LastUpdate time.Time `json:"last_update,omitzero"`
	// RDBSize and RDBTransferred are the progress of the shard's full load.
	RDBSize        int64 `json:"rdb_size"`
	RDBTransferred int64 `json:"rdb_transferred"`
	// FullSyncs and PartialSyncs count the shard's syncs since the Replica
	// Of was configured or the service started, whichever is later: after a
	// failover of the shard, a partial sync means
	// the new master continued the replication stream from the checkpoint,
	// a full one that it could not (and the destination was reloaded).
	FullSyncs    int `json:"full_syncs"`
	PartialSyncs int `json:"partial_syncs"`
}

// ReplicaSourceStatus is a source with its live status, as read back.
// The URI is returned as it was given (the API is authenticated); clients that
// print it must redact it.
type ReplicaSourceStatus struct {
	ReplicaSource
	Status    string `json:"status"`
	Lag       int64  `json:"lag"` // milliseconds
	LastError string `json:"last_error,omitempty"`
	// LastUpdate is when the source's status last changed (absent until it
	// has).
	LastUpdate     time.Time `json:"last_update,omitzero"`
	RDBSize        int64     `json:"rdb_size"`
	RDBTransferred int64     `json:"rdb_transferred"`
	// CompressionActive says whether the source agreed to compress.
	CompressionActive bool `json:"compression_active,omitempty"`
	// CompressionCodec is what the source compresses with while
	// compression is active: "zstd", or "deflate" for a source instance
	// that predates zstd.
	CompressionCodec string `json:"compression_codec,omitempty"`
	// CompressionNote says why compression that was asked for is not active.
	CompressionNote string `json:"compression_note,omitempty"`
	// Shards is set when the source is a Redis Cluster: one entry per
	// shard. The source's own fields sum them up: the worst status, the
	// largest lag, the first error, the total load.
	Shards []ReplicaShardStatus `json:"shards,omitempty"`
	// SyncNote says what of the source the destination could not
	// reproduce exactly (what Redis cannot recreate through commands).
	SyncNote string `json:"sync_note,omitempty"`
}

// CreateDatabaseRequest is the body of POST /v1/bdbs.
type CreateDatabaseRequest struct {
	Name       string `json:"name"`
	MemorySize int64  `json:"memory_size"`
	// Port is optional; one from the service's range is chosen when it is
	// left out (an explicit 0 is refused).
	Port int `json:"port,omitempty"`
	// AuthenticationRedisPass is optional; one is generated when empty.
	AuthenticationRedisPass string   `json:"authentication_redis_pass,omitempty"`
	TLSMode                 string   `json:"tls_mode,omitempty"`
	ClientCertificates      []string `json:"client_certificates,omitempty"`
	// ReplicaSources makes the new database a Replica Of them.
	ReplicaSources []ReplicaSource `json:"replica_sources,omitempty"`
	ReplicaSync    string          `json:"replica_sync,omitempty"`
	// ShardsCount > 1 or OSSCluster makes the database a Redis Cluster of
	// that many masters (1 when 0); Replication gives each a replica.
	ShardsCount int  `json:"shards_count,omitempty"`
	Replication bool `json:"replication,omitempty"`
	OSSCluster  bool `json:"oss_cluster,omitempty"`
}

// UpdateDatabaseRequest is the body of PUT /v1/bdbs/{uid}. Nil fields are
// left as they are. ReplicaSources set to an empty list removes Replica Of.
type UpdateDatabaseRequest struct {
	Name                    *string          `json:"name,omitempty"`
	MemorySize              *int64           `json:"memory_size,omitempty"`
	AuthenticationRedisPass *string          `json:"authentication_redis_pass,omitempty"`
	TLSMode                 *string          `json:"tls_mode,omitempty"`
	ClientCertificates      *[]string        `json:"client_certificates,omitempty"`
	ReplicaSources          *[]ReplicaSource `json:"replica_sources,omitempty"`
	ReplicaSync             *string          `json:"replica_sync,omitempty"`
	// ShardsCount, Replication and OSSCluster cannot change yet (that is a
	// resharding): a value other than the database's is refused.
	ShardsCount *int  `json:"shards_count,omitempty"`
	Replication *bool `json:"replication,omitempty"`
	OSSCluster  *bool `json:"oss_cluster,omitempty"`
	// IfReplicaGeneration makes the update conditional: it is refused
	// (409) unless the database's replica_generation is still this one
	// (0 for a database that is not a Replica Of, as it reads: none), so
	// that two clients that read a database that was not a Replica Of
	// cannot both make it one.
	IfReplicaGeneration *int64 `json:"if_replica_generation,omitempty"`
	// ReplicaNoFlush, when true, makes the update conditional too: it is
	// refused (409) if it would flush the destination and load every
	// source again (a new source set, or enabling a sync that is stopped
	// and not replica_stop_resumable). A client that showed its user "no
	// flush" (Terraform's plan) sends it, so that a change made since it
	// read the database (the sync stopped again) cannot turn its update
	// into a flush the user never saw.
	ReplicaNoFlush *bool `json:"replica_no_flush,omitempty"`
}

// SourceURL is the answer of GET /v1/bdbs/{uid}/source_url: the URL another
// database uses to replicate from this one.
type SourceURL struct {
	URI string `json:"uri"`
	// AdminPasswordKeepers are the keepers given with the regeneration
	// that made the current admin password (absent when none were).
	AdminPasswordKeepers map[string]string `json:"admin_password_keepers,omitempty"`
}

// RegenerateAdminPasswordRequest is the optional body of POST
// /v1/bdbs/{uid}/actions/regenerate_admin_password (an empty body is the
// same as {}).
type RegenerateAdminPasswordRequest struct {
	// Keepers is an opaque tag of the new password, stored with it and
	// returned as admin_password_keepers until the next regeneration: the
	// caller's record of why the password was made (Terraform's keepers),
	// so that a caller that lost it (an import) can find it again. Not a
	// secret: it is returned to whoever may read the source URL.
	Keepers map[string]string `json:"keepers,omitempty"`
}

// AdminPasswordKeepersRequest is the body of PUT
// /v1/bdbs/{uid}/admin_password_keepers: it records keepers for the current
// admin password when it has none (one regenerated without keepers, or
// before the service stored them), without regenerating it. A password
// that has keepers keeps them: other keepers are a conflict (regenerate
// the password to change them), the same ones are accepted again.
type AdminPasswordKeepersRequest struct {
	Keepers map[string]string `json:"keepers"`
}

// Validate says what is wrong with r: keepers are required and bounded.
func (r AdminPasswordKeepersRequest) Validate() error {
	if len(r.Keepers) == 0 {
		return errors.New("keepers: at least one entry is required")
	}
	return RegenerateAdminPasswordRequest{Keepers: r.Keepers}.Validate()
}

// Bounds of RegenerateAdminPasswordRequest.Keepers.
const (
	MaxAdminPasswordKeepers = 64
	MaxKeeperKeyBytes       = 256
	MaxKeeperValueBytes     = 4096
)

// Validate says what is wrong with r, without echoing its values.
func (r RegenerateAdminPasswordRequest) Validate() error {
	if len(r.Keepers) > MaxAdminPasswordKeepers {
		return fmt.Errorf("keepers: %d entries, at most %d are allowed", len(r.Keepers), MaxAdminPasswordKeepers)
	}
	for k, v := range r.Keepers {
		switch {
		case k == "":
			return errors.New("keepers: a key is empty")
		case len(k) > MaxKeeperKeyBytes:
			return fmt.Errorf("keepers: a key of %d bytes, at most %d are allowed", len(k), MaxKeeperKeyBytes)
		case len(v) > MaxKeeperValueBytes:
			return fmt.Errorf("keepers: the value of %q has %d bytes, at most %d are allowed", k, len(v), MaxKeeperValueBytes)
		}
	}
	return nil
}

// AdminPassword is the answer of POST /v1/bdbs/{uid}/actions/regenerate_admin_password.
type AdminPassword struct {
	AuthenticationAdminPass string `json:"authentication_admin_pass"`
	URI                     string `json:"uri"`
	// PreviousPasswordValidUntil is when the replaced password stops
	// opening replication sessions (zero: it already has).
	PreviousPasswordValidUntil time.Time `json:"previous_password_valid_until,omitzero"`
	// AdminPasswordKeepers are the keepers of the request, as stored.
	AdminPasswordKeepers map[string]string `json:"admin_password_keepers,omitempty"`
}

// Cluster is the answer of GET /v1/cluster.
type Cluster struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// CACert is the PEM certificate of the CA that signed the API's certificate.
	CACert string `json:"ca_cert"`
	// ProxyCert is what this instance's databases present to TLS clients.
	ProxyCert string `json:"proxy_cert,omitempty"`
	// SyncerCert is the client certificate this instance's syncers present.
	SyncerCert string `json:"syncer_cert,omitempty"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Code        string `json:"error_code"`
	Description string `json:"description"`
}

// Error codes.
const (
	CodeInvalidRequest  = "invalid_request"
	CodeUnauthorized    = "unauthorized"
	CodeForbidden       = "forbidden"         // a read-only (viewer) user asked for a change or a secret
	CodeTooManyRequests = "too_many_requests" // wrong passwords from the address: retry after Retry-After
	CodeNotFound        = "not_found"         // the object named (a database) does not exist
	// CodeNoRoute: the path is none of the API's. Not CodeNotFound, so
	// that a client given a wrong endpoint (a path too many) does not take
	// every object for deleted.
	CodeNoRoute  = "no_route"
	CodeConflict = "conflict"
	// CodeWouldFlush (409): an update with replica_no_flush would have
	// flushed the destination; nothing was changed.
	CodeWouldFlush = "would_flush"
	CodeInternal   = "internal_error"
	// CodeUnavailable (503): the service cannot make changes now (it
	// cannot write its state file); nothing of the request was made.
	CodeUnavailable = "unavailable"
)

func (e *Error) Error() string { return e.Code + ": " + e.Description }
