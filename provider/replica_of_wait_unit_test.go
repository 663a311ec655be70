package provider

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
	"github.com/replicad/terraform-provider-redis/internal/client"
)

// fakeReplicaAPI serves GET /v1/bdbs/1 as a destination whose one source
// becomes in sync after inSyncAfter answers; while down is set, it answers
// 503, as a proxy in front of a restarting service would.
type fakeReplicaAPI struct {
	down        atomic.Bool
	refused     atomic.Int32 // 503 answers
	answers     atomic.Int32
	inSyncAfter int32
}

func (f *fakeReplicaAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.down.Load() {
		f.refused.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(api.Error{Code: "unavailable", Description: "restarting"})
		return
	}
	n := f.answers.Add(1)
	status := api.SourceSyncing
	if n > f.inSyncAfter {
		status = api.SourceInSync
	}
	_ = json.NewEncoder(w).Encode(api.Database{UID: 1, ReplicaSync: api.SyncEnabled, ReplicaSyncStatus: status,
		ReplicaSources: []api.ReplicaSourceStatus{{ReplicaSource: api.ReplicaSource{URI: "redis://:pw-secret@10.0.0.1:6379"}, Status: status}}})
}

func newFakeClient(t *testing.T, h http.Handler) *client.Client {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c, err := client.New(client.Config{Endpoint: srv.URL, Password: "x",
		CACert:   string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})),
		RetryMax: -1})
	require.NoError(t, err)
	return c
}

// A service that does not answer for a while (a restart) does not end the
// wait: it goes on once the service answers again.
func TestWaitForReplicaSyncSurvivesAnOutage(t *testing.T) {
	f := &fakeReplicaAPI{inSyncAfter: 2}
	f.down.Store(true)
	c := newFakeClient(t, f)
	done := make(chan error, 1)
	go func() {
		_, err := waitForReplicaSync(context.Background(), c, 1, syncWait{timeout: time.Minute})
		done <- err
	}()
	// Down until the wait has met the outage a few times.
	require.Eventually(t, func() bool { return f.refused.Load() >= 3 }, 30*time.Second, 10*time.Millisecond)
	f.down.Store(false)
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatal("the wait did not end once the service answered again")
	}
}

// A service unreachable until the timeout: the error says so, not that
// the sources are not in sync.
func TestWaitForReplicaSyncUnreachable(t *testing.T) {
	f := &fakeReplicaAPI{}
	f.down.Store(true)
	c := newFakeClient(t, f)
	_, err := waitForReplicaSync(context.Background(), c, 1, syncWait{timeout: 2 * time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "could not be reached")
	assert.NotContains(t, err.Error(), "not in sync")
	assert.True(t, resumable(err), "an unreachable API leaves a create that the next apply resumes")

	// Nothing listens at all.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	c, err = client.New(client.Config{Endpoint: "https://" + addr, Password: "x", InsecureSkipVerify: true, RetryMax: -1})
	require.NoError(t, err)
	_, err = waitForReplicaSync(context.Background(), c, 1, syncWait{timeout: 2 * time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "https://"+addr+" could not be reached")
}

type fakeStateSetter struct{ sets int }

func (f *fakeStateSetter) Set(context.Context, any) diag.Diagnostics { f.sets++; return nil }

type fakePrivate map[string][]byte

func (f fakePrivate) SetKey(_ context.Context, k string, v []byte) diag.Diagnostics {
	f[k] = v
	return nil
}

// Terraform interrupted (Ctrl-C) while a create waits for the sync: the
// wait ends as a create that timed out does, with a warning, so that the
// resource is kept, not tainted (and replaced, flushing the destination,
// by the next apply), and the next apply waits again.
func TestFinishApplyInterruptedCreateIsKept(t *testing.T) {
	f := &fakeReplicaAPI{inSyncAfter: 1 << 30} // never in sync
	c := newFakeClient(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Interrupted once the wait has polled a few times.
		deadline := time.Now().Add(30 * time.Second)
		for f.answers.Load() < 3 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond) // poll interval, not a wait for an outcome
		}
		cancel()
	}()
	plan := replicaOfResourceModel{
		ID: types.StringValue("1"), DatabaseID: types.StringValue("1"),
		Sync: types.StringValue(api.SyncEnabled), WaitForSync: types.BoolValue(true),
		Generation: types.Int64Unknown(),
	}
	r := &replicaOfResource{client: c}
	state, private := &fakeStateSetter{}, fakePrivate{}
	var diags diag.Diagnostics
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.finishApply(ctx, 1, &plan, syncWait{timeout: time.Minute}, true, state, private, &diags)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the wait did not end when Terraform interrupted it")
	}
	require.False(t, diags.HasError(), "an interrupted create fails (and is tainted): %v", diags)
	require.Equal(t, 1, diags.WarningsCount(), "%v", diags)
	w := diags.Warnings()[0]
	assert.Contains(t, w.Summary(), "is not in sync yet")
	assert.Contains(t, w.Detail(), "interrupted")
	assert.Contains(t, w.Detail(), "not tainted")
	assert.NotContains(t, w.Detail(), "pw-secret")
	assert.Equal(t, "true", string(private[awaitingSyncKey]), "the next apply does not wait again")
	assert.Positive(t, state.sets)
	assert.Equal(t, api.SourceSyncing, plan.Status.ValueString())

	// The wait itself says it was interrupted, not that it timed out.
	_, err := waitForReplicaSync(ctx, c, 1, syncWait{timeout: time.Minute})
	require.Error(t, err)
	assert.True(t, resumable(err))
	assert.Contains(t, err.Error(), "interrupted")
}

// A create whose PUT succeeded but whose read that follows fails (the
// service restarting, its API unreachable for a while) keeps the resource,
// as a create whose wait meets an outage does: the Replica Of is configured
// on the service. It was left out of the state, and every later apply
// failed with "The database is already a Replica Of" until it was imported.
func TestFinishApplyCreateKeptWhenTheReadFails(t *testing.T) {
	f := &fakeReplicaAPI{}
	f.down.Store(true)
	c := newFakeClient(t, f)
	plan := replicaOfResourceModel{
		ID: types.StringValue("1"), DatabaseID: types.StringValue("1"),
		Sync: types.StringValue(api.SyncEnabled), WaitForSync: types.BoolValue(true),
		Status: types.StringUnknown(), Generation: types.Int64Unknown(),
		SourceStatus: types.MapUnknown(types.ObjectType{AttrTypes: sourceStatusAttrTypes}),
	}
	r := &replicaOfResource{client: c}
	state, private := &fakeStateSetter{}, fakePrivate{}
	var diags diag.Diagnostics
	r.finishApply(context.Background(), 1, &plan, syncWait{timeout: time.Minute}, true, state, private, &diags)
	require.False(t, diags.HasError(), "a create whose Replica Of is configured fails (and is tainted): %v", diags)
	require.Equal(t, 1, diags.WarningsCount(), "%v", diags)
	assert.Contains(t, diags.Warnings()[0].Detail(), "not tainted")
	assert.Positive(t, state.sets, "the resource is not saved in the state")
	assert.Equal(t, "true", string(private[awaitingSyncKey]), "the next apply does not wait for the sync")
	assert.False(t, plan.Status.IsUnknown() || plan.Generation.IsUnknown() || plan.SourceStatus.IsUnknown(),
		"the state holds unknown values")
}
