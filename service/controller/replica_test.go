package controller

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/service/store"
)

func TestSameSourcesIsASetOfAddresses(t *testing.T) {
	a := []api.ReplicaSource{{URI: "redis://:x@h1:1"}, {URI: "redis://h2:2"}}
	cases := []struct {
		b    []api.ReplicaSource
		same bool
	}{
		{[]api.ReplicaSource{{URI: "redis://h2:2"}, {URI: "redis://:x@h1:1"}}, true},                      // reordered
		{[]api.ReplicaSource{{URI: "redis://:new@h1:1", Compression: 3}, {URI: "redis://H2:2"}}, true},    // new credentials and options
		{[]api.ReplicaSource{{URI: "redis://h1:1"}}, false},                                               // removed
		{[]api.ReplicaSource{{URI: "redis://h1:1"}, {URI: "redis://h2:2"}, {URI: "redis://h3:3"}}, false}, // added
		{[]api.ReplicaSource{{URI: "redis://h1:1"}, {URI: "redis://h2:9"}}, false},                        // another port
	}
	for i, c := range cases {
		if got := sameSources(a, c.b); got != c.same {
			t.Errorf("case %d: sameSources = %v, want %v", i, got, c.same)
		}
	}
}

func TestFindCycle(t *testing.T) {
	c := &Controller{cfg: Config{AdvertiseHost: "10.1.1.1"}}
	src := func(port string) []api.ReplicaSource {
		return []api.ReplicaSource{{URI: "redis://:pw@10.1.1.1:" + port}}
	}
	all := []store.Database{
		{UID: 1, Name: "a", Port: 100, ReplicationPort: 101, ReplicaSources: src("201")}, // a <- b
		{UID: 2, Name: "b", Port: 200, ReplicationPort: 201, ReplicaSources: src("301")}, // b <- c
		{UID: 3, Name: "c", Port: 300, ReplicationPort: 301},
	}
	if cyc := c.findCycle(1, all); cyc != "" {
		t.Fatalf("a chain was taken for a cycle: %s", cyc)
	}
	all[2].ReplicaSources = src("101") // c <- a closes the loop
	cyc := c.findCycle(3, all)
	if !strings.Contains(cyc, "c <- a") || !strings.Contains(cyc, "b <- c") {
		t.Fatalf("cycle not described: %q", cyc)
	}
	// A source on another host with the same port is not local.
	all[2].ReplicaSources = []api.ReplicaSource{{URI: "redis://10.9.9.9:101"}}
	if cyc := c.findCycle(3, all); cyc != "" {
		t.Fatalf("a remote source was taken for a local one: %s", cyc)
	}
}

func TestValidateSync(t *testing.T) {
	if s, err := validateSync("", true); err != nil || s != api.SyncEnabled {
		t.Fatalf("default for a replica: %q %v", s, err)
	}
	if _, err := validateSync(api.SyncPaused, false); err == nil {
		t.Fatal("a sync state without sources was accepted")
	}
	if _, err := validateSync("later", true); err == nil {
		t.Fatal("an unknown sync state was accepted")
	}
}

// While the destination's redis-server starts or replays its AOF (after a
// kill, say), it applies nothing: no source is in sync, whatever its syncer
// last saw (its lag may be under the second that in-sync allows).
func TestNoSourceIsInSyncWhileTheDestinationLoads(t *testing.T) {
	sources := func() []api.ReplicaSourceStatus {
		return []api.ReplicaSourceStatus{{Status: api.SourceInSync, Lag: 340}, {Status: api.SourceOutOfSync, LastError: "x"}}
	}
	for _, st := range []string{api.StatusPending, api.StatusLoading} {
		s := sources()
		destinationNotServing(s, st)
		if s[0].Status != api.SourceSyncing || s[1].Status != api.SourceOutOfSync || aggregate(s) != api.SourceOutOfSync {
			t.Errorf("destination %s: sources %+v", st, s)
		}
	}
	s := sources()
	destinationNotServing(s, api.StatusActive)
	if s[0].Status != api.SourceInSync {
		t.Errorf("an active destination's source in sync became %s", s[0].Status)
	}
}

