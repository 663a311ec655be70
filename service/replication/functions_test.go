package replication_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// The same function library loaded on two sources of one destination (the
// same application deployed in two regions) used to stop the sync for
// good: the destination refused the second FUNCTION LOAD ("Library already
// exists"). It is applied as a replacement. A FUNCTION FLUSH of one source
// must not delete the other's libraries: the destination is re-replicated
// from both.
func TestTheSameFunctionLibraryFromTwoSources(t *testing.T) {
	s1, s2 := redistest.Start(t), redistest.Start(t)
	ctx := redistest.Ctx(t)
	c1, c2 := s1.Client(), s2.Client()
	lib := func(name string) string {
		return fmt.Sprintf("#!lua name=%s\nredis.register_function('%s_f', function() return 1 end)", name, name)
	}
	for _, c := range []*redis.Client{c1, c2} {
		require.NoError(t, c.FunctionLoad(ctx, lib("app")).Err())
	}
	require.NoError(t, c1.Set(ctx, "one", "1", 0).Err())
	require.NoError(t, c2.Set(ctx, "two", "2", 0).Err())
	a := newAPI(t, servicetest.Start(t))
	dst := a.create(api.CreateDatabaseRequest{Name: "dst", MemorySize: 256 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: "redis://" + s1.Addr()}, {URI: "redis://" + s2.Addr()}}})
	a.waitInSync(dst.UID, time.Minute)
	dc := destClient(t, dst, 0)
	libraries := func() []string {
		libs, err := dc.FunctionList(ctx, redis.FunctionListQuery{}).Result()
		require.NoError(t, err)
		var names []string
		for _, l := range libs {
			names = append(names, l.Name)
		}
		slices.Sort(names)
		return names
	}

	// Both sources load a new version of the library while they stream.
	for _, c := range []*redis.Client{c1, c2} {
		require.NoError(t, c.FunctionLoad(ctx, lib("v2")).Err())
	}
	require.NoError(t, c2.Set(ctx, "after", "1", 0).Err())
	eventuallyEqual(t, time.Minute, dc, c1, c2)
	require.Equal(t, []string{"app", "v2"}, libraries())
	db := a.waitInSync(dst.UID, time.Minute)
	for _, s := range db.ReplicaSources {
		require.Empty(t, s.LastError)
	}

	// One source drops its libraries: the other's stay.
	require.NoError(t, c1.FunctionFlush(ctx).Err())
	require.NoError(t, c2.FunctionLoad(ctx, lib("only2")).Err())
	require.NoError(t, c1.Set(ctx, "later", "1", 0).Err())
	redistest.Eventually(t, 2*time.Minute, "the destination has the libraries of the source that kept them", func() error {
		if got := libraries(); !slices.Equal(got, []string{"app", "only2", "v2"}) {
			return fmt.Errorf("libraries %v", got)
		}
		return nil
	})
	eventuallyEqual(t, time.Minute, dc, c1, c2)
	a.waitInSync(dst.UID, time.Minute)

	// Both delete a library: the second DELETE used to find it gone at
	// the destination, which stopped the sync.
	for _, c := range []*redis.Client{c1, c2} {
		require.NoError(t, c.FunctionLoad(ctx, lib("both")).Err())
	}
	redistest.Eventually(t, time.Minute, "the destination has the library", func() error {
		if got := libraries(); !slices.Contains(got, "both") {
			return fmt.Errorf("libraries %v", got)
		}
		return nil
	})
	for _, c := range []*redis.Client{c1, c2} {
		require.NoError(t, c.FunctionDelete(ctx, "both").Err())
	}
	require.NoError(t, c2.Set(ctx, "after-delete", "1", 0).Err())
	redistest.Eventually(t, 2*time.Minute, "the library is gone from the destination", func() error {
		if got := libraries(); !slices.Equal(got, []string{"app", "only2", "v2"}) {
			return fmt.Errorf("libraries %v", got)
		}
		return nil
	})
	eventuallyEqual(t, time.Minute, dc, c1, c2)
	db = a.waitInSync(dst.UID, time.Minute)
	require.Equal(t, api.SyncEnabled, db.ReplicaSync)
}
