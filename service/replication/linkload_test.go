package replication_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// destLog is the destination's redis-server log, for a failing test.
func destLog(t *testing.T, i *servicetest.Instance, uid int) string {
	b, err := os.ReadFile(filepath.Join(i.DataDir, "dbs", strconv.Itoa(uid), "redis.log"))
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// One source's full load goes to the destination as a Redis full sync over
// its master link, which it loads as the data arrives: every type, TTLs,
// several databases, with writes during the load; the stream continues
// from the checkpoint the load carried, across a restart too.
func TestSingleSourceLoadsOverTheLink(t *testing.T) {
	src := redistest.Start(t)
	sc := src.ClientDB(0)
	writeDataset(t, sc, "", 30000)
	writeDataset(t, src.ClientDB(5), "db5:", 100)
	w := startIncrWriter(t, sc, 50)

	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 512 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("destination's log:\n%s", destLog(t, i, dst.UID))
		}
	})
	a.waitInSync(dst.UID, 2*time.Minute)
	log := destLog(t, i, dst.UID)
	require.Contains(t, log, "MASTER <-> REPLICA sync: Loading DB in memory", "the destination loaded a full sync from its link")
	w.stop()
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 5), src.ClientDB(5))

	writeDataset(t, sc, "after:", 100)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)
	stats, err := sc.Info(redistest.Ctx(t), "stats").Result()
	require.NoError(t, err)
	assert.Contains(t, stats, "sync_full:1\r\n", "one full sync")
	assert.Equal(t, 1, strings.Count(destLog(t, i, dst.UID), "MASTER <-> REPLICA sync: Finished with success"), "one load")

	i.Restart(t)
	writeDataset(t, sc, "restarted:", 100)
	eventuallyEqual(t, time.Minute, destClient(t, dst, 0), sc)
	assert.Contains(t, stats, "sync_full:1\r\n", "no full sync after the restart")
}
