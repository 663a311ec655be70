package replication_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// shortTTL is the TTL of the keys the source extends while the destination
// lags: long enough to reach the destination first.
const shortTTL = 1500 * time.Millisecond

// expiryKeys writes keys with a short TTL on the source.
func expiryKeys(t *testing.T, sc *redis.Client) {
	ctx := redistest.Ctx(t)
	for _, k := range []string{"persisted", "extended", "getex-persisted", "expires", "hash"} {
		if k == "hash" {
			require.NoError(t, sc.HSet(ctx, k, "f", "v").Err())
			require.NoError(t, sc.PExpire(ctx, k, shortTTL).Err())
			continue
		}
		require.NoError(t, sc.Set(ctx, k, "v-"+k, shortTTL).Err())
	}
	require.NoError(t, sc.Set(ctx, "no-ttl", "v", 0).Err())
}

// extendExpiry changes the TTLs at the source while the destination lags:
// every key but "expires" lives on.
func extendExpiry(t *testing.T, sc *redis.Client) {
	ctx := redistest.Ctx(t)
	require.NoError(t, sc.Persist(ctx, "persisted").Err())
	require.NoError(t, sc.PExpire(ctx, "extended", time.Hour).Err())
	require.NoError(t, sc.GetEx(ctx, "getex-persisted", 0).Err()) // GETEX without options keeps the TTL
	require.NoError(t, sc.Do(ctx, "GETEX", "getex-persisted", "PERSIST").Err())
	require.NoError(t, sc.Persist(ctx, "hash").Err())
}

// waitExpiredAtSource waits until the original TTL has passed: the source
// expired "expires" (and sends its DEL).
func waitExpiredAtSource(t *testing.T, sc *redis.Client) {
	ctx := redistest.Ctx(t)
	redistest.Eventually(t, time.Minute, "the source expires the key it kept short-lived", func() error {
		if sc.Exists(ctx, "expires").Val() != 0 {
			return fmt.Errorf("still there")
		}
		return nil
	})
}

// TestExpiryFollowsTheSource: keys whose TTL the source removes or extends
// while the sync is paused outlive their old TTL at the destination: its
// readers stop seeing them once the old TTL passes (as on a native
// replica), and when the sync resumes they are back, with the source's new
// TTL, while the key the source expired is gone. Removing Replica Of makes
// the database a primary that expires keys by itself again.
func TestExpiryFollowsTheSource(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	a := newAPI(t, servicetest.Start(t))
	sc := src.Client()
	ctx := redistest.Ctx(t)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	expiryKeys(t, sc)
	eventuallyEqual(t, time.Minute, dc, sc)

	paused := api.SyncPaused
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSync: &paused})
	extendExpiry(t, sc)
	waitExpiredAtSource(t, sc)
	// The destination lags: its readers see none of the keys whose old TTL
	// passed, as a native replica's readers would not.
	redistest.Eventually(t, time.Minute, "the destination's readers stop seeing the keys", func() error {
		if n := dc.Exists(ctx, "persisted", "extended", "getex-persisted", "hash").Val(); n != 0 {
			return fmt.Errorf("%d still visible", n)
		}
		return nil
	})
	assert.Equal(t, int64(1), dc.Exists(ctx, "no-ttl").Val())

	enabled := api.SyncEnabled
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSync: &enabled})
	eventuallyEqual(t, time.Minute, dc, sc)
	assert.Equal(t, "v-persisted", dc.Get(ctx, "persisted").Val())
	assert.Equal(t, time.Duration(-1), dc.TTL(ctx, "persisted").Val(), "PERSIST reached the key")
	assert.Greater(t, dc.TTL(ctx, "extended").Val(), 50*time.Minute)
	assert.Equal(t, "v", dc.HGet(ctx, "hash", "f").Val())
	assert.Zero(t, dc.Exists(ctx, "expires").Val())
	db := a.waitInSync(dst.UID, time.Minute)
	assert.Empty(t, db.ReplicaSources[0].SyncNote)
	assert.Empty(t, db.ReplicaSources[0].LastError)

	// Promoted: a primary again, which expires what it holds itself.
	empty := []api.ReplicaSource{}
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &empty})
	redistest.Eventually(t, time.Minute, "the former destination is a primary", func() error {
		info := dc.Info(ctx, "replication").Val()
		if !strings.Contains(info, "role:master") {
			return fmt.Errorf("%s", info)
		}
		return nil
	})
	require.NoError(t, dc.Set(ctx, "after-promotion", "v", 100*time.Millisecond).Err())
	redistest.Eventually(t, time.Minute, "the former destination expires keys itself", func() error {
		// DBSIZE counts keys whether or not they are expired: only the
		// server's own expiry removes them.
		if n := dc.DBSize(ctx).Val(); n != 5 {
			return fmt.Errorf("%d keys", n)
		}
		return nil
	})
}

