package replication_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/databases"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// TestDestinationLinkCutExactlyOnce cuts the syncer's connection to the
// destination again and again while INCRs stream in. Several batches are in
// flight when it happens, some of them applied by the destination though
// their replies are lost: the syncer must resume from the checkpoint the
// destination holds, so that nothing is applied twice or lost.
func TestDestinationLinkCutExactlyOnce(t *testing.T) {
	src := redistest.Start(t, "--requirepass", "pw-123456", "--repl-backlog-size", "256mb")
	i := servicetest.Start(t)
	a := newAPI(t, i)
	dst := a.create(api.CreateDatabaseRequest{Name: "counters", MemorySize: 128 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	a.waitInSync(dst.UID, time.Minute)

	w := startIncrWriter(t, src.Client(), 100)

	dc := destClient(t, dst, 0)
	for round := range 5 {
		base := w.written.Load()
		redistest.Eventually(t, time.Minute, "the stream is being applied", func() error {
			if w.written.Load() < base+20000 {
				return fmt.Errorf("written %d", w.written.Load()-base)
			}
			return nil
		})
		// As the service's own user (applications may not disconnect
		// clients); the syncer may still be reconnecting after the previous cut.
		redistest.Eventually(t, time.Minute, "a connection of the syncer cut", func() error {
			killed, err := i.App.Databases().Client(dst.UID).ClientKillByFilter(redistest.Ctx(t), "USER", databases.InternalUser).Result()
			if err == nil && killed == 0 {
				err = fmt.Errorf("no connection to cut")
			}
			return err
		})
		t.Logf("round %d: cut the syncer's connections after %d writes", round, w.written.Load())
	}
	w.stop()
	redistest.Eventually(t, 2*time.Minute, "every counter equals the source's", func() error {
		return redistest.Diff(context.Background(), dc, src.Client())
	})
	m := a.metrics()
	if full := metric(m, "replicad_replica_full_syncs_total"); full != 1 {
		t.Fatalf("%v full syncs; want only the first (the cuts resume with partial syncs)\n%s", full, grep(m, "syncs_total"))
	}
}
