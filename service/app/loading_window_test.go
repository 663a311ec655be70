package app_test

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
	"github.com/stretchr/testify/require"
)

// The application user of a restarting database has its start rules until
// the service applies its real ones (applyLive), some milliseconds after
// the replay ends. An application that keeps asking, as clients told
// LOADING do, gets its first commands after the replay run in that window:
// MIGRATE (which the real rules refuse: it reaches another host) must be
// refused then too.
func TestNoCommandTheRealRulesRefuseRunsRightAfterAReplay(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "window", MemorySize: 256 << 20})
	c := dbClient(t, db, db.AuthenticationRedisPass)
	fillBulk(t, c, 10)
	assertDenied(t, c.Do(ctx(t), "MIGRATE", "127.0.0.1", "1", "bulk:0:0", "0", "100").Err(), "MIGRATE before the restart")

	pid := i.App.Databases().PID(ctx(t), db.UID)
	require.NotZero(t, pid)
	killAndWaitGone(t, pid)

	// A client that asks again at once, on one connection while it lasts,
	// until its command is answered by something else than LOADING.
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(db.Port))
	deadline := time.Now().Add(2 * time.Minute)
	var answered error
	attempts := 0
	for answered == nil {
		require.True(t, time.Now().Before(deadline), "the database never answered after its restart")
		rc := redis.NewClient(&redis.Options{Addr: addr, Password: db.AuthenticationRedisPass, MaxRetries: -1,
			DialTimeout: time.Second, ReadTimeout: 2 * time.Second, PoolSize: 1})
		for time.Now().Before(deadline) {
			attempts++
			err := rc.Do(ctx(t), "MIGRATE", "127.0.0.1", "1", "bulk:0:0", "0", "100").Err()
			if err != nil && notListening(err) {
				break // not listening yet: dial again
			}
			if err != nil && strings.HasPrefix(err.Error(), "LOADING") {
				continue
			}
			if err == nil {
				err = errors.New("MIGRATE ran")
			}
			answered = err
			break
		}
		rc.Close()
	}
	t.Logf("first answer after %d attempts: %v", attempts, answered)
	assertDenied(t, answered, "MIGRATE, the first command run after the replay")
}

// A sharded destination is read-only for applications, and its masters are
// no Redis replicas (replica-read-only does not hold there): a write sent
// while a master replays its AOF must not run right after the replay, with
// the start rules (which admit every write a replicated transaction may
// hold). A restarted master says CLUSTERDOWN for its first 2 s to commands
// with keys, not to those without: FLUSHALL empties the shard, its
// checkpoints included.
func TestNoApplicationWriteRunsRightAfterAShardedDestinationReplays(t *testing.T) {
	i := servicetest.Start(t)
	src := redistest.Start(t)
	sc := src.Client()
	fillBulk(t, sc, 5)
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst", MemorySize: 192 << 20, ShardsCount: 2,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	eventually(t, 2*time.Minute, "in sync", func() error {
		if s := getDB(t, i, dst.UID).ReplicaSyncStatus; s != api.SourceInSync {
			return fmt.Errorf("status %s", s)
		}
		return nil
	})
	var victim api.NodeEndpoint
	for _, ep := range dst.Endpoints {
		if ep.Role == "master" {
			victim = ep
			break
		}
	}
	vc := nodeClient(t, victim, dst.AuthenticationRedisPass)
	before, err := vc.DBSize(ctx(t)).Result()
	require.NoError(t, err)
	require.NotZero(t, before)
	assertDenied(t, vc.FlushAll(ctx(t)).Err(), "FLUSHALL before the restart")
	pid, err := strconv.Atoi(infoField(t, vc, "server", "process_id"))
	require.NoError(t, err)
	killAndWaitGone(t, pid)

	addr := net.JoinHostPort(victim.Host, strconv.Itoa(victim.Port))
	deadline := time.Now().Add(2 * time.Minute)
	var answered error
	for answered == nil {
		require.True(t, time.Now().Before(deadline), "the node never answered after its restart")
		rc := redis.NewClient(&redis.Options{Addr: addr, Password: dst.AuthenticationRedisPass, MaxRetries: -1,
			DialTimeout: time.Second, ReadTimeout: 2 * time.Second, PoolSize: 1})
		for time.Now().Before(deadline) {
			err := rc.FlushAll(ctx(t)).Err()
			if err != nil && notListening(err) {
				break // not listening yet: dial again
			}
			if err != nil && strings.HasPrefix(err.Error(), "LOADING") {
				continue
			}
			if err != nil && strings.HasPrefix(err.Error(), "WRONGPASS") {
				break // the user is off until its real rules: log in again
			}
			if err == nil {
				err = errors.New("FLUSHALL ran")
			}
			answered = err
			break
		}
		rc.Close()
	}
	assertDenied(t, answered, "FLUSHALL, the first command run after the replay")
	eventually(t, time.Minute, "the shard keeps its keys", func() error {
		n, err := vc.DBSize(ctx(t)).Result()
		if err != nil || n != before {
			return fmt.Errorf("%d keys (%v), %d before", n, err, before)
		}
		return nil
	})
}
