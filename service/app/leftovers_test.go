package app_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// What a reload that the service's death cut short leaves in a database's
// directory (the RDB file it was writing, the reload server's directory
// with its saved dataset, the dataset being swapped in) is removed when the
// service starts again: the next reload of that database, which removed
// them, may never come (its Replica Of ended, or it loads another way).
func TestTheFilesOfAReloadCutByTheServicesDeathAreRemovedAtStart(t *testing.T) {
	i := servicetest.Start(t)
	db := mustCreate(t, i, api.CreateDatabaseRequest{Name: "leftovers", MemorySize: 16 << 20})
	c := dbClient(t, db, db.AuthenticationRedisPass)
	require.NoError(t, c.Set(ctx(t), "k", "v", 0).Err())
	i.Stop(t)
	dir := filepath.Join(i.DataDir, "dbs", fmt.Sprint(db.UID))
	left := []string{filepath.Join(dir, "load-123456.rdb"), filepath.Join(dir, "dump.rdb"), filepath.Join(dir, "reload", "dump.rdb")}
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "reload"), 0o700))
	for _, p := range left {
		require.NoError(t, os.WriteFile(p, make([]byte, 1<<20), 0o600))
	}
	i.StartAgain(t)
	eventually(t, 30*time.Second, "the database is back", func() error {
		v, err := c.Get(ctx(t), "k").Result()
		if err != nil || v != "v" {
			return fmt.Errorf("%q %v", v, err)
		}
		return nil
	})
	for _, p := range append(left, filepath.Join(dir, "reload")) {
		_, err := os.Stat(p)
		require.True(t, os.IsNotExist(err), "%s: %v", p, err)
	}
}
