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
	"github.com/replicad/terraform-provider-redis/internal/redisurl"
	"github.com/replicad/terraform-provider-redis/service/servicetest"
)

// twoInstances starts two instances of the service, as two regions.
func twoInstances(t *testing.T) (us, eu *apiClient) {
	return newAPI(t, servicetest.Start(t)), newAPI(t, servicetest.Start(t))
}

// waitCycleRefused waits until the source of uid is refused as closing a
// replication cycle, and the sync stopped.
func (a *apiClient) waitCycleRefused(uid int) api.Database {
	a.t.Helper()
	var db api.Database
	redistest.Eventually(a.t, time.Minute, "the cycle is refused", func() error {
		db = a.get(uid)
		s := db.ReplicaSources[0]
		if s.Status != api.SourceOutOfSync || !strings.Contains(s.LastError, "replication cycle") {
			return fmt.Errorf("sync %s, status %s, last_error %q", db.ReplicaSync, s.Status, s.LastError)
		}
		return nil
	})
	return db
}

// A Replica Of B in one instance while B is a Replica Of A in another:
// each load on one side made the other's source resync in full, for ever,
// with a status that blamed the source's output buffers. The destination
// that closes the cycle is refused at its handshake, before any load, and
// says why; the other link goes on.
func TestReplicationCycleAcrossInstancesIsRefused(t *testing.T) {
	us, eu := twoInstances(t)
	a := us.create(api.CreateDatabaseRequest{Name: "a", MemorySize: 64 << 20})
	ac := destClient(t, a, 0)
	writeDataset(t, ac, "", 200)
	b := eu.create(api.CreateDatabaseRequest{Name: "b", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: us.sourceURL(a.UID)}}})
	eu.waitInSync(b.UID, time.Minute)
	bc := destClient(t, b, 0)
	eventuallyEqual(t, time.Minute, bc, ac)

	bURL := eu.sourceURL(b.UID)
	us.update(a.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: bURL}}})
	got := us.waitCycleRefused(a.UID)
	u, err := redisurl.Parse(bURL)
	require.NoError(t, err)
	assert.NotContains(t, got.ReplicaSources[0].LastError, u.Password, "the URL is named without its password")
	assert.Contains(t, got.ReplicaSources[0].LastError, u.Addr(), "the source is named")
	assert.True(t, strings.HasPrefix(got.ReplicaSources[0].LastError, "replication cycle"), "said in its own words: %s", got.ReplicaSources[0].LastError)
	// The refusal is retried (a handshake, no load) and b's own link goes
	// on, without loading again.
	redistest.Eventually(t, time.Minute, "a retried", func() error {
		if n := metric(us.metrics(), "replicad_replica_errors_total"); n < 2 {
			return fmt.Errorf("%v errors", n)
		}
		return nil
	})
	us.waitCycleRefused(a.UID)
	assert.Equal(t, 0.0, metric(us.metrics(), "replicad_replica_full_syncs_total"), "nothing was loaded into a")
	eu.waitInSync(b.UID, time.Minute)
	eventuallyEqual(t, time.Minute, bc, ac)
	assert.Equal(t, 1.0, metric(eu.metrics(), "replicad_replica_full_syncs_total"), "b was not loaded again")

	// Once b no longer replicates from a, the cycle is gone: a loads b.
	eu.update(b.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{}})
	require.NoError(t, destClient(t, b, 0).Set(redistest.Ctx(t), "written", "at b", 0).Err())
	us.waitInSync(a.UID, 2*time.Minute)
	eventuallyEqual(t, time.Minute, ac, bc)
}

