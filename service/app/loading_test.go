package app_test

import (
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
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// While a destination's redis-server replays its AOF after a crash, its
// applications log in with their password and are told LOADING, which
// clients retry: they were told WRONGPASS (the user was switched off until
// the load ended). Nothing that administers the server is open to them
// meanwhile, the replicated transactions of the AOF all replay, and the
// destination is read-only again once loaded.
func TestApplicationsAreToldLoadingWhileADestinationReplaysItsAOF(t *testing.T) {
	i := servicetest.Start(t)
	src := mustCreate(t, i, api.CreateDatabaseRequest{Name: "src", MemorySize: 512 << 20})
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst", MemorySize: 512 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: sourceURL(t, i, src.UID)}}})
	source := dbClient(t, src, src.AuthenticationRedisPass)
	// Enough keys for a replay that lasts a while (the full load's RDB is
	// the AOF's base), then streamed writes, which reach the AOF in the
	// service's MULTI/EXEC batches: the replay checks those against the
	// application user's rules.
	fillBulk(t, source, 20)
	inSync := func() error {
		var got api.Database
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", dst.UID), nil, &got)
		if got.ReplicaSyncStatus != api.SourceInSync {
			return fmt.Errorf("status %s", got.ReplicaSyncStatus)
		}
		return nil
	}
	eventually(t, 2*time.Minute, "the destination is loaded", inSync)
	pipe := source.Pipeline()
	for k := range 2000 {
		pipe.Set(ctx(t), "streamed:"+strconv.Itoa(k), k, time.Hour)
		pipe.Incr(ctx(t), "counter")
	}
	_, err := pipe.Exec(ctx(t))
	require.NoError(t, err)
	dc := dbClient(t, dst, dst.AuthenticationRedisPass)
	eventually(t, time.Minute, "the streamed writes are applied", func() error {
		if n, err := dc.Get(ctx(t), "counter").Int(); err != nil || n != 2000 {
			return fmt.Errorf("counter = %d, %v", n, err)
		}
		return nil
	})

	pid := i.App.Databases().PID(ctx(t), dst.UID)
	require.NotZero(t, pid)
	killAndWaitGone(t, pid)

	// A fresh connection each time, as a client reconnecting would, until
	// a read gets an answer.
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(dst.Port))
	var sawLoading bool
	var refusedWhileLoading []string
	deadline := time.Now().Add(2 * time.Minute)
	for {
		require.True(t, time.Now().Before(deadline), "the destination never answered after its restart")
		c := redis.NewClient(&redis.Options{Addr: addr, Password: dst.AuthenticationRedisPass, MaxRetries: -1,
			DialTimeout: time.Second, ReadTimeout: 2 * time.Second, PoolSize: 1})
		err := c.Get(ctx(t), "counter").Err()
		switch {
		case err == nil:
		case notListening(err):
			// Not listening yet, or the killed server's connection.
		case strings.HasPrefix(err.Error(), "LOADING"):
			if !sawLoading {
				sawLoading = true
				// What a user could try while the server loads: every
				// administrative command Redis runs during a load.
				for _, cmd := range [][]any{
					{"CONFIG", "SET", "maxmemory", "1"}, {"CONFIG", "GET", "*"}, {"CONFIG", "RESETSTAT"},
					{"ACL", "SETUSER", "default", "+@all"}, {"ACL", "LIST"}, {"ACL", "LOG"}, {"CLIENT", "LIST"},
					{"CLIENT", "KILL", "TYPE", "normal"}, {"CLIENT", "PAUSE", "100"}, {"CLIENT", "NO-EVICT", "on"},
					{"SLOWLOG", "RESET"}, {"LATENCY", "RESET"}, {"ROLE"}, {"LASTSAVE"}, {"DEBUG", "SLEEP", "0"},
					{"REPLCONF", "listening-port", "1"}, {"SHUTDOWN", "NOSAVE"},
				} {
					err := c.Do(ctx(t), cmd...).Err()
					if err != nil && strings.HasPrefix(err.Error(), "LOADING") {
						continue // the load ended meanwhile; checked below by the real rules
					}
					assertDenied(t, err, "%v while the destination loads", cmd)
					refusedWhileLoading = append(refusedWhileLoading, fmt.Sprint(cmd))
				}
			}
		default:
			require.NoError(t, err, "what an application was told while the destination restarted")
		}
		c.Close()
		if err == nil {
			break
		}
	}
	require.True(t, sawLoading, "no read was told LOADING: the replay ended before a client got in, so this test proves nothing (give the destination more keys)")
	t.Logf("refused while loading: %d commands", len(refusedWhileLoading))

	// Every replicated transaction replayed, and the destination is
	// read-only again.
	eventually(t, time.Minute, "the destination is back in sync", inSync)
	assert.Equal(t, "2000", dc.Get(ctx(t), "counter").Val(), "every streamed INCR replayed once")
	require.NoError(t, redistest.Diff(ctx(t), dc, source))
	assertDenied(t, dc.Set(ctx(t), "counter", "0", 0).Err(), "a write after the replay")
	assertDenied(t, dc.ConfigSet(ctx(t), "maxmemory", "1").Err(), "CONFIG SET after the replay")
}