// TestExpiryFollowsTheSourceAcrossAServiceCrash: the same while the
// service is down (kill -9; its databases stop with it and start again
// from their AOF, before the service attaches them).
func TestExpiryFollowsTheSourceAcrossAServiceCrash(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	p := servicetest.StartProcess(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service log:\n%s", p.Log())
		}
	})
	a := newAPI(t, &servicetest.Instance{URL: p.URL, Username: "admin", Password: p.Password(t), CACert: p.CACert(t)})
	sc := src.Client()
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	expiryKeys(t, sc)
	eventuallyEqual(t, time.Minute, dc, sc)
	waitPersisted(t, dc)

	p.Kill(t)
	extendExpiry(t, sc)
	waitExpiredAtSource(t, sc)
	p.Start(t)
	eventuallyEqual(t, time.Minute, dc, sc)
	ctx := context.Background()
	assert.Equal(t, time.Duration(-1), dc.TTL(ctx, "persisted").Val())
	assert.Zero(t, dc.Exists(ctx, "expires").Val())
	m := a.metrics()
	assert.Zero(t, metric(m, "replicad_replica_full_syncs_total"), "the restart resumed\n%s", grep(m, "syncs_total"))
}

// waitPersisted waits until the destination's AOF holds the loaded data: a
// crash before that loads again (see ensureAOF).
func waitPersisted(t *testing.T, dc *redis.Client) {
	ctx := redistest.Ctx(t)
	redistest.Eventually(t, time.Minute, "the destination's AOF holds the load", func() error {
		info := dc.Info(ctx, "persistence").Val()
		for _, want := range []string{"aof_enabled:1", "aof_rewrite_in_progress:0", "aof_rewrite_scheduled:0", "aof_last_bgrewrite_status:ok"} {
			if !strings.Contains(info, want) {
				return fmt.Errorf("no %s", want)
			}
		}
		return nil
	})
}

// TestChainThroughAMultiSourceDestination: B, loaded from two sources with
// connections of the service (not its master link, which is all a replica
// passes on), is itself the source of C, which started during B's load.
// C ends equal to both sources: B's load makes C resync in full.
func TestChainThroughAMultiSourceDestination(t *testing.T) {
	s1 := redistest.Start(t, "--requirepass", "pw-1")
	s2 := redistest.Start(t, "--requirepass", "pw-2")
	writeDataset(t, s1.Client(), "one:", 200)
	writeDataset(t, s2.Client(), "two:", 200)
	a := newAPI(t, servicetest.Start(t))
	b := a.create(api.CreateDatabaseRequest{Name: "b", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{URI: s1.URL()}, {URI: s2.URL()}}})
	c := a.create(api.CreateDatabaseRequest{Name: "c", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{URI: a.sourceURL(b.UID)}}})
	a.waitInSync(b.UID, time.Minute)
	ctx := redistest.Ctx(t)
	cc := destClient(t, c, 0)
	eventuallyEqual(t, time.Minute, cc, s1.Client(), s2.Client())
	require.NoError(t, s1.Client().Set(ctx, "one:after", "1", time.Hour).Err())
	require.NoError(t, s2.Client().Incr(ctx, "two:counter").Err())
	eventuallyEqual(t, time.Minute, cc, s1.Client(), s2.Client())
	db := a.waitInSync(c.UID, time.Minute)
	assert.Empty(t, db.ReplicaSources[0].LastError)
}
