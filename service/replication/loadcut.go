package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"
)

// errLoadCut marks a full sync whose link the source closed during the
// transfer or soon after it. A source does that when the writes it buffers
// for a replica meanwhile exceed its client-output-buffer-limit for
// replicas: every new attempt meets the same limit, so retrying at once
// loops forever. The destination says what to change and backs off.
var errLoadCut = errors.New("the source closed the link during a full sync")

// cutWindow is how long after a full transfer a link closed by the source
// still counts as cut by its output buffer limit: the soft limit of Redis's
// default ("replica 256mb 64mb 60") acts after 60 s over it.
const cutWindow = 70 * time.Second

// loadCutError is a full sync of source addr cut by the source: by its
// node node (a clustered source's URL names any node).
type loadCutError struct {
	addr, node string
	err        error
	// accepting: the source accepted a connection right after it closed
	// the link (false: not known).
	accepting bool
}

func (e *loadCutError) Error() string {
	who := "the source"
	if e.node != "" && e.node != e.addr {
		who = "the source's node " + e.node
	}
	again := ""
	if e.accepting {
		again = ", and accepts connections again"
	}
	return fmt.Sprintf("%s closed the replication link during the full sync or within %s of it%s. "+
		"Possible causes: the writes it buffered for this replica meanwhile exceeded its client-output-buffer-limit for replicas "+
		"(its log then says \"scheduled to be closed ASAP for overcoming of output buffer limits\"), a CLIENT KILL, or a restart of the source. "+
		"If it is the limit, raise it on the source (for example CONFIG SET client-output-buffer-limit \"replica 1gb 512mb 120\", or \"replica 0 0 0\" for no limit) "+
		"or lower its write rate during the sync: %v", who, cutWindow, again, e.err)
}

func (e *loadCutError) Unwrap() []error { return []error{errLoadCut, e.err} }

// closedByPeer says whether err is the other side closing the connection
// (EOF, reset, broken pipe), not a timeout of ours or a protocol error.
func closedByPeer(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// dialBack tries TCP connections to addr, each at once closed, a few
// times over a second: nil when each is accepted, the first error
// otherwise. A source that closed the link and refuses connections since
// is gone; one that cut a replica over its output buffer limit accepts
// the next. A dying server may still accept for an instant after its
// replicas saw their links close: one accepted connection proves nothing.
func dialBack(ctx context.Context, addr string) error {
	for try := range dialBackTries {
		if try > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(dialBackGap):
			}
		}
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var d net.Dialer
		c, err := d.DialContext(dctx, "tcp", addr)
		cancel()
		if err != nil {
			return err
		}
		c.Close()
	}
	return nil
}

// dialBack's attempts and the gap between two.
const (
	dialBackTries = 4
	dialBackGap   = 250 * time.Millisecond
)

// cutBackoff spaces the loads of a destination whose source keeps cutting
// them: exponential with jitter, from 2 s to 5 min.
type cutBackoff struct{ n int }

func (b *cutBackoff) next() time.Duration {
	ceil := min(2*time.Second<<b.n, 5*time.Minute)
	if b.n < 10 {
		b.n++
	}
	return ceil*3/4 + rand.N(ceil/4+1)
}
