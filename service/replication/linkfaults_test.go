package replication_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// TestALinkSilentMidLoadIsOutOfSync: the link from the source goes silent
// in the middle of the full load's RDB, its connection left open (a
// half-open link, a frozen router). The status must say so within the
// silence limit, as it does for a silent stream, not show a quiet
// "syncing" until the read timeout (60 s) gives up; and once bytes flow
// again the load ends and the destination equals the source.
func TestALinkSilentMidLoadIsOutOfSync(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-stall")
	fillStrings(t, src.Client(), "k:", 4000, 1000) // 4 MB
	proxy := redistest.StartProxy(t, src.Addr())
	proxy.Slow(8<<10, 5*time.Millisecond) // about 1.6 MB/s: a load of seconds
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 128 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: "redis://:pw-stall@" + proxy.Addr}}})
	logDestOnFailure(t, i, dst.UID)

	redistest.Eventually(t, 30*time.Second, "a quarter of the RDB transferred", func() error {
		if n := proxy.Forwarded(); n < 1<<20 {
			return fmt.Errorf("%d bytes forwarded", n)
		}
		return nil
	})
	proxy.Stall()
	stalled := time.Now()
	var s api.ReplicaSourceStatus
	// The silence limit is 15 s; the read timeout, which ends the
	// session, 60 s: the status must tell before that.
	redistest.Eventually(t, 40*time.Second, "the silent link is out of sync", func() error {
		s = a.get(dst.UID).ReplicaSources[0]
		if s.Status != api.SourceOutOfSync || s.LastError == "" {
			return fmt.Errorf("source %+v", s)
		}
		return nil
	})
	t.Logf("out of sync %s after the link went silent: %s", time.Since(stalled).Round(time.Second), s.LastError)
	require.Contains(t, s.LastError, "nothing received from the source")
	require.Less(t, s.RDBTransferred, int64(3<<20), "the load is not over")

	proxy.Unstall()
	proxy.Slow(0, 0)
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	eventuallyEqual(t, time.Minute, dc, src.Client())
	require.NoError(t, src.Client().Incr(redistest.Ctx(t), "after").Err())
	eventuallyEqual(t, time.Minute, dc, src.Client())
	require.Empty(t, a.get(dst.UID).ReplicaSources[0].LastError)
}
