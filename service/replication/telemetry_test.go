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

// A source removed from a destination takes its series with it. They used
// to stay until the destination was deleted: a removed source's stalled
// gauge, applied offset and counters were scraped for ever, its last
// value frozen (a stalled source stayed stalled in every dashboard).
func TestARemovedSourceLeavesNoSeries(t *testing.T) {
	i := servicetest.Start(t)
	a := newAPI(t, i)
	kept := a.create(api.CreateDatabaseRequest{Name: "kept", MemorySize: 32 << 20})
	removed := redistest.Start(t)
	require.NoError(t, removed.Client().Set(redistest.Ctx(t), "k", "v", 0).Err())
	both := []api.ReplicaSource{{URI: a.sourceURL(kept.UID)}, {URI: removed.URL()}}
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 32 << 20, ReplicaSources: both})
	a.waitInSync(dst.UID, time.Minute)
	series := fmt.Sprintf(`destination="%d",name="dst",source="%s"`, dst.UID, removed.Addr())
	require.Contains(t, a.metrics(), series, "the series of the source before it is removed")

	one := both[:1]
	a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &one})
	a.waitInSync(dst.UID, time.Minute)
	redistest.Eventually(t, 30*time.Second, "the removed source's series are gone", func() error {
		var left []string
		for _, line := range strings.Split(a.metrics(), "\n") {
			if strings.Contains(line, `source="`+removed.Addr()) {
				left = append(left, line)
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("%d series left, as %s", len(left), left[0])
		}
		return nil
	})
	assert.Contains(t, a.metrics(), fmt.Sprintf(`replicad_replica_applied_offset{destination="%d",name="dst",source="127.0.0.1:%d"}`, dst.UID, kept.ReplicationPort),
		"the series of the source that stays")
}
