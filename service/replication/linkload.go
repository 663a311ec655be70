package replication

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/monotime"
	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// A full load of a one-server destination can go over its master link as a
// Redis master's full sync: +FULLRESYNC, then the RDB in the diskless
// format ($EOF:<mark>, the RDB, the mark again). The destination
// (repl-diskless-load swapdb) loads it as it arrives, into a second
// dataset that it swaps in once complete, so:
//   - the transfer and the load overlap, where a file is loaded only once
//     it is complete (the load is most of a native replica's time);
//   - readers see the previous data until the swap;
//   - a load cut short (the service stops, the source fails, the payload
//     is refused) leaves the previous data, and its checkpoints, in place.
//
// The FULLRESYNC names the destination's own replication id, because Redis
// keeps serving reads during a load only when it continues the same
// history ("async loading"). Its offset is one past the destination's:
// the destination's own replicas (a chain), which hold the previous data,
// then cannot continue and resync in full.
//
// A load that holds both datasets at once needs memory for both: it is
// used only when the destination's memory is at most half used
// (linkLoadFits); otherwise the dataset goes through a file (fileload.go).

// linkLoadTimeout bounds the wait for the destination to connect for a
// full sync.
const linkLoadTimeout = 30 * time.Second

// errLinkLoadRefused: the destination closed the link instead of loading
// what it was sent. Its later loads go through a file.
var errLinkLoadRefused = errors.New("the destination did not load the dataset sent over its master link (see its log)")

// linkLoad is one full sync of the destination over its master link.
type linkLoad struct {
	link    *masterLink
	conn    net.Conn
	rd      *resp.Reader
	started chan struct{} // closed once the FULLRESYNC is sent (or failed: err)
	err     error
	mark    []byte
	offset  int64             // the destination's offset once it has loaded
	result  chan *linkSession // the session that follows the load, or nil
	stop    func() bool       // ends the cancellation callback
	// writing is when the write under way began (a monotime stamp, 0: none), for
	// the status of a destination that takes nothing (writingSince).
	writing atomic.Int64
	// runID is the destination's run_id when the load began ("": not
	// read): a link closed by another process is no refusal (refused).
	runID string
}

// writingSince is when the write to the destination under way began (zero
// when none is): a destination that stopped reading holds it.
func (ld *linkLoad) writingSince() time.Time {
	return monotime.Time(ld.writing.Load())
}

// fullSync asks the destination for a full sync over its link (by ending
// the current session: the link attaches it again, and its PSYNC gets the
// load) and returns the load, ready for the RDB, once it has connected.
func (l *masterLink) fullSync(ctx context.Context) (*linkLoad, error) {
	want := make(chan *linkLoad, 1)
	l.mu.Lock()
	if l.loadWant != nil || l.loading {
		l.mu.Unlock()
		return nil, errors.New("a full sync of the destination is already under way")
	}
	l.loadWant = want
	old := l.sess
	if old != nil {
		l.attachAfter = time.Now().Add(2 * time.Second)
	}
	l.mu.Unlock()
	if old != nil {
		old.fail(errors.New("a full sync of the destination starts"))
	}
	giveUp := func(err error) (*linkLoad, error) {
		l.mu.Lock()
		if l.loadWant == want {
			l.loadWant = nil
			l.mu.Unlock()
			return nil, err
		}
		l.mu.Unlock()
		// Taken by a handshake meanwhile: it is in want.
		(<-want).abort()
		return nil, err
	}
	select {
	case ld := <-want:
		<-ld.started
		if ld.err != nil {
			ld.abort()
			return nil, ld.err
		}
		ld.runID = readRunID(ctx, l.acc)
		ld.stop = context.AfterFunc(ctx, func() { ld.conn.Close() })
		return ld, nil
	case <-ctx.Done():
		return giveUp(ctx.Err())
	case <-time.After(linkLoadTimeout):
		return giveUp(fmt.Errorf("the destination did not connect to its master link for a full sync within %s", linkLoadTimeout))
	}
}

// takeLoad hands conn to the full sync waiting for it, if any.
func (l *masterLink) takeLoad(conn net.Conn, rd *resp.Reader) *linkLoad {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.loadWant == nil {
		return nil
	}
	ld := &linkLoad{link: l, conn: conn, rd: rd, started: make(chan struct{}), result: make(chan *linkSession, 1)}
	l.loadWant <- ld // buffered, and sent under mu: fullSync's giveUp finds it
	l.loadWant = nil
	l.loading = true
	close(l.changed)
	l.changed = make(chan struct{})
	return ld
}

func (l *masterLink) holdAttach() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.attachAfter
}

func (l *masterLink) isLoading() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.loading
}

func (l *masterLink) setLoading(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.loading != on {
		l.loading = on
		close(l.changed)
		l.changed = make(chan struct{})
	}
}

