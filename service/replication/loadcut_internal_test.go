package replication

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

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
