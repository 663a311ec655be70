package app_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// A source that is not followed from the start (unreachable when its
// Replica Of is configured) has a lag that grows from then, in the API and
// the metrics alike, and back to about 0 once it is in sync: the
// destination misses everything the source holds. It showed a lag of 0
// until it was first in sync, however long that took.
func TestLagOfASourceNeverFollowedGrowsFromTheStart(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456")
	proxy := redistest.StartProxy(t, src.Addr())
	proxy.Down()
	i := servicetest.Start(t)
	uri := "redis://:pw-123456@" + proxy.Addr
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: []api.ReplicaSource{{URI: uri}}})
	configured := time.Now()
	source := func() api.ReplicaSourceStatus {
		var db api.Database
		call(t, i, "GET", fmt.Sprintf("/v1/bdbs/%d", dst.UID), nil, &db)
		require.Len(t, db.ReplicaSources, 1)
		return db.ReplicaSources[0]
	}
	eventually(t, time.Minute, "the lag counts from the configuration", func() error {
		s := source()
		if s.Status == api.SourceInSync {
			return fmt.Errorf("in sync with its source down")
		}
		if s.Lag < 3000 {
			return fmt.Errorf("status %s, lag %d ms, %s after the configuration", s.Status, s.Lag, time.Since(configured).Round(time.Millisecond))
		}
		return nil
	})
	s := source()
	assert.LessOrEqual(t, s.Lag, time.Since(configured).Milliseconds()+1000, "no more than since the configuration")
	assert.GreaterOrEqual(t, scrapeMetric(t, i, "replicad_replica_lag_seconds", `destination="`+strconv.Itoa(dst.UID)+`"`), 3.0, "the metric says it too")

	proxy.Restore()
	eventually(t, time.Minute, "in sync with a lag of about 0 once the source is reachable", func() error {
		if s := source(); s.Status != api.SourceInSync || s.Lag > 1000 {
			return fmt.Errorf("status %s, lag %d ms", s.Status, s.Lag)
		}
		if m := scrapeMetric(t, i, "replicad_replica_lag_seconds", `destination="`+strconv.Itoa(dst.UID)+`"`); m > 1 {
			return fmt.Errorf("metric lag %v s", m)
		}
		return nil
	})
}
