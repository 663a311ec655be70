package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/client"
)

// Helpers shared by the redis_database resource and data source: finding,
// flattening and waiting.

const (
	pollMinInterval = 200 * time.Millisecond
	pollMaxInterval = 3 * time.Second
)

// parseDatabaseID turns a Terraform id into a database uid.
func parseDatabaseID(id string) (int, error) {
	uid, err := strconv.Atoi(id)
	if err != nil || uid <= 0 || strconv.Itoa(uid) != id {
		return 0, fmt.Errorf("%q is not a database id: an id is the database's uid, a positive integer such as \"3\"", id)
	}
	return uid, nil
}

// findDatabaseByID returns the database uid; the error satisfies
// client.IsNotFound when there is none.
func findDatabaseByID(ctx context.Context, c *client.Client, uid int) (*api.Database, error) {
	return c.GetDatabase(ctx, uid)
}

// findDatabaseByName returns the only database called name.
func findDatabaseByName(ctx context.Context, c *client.Client, name string) (*api.Database, error) {
	dbs, err := c.ListDatabases(ctx)
	if err != nil {
		return nil, err
	}
	var found []api.Database
	for _, db := range dbs {
		if strings.EqualFold(db.Name, name) { // the service's names are unique regardless of case
			found = append(found, db)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no database is named %q", name)
	case 1:
		return &found[0], nil
	default:
		ids := make([]string, len(found))
		for i, db := range found {
			ids[i] = strconv.Itoa(db.UID)
		}
		return nil, fmt.Errorf("%d databases are named %q (ids %v): select one by id", len(found), name, ids)
	}
}

// databaseEndpoint formats where applications reach db, as "host:port".
func databaseEndpoint(db *api.Database) string {
	if db.Endpoint.Host == "" {
		return ""
	}
	return net.JoinHostPort(db.Endpoint.Host, strconv.Itoa(db.Endpoint.Port))
}

// databaseReplicationEndpoint formats where destinations replicate db from
// (the host:port of its source URL, served by the instance's replication
// gateway), as "host:port".
func databaseReplicationEndpoint(db *api.Database) string {
	if db.Endpoint.Host == "" || db.ReplicationPort == 0 {
		return ""
	}
	return net.JoinHostPort(db.Endpoint.Host, strconv.Itoa(db.ReplicationPort))
}

// tlsModeDescription explains the values of tls_mode.
const tlsModeDescription = "`disabled` (the default: no TLS), `enabled` (TLS for every client: the database's port " +
	"speaks only TLS, with the instance's `proxy_cert`, signed by its `ca_cert`, as in " +
	"`redis-cli --tls --cacert ca.pem`; the replication endpoint requires TLS too) or `replica_ssl` (TLS for " +
	"replication only: the replication endpoint requires TLS, applications connect in plain text)"

// waitForDatabaseActive polls the database uid until it is active, failed or
// gone, or until timeout. It returns the database as last read.
func waitForDatabaseActive(ctx context.Context, c *client.Client, uid int, timeout time.Duration) (*api.Database, error) {
	var last *api.Database
	err := poll(ctx, timeout, func(ctx context.Context) (bool, error) {
		db, err := findDatabaseByID(ctx, c, uid)
		if err != nil {
			return false, err
		}
		last = db
		tflog.Debug(ctx, "waiting for the database to become active", map[string]any{"uid": uid, "status": db.Status})
		switch db.Status {
		case api.StatusActive:
			return true, nil
		case api.StatusFailed:
			return false, fmt.Errorf("database %d failed to start (status %q): see the redis-replicad logs", uid, db.Status)
		default:
			return false, nil
		}
	})
	if errors.Is(err, errPollTimeout) {
		status := "unknown"
		if last != nil {
			status = last.Status
		}
		return last, fmt.Errorf("database %d is not active after %s (last status %q)", uid, timeout, status)
	}
	return last, err
}

// waitForDatabaseDeleted polls until the database uid is gone.
func waitForDatabaseDeleted(ctx context.Context, c *client.Client, uid int, timeout time.Duration) error {
	err := poll(ctx, timeout, func(ctx context.Context) (bool, error) {
		_, err := findDatabaseByID(ctx, c, uid)
		if client.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if errors.Is(err, errPollTimeout) {
		return fmt.Errorf("database %d still exists %s after it was deleted", uid, timeout)
	}
	return err
}

var errPollTimeout = errors.New("timeout")

// poll calls check until it reports done or fails, with a growing interval,
// for at most timeout. It returns errPollTimeout when the time is up, and the
// context's error when ctx ends first.
func poll(ctx context.Context, timeout time.Duration, check func(context.Context) (bool, error)) error {
	deadline, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	interval := pollMinInterval
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-deadline.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return errPollTimeout
		case <-timer.C:
		}
		done, err := check(deadline)
		if done {
			return nil
		}
		if err != nil {
			if deadline.Err() != nil && ctx.Err() == nil {
				// The call was cut by the deadline.
				return errPollTimeout
			}
			return err
		}
		timer.Reset(interval)
		interval = min(interval*3/2, pollMaxInterval)
	}
}
