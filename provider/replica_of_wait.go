package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/client"
)

const (
	// defaultFailAfter is how long every source may fail before a wait
	// for the sync gives up, when fail_after is not set.
	defaultFailAfter = 3 * time.Minute
	// defaultFailAfterString is defaultFailAfter as fail_after spells it.
	defaultFailAfterString = "3m"
	// progressLogInterval is how often a wait logs each source's status.
	progressLogInterval = 5 * time.Second
)

// syncWait is how waitForReplicaSync waits.
type syncWait struct {
	timeout time.Duration
	// failAfter ends the wait early once every source has been failing
	// (not in sync, with a last error) for that long; 0 never does.
	failAfter time.Duration
}

// waitOutcome is why a wait ended without every source in sync.
type waitOutcome int

const (
	waitTimedOut    waitOutcome = iota + 1 // the timeout passed
	waitUnreachable                        // the API could not be reached at the end
	waitStopped                            // the service stopped the sync
	waitFailing                            // every source failed for fail_after
	waitGone                               // the database is no longer a Replica Of
	// waitInterrupted: Terraform cancelled the apply (Ctrl-C) while it
	// waited; the Replica Of is configured, only the wait was cut short.
	waitInterrupted
)

// syncWaitError says why a wait for the sync failed.
type syncWaitError struct {
	outcome waitOutcome
	// loading is set when no source reported an error at the end: the
	// initial load was progressing, it only needed more time.
	loading bool
	msg     string
}

func (e *syncWaitError) Error() string { return e.msg }

// resumable reports whether the next apply may simply keep waiting: the load
// was progressing when the timeout passed, the API could not be reached, or
// Terraform was interrupted while it waited.
func resumable(err error) bool {
	var we *syncWaitError
	if !errors.As(err, &we) {
		return false
	}
	return we.outcome == waitUnreachable || we.outcome == waitInterrupted || (we.outcome == waitTimedOut && we.loading)
}

var (
	errSyncStopped = errors.New("the sync stopped")
	errAllFailing  = errors.New("every source is failing")
)

