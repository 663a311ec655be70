package app_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// A link that holds the source's stream back (stalled, the connection
// open) while the source takes writes is out of sync within seconds, with
// a lag, everywhere: the source's own offset shows what has not arrived.
// It was in sync with a lag of 0 until the silence limit (15 s), since a
// source sends a ping only every 10 s.
func TestAHeldLinkIsOutOfSyncWithinSeconds(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	proxy := redistest.StartProxy(t, src.Addr())
	i := servicetest.Start(t)
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: "redis://:pw-123456@" + proxy.Addr}}})
	eventually(t, time.Minute, "in sync", func() error {
		if e := statusEverywhere(t, i, dst.UID); e.get.Status != api.SourceInSync {
			return fmt.Errorf("status %s", e.get.Status)
		}
		return nil
	})
	sc := src.Client()
	c := ctx(t)
	proxy.Stall()
	stalled := time.Now()
	var e everywhere
	eventually(t, time.Minute, "out of sync, everywhere", func() error {
		require.NoError(t, sc.Incr(c, "writes").Err())
		e = statusEverywhere(t, i, dst.UID)
		if d := e.disagreement(); d != "" {
			return fmt.Errorf("%s", d)
		}
		if e.get.Status != api.SourceOutOfSync {
			return fmt.Errorf("status %s, lag %d ms", e.get.Status, e.get.Lag)
		}
		return nil
	})
	assert.Less(t, time.Since(stalled), 10*time.Second, "noticed before the silence limit (15 s)")
	assert.Contains(t, e.get.LastError, "frozen")
	assert.Positive(t, e.get.Lag)
	proxy.Unstall()
	eventually(t, time.Minute, "in sync again, with every write", func() error {
		e := statusEverywhere(t, i, dst.UID)
		if e.get.Status != api.SourceInSync || e.get.LastError != "" {
			return fmt.Errorf("status %s: %s", e.get.Status, e.get.LastError)
		}
		want, _ := sc.Get(c, "writes").Result()
		got, _ := dbClient(t, dst, dst.AuthenticationRedisPass).Get(c, "writes").Result()
		if got != want {
			return fmt.Errorf("destination has %q writes, the source %q", got, want)
		}
		return nil
	})
}
