package replication_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// After a clustered source reshards, the metrics of its shards are those
// of the new slot map: a shard whose slots no longer exist has no series
// left, frozen at its last values (its lag, stalled, node).
func TestClusterSourceReshardingLeavesNoStaleShardSeries(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	cl, _ := startSourceCluster(t)
	a := newAPI(t, servicetest.Start(t))
	masters := cl.Masters()
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: masters[2].URL()}}})
	a.waitInSync(dst.UID, 3*time.Minute)
	require.Contains(t, a.metrics(), "#0-5460\"", "a shard's series are labelled with its slots")

	var slots []int
	for s := range 100 {
		slots = append(slots, s)
	}
	cl.MoveSlots(masters[0], masters[1], slots...)
	redistest.Eventually(t, 3*time.Minute, "in sync with the new slot map", func() error {
		st := a.get(dst.UID).ReplicaSources[0]
		if st.Status != api.SourceInSync || len(st.Shards) != 3 || st.Shards[0].Slots != "0-99,5461-10921" {
			return fmt.Errorf("status %s, last_error %q, shards %+v", st.Status, st.LastError, st.Shards)
		}
		return nil
	})
	m := a.metrics()
	for _, gone := range []string{"#0-5460\"", "#5461-10921\""} {
		var stale []string
		for _, line := range strings.Split(m, "\n") {
			if strings.Contains(line, gone) {
				stale = append(stale, line)
			}
		}
		assert.Empty(t, stale, "series of a shard that no longer exists")
	}
	assert.Contains(t, m, "#100-5460\"")
}