// A stopped sync owes the destination a reload, whether it is enabled at
// once or paused first: the generation changes on leaving stopped, once.
func TestLeavingAStoppedSyncReloads(t *testing.T) {
	c := &Controller{}
	src := []api.ReplicaSource{{URI: "redis://10.0.0.1:6379"}}
	d := store.Database{ReplicaSources: src, ReplicaSync: api.SyncStopped, ReplicaGeneration: 4, ReplicaStopErrors: map[string]string{"10.0.0.1:6379": "OOM"}}
	paused, enabled := api.SyncPaused, api.SyncEnabled
	if err := c.applyReplicaChange(&d, api.UpdateDatabaseRequest{ReplicaSync: &paused}); err != nil {
		t.Fatal(err)
	}
	if d.ReplicaGeneration != 5 || d.ReplicaStopErrors != nil {
		t.Fatalf("stopped -> paused: generation %d, stop errors %v", d.ReplicaGeneration, d.ReplicaStopErrors)
	}
	if err := c.applyReplicaChange(&d, api.UpdateDatabaseRequest{ReplicaSync: &enabled}); err != nil {
		t.Fatal(err)
	}
	if d.ReplicaGeneration != 5 {
		t.Fatalf("paused -> enabled: generation %d, want 5 (the reload is already owed)", d.ReplicaGeneration)
	}
}

// A sync stopped because a source refused its credentials owes no reload:
// given the new URL and enabled, it continues from the checkpoints (the
// generation stays), and a later stop by the user reloads again.
func TestLeavingASyncStoppedOnAuthenticationContinues(t *testing.T) {
	c := &Controller{}
	src := []api.ReplicaSource{{URI: "redis://admin:old@10.0.0.1:6379"}}
	d := store.Database{ReplicaSources: src, ReplicaSync: api.SyncStopped, ReplicaGeneration: 4,
		ReplicaStopErrors: map[string]string{"10.0.0.1:6379": "authentication failed"}, ReplicaStopResumable: true}
	enabled, stopped := api.SyncEnabled, api.SyncStopped
	next := []api.ReplicaSource{{URI: "redis://admin:new@10.0.0.1:6379"}}
	if err := c.applyReplicaChange(&d, api.UpdateDatabaseRequest{ReplicaSources: &next, ReplicaSync: &enabled}); err != nil {
		t.Fatal(err)
	}
	if d.ReplicaGeneration != 4 || d.ReplicaStopErrors != nil || d.ReplicaStopResumable {
		t.Fatalf("stopped on authentication -> enabled: generation %d, stop errors %v, resumable %v", d.ReplicaGeneration, d.ReplicaStopErrors, d.ReplicaStopResumable)
	}
	for _, sync := range []*string{&stopped, &enabled} {
		if err := c.applyReplicaChange(&d, api.UpdateDatabaseRequest{ReplicaSync: sync}); err != nil {
			t.Fatal(err)
		}
	}
	if d.ReplicaGeneration != 5 {
		t.Fatalf("stopped by the user -> enabled: generation %d, want 5", d.ReplicaGeneration)
	}
}

// Host names are not case-sensitive: the same source written in two cases
// is listed twice (two syncers would apply each of its writes twice).
func TestValidateSourcesRefusesASourceTwiceInAnotherCase(t *testing.T) {
	c := &Controller{cfg: Config{AdvertiseHost: "10.1.1.1"}}
	d := store.Database{UID: 5, Name: "d", Port: 500, ReplicationPort: 501, ReplicaSources: []api.ReplicaSource{
		{URI: "redis://cache.example.com:6379"}, {URI: "redis://:pw@CACHE.example.com:6379"},
	}}
	err := c.validateSources(d, nil)
	if err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("validateSources = %v, want an error saying the source is listed twice", err)
	}
}