// waitForReplicaSync polls the destination uid until every source is in
// sync, the service stops the sync, every source has been failing for
// w.failAfter, or w.timeout passes. Every few seconds, each source's status,
// last error and load progress go to the provider's log at INFO. The API
// being unreachable (a restart of the service, say) is retried until the
// timeout. The error names each source that is not in sync, by address,
// with its last error, never with its credentials.
func waitForReplicaSync(ctx context.Context, c *client.Client, uid int, w syncWait) (*api.Database, error) {
	var (
		last             *api.Database
		apiErr           error
		unreachableSince time.Time
		failingSince     time.Time
		lastLog          time.Time
	)
	start := time.Now()
	err := poll(ctx, w.timeout, func(ctx context.Context) (bool, error) {
		db, err := findDatabaseByID(ctx, c, uid)
		if err != nil {
			if !client.IsUnreachable(err) {
				return false, err
			}
			if unreachableSince.IsZero() {
				unreachableSince = time.Now()
				tflog.Warn(ctx, "the redis-replicad API cannot be reached; retrying until the timeout", map[string]any{
					"destination": uid, "endpoint": c.Endpoint(), "error": err.Error(),
				})
			}
			apiErr = err
			return false, nil
		}
		if !unreachableSince.IsZero() {
			tflog.Info(ctx, "the redis-replicad API answers again", map[string]any{
				"destination": uid, "unreachable_for": time.Since(unreachableSince).Round(time.Second).String(),
			})
			unreachableSince, apiErr = time.Time{}, nil
		}
		last = db
		if len(db.ReplicaSources) == 0 {
			return false, fmt.Errorf("database %d is no longer a Replica Of anything: was it changed outside Terraform?", uid)
		}
		inSync, failing := 0, 0
		for _, s := range db.ReplicaSources {
			switch {
			case s.Status == api.SourceInSync:
				inSync++
			case s.LastError != "":
				failing++
			}
		}
		if time.Since(lastLog) >= progressLogInterval {
			lastLog = time.Now()
			logSourceProgress(ctx, uid, db, time.Since(start))
		}
		if db.ReplicaSync == api.SyncStopped {
			return false, errSyncStopped
		}
		if inSync == len(db.ReplicaSources) {
			return true, nil
		}
		if failing < len(db.ReplicaSources) {
			failingSince = time.Time{}
			return false, nil
		}
		if failingSince.IsZero() {
			failingSince = time.Now()
		}
		if w.failAfter > 0 && time.Since(failingSince) >= w.failAfter {
			return false, errAllFailing
		}
		return false, nil
	})
	if err == nil {
		return last, nil
	}
	fail := func(o waitOutcome, format string, args ...any) error {
		return &syncWaitError{outcome: o, msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case ctx.Err() != nil:
		// Terraform was interrupted (Ctrl-C): it cancels the provider's
		// requests. The sources stay configured on the service.
		return last, fail(waitInterrupted, "the wait for the sync was interrupted (Terraform was cancelled) before every "+
			"source was in sync: %s", describeUnsynced(last))
	case errors.Is(err, errPollTimeout) && apiErr != nil:
		return last, fail(waitUnreachable, "the redis-replicad API at %s could not be reached for the last %s of the %s timeout, "+
			"so the sync could not be checked (the service may be restarting; the Replica Of goes on without Terraform): %v",
			c.Endpoint(), time.Since(unreachableSince).Round(time.Second), w.timeout, apiErr)
	case errors.Is(err, errPollTimeout):
		e := &syncWaitError{outcome: waitTimedOut, loading: last != nil,
			msg: fmt.Sprintf("not every source is in sync after %s: %s", w.timeout, describeUnsynced(last))}
		if last != nil {
			for _, s := range last.ReplicaSources {
				if s.Status != api.SourceInSync && s.LastError != "" {
					e.loading = false
				}
			}
		}
		return last, e
	case errors.Is(err, errSyncStopped):
		return last, fail(waitStopped, "the service stopped the sync: %s", describeUnsynced(last))
	case errors.Is(err, errAllFailing):
		return last, fail(waitFailing, "every source has been failing for %s (fail_after): %s", w.failAfter, describeUnsynced(last))
	}
	if last != nil && len(last.ReplicaSources) == 0 {
		return last, fail(waitGone, "%v", err)
	}
	return last, err
}

// logSourceProgress logs the status of each source of db at INFO.
func logSourceProgress(ctx context.Context, uid int, db *api.Database, elapsed time.Duration) {
	for _, s := range db.ReplicaSources {
		fields := map[string]any{
			"destination": uid,
			"source":      sourceAddress(s.URI),
			"status":      s.Status,
			"lag_ms":      s.Lag,
			"elapsed":     elapsed.Round(time.Second).String(),
		}
		if p := loadProgress(s); p != "" {
			fields["progress"] = p
		}
		if s.LastError != "" {
			fields["last_error"] = redactSecrets(s.LastError, s.URI)
		}
		tflog.Info(ctx, "waiting for the Replica Of sync", fields)
	}
}

// loadProgress describes the initial load of a source: a percentage when the
// size of its copy is known, the bytes loaded otherwise; "" when nothing is
// being loaded.
func loadProgress(s api.ReplicaSourceStatus) string {
	switch {
	case s.Status == api.SourceInSync:
		return ""
	case s.RDBSize > 0:
		pct := float64(s.RDBTransferred) * 100 / float64(s.RDBSize)
		return fmt.Sprintf("%.1f%% of the initial load (%d of %d bytes)", min(pct, 100), s.RDBTransferred, s.RDBSize)
	case s.RDBTransferred > 0:
		return fmt.Sprintf("%d bytes of the initial load (its size is not known yet)", s.RDBTransferred)
	}
	return ""
}

// describeSources is a one-line summary of every source of db, for
// warnings: "a:1 in-sync; b:2 syncing (40.0% of the initial load ...)".
func describeSources(db *api.Database) string {
	if db == nil {
		return "unknown"
	}
	var parts []string
	for _, s := range db.ReplicaSources {
		p := sourceAddress(s.URI) + " " + s.Status
		if l := loadProgress(s); l != "" {
			p += " (" + l + ")"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}
