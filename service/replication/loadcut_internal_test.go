package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/redisurl"
	"github.com/replicad/terraform-provider-redis/internal/replproto"
)

func TestClosedByPeer(t *testing.T) {
	wrap := func(err error) error {
		return fmt.Errorf("load the dataset: %w", &replproto.Error{Op: "RDB", Kind: replproto.ErrConn, Err: err})
	}
	for _, err := range []error{io.EOF, io.ErrUnexpectedEOF, syscall.ECONNRESET, syscall.EPIPE} {
		assert.True(t, closedByPeer(wrap(err)), "%v", err)
	}
	for _, err := range []error{os.ErrDeadlineExceeded, replproto.ErrAuth, errors.New("WRONGTYPE")} {
		assert.False(t, closedByPeer(wrap(err)), "%v", err)
	}
}

func TestLoadCutSaysWhatToChange(t *testing.T) {
	err := fmt.Errorf("%w: %w", errNeedFullSync, &loadCutError{addr: "h:1", err: io.ErrUnexpectedEOF})
	assert.ErrorIs(t, err, errNeedFullSync)
	assert.ErrorIs(t, err, errLoadCut)
	var cut *loadCutError
	assert.ErrorAs(t, err, &cut)
	assert.Contains(t, err.Error(), "client-output-buffer-limit")
	assert.Contains(t, err.Error(), "unexpected EOF")
}

func TestCutBackoffGrowsToItsCeiling(t *testing.T) {
	var b cutBackoff
	prev := time.Duration(0)
	for range 8 {
		d := b.next()
		assert.GreaterOrEqual(t, d, prev, "each wait is at least the one before")
		prev = d
	}
	for range 20 {
		d := b.next()
		assert.LessOrEqual(t, d, 5*time.Minute)
		assert.GreaterOrEqual(t, d, 5*time.Minute*3/4)
	}
}

func TestHoldsData(t *testing.T) {
	assert.False(t, holdsData("# Keyspace\r\n"))
	assert.False(t, holdsData("# Keyspace\r\ndb16:keys=2,expires=0,avg_ttl=0\r\n"), "checkpoints only")
	assert.True(t, holdsData("# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\ndb16:keys=2,expires=0,avg_ttl=0\r\n"))
	assert.True(t, holdsData("# Keyspace\r\ndb15:keys=1,expires=0,avg_ttl=0\r\n"))
}

// The other shards of a merged load that a source cut echo its error to
// the round, and may get there first: their echo is a cut too, so that
// the destination backs off whichever arrives first. Other causes are
// told, not wrapped: an echo must not make its shard reconnect at once as
// if it were relocated.
func TestAnEchoOfACutIsACut(t *testing.T) {
	cut := &loadCutError{addr: "h:1", node: "h:2", err: io.ErrUnexpectedEOF}
	e := echo(fmt.Errorf("%w: %w", errNeedFullSync, cut))
	assert.ErrorIs(t, e, errMergeStopped)
	assert.ErrorIs(t, e, errNeedFullSync)
	var got *loadCutError
	if assert.ErrorAs(t, e, &got) {
		assert.Equal(t, "h:2", got.node)
	}

	e = echo(fmt.Errorf("%w: moved", errRelocated))
	assert.ErrorIs(t, e, errMergeStopped)
	assert.NotErrorIs(t, e, errRelocated)
	assert.Contains(t, e.Error(), "moved")
}

// A cut is told once: asCut does not wrap a cut again, and only a full
// session whose source closed the link, and accepts connections again, is
// one.
func TestAsCutNeedsTheSourceToClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	u, err := redisurl.Parse("redis://h:1")
	require.NoError(t, err)
	ctx := context.Background()
	s := &syncer{url: u, node: ln.Addr().String(), fullSession: true}
	eof := fmt.Errorf("read: %w", io.ErrUnexpectedEOF)
	assert.NotErrorIs(t, s.asCut(ctx, eof, false), errLoadCut, "closed on our side")
	cut := s.asCut(ctx, eof, true)
	assert.ErrorIs(t, cut, errLoadCut)
	assert.Contains(t, cut.Error(), "accepts connections again")
	assert.Same(t, cut, s.asCut(ctx, cut, true), "not wrapped twice")
	assert.Equal(t, cut, s.lastCut)

	// The source refuses connections since it closed the link: it died.
	s.lastCut = nil
	ln.Close()
	gone := s.asCut(ctx, eof, true)
	assert.NotErrorIs(t, gone, errLoadCut, "a source that died is no cut")
	assert.Nil(t, s.lastCut)
	assert.Contains(t, gone.Error(), "refused connections since")
	assert.NotContains(t, gone.Error(), "client-output-buffer-limit")
	assert.ErrorIs(t, gone, io.ErrUnexpectedEOF)

	s.fullSession = false
	assert.NotErrorIs(t, s.asCut(ctx, eof, true), errLoadCut, "a partial sync's link closing is no cut")
}

// Reloads of a destination whose rounds keep ending soon after they start
// (a stream that breaks right after each full sync) wait longer each time,
// up to 30 s, instead of flushing it and forking the sources every
// fraction of a second.
func TestReloadBackoffGrowsToItsCeiling(t *testing.T) {
	b := newReloadBackoff()
	first := b.next()
	assert.LessOrEqual(t, first, 250*time.Millisecond, "the first reload is at once")
	var last time.Duration
	for range 20 {
		last = b.next()
		assert.LessOrEqual(t, last, 30*time.Second)
	}
	assert.GreaterOrEqual(t, last, 15*time.Second)
	b.reset()
	assert.LessOrEqual(t, b.next(), 250*time.Millisecond, "after a calm round")
}
