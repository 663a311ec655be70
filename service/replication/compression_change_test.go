package replication_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// Compression levels changed on a running Replica Of while the source takes
// writes without a pause (counters, values with TTLs, deletes): every
// change reconnects and continues, no write is lost or applied twice, the
// destination equals the source key by key (type, value, TTL), and
// compression_active and its metric follow each level.
func TestCompressionChangesUnderContinuousWrites(t *testing.T) {
	a := newAPI(t, servicetest.Start(t))
	src := a.create(api.CreateDatabaseRequest{Name: "src", MemorySize: 64 << 20})
	sc := destClient(t, src, 0)
	writeDataset(t, sc, "", 100)
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{URI: a.sourceURL(src.UID), Compression: 2}}})
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	ctx := redistest.Ctx(t)

	var incrs atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if sc.Incr(ctx, "counter").Err() == nil {
				incrs.Add(1)
			}
			sc.Set(ctx, fmt.Sprint("ttl:", i%500), strings.Repeat("z", i%300), time.Duration(60+i%60)*time.Second)
			if i%7 == 0 {
				sc.Del(ctx, fmt.Sprint("ttl:", (i+250)%500))
			}
		}
	}()
	for _, level := range []int{6, 0, 1, 4, 0, 3} {
		sources := []api.ReplicaSource{{URI: a.sourceURL(src.UID), Compression: level}}
		a.update(dst.UID, api.UpdateDatabaseRequest{ReplicaSources: &sources})
		redistest.Eventually(t, time.Minute, fmt.Sprint("in sync at level ", level), func() error {
			s := a.get(dst.UID).ReplicaSources[0]
			if s.Status != api.SourceInSync || s.CompressionActive != (level > 0) {
				return fmt.Errorf("status %s, compression_active %v, last_error %q", s.Status, s.CompressionActive, s.LastError)
			}
			want := 0.0
			if level > 0 {
				want = 1
			}
			if got := metric(a.metrics(), "replicad_replica_compression_active"); got != want {
				return fmt.Errorf("replicad_replica_compression_active %v, want %v", got, want)
			}
			return nil
		})
		before := incrs.Load()
		redistest.Eventually(t, time.Minute, "writes keep flowing", func() error {
			if incrs.Load() < before+50 {
				return fmt.Errorf("%d writes since the change", incrs.Load()-before)
			}
			return nil
		})
	}
	close(stop)
	wg.Wait()
	eventuallyEqual(t, time.Minute, dc, sc)
	assert.Equal(t, fmt.Sprint(incrs.Load()), dc.Get(ctx, "counter").Val(), "every INCR applied once")
	require.Equal(t, 1.0, metric(a.metrics(), "replicad_replica_full_syncs_total"), "a compression change reloaded the destination")
}