// An IP address has several spellings: each is the same server, listed
// twice, and a change of spelling is no change of source.
func TestValidateSourcesRefusesAnIPInTwoSpellings(t *testing.T) {
	c := &Controller{cfg: Config{AdvertiseHost: "10.1.1.1"}}
	for _, pair := range [][2]string{
		{"redis://[::1]:6379", "redis://:pw@[0:0::1]:6379"},
		{"redis://127.0.0.1:6379", "redis://[::ffff:127.0.0.1]:6379"},
		{"redis://[2001:DB8::1]:6379", "redis://[2001:db8:0::1]:6379"},
	} {
		d := store.Database{UID: 5, Name: "d", Port: 500, ReplicationPort: 501, ReplicaSources: []api.ReplicaSource{
			{URI: pair[0]}, {URI: pair[1]},
		}}
		err := c.validateSources(d, nil)
		require.Error(t, err, pair)
		assert.Contains(t, err.Error(), "listed twice", pair)
		assert.NotContains(t, err.Error(), "pw", "the password is not in the error")
		assert.True(t, sameSources(d.ReplicaSources[:1], d.ReplicaSources[1:]), "%v name one source", pair)
	}
	assert.False(t, sameSources([]api.ReplicaSource{{URI: "redis://[::1]:6379"}}, []api.ReplicaSource{{URI: "redis://[::2]:6379"}}))
}

// An update that asks for no flush (replica_no_flush: what a Terraform plan
// showed) is refused with a conflict when it would flush: a sync stopped
// again since the plan, and no longer resumable. Nothing of it is applied.
// The same update is taken while the sync is still resumable.
func TestReplicaNoFlushRefusesAnUpdateThatWouldFlush(t *testing.T) {
	c := &Controller{}
	src := []api.ReplicaSource{{URI: "redis://admin:old@10.0.0.1:6379"}}
	enabled, yes := api.SyncEnabled, true
	next := []api.ReplicaSource{{URI: "redis://admin:s3cr3t-pw@10.0.0.1:6379"}}
	resumable := store.Database{UID: 3, ReplicaSources: src, ReplicaSync: api.SyncStopped, ReplicaGeneration: 4,
		ReplicaStopErrors: map[string]string{"10.0.0.1:6379": "authentication failed"}, ReplicaStopResumable: true}
	d := resumable
	require.NoError(t, c.applyReplicaChange(&d, api.UpdateDatabaseRequest{ReplicaSources: &next, ReplicaSync: &enabled, ReplicaNoFlush: &yes}))
	assert.Equal(t, int64(4), d.ReplicaGeneration)
	assert.Equal(t, api.SyncEnabled, d.ReplicaSync)

	// Stopped by the user: enabling flushes.
	stoppedByUser := store.Database{UID: 3, ReplicaSources: src, ReplicaSync: api.SyncStopped, ReplicaGeneration: 4}
	d = stoppedByUser
	err := c.applyReplicaChange(&d, api.UpdateDatabaseRequest{ReplicaSources: &next, ReplicaSync: &enabled, ReplicaNoFlush: &yes})
	var apiErr *api.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, api.CodeWouldFlush, apiErr.Code)
	assert.Contains(t, apiErr.Description, "terraform plan again")
	assert.NotContains(t, apiErr.Description, "s3cr3t", "no password in the error")

	// Another source set flushes too.
	other := []api.ReplicaSource{{URI: "redis://10.0.0.2:6379"}}
	d = resumable
	err = c.applyReplicaChange(&d, api.UpdateDatabaseRequest{ReplicaSources: &other, ReplicaNoFlush: &yes})
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, api.CodeWouldFlush, apiErr.Code)

	// Without the field, the flush is taken, as before.
	d = stoppedByUser
	require.NoError(t, c.applyReplicaChange(&d, api.UpdateDatabaseRequest{ReplicaSync: &enabled}))
	assert.Equal(t, int64(5), d.ReplicaGeneration)
	// Removing every source flushes nothing: the data stays.
	d = stoppedByUser
	none := []api.ReplicaSource{}
	require.NoError(t, c.applyReplicaChange(&d, api.UpdateDatabaseRequest{ReplicaSources: &none, ReplicaNoFlush: &yes}))
}