// begin answers the destination's PSYNC with a full sync. replID and
// psyncOffset are what it asked to continue from.
func (ld *linkLoad) begin(replID string, psyncOffset int64, capaEOF bool) {
	defer close(ld.started)
	if !capaEOF {
		ld.conn.Write([]byte("-ERR the service's master link sends full syncs in the diskless format only\r\n"))
		ld.err = errors.New("the destination cannot load a full sync of unknown size (it did not send REPLCONF capa eof)")
		return
	}
	if len(replID) != 40 {
		// No history (PSYNC ?): the load starts one.
		b := make([]byte, 20)
		_, _ = rand.Read(b)
		replID = hex.EncodeToString(b)
	}
	ld.offset = max(psyncOffset, 1)
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	ld.mark = []byte(hex.EncodeToString(b))
	if _, err := fmt.Fprintf(ld.conn, "+FULLRESYNC %s %d\r\n$EOF:%s\r\n", replID, ld.offset, ld.mark); err != nil {
		ld.err = fmt.Errorf("start a full sync over the destination's master link: %w", err)
		return
	}
	ld.conn.SetDeadline(time.Time{})
}

// Write sends part of the RDB.
func (ld *linkLoad) Write(p []byte) (int, error) {
	ld.conn.SetWriteDeadline(time.Now().Add(time.Minute))
	ld.writing.Store(monotime.Stamp(time.Now()))
	n, err := ld.conn.Write(p)
	ld.writing.Store(0)
	if err != nil {
		return n, fmt.Errorf("send the dataset over the destination's master link: %w", err)
	}
	return n, nil
}

// finish ends the RDB and waits until the destination has loaded it: it
// then acknowledges its offset, and the link's session continues on the
// same connection. It returns that session.
func (ld *linkLoad) finish(ctx context.Context) (*linkSession, error) {
	if _, err := ld.Write(ld.mark); err != nil {
		ld.abort()
		return nil, err
	}
	for {
		args, _, err := readReplicaCommand(ld.rd)
		if err != nil {
			ld.abort()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if !ld.refused(ctx) {
				// Killed, or crashed: not a refusal, unless it keeps
				// happening (the kernel's OOM killer ends a load that
				// holds two datasets): then a file, one at a time.
				if n := ld.link.diedInLoads.Add(1); n >= maxDiedInLoads {
					return nil, fmt.Errorf("%w: the destination died during %d loads over its link in a row: %w", errLinkLoadRefused, n, err)
				}
				return nil, fmt.Errorf("the destination restarted while it loaded the dataset: %w", err)
			}
			return nil, fmt.Errorf("%w: %w", errLinkLoadRefused, err)
		}
		if len(args) >= 3 && bytes.EqualFold(args[0], []byte("REPLCONF")) && bytes.EqualFold(args[1], []byte("ACK")) {
			if off, err := strconv.ParseInt(string(args[2]), 10, 64); err == nil && off >= ld.offset {
				break
			}
		}
	}
	if ld.stop != nil && !ld.stop() {
		ld.abort() // cancelled just now: the connection is closed
		return nil, ctx.Err()
	}
	ld.link.diedInLoads.Store(0)
	s := newLinkSession(ld.link, ld.conn, ld.rd, ld.offset)
	ld.result <- s
	return s, nil
}

// maxDiedInLoads loads over the link in a row during which the destination
// died make its later loads go through a file.
const maxDiedInLoads = 2

// refusedWithin bounds how long refused waits for the destination to
// answer after its link closed.
const refusedWithin = 10 * time.Second

// refused says whether the destination that closed the link during the
// load is the process that began it, alive: Redis closes the link of a
// load it refuses and goes on. A destination that died (kill -9, a crash)
// and was restarted refused nothing: its next load may go over the link.
func (ld *linkLoad) refused(ctx context.Context) bool {
	if ld.runID == "" {
		return true // as before this check: not known
	}
	ctx, cancel := context.WithTimeout(ctx, refusedWithin)
	defer cancel()
	for {
		if id := readRunID(ctx, ld.link.acc); id != "" {
			return id == ld.runID
		}
		select {
		case <-ctx.Done():
			return false // not answering: not the process that refuses and goes on
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// readRunID is the run_id of the destination's server ("" when it does not
// answer within a second).
func readRunID(ctx context.Context, acc Access) string {
	c := acc.client(0)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return ""
	}
	return infoField(info, "run_id")
}

// abort ends the load: the destination drops what it loaded so far and
// keeps its previous data.
func (ld *linkLoad) abort() {
	if ld.stop != nil {
		ld.stop()
	}
	ld.conn.Close()
	select {
	case ld.result <- nil:
	default:
	}
}

// await waits for the loader's verdict: the session that follows the load,
// or nil.
func (ld *linkLoad) await(ctx context.Context) *linkSession {
	select {
	case s := <-ld.result:
		return s
	case <-ctx.Done():
		ld.conn.Close()
		return nil
	}
}

// readReplicaCommand reads what a replica sends its master: commands, and
// while it loads a full sync, a bare newline every second (so that its
// master sees it alive), which is skipped.
func readReplicaCommand(rd *resp.Reader) ([][]byte, int64, error) {
	br := rd.Buffered()
	for {
		b, err := br.Peek(1)
		if err != nil {
			return nil, 0, err
		}
		if b[0] != '\n' {
			return rd.ReadCommand()
		}
		br.Discard(1)
	}
}
