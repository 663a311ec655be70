package replication

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/service/store"
)

// Destinations is what the syncers need of the databases they write to:
// how the service itself reaches one. The process manager provides it (the
// app wires them), so this package knows nothing of processes.
type Destinations interface {
	Access(d store.Database) Access
	// Shadow starts a second, empty server beside d, which a reload
	// loads while d keeps serving its previous data. ErrNoRoomForShadow
	// (the host lacks the memory for a second copy) means the reload
	// happens in place; another error (a full disk) is retried, with the
	// previous data kept.
	Shadow(ctx context.Context, d store.Database) (Shadow, error)
}

// ErrNoRoomForShadow: the host cannot hold a second copy of a destination,
// which is then reloaded in place.
var ErrNoRoomForShadow = errors.New("no room for a second copy of the destination")

// RDBLoader is what Destinations may also offer: loading a whole dataset
// into a database from an RDB file, natively, in one step for its readers.
// A single source's full load goes that way (see syncer.loadFile).
type RDBLoader interface {
	// CreateRDB creates an empty file for LoadRDB.
	CreateRDB(d store.Database) (*os.File, error)
	// LoadRDB replaces d's data with the RDB file at path, which it
	// consumes. d's AOF is off afterwards (the caller turns it on).
	LoadRDB(ctx context.Context, d store.Database, path string) error
}

// Shadow is a server a reload loads while the destination keeps serving.
type Shadow interface {
	Access() Access
	// SwapIn makes the shadow's data the destination's, in one step for
	// its readers, and closes the shadow. The destination's AOF is off
	// afterwards (the next round turns it on, which rewrites it).
	SwapIn(ctx context.Context) error
	Close()
}

// Access is the service's own way into a database, whatever TLS its TCP
// port requires: a local socket and an identity allowed everything.
type Access struct {
	Network, Addr      string
	Username, Password string
	// LogFile is the server's log, where a replica names the errors it
	// answered its master (masterlink.go).
	LogFile string
	// Nodes, for a sharded database (a Redis Cluster): how the service
	// reaches each of its nodes, by the port the cluster announces for it.
	// Empty for a database that is one server.
	Nodes map[int]Access
}

// client is a connection pool to logical database db.
func (a Access) client(db int) *redis.Client {
	return redis.NewClient(&redis.Options{Network: a.Network, Addr: a.Addr, Username: a.Username, Password: a.Password, DB: db, MaxRetries: -1})
}

// waitReady polls PING until the destination answers (a starting
// redis-server, or one loading its AOF, does not) or ctx ends.
func waitReady(ctx context.Context, c *redis.Client) error {
	var last error
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		last = c.Ping(pctx).Err()
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the destination to answer: %w (last error: %v)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