// Through a third database: A <- C <- B <- A, C and B in another instance.
func TestReplicationCycleThroughThreeDatabasesIsRefused(t *testing.T) {
	us, eu := twoInstances(t)
	a := us.create(api.CreateDatabaseRequest{Name: "a", MemorySize: 64 << 20})
	writeDataset(t, destClient(t, a, 0), "", 50)
	b := eu.create(api.CreateDatabaseRequest{Name: "b", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: us.sourceURL(a.UID)}}})
	eu.waitInSync(b.UID, time.Minute)
	c := eu.create(api.CreateDatabaseRequest{Name: "c", MemorySize: 64 << 20,
		ReplicaSources: []api.ReplicaSource{{URI: eu.sourceURL(b.UID)}}})
	eu.waitInSync(c.UID, time.Minute)

	us.update(a.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: eu.sourceURL(c.UID)}}})
	us.waitCycleRefused(a.UID)
	assert.Equal(t, 0.0, metric(us.metrics(), "replicad_replica_full_syncs_total"), "nothing was loaded into a")

	// A source that is no cycle is taken: the lineage a forgot with its
	// old source list does not linger.
	other := eu.create(api.CreateDatabaseRequest{Name: "other", MemorySize: 64 << 20})
	require.NoError(t, destClient(t, other, 0).Set(redistest.Ctx(t), "k", "v", 0).Err())
	enabled := api.SyncEnabled
	us.update(a.UID, api.UpdateDatabaseRequest{ReplicaSync: &enabled, ReplicaSources: &[]api.ReplicaSource{{URI: eu.sourceURL(other.UID)}}})
	us.waitInSync(a.UID, time.Minute)
	eventuallyEqual(t, time.Minute, destClient(t, a, 0), destClient(t, other, 0))
}

// Both links of a cycle saved at once, in two instances: neither side
// knows of the other's link at its first handshake, so both load once;
// from the next handshakes on, one link is refused and the other goes on:
// the reloads stop.
func TestReplicationCycleSavedOnBothSidesAtOnce(t *testing.T) {
	us, eu := twoInstances(t)
	a := us.create(api.CreateDatabaseRequest{Name: "a", MemorySize: 64 << 20})
	b := eu.create(api.CreateDatabaseRequest{Name: "b", MemorySize: 64 << 20})
	writeDataset(t, destClient(t, a, 0), "a:", 100)
	writeDataset(t, destClient(t, b, 0), "b:", 100)
	aURL, bURL := us.sourceURL(a.UID), eu.sourceURL(b.UID)
	done := make(chan struct{})
	go func() {
		defer close(done)
		us.update(a.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: bURL}}})
	}()
	eu.update(b.UID, api.UpdateDatabaseRequest{ReplicaSources: &[]api.ReplicaSource{{URI: aURL}}})
	<-done

	full := func() float64 {
		return metric(us.metrics(), "replicad_replica_full_syncs_total") + metric(eu.metrics(), "replicad_replica_full_syncs_total")
	}
	var settled float64
	redistest.Eventually(t, 2*time.Minute, "one link refused, the other in sync, and no more loads", func() error {
		sa, sb := us.get(a.UID).ReplicaSources[0], eu.get(b.UID).ReplicaSources[0]
		refusedA, refusedB := strings.HasPrefix(sa.LastError, "replication cycle"), strings.HasPrefix(sb.LastError, "replication cycle")
		switch {
		case refusedA == refusedB:
			return fmt.Errorf("a: %s %q; b: %s %q", sa.Status, sa.LastError, sb.Status, sb.LastError)
		case refusedA && sb.Status != api.SourceInSync, refusedB && sa.Status != api.SourceInSync:
			return fmt.Errorf("the other link is not in sync: a: %s %q; b: %s %q", sa.Status, sa.LastError, sb.Status, sb.LastError)
		}
		if n := full(); n != settled {
			settled = n
			return fmt.Errorf("%v loads so far", n)
		}
		return nil
	})
	assert.LessOrEqual(t, settled, 4.0, "the loads stopped after a round or two")
	// Three more refusals (handshakes) later, still no load.
	errs := func() float64 {
		return metric(us.metrics(), "replicad_replica_errors_total") + metric(eu.metrics(), "replicad_replica_errors_total")
	}
	before := errs()
	redistest.Eventually(t, time.Minute, "three more handshakes refused", func() error {
		if n := errs(); n < before+3 {
			return fmt.Errorf("%v refusals since", n-before)
		}
		return nil
	})
	assert.Equal(t, settled, full(), "no load since")
}
