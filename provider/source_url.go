package provider

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-log/tflog"
	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/client"
	"github.com/replicad/terraform-provider-redis/internal/redisurl"
)

// Helpers shared by the redis_source_url data source, the redis_source_url
// ephemeral resource and the redis_source_url_password resource.

// sourceURL is a database's Replica Of source URL, taken apart.
type sourceURL struct {
	URI      string
	Address  string
	Username string
	Password string
	// Keepers are those the service stored with the current password
	// (nil when it was regenerated without any).
	Keepers map[string]string
}

// parseSourceURL takes apart the URL the service returned. The error never
// holds the password.
func parseSourceURL(uri string) (sourceURL, error) {
	u, err := redisurl.Parse(uri)
	if err != nil {
		return sourceURL{}, fmt.Errorf("the service returned a source URL that does not parse: %w", err)
	}
	return sourceURL{URI: uri, Address: u.Addr(), Username: u.Username, Password: u.Password}, nil
}

// readSourceURL returns the current source URL of the database uid; the
// error satisfies client.IsNotFound when the database does not exist.
func readSourceURL(ctx context.Context, c *client.Client, uid int) (sourceURL, error) {
	out, err := c.GetSourceURL(ctx, uid)
	if err != nil {
		return sourceURL{}, err
	}
	s, err := parseSourceURL(out.URI)
	s.Keepers = out.AdminPasswordKeepers
	return s, err
}

// lookupSourceURL reads the source URL of the database named by the
// database_id attribute, reporting a bad id or a failed read on it.
func lookupSourceURL(ctx context.Context, c *client.Client, databaseID string, diags *diag.Diagnostics) (sourceURL, bool) {
	uid, err := parseDatabaseID(databaseID)
	if err != nil {
		diags.AddAttributeError(path.Root("database_id"), "Invalid database id", err.Error())
		return sourceURL{}, false
	}
	s, err := readSourceURL(ctx, c, uid)
	if err != nil {
		diags.AddAttributeError(path.Root("database_id"), fmt.Sprintf("Could not read the source URL of database %d", uid), err.Error())
		return sourceURL{}, false
	}
	return s, true
}

// regenerateSourceURL gives the database uid a new admin password, tagged
// with keepers, and returns the new source URL.
//
// A regeneration is not sent again when its answer is lost (a proxy's
// timeout, a reset connection): the service may have taken it, and a second
// one would end at once the grace period of the password the destinations
// still use. The source URL is read instead: a new password tagged with
// keepers is the one this regeneration made.
func regenerateSourceURL(ctx context.Context, c *client.Client, uid int, keepers map[string]string) (sourceURL, error) {
	before, beforeErr := c.GetSourceURL(ctx, uid)
	out, err := c.RegenerateAdminPassword(ctx, uid, keepers)
	// Interrupted (Ctrl-C cancels ctx) while the request was out, the
	// regeneration may have been taken all the same: read beyond the
	// interruption, so that the new password is recorded, not made again.
	interrupted := err != nil && ctx.Err() != nil
	if err != nil && beforeErr == nil && (client.IsUnreachable(err) || interrupted) {
		readCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		now, nerr := c.GetSourceURL(readCtx, uid)
		cancel()
		if nerr == nil && now.URI != before.URI && maps.Equal(now.AdminPasswordKeepers, keepers) {
			tflog.Warn(ctx, "the answer to the regeneration was lost; the service regenerated the password", map[string]any{"uid": uid, "error": err.Error()})
			out, err = &api.AdminPassword{URI: now.URI, AdminPasswordKeepers: now.AdminPasswordKeepers}, nil
		}
	}
	if err != nil {
		return sourceURL{}, err
	}
	s, err := parseSourceURL(out.URI)
	if err != nil {
		return sourceURL{}, err
	}
	if out.AuthenticationAdminPass != "" && out.AuthenticationAdminPass != s.Password {
		return sourceURL{}, fmt.Errorf("the service returned a source URL whose password is not the new one (%s)", redisurl.Redact(out.URI))
	}
	s.Keepers = out.AdminPasswordKeepers
	if len(keepers) > 0 && !maps.Equal(s.Keepers, keepers) {
		// A service older than the keepers forgets them: an import would
		// then not find them. Not fatal, the password is new.
		tflog.Warn(ctx, "the service did not store the keepers with the password; an import will not find them", map[string]any{"uid": uid})
	}
	if out.PreviousPasswordValidUntil.IsZero() {
		tflog.Info(ctx, "the old password no longer opens replication sessions", map[string]any{"uid": uid})
	} else {
		tflog.Info(ctx, "the old password keeps working for replication until the grace period ends",
			map[string]any{"uid": uid, "valid_until": out.PreviousPasswordValidUntil.UTC().Format(time.RFC3339)})
	}
	return s, nil
}
