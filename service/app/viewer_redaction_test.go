package app_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/app"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// The viewer user reads the status, not the data: a sync_note (or a
// last_error) that names the source's keys names them to the admin only.
// The viewer read the key names of the source in what the API and the
// console gave it.
func TestTheViewerDoesNotReadKeyNames(t *testing.T) {
	const viewer, viewerPw = "watcher", "watcher-pw-1"
	const secretKey = "customer:4711:ledger"
	src := redistest.Start(t, "--requirepass", "pw-123456")
	c := ctx(t)
	sc := src.Client()
	// Pending entries of trimmed messages, which the destination cannot
	// recreate: the source's sync_note names the stream.
	for n := range 1000 {
		require.NoError(t, sc.XAdd(c, &redis.XAddArgs{Stream: secretKey, Values: []string{"n", strconv.Itoa(n), "pad", pad(400)}}).Err())
	}
	require.NoError(t, sc.XGroupCreate(c, secretKey, "auditors", "0").Err())
	require.NoError(t, sc.XReadGroup(c, &redis.XReadGroupArgs{Group: "auditors", Consumer: "c", Streams: []string{secretKey, ">"}, Count: 1000}).Err())
	for n := range 1000 {
		require.NoError(t, sc.XAdd(c, &redis.XAddArgs{Stream: secretKey, Values: []string{"n", strconv.Itoa(n), "pad", pad(400)}}).Err())
	}
	require.NoError(t, sc.XTrimMaxLen(c, secretKey, 1000).Err())

	i := servicetest.StartWith(t, func(cfg *app.Config) {
		cfg.ViewerUser, cfg.ViewerPassword = viewer, viewerPw
		// Loaded from a file, the stream with commands.
		cfg.NoLinkLoad, cfg.FileLoadRawLimit = true, 64<<10
	})
	dst := mustCreate(t, i, api.CreateDatabaseRequest{Name: "dst", MemorySize: 64 << 20, ReplicaSources: []api.ReplicaSource{{URI: src.URL()}}})
	path := fmt.Sprintf("/v1/bdbs/%d", dst.UID)
	eventually(t, time.Minute, "the sync note names the stream, for the admin", func() error {
		var db api.Database
		call(t, i, "GET", path, nil, &db)
		if len(db.ReplicaSources) != 1 || !strings.Contains(db.ReplicaSources[0].SyncNote, secretKey) {
			return fmt.Errorf("sources %+v", db.ReplicaSources)
		}
		return nil
	})
	for _, p := range []string{path, "/v1/bdbs", "/ui/api/overview"} {
		code, body := i.Request(t, viewer, viewerPw, "GET", p, nil)
		require.Equal(t, 200, code, "viewer GET %s: %s", p, body)
		assert.NotContains(t, string(body), secretKey, "viewer GET %s", p)
		assert.NotContains(t, string(body), "auditors", "viewer GET %s", p)
		assert.Contains(t, string(body), "pending entries", "viewer GET %s still says what is wrong", p)
	}
	code, body := i.Request(t, i.Username, i.Password, "GET", "/ui/api/overview", nil)
	require.Equal(t, 200, code)
	assert.Contains(t, string(body), secretKey, "the admin's console names the stream")
}

// pad is n bytes that do not compress: the RDB stays bigger than a file
// load's raw limit.
func pad(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
