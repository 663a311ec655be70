package databases

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/service/store"
)

// A load into a database whose redis-server never answers (stopped with
// SIGSTOP, its disk stalled) ends when its context does: a delete or a
// shutdown stops the sync by cancelling it, and used to wait for ever,
// with the controller's lock held.
func TestALoadIntoAServerThatNeverAnswersEndsWithItsContext(t *testing.T) {
	m, err := NewManager(Config{RedisServer: "redis-server", DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(m.Close)
	d := store.Database{UID: 7, InternalPassword: "internal"}

	// A server that reads every request and never says a word.
	ln, err := net.Listen("unix", m.Socket(d.UID))
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	asked := make(chan struct{}, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go func() {
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					select {
					case asked <- struct{}{}:
					default:
					}
				}
			}()
		}
	}()
	require.NoError(t, os.MkdirAll(m.Dir(d.UID), 0o700))
	rdb := filepath.Join(m.Dir(d.UID), "load-1.rdb")
	require.NoError(t, os.WriteFile(rdb, []byte("REDIS0011"), 0o600))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.LoadRDB(ctx, d, rdb) }()
	select {
	case <-asked:
	case <-time.After(30 * time.Second):
		t.Fatal("LoadRDB sent nothing to the server")
	}
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(30 * time.Second):
		t.Fatal("LoadRDB still waits for the server 30 s after its context was cancelled")
	}
}
