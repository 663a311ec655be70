package controller_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/api"
)

// Changes of one database applied at once (each records, then applies in
// the database's turn) end with the last one recorded in force on its
// redis-server, whatever order they took their turns in: here the
// application password, which the server must accept, and no other.
func TestRacingChangesOfOneDatabaseEndWithTheLastRecordedApplied(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := f.ctrl.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "raced", MemorySize: 16 << 20, AuthenticationRedisPass: "first-password"})
	require.NoError(t, err)

	const n = 12
	var wg sync.WaitGroup
	for k := range n {
		wg.Go(func() {
			pw := fmt.Sprintf("password-%02d", k)
			_, err := f.ctrl.UpdateDatabase(ctx, db.UID, api.UpdateDatabaseRequest{AuthenticationRedisPass: &pw})
			assert.NoError(t, err)
		})
	}
	wg.Wait()

	rec, err := f.store.Get(db.UID)
	require.NoError(t, err)
	for k := range n {
		pw := fmt.Sprintf("password-%02d", k)
		c := redis.NewClient(&redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(db.Port)), Password: pw, MaxRetries: -1})
		err := c.Ping(ctx).Err()
		c.Close()
		if pw == rec.RedisPassword {
			assert.NoError(t, err, "the recorded password %s", pw)
		} else {
			assert.Error(t, err, "password %s is not the recorded one (%s), yet the server takes it", pw, rec.RedisPassword)
		}
	}
}
