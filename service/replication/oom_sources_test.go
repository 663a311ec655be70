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
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// TestOutOfMemorySaysSoWhateverTheSources: a destination whose
// memory_size the sources' growing data exceeds stops the sync, and every
// source's last_error says why in words (out of memory, raise its
// memory_size), with three sources as with one, and on the path without
// a master link, where the writes (the checkpoint's MULTI/EXEC included)
// are a client's that a primary refuses itself.
func TestOutOfMemorySaysSoWhateverTheSources(t *testing.T) {
	for _, c := range []struct {
		name    string
		sources int
		noLink  bool
		load    bool // the data is there before the destination: its load meets the limit
	}{
		{"three sources", 3, false, false}, {"no master link", 1, true, false}, {"three sources, no master link", 3, true, false},
		{"load", 1, false, true}, {"load, three sources", 3, false, true}, {"load, no master link", 1, true, true}, {"load, three sources, no master link", 3, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := redistest.Ctx(t)
			var srcs []*redistest.Server
			var rs []api.ReplicaSource
			for range c.sources {
				s := redistest.Start(t)
				srcs = append(srcs, s)
				rs = append(rs, api.ReplicaSource{URI: s.URL()})
			}
			write := func() {
				for n := range 40 {
					for k, s := range srcs {
						require.NoError(t, s.Client().Set(ctx, fmt.Sprintf("blob:%d:%d", k, n), strings.Repeat("x", 200000), 0).Err())
					}
				}
			}
			if c.load {
				write()
			}
			a := newAPI(t, servicetest.StartWith(t, func(cfg *app.Config) { cfg.NoMasterLink = c.noLink }))
			dst := a.create(api.CreateDatabaseRequest{Name: "small", MemorySize: 4 << 20, ReplicaSources: rs})
			if !c.load {
				a.waitInSync(dst.UID, time.Minute)
				write()
			}
			redistest.Eventually(t, time.Minute, "the sync stops on out of memory", func() error {
				db := a.get(dst.UID)
				if db.ReplicaSync != api.SyncStopped {
					return fmt.Errorf("sync %s, sources %+v", db.ReplicaSync, db.ReplicaSources)
				}
				return nil
			})
			db := a.get(dst.UID)
			var oom int
			for _, s := range db.ReplicaSources {
				t.Logf("last_error of %s: %s", s.URI, s.LastError)
				if strings.Contains(s.LastError, "out of memory") {
					oom++
					assert.Contains(t, s.LastError, "raise its memory_size", "says what to do")
					assert.Contains(t, s.LastError, "memory_size is 4 MiB", "names the memory_size")
				}
				assert.NotContains(t, s.LastError, "EXECABORT Transaction discarded because of previous errors", "a refusal said in Redis' words only")
			}
			assert.GreaterOrEqual(t, oom, 1, "a source's last_error says the destination is out of memory: %+v", db.ReplicaSources)
		})
	}
}
