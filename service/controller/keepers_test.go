package controller_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
)

// The keepers of a regeneration are stored with the password they made and
// go with it; an untagged password may be tagged once, without a new
// password; a rejected request changes nothing.
func TestAdminPasswordKeepers(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := f.ctrl.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "tagged", MemorySize: 16 << 20})
	require.NoError(t, err)
	uid := db.UID

	first, err := f.ctrl.SourceURL(ctx, uid)
	require.NoError(t, err)
	assert.Nil(t, first.AdminPasswordKeepers, "a new database's password has no keepers")

	k1 := map[string]string{"rotation": "1"}
	p, err := f.ctrl.RegenerateAdminPassword(ctx, uid, api.RegenerateAdminPasswordRequest{Keepers: k1})
	require.NoError(t, err)
	assert.Equal(t, k1, p.AdminPasswordKeepers)
	u, err := f.ctrl.SourceURL(ctx, uid)
	require.NoError(t, err)
	assert.Equal(t, k1, u.AdminPasswordKeepers)
	assert.Equal(t, p.URI, u.URI)
	stored, err := f.store.Get(uid)
	require.NoError(t, err)
	assert.Equal(t, k1, stored.AdminPasswordKeepers, "the state file keeps them")

	// Bad keepers: refused, and the password and its keepers stay.
	_, err = f.ctrl.RegenerateAdminPassword(ctx, uid, api.RegenerateAdminPasswordRequest{
		Keepers: map[string]string{"big": strings.Repeat("v", api.MaxKeeperValueBytes+1)}})
	var apiErr *api.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, api.CodeInvalidRequest, apiErr.Code)
	after, err := f.ctrl.SourceURL(ctx, uid)
	require.NoError(t, err)
	assert.Equal(t, u, after, "a refused regeneration changed the password or its keepers")

	// A tagged password keeps its keepers.
	_, err = f.ctrl.RecordAdminPasswordKeepers(ctx, uid, api.AdminPasswordKeepersRequest{Keepers: map[string]string{"rotation": "2"}})
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, api.CodeConflict, apiErr.Code)
	same, err := f.ctrl.RecordAdminPasswordKeepers(ctx, uid, api.AdminPasswordKeepersRequest{Keepers: k1})
	require.NoError(t, err, "the same keepers again are accepted (a retried request)")
	assert.Equal(t, u, same)

	// A regeneration without keepers drops the old password's.
	p, err = f.ctrl.RegenerateAdminPassword(ctx, uid, api.RegenerateAdminPasswordRequest{})
	require.NoError(t, err)
	assert.Nil(t, p.AdminPasswordKeepers)
	u, err = f.ctrl.SourceURL(ctx, uid)
	require.NoError(t, err)
	assert.Nil(t, u.AdminPasswordKeepers)

	// That untagged password may be tagged, without a new password.
	k3 := map[string]string{"rotation": "3", "team": "payments"}
	tagged, err := f.ctrl.RecordAdminPasswordKeepers(ctx, uid, api.AdminPasswordKeepersRequest{Keepers: k3})
	require.NoError(t, err)
	assert.Equal(t, u.URI, tagged.URI, "recording keepers made a new password")
	assert.Equal(t, k3, tagged.AdminPasswordKeepers)

	_, err = f.ctrl.RecordAdminPasswordKeepers(ctx, 999, api.AdminPasswordKeepersRequest{Keepers: k3})
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, api.CodeNotFound, apiErr.Code)
}
