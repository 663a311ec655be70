package replication

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/acceptloop"
	"github.com/replicad/terraform-provider-redis/internal/layout"
	"github.com/replicad/terraform-provider-redis/internal/monotime"
	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// A single-server destination is a replica of the service. A plain Redis
// primary expires keys by its own clock: a key whose TTL the source extends
// or removes while the destination lags would be deleted there for good.
// A replica never expires a key itself: it hides it from readers once its
// TTL has passed and waits for its master's DEL, as a native replica does.
// So the destination's redis-server is a replica of a loopback endpoint of
// the service (the master link), and the stream's transactions reach it
// over that link, as its master's writes.
//
// What the link changes for the writer:
//   - a master gets no replies: a batch counts as applied once the replica
//     acknowledges its offset (REPLCONF GETACK after each committed batch);
//   - errors are seen through the destination's unexpected_error_replies
//     counter and the line its log gives each one;
//   - one link for every source of the destination: a writer holds it from
//     a transaction's MULTI to its EXEC.
//
// The link never sends a dataset: the destination keeps its own and
// continues (+CONTINUE). To have a replication history to continue, the
// service turns it into a replica with MULTI, REPLICAOF NO ONE, REPLICAOF
// <link>, EXEC: in between, Redis caches the server's own history as its
// master's. Loads, checkpoint reads and the service's own commands use a
// normal connection, which a writable replica (replica-read-only no)
// accepts; the application user cannot write to a destination (ACL).
// While the service is not attached, the destination is a replica of its
// own port (renderConfig), which never answers it: it expires nothing.

// linkUser is the user name the destination presents to the master link.
const linkUser = "replicad-link"

// DefaultLinkReplTimeout is the destination's repl-timeout while it is a
// replica of its link (Config.LinkReplTimeout). Redis's 60 s made it drop the link whenever the
// service sent nothing for a minute, which a source gives no reason to:
// a key of 100 MB arriving over a slow link is decoded whole before its
// first byte goes on (a load cut at each attempt, again and again), a
// paused sync, a source with a long repl-ping-replica-period. The master
// is the service, over loopback: its death closes the link, and the
// source's silences are its own watchdog's and read timeout's business.
// An hour still ends a link that a service stuck for good holds open.
const DefaultLinkReplTimeout = time.Hour

// loadingEventsEvery: a destination loading a full sync over its link
// answers its clients (from its previous data) every this many bytes
// loaded; Redis's default, 2 MB, would hold them for seconds on a slow
// link.
const loadingEventsEvery = 64 << 10

// linkErrorPoll is how often the destination's error counter is read.
const linkErrorPoll = 100 * time.Millisecond

// masterLink is the loopback master endpoint of one destination.
type masterLink struct {
	// diedInLoads counts the loads over the link in a row during which
	// the destination died (linkload.go, finish).
	diedInLoads atomic.Int32
	uid         int
	acc         Access
	log         *slog.Logger
	// counterFailures counts the failures to read the destination's
	// error counter since counterWarned (a monotime stamp), when one was logged.
	counterFailures, counterWarned atomic.Int64
	ln                             net.Listener
	secret                         string
	// replTimeout: the destination's repl-timeout while attached (see
	// DefaultLinkReplTimeout).
	replTimeout time.Duration

	// onFatal is told when the destination answered a replicated command
	// with an error: the sync stops.
	onFatal func(error)

	mu      sync.Mutex
	sess    *linkSession
	changed chan struct{} // closed and replaced whenever sess or loading changes
	// loadWant is a full sync (linkload.go) waiting for the destination's
	// next PSYNC; loading: the destination is loading one, and its
	// session starts once it has.
	loadWant chan *linkLoad
	loading  bool
	// attachAfter: run leaves the attaching to the destination until
	// then. A replica whose master closed the link connects again at
	// once, and an attach meanwhile (REPLICAOF) would cut that
	// connection, and the full sync it came for.
	attachAfter time.Time

	// pending: the connections still in their handshake, oldest first
	// (see maxPendingHandshakes); refusals counts the refused ones since
	// the last that was logged, logged once per refusalLogEvery.
	pendingMu   sync.Mutex
	pending     []net.Conn
	refusals    int
	refusalLast time.Time
}

// maxPendingHandshakes bounds the connections to a link that are not yet
// its session: the listener is on loopback, but any local process can
// connect, and each connection holds a goroutine and a buffer for up to
// the handshake's timeout. Past the bound the oldest is closed, so that a
// flood of idle connections cannot keep the destination out: its own
// connection is the newest when it arrives.
const maxPendingHandshakes = 32

// Limits of what a replica may send over its link.
const (
	linkMaxArgLen = 1 << 10
	linkMaxArgs   = 16
)

// maxLinkOffset bounds the offset a replica may continue from: offsets
// grow with every byte sent, and one near 2^63 would overflow. No real
// replica comes near it.
const maxLinkOffset = 1 << 62

// refusalLogEvery bounds the log lines of refused connections.
const refusalLogEvery = 10 * time.Second

func newMasterLink(uid int, acc Access, log *slog.Logger, replTimeout time.Duration, onFatal func(error)) (*masterLink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for destination %d's master link: %w", uid, err)
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	if replTimeout < time.Second {
		replTimeout = DefaultLinkReplTimeout
	}
	return &masterLink{uid: uid, acc: acc, log: log, ln: ln, secret: hex.EncodeToString(b), replTimeout: replTimeout, changed: make(chan struct{}), onFatal: onFatal}, nil
}

func (l *masterLink) port() int { return l.ln.Addr().(*net.TCPAddr).Port }

// run serves the link until ctx ends: it accepts the destination's
// connections and, whenever no session is up, makes the destination a
// replica of the link. At the end the destination stays a replica (of a
// link that no longer answers), so that it expires nothing.
func (l *masterLink) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.accept(ctx)
	}()
	c := l.acc.client(0)
	defer c.Close()
	backoff := newBackoff()
	for ctx.Err() == nil {
		if s := l.current(); s == nil && !l.isLoading() && time.Now().After(l.holdAttach()) {
			if err := l.attach(ctx, c); err != nil && ctx.Err() == nil {
				l.log.Warn("could not make the destination a replica of the service; retrying", "destination", l.uid, "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(backoff.next()):
				}
				continue
			}
		} else {
			backoff = newBackoff()
		}
		l.mu.Lock()
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-ch:
		case <-time.After(time.Second):
		}
	}
	l.ln.Close()
	if s := l.current(); s != nil {
		s.fail(errors.New("the destination's replication stopped"))
	}
	wg.Wait()
}

// attach makes the destination a writable replica of the link, and waits
// until it connects.
func (l *masterLink) attach(ctx context.Context, c *redis.Client) error {
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := waitReady(actx, c); err != nil {
		return err
	}
	// Writable, the destination is read-only for applications only by
	// their user's rules: a destination that just restarted gives that
	// user its start rules, which admit every write (its AOF's replay
	// needs them), until the service applies the real ones once it
	// answers. Not writable before then, or applications' writes land in
	// it.
	if err := waitAppReadOnly(actx, c); err != nil {
		return err
	}
	// A writable replica expires the keys its own clients gave a TTL (the
	// loads, which use a normal connection): not while its active expiry
	// is off. So that goes first. Its master's DELs expire keys.
	if err := c.Do(actx, "DEBUG", "SET-ACTIVE-EXPIRE", "0").Err(); err != nil {
		return fmt.Errorf("stop the destination's own expiry: %w", err)
	}
	// swapdb: a full sync from the link (linkload.go) is loaded as it
	// arrives, the previous data readable until it is complete.
	// repl-timeout: see DefaultLinkReplTimeout.
	for _, kv := range [][2]string{{"replica-read-only", "no"}, {"replica-ignore-maxmemory", "no"}, {"repl-diskless-load", "swapdb"}, {"loading-process-events-interval-bytes", strconv.Itoa(loadingEventsEvery)}, {"repl-timeout", strconv.Itoa(int(l.replTimeout.Seconds()))}, {"masteruser", linkUser}, {"masterauth", l.secret}} {
		if err := c.ConfigSet(actx, kv[0], kv[1]).Err(); err != nil {
			return fmt.Errorf("configure the destination's master link (%s): %w", kv[0], err)
		}
	}
	if err := l.replicaOfLink(actx, c); err != nil {
		return fmt.Errorf("make the destination a replica of the service: %w", err)
	}
	l.mu.Lock()
	ch := l.changed
	l.mu.Unlock()
	check := time.NewTicker(time.Second)
	defer check.Stop()
	for l.current() == nil && !l.isLoading() {
		select {
		case <-actx.Done():
			return fmt.Errorf("the destination did not connect to the service as a replica: %w", actx.Err())
		case <-ch:
			l.mu.Lock()
			ch = l.changed
			l.mu.Unlock()
		case <-check.C:
			// A destination that restarted meanwhile (its config makes
			// it a replica of port 0) never connects: attach it again.
			info, err := c.Info(actx, "replication").Result()
			if err == nil && infoInt(info, "master_port") != int64(l.port()) {
				return errors.New("the destination is no longer a replica of the service (did it restart?)")
			}
		}
	}
	return nil
}

// waitAppReadOnly polls until the destination's application user
// ("default") may not write.
func waitAppReadOnly(ctx context.Context, c *redis.Client) error {
	for {
		v, err := c.Do(ctx, "ACL", "DRYRUN", layout.AppUser, "SET", "replicad:probe", "x").Text()
		if err == nil && v != "OK" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the destination's application user to be read-only: %w (last answer: %q, %v)", ctx.Err(), v, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// replicaOfLink makes the destination a replica of the link, continuing its
// own history (MULTI, REPLICAOF NO ONE, REPLICAOF <link>, EXEC). A server
// over its maxmemory refuses every command queued in a MULTI: a destination
// the sync stopped on a source's value too big for it is in that state when
// the sync is enabled again, and the reload that follows would empty it. So
// then the limit is lifted for the transaction, and set back after, unless
// the service set another one meanwhile.
func (l *masterLink) replicaOfLink(ctx context.Context, c *redis.Client) error {
	attach := func() error {
		pipe := c.TxPipeline()
		pipe.Do(ctx, "REPLICAOF", "NO", "ONE")
		pipe.Do(ctx, "REPLICAOF", "127.0.0.1", strconv.Itoa(l.port()))
		_, err := pipe.Exec(ctx)
		return err
	}
	err := attach()
	if err == nil || !strings.HasPrefix(err.Error(), "EXECABORT") && !strings.HasPrefix(err.Error(), "OOM") {
		return err
	}
	limit, gerr := c.ConfigGet(ctx, "maxmemory").Result()
	if gerr != nil || limit["maxmemory"] == "" || limit["maxmemory"] == "0" {
		return err
	}
	if err := c.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		return fmt.Errorf("lift the memory limit of a destination over it: %w", err)
	}
	l.log.Warn("the destination is over its memory limit: lifted for its attach to the service", "destination", l.uid, "maxmemory", limit["maxmemory"])
	err = attach()
	if now, gerr := c.ConfigGet(ctx, "maxmemory").Result(); gerr == nil && now["maxmemory"] == "0" {
		if serr := c.ConfigSet(ctx, "maxmemory", limit["maxmemory"]).Err(); serr != nil && err == nil {
			err = fmt.Errorf("set the memory limit of the destination back: %w", serr)
		}
	}
	return err
}

// detachDestination makes a former destination a primary again: it
// expires keys by itself again, and refuses writes of no one.
func detachDestination(ctx context.Context, acc Access) error {
	c := acc.client(0)
	defer c.Close()
	if err := c.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		return fmt.Errorf("make the former destination a primary: %w", err)
	}
	if err := c.Do(ctx, "DEBUG", "SET-ACTIVE-EXPIRE", "1").Err(); err != nil {
		return fmt.Errorf("restore the former destination's expiry: %w", err)
	}
	// Redis's default again: as a primary it times its own replicas out.
	if err := c.ConfigSet(ctx, "repl-timeout", "60").Err(); err != nil {
		return fmt.Errorf("restore the former destination's repl-timeout: %w", err)
	}
	return c.ConfigSet(ctx, "replica-read-only", "yes").Err()
}

func (l *masterLink) accept(ctx context.Context) {
	for {
		conn, err := acceptloop.Accept(l.ln, func(err error) {
			l.log.Warn("the destination's master link: accepting a connection failed; retrying", "err", err)
		})
		if err != nil {
			return // closed
		}
		l.admit(conn)
		go func() {
			s, ld, err := l.handshake(ctx, conn)
			l.release(conn)
			if err != nil {
				conn.Close()
				if ctx.Err() == nil {
					l.refused(err)
				}
				return
			}
			if ld != nil {
				// A full sync: the session starts once the
				// destination has loaded it.
				if s = ld.await(ctx); s == nil {
					conn.Close()
					l.setLoading(false)
					return
				}
			}
			l.install(ctx, s)
		}()
	}
}

// admit records conn as pending, closing the oldest pending connection
// when there are maxPendingHandshakes already.
func (l *masterLink) admit(conn net.Conn) {
	l.pendingMu.Lock()
	defer l.pendingMu.Unlock()
	if len(l.pending) >= maxPendingHandshakes {
		l.pending[0].Close() // its handshake fails, and says so
		l.pending = l.pending[1:]
	}
	l.pending = append(l.pending, conn)
}

// release forgets conn, whose handshake is over.
func (l *masterLink) release(conn net.Conn) {
	l.pendingMu.Lock()
	defer l.pendingMu.Unlock()
	for i, c := range l.pending {
		if c == conn {
			l.pending = append(l.pending[:i:i], l.pending[i+1:]...)
			return
		}
	}
}

// refused logs a refused connection: the first, then at most one line per
// refusalLogEvery with how many there were, so that a local process
// hammering the port cannot flood the log.
func (l *masterLink) refused(err error) {
	l.pendingMu.Lock()
	l.refusals++
	n, now := l.refusals, time.Now()
	if now.Sub(l.refusalLast) < refusalLogEvery {
		l.pendingMu.Unlock()
		return
	}
	l.refusals, l.refusalLast = 0, now
	l.pendingMu.Unlock()
	l.log.Warn("refused a connection to the master link", "destination", l.uid, "refused", n, "err", err)
}

// handshake answers a replica's handshake: PING, AUTH, REPLCONF, then
// PSYNC, which it continues. A replica without a history (PSYNC ?) would
// need a dataset: it is refused, and attach gives it one to continue.
// When a full sync waits for the destination (linkload.go), its PSYNC gets
// that instead: handshake returns the load, which the loader then feeds.
func (l *masterLink) handshake(ctx context.Context, conn net.Conn) (*linkSession, *linkLoad, error) {
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(quickAckReader{conn}, 16<<10)
	rd := resp.NewReader(br)
	// A replica sends only short commands (handshake, REPLCONF ACK): a
	// stranger cannot make the link hold more than this per connection.
	rd.MaxBulkLen, rd.MaxArrayLen = linkMaxArgLen, linkMaxArgs
	authed, capaEOF := false, false
	for {
		args, _, err := rd.ReadCommand()
		if err != nil {
			return nil, nil, fmt.Errorf("read the replica's handshake: %w", err)
		}
		if len(args) == 0 {
			return nil, nil, errors.New("empty command in the replica's handshake")
		}
		name := strings.ToUpper(string(args[0]))
		reply := "+OK\r\n"
		switch {
		case name == "PING":
			reply = "+PONG\r\n"
		case name == "AUTH" && len(args) == 3:
			if string(args[1]) != linkUser || subtle.ConstantTimeCompare(args[2], []byte(l.secret)) != 1 {
				conn.Write([]byte("-WRONGPASS invalid username-password pair\r\n"))
				return nil, nil, errors.New("wrong credentials")
			}
			authed = true
		case !authed:
			conn.Write([]byte("-NOAUTH Authentication required.\r\n"))
			return nil, nil, fmt.Errorf("%s before AUTH", name)
		case name == "REPLCONF":
			for i := 1; i+1 < len(args); i += 2 {
				if bytes.EqualFold(args[i], []byte("capa")) && bytes.EqualFold(args[i+1], []byte("eof")) {
					capaEOF = true
				}
			}
		case name == "PSYNC" && len(args) == 3:
			off, err := strconv.ParseInt(string(args[2]), 10, 64)
			if err == nil && off > maxLinkOffset {
				conn.Write([]byte("-ERR replication offset out of range\r\n"))
				return nil, nil, fmt.Errorf("PSYNC offset %d is out of range", off)
			}
			if ld := l.takeLoad(conn, rd); ld != nil {
				ld.begin(string(args[1]), off, capaEOF)
				return nil, ld, nil
			}
			if string(args[1]) == "?" || err != nil || off < 1 {
				conn.Write([]byte("-ERR the service's master link continues a replica's own history only\r\n"))
				return nil, nil, errors.New("the destination has no replication history to continue")
			}
			// No replication id: the replica keeps its own, and its
			// own replicas (a chain) continue too.
			if _, err := conn.Write([]byte("+CONTINUE\r\n")); err != nil {
				return nil, nil, err
			}
			conn.SetDeadline(time.Time{})
			return newLinkSession(l, conn, rd, off-1), nil, nil
		default:
			conn.Write([]byte("-ERR unexpected command in a replica's handshake\r\n"))
			return nil, nil, fmt.Errorf("unexpected %s in the handshake", name)
		}
		if _, err := conn.Write([]byte(reply)); err != nil {
			return nil, nil, err
		}
	}
}

func newLinkSession(l *masterLink, conn net.Conn, rd *resp.Reader, base int64) *linkSession {
	return &linkSession{link: l, conn: conn, rd: rd, bw: bufio.NewWriterSize(conn, 64<<10), base: base,
		sem: make(chan struct{}, 1), ackCh: make(chan struct{}), done: make(chan struct{})}
}

// install makes s the link's session, ending the previous one.
func (l *masterLink) install(ctx context.Context, s *linkSession) {
	c := l.acc.client(0)
	base, err := errorReplies(ctx, c)
	if err != nil {
		c.Close()
		defer l.setLoading(false)
		defer s.conn.Close()
		// Logged once in a while: a destination that refuses the
		// service's connections (maxclients reached) reconnects its
		// link again and again.
		if n := l.counterFailures.Add(1); time.Since(monotime.Time(l.counterWarned.Load())) > 10*time.Second {
			l.counterWarned.Store(monotime.Stamp(time.Now()))
			l.counterFailures.Store(0)
			l.log.Warn("could not read the destination's error counter; its master link is closed for it to connect again", "destination", l.uid, "err", err, "times", n)
		}
		// And closed after a while, so that it does not connect again
		// at once.
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
		return
	}
	l.mu.Lock()
	old := l.sess
	l.sess = s
	l.loading = false
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
	if old != nil {
		old.fail(errors.New("the destination connected again"))
	}
	l.log.Info("the destination is a replica of the service", "destination", l.uid, "offset", s.base)
	go s.readAcks()
	go func() {
		defer c.Close()
		s.watchErrors(ctx, c, base)
	}()
	go func() {
		<-s.done
		l.log.Info("the destination's master link session ended", "destination", l.uid, "reason", s.failed())
		l.mu.Lock()
		if l.sess == s {
			l.sess = nil
			close(l.changed)
			l.changed = make(chan struct{})
		}
		l.mu.Unlock()
	}()
}

// current is the live session, or nil.
func (l *masterLink) current() *linkSession {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sess != nil && l.sess.failed() == nil {
		return l.sess
	}
	return nil
}

// watch is the live session (nil: none) and a channel closed at the next
// change of session.
func (l *masterLink) watch() (*linkSession, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.sess
	if s != nil && s.failed() != nil {
		s = nil
	}
	return s, l.changed
}

// session waits for a live session.
func (l *masterLink) session(ctx context.Context) (*linkSession, error) {
	for {
		l.mu.Lock()
		s, ch := l.sess, l.changed
		l.mu.Unlock()
		if s != nil && s.failed() == nil {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the destination's master link: %w", ctx.Err())
		case <-ch:
		case <-time.After(time.Second):
		}
	}
}

// barrier waits until everything committed over the link so far is
// applied: a session that resumes from the checkpoint it reads next must
// not find a batch of an earlier session still on its way. A session that
// ended has nothing on its way: the destination applied what it received,
// or lost it with the rest of what a restart did not keep. It returns the
// session waited on, which the checkpoint read next belongs to.
func (l *masterLink) barrier(ctx context.Context) (*linkSession, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		s, err := l.session(ctx)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		end := s.committed
		s.mu.Unlock()
		err = s.waitAck(ctx, end)
		if err == nil {
			return s, nil
		}
		if errors.Is(err, errFatal) || ctx.Err() != nil {
			return nil, err
		}
	}
}

// linkSession is one connection of the destination to the link.
type linkSession struct {
	link *masterLink
	conn net.Conn
	rd   *resp.Reader
	bw   *bufio.Writer
	base int64 // the replica's offset when the session started

	// sem is held by the writer sending, from a transaction's MULTI to
	// its EXEC; sent is guarded by it.
	sem  chan struct{}
	sent int64
	// holder is the source whose writer holds sem, and since when (for
	// the status of the writers waiting for it).
	holdMu    sync.Mutex
	holder    string
	heldSince time.Time
	// lastExecutes: the commands of the EXEC sent last, which the next
	// writer's first batch waits behind.
	lastExecutes atomic.Int64

	mu        sync.Mutex
	acked     int64 // what the replica acknowledged applying
	committed int64 // the end of the last batch sent with a GETACK
	ackCh     chan struct{}
	err       error
	done      chan struct{}
	// recent are the last batches committed, to name the one the
	// destination failed; next is where the next one goes.
	recent [linkRecent]linkBatch
	next   int
}

// linkRecent batches are remembered, and the first linkKeepBytes of each.
const (
	linkRecent = 64
	// Enough for the first commands' names and keys: the copy is made
	// for every batch, on the stream's path.
	linkKeepBytes = 1 << 10
)

type linkBatch struct {
	end    int64
	source string
	size   int
	sent   []byte // its first linkKeepBytes
}

// remember records a committed batch (with mu held).
func (s *linkSession) remember(end int64, source string, b []byte) {
	e := &s.recent[s.next%linkRecent]
	s.next++
	e.end, e.source, e.size = end, source, len(b)
	// A big batch keeps its beginning: enough to name its first commands.
	e.sent = append(e.sent[:0], b[:min(len(b), linkKeepBytes)]...)
}

// suspects describes the batches committed past offset after: one of them
// holds the command the destination failed.
func (s *linkSession) suspects(after int64) (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var parts []string
	n := 0
	for i := max(0, s.next-linkRecent); i < s.next; i++ {
		e := &s.recent[i%linkRecent]
		if e.end <= after {
			continue
		}
		n++
		if len(parts) < 3 {
			what := describeBatch(e.sent)
			if what == "" {
				what = "the service's checkpoint only"
			}
			if e.size > len(e.sent) {
				what += fmt.Sprintf(" (a batch of %d bytes)", e.size)
			}
			parts = append(parts, fmt.Sprintf("source %s: %s", e.source, what))
		}
	}
	return strings.Join(parts, "; "), n
}

// describeBatch names the source's commands in a batch's transaction,
// without the service's own (MULTI, SELECT, the checkpoint, EXEC). b may
// be the beginning of a batch only: a command cut short is named by what
// of it b holds.
func describeBatch(b []byte) string {
	var names []string
	more := 0
	for len(b) > 0 {
		args, count, rest, ok := commandHead(b, 2)
		if len(args) == 0 {
			break
		}
		own := false
		switch strings.ToUpper(string(args[0])) {
		case "MULTI", "EXEC", "SELECT":
			own = true
		case "HSET":
			own = len(args) > 1 && string(args[1]) == checkpointKey
		}
		if !own {
			if len(names) < 3 {
				if count > len(args) {
					args = append(args, nil) // describe says "..." for the rest
				}
				names = append(names, describe(args))
			} else {
				more++
			}
		}
		if !ok {
			break
		}
		b = rest
	}
	out := strings.Join(names, ", ")
	if more > 0 {
		out += fmt.Sprintf(" and %d more", more)
	}
	return out
}

// commandHead parses the RESP command at the start of b and returns its
// first n arguments (fewer when b ends first), how many it has, what
// follows the command, and whether b held the whole command.
func commandHead(b []byte, n int) (args [][]byte, count int, rest []byte, ok bool) {
	line := func() ([]byte, bool) {
		i := bytes.Index(b, []byte("\r\n"))
		if i < 0 {
			return nil, false
		}
		l := b[:i]
		b = b[i+2:]
		return l, true
	}
	h, found := line()
	if !found || len(h) < 2 || h[0] != '*' {
		return nil, 0, nil, false
	}
	count, err := strconv.Atoi(string(h[1:]))
	if err != nil || count < 1 {
		return nil, 0, nil, false
	}
	for i := 0; i < count; i++ {
		h, found := line()
		if !found || len(h) < 2 || h[0] != '$' {
			return args, count, nil, false
		}
		size, err := strconv.Atoi(string(h[1:]))
		if err != nil || size < 0 {
			return args, count, nil, false
		}
		if len(b) < size+2 {
			if i < n {
				args = append(args, b[:min(len(b), size)])
			}
			return args, count, nil, false
		}
		if i < n {
			args = append(args, b[:size])
		}
		b = b[size+2:]
	}
	return args, count, b, true
}

var getAck = resp.AppendCommandStrings(nil, "REPLCONF", "GETACK", "*")

func (s *linkSession) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// fail ends the session: the destination applies what it received and
// connects again, with its offset.
func (s *linkSession) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
		close(s.done)
	}
	s.mu.Unlock()
	s.conn.Close()
}

func (s *linkSession) lock(ctx context.Context, source string) error {
	select {
	case s.sem <- struct{}{}:
		s.held(source)
		return nil
	case <-s.done:
		return s.failed()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tryLock is lock when sem is free, without waiting.
func (s *linkSession) tryLock(source string) bool {
	select {
	case s.sem <- struct{}{}:
		s.held(source)
		return true
	default:
		return false
	}
}

func (s *linkSession) held(source string) {
	s.holdMu.Lock()
	s.holder, s.heldSince = source, time.Now()
	s.holdMu.Unlock()
}

func (s *linkSession) unlock() {
	s.holdMu.Lock()
	s.holder = ""
	s.holdMu.Unlock()
	<-s.sem
}

// heldBy is the source whose writer holds the link, and since when ("" if
// none).
func (s *linkSession) heldBy() (string, time.Time) {
	s.holdMu.Lock()
	defer s.holdMu.Unlock()
	return s.holder, s.heldSince
}

// write sends b (the holder of sem only). commit: b ends a transaction,
// and a GETACK follows it; end is then the offset to wait for. A write
// cut short would leave part of a command in the stream: it ends the
// session.
func (s *linkSession) write(ctx context.Context, b []byte, commit bool, source string) (end int64, err error) {
	s.conn.SetWriteDeadline(time.Now().Add(2 * time.Minute))
	// A writer stopped mid-write (its syncer moves to another node, say)
	// lets the write end if it can within a second: a write cut short
	// leaves part of a command in the stream, which ends the session of
	// every source of the destination.
	stop := context.AfterFunc(ctx, func() { s.conn.SetWriteDeadline(time.Now().Add(time.Second)) })
	defer stop()
	_, err = s.bw.Write(b)
	s.sent += int64(len(b))
	end = s.sent
	if commit && err == nil {
		_, err = s.bw.Write(getAck)
		s.sent += int64(len(getAck))
	}
	if err == nil {
		err = s.bw.Flush()
	}
	if err != nil {
		err = fmt.Errorf("write to the destination's master link: %w", err)
		s.fail(err)
		return 0, err
	}
	if commit {
		s.mu.Lock()
		s.committed = end
		s.remember(end, source, b)
		s.mu.Unlock()
	}
	return end, nil
}

// discard ends a transaction its writer abandons, so that the next
// writer's MULTI does not nest in it.
func (s *linkSession) discard() {
	s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	b := resp.AppendCommandStrings(nil, "DISCARD")
	_, err := s.bw.Write(b)
	if err == nil {
		err = s.bw.Flush()
	}
	s.sent += int64(len(b))
	if err != nil {
		s.fail(fmt.Errorf("discard an abandoned transaction: %w", err))
	}
}

// waitAck waits until the replica acknowledged applying up to end.
func (s *linkSession) waitAck(ctx context.Context, end int64) error {
	for {
		s.mu.Lock()
		acked, ch, err := s.acked, s.ackCh, s.err
		s.mu.Unlock()
		if acked >= end {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-ch:
		case <-s.done:
			// The session ended (the destination died, or connected
			// again): no ACK will come on it. Return its error now, not
			// when the watchdog finds the writer stuck.
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// readAcks reads the replica's REPLCONF ACKs until the session ends.
func (s *linkSession) readAcks() {
	for {
		args, _, err := readReplicaCommand(s.rd)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.fail(fmt.Errorf("the destination's master link: %w", err))
			}
			return
		}
		if len(args) < 3 || !bytes.EqualFold(args[0], []byte("REPLCONF")) || !bytes.EqualFold(args[1], []byte("ACK")) {
			continue
		}
		off, err := strconv.ParseInt(string(args[2]), 10, 64)
		if err != nil {
			continue
		}
		s.mu.Lock()
		if off-s.base > s.acked {
			s.acked = off - s.base
			close(s.ackCh)
			s.ackCh = make(chan struct{})
		}
		s.mu.Unlock()
	}
}

// watchErrors ends the session with a fatal error when the destination
// answers a replicated command with an error: a master gets no replies,
// but the replica counts them and logs each one.
func (s *linkSession) watchErrors(ctx context.Context, c *redis.Client, base int64) {
	t := time.NewTicker(linkErrorPoll)
	defer t.Stop()
	var checked int64 // acknowledged when the counter was last read
	for {
		select {
		case <-s.done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		acked := s.acked
		s.mu.Unlock()
		info, err := c.Info(ctx, "stats", "persistence").Result()
		if err != nil {
			continue
		}
		if strings.Contains(info, "aof_last_write_status:err") {
			// A replica applies its master's writes even when it
			// cannot log them (replica-ignore-disk-write-errors: else
			// it would crash): say it, as a primary's MISCONF would.
			e := fatal("MISCONF the destination cannot write its AOF (is its disk full?): the writes it receives would not survive a restart; the sync stops")
			s.link.log.Error("the destination cannot write its AOF", "destination", s.link.uid)
			if s.link.onFatal != nil {
				s.link.onFatal(e)
			}
			s.fail(e)
			return
		}
		if n := infoInt(info, "unexpected_error_replies"); n <= base {
			checked = acked
			continue
		}
		msg := lastLinkError(s.link.acc.LogFile)
		if which, k := s.suspects(checked); k == 1 {
			msg += " in " + which
		} else if k > 1 {
			msg += fmt.Sprintf(" in one of %d batches (%s)", k, which)
		}
		var e error
		if strings.Contains(msg, "OOM ") {
			e = classifyOOM(ctx, s.link.acc, &destOOMError{msg: msg})
		} else {
			e = fatal("the destination failed a replicated command: %s", msg)
		}
		if s.link.onFatal != nil {
			s.link.onFatal(e)
		}
		s.link.log.Error("the destination failed a replicated command", "destination", s.link.uid, "error", msg)
		// The destination connects again and stays a replica, expiring
		// nothing, while the sync is stopped.
		s.fail(e)
		return
	}
}

// errorReplies reads the destination's count of errors it answered its
// master (or its replicas).
func errorReplies(ctx context.Context, c *redis.Client) (int64, error) {
	info, err := c.Info(ctx, "stats").Result()
	if err != nil {
		return 0, err
	}
	return infoInt(info, "unexpected_error_replies"), nil
}

// lastLinkError is the error the destination last logged answering its
// master, with the command that got it.
func lastLinkError(logFile string) string {
	const marker = "This replica is sending an error to its master: "
	unknown := "an error (see the destination's log)"
	if logFile == "" {
		return unknown
	}
	f, err := os.Open(logFile)
	if err != nil {
		return unknown
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 256<<10 {
		f.Seek(st.Size()-256<<10, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	line := func(end int) (string, int) {
		i := bytes.LastIndex(b[:end], []byte(marker))
		if i < 0 {
			return "", -1
		}
		l := b[i+len(marker):]
		if j := bytes.IndexByte(l, '\n'); j >= 0 {
			l = l[:j]
		}
		return strings.TrimSpace(string(l)), i
	}
	last, i := line(len(b))
	if i < 0 {
		return unknown
	}
	// A command refused at queue time makes EXEC fail too: the cause is
	// the line before. (An EXEC refused by itself, out of memory say,
	// names its cause: "EXECABORT Transaction discarded because of: OOM
	// ..."; the line before is then an older, unrelated error.)
	if strings.Contains(last, "EXECABORT") && strings.Contains(last, "previous errors") {
		if cause, j := line(i); j >= 0 {
			return cause + " (the transaction was discarded)"
		}
	}
	return last
}

// quickAckReader acknowledges at once what it reads. A replica's socket to
// its master has Nagle's algorithm on: its next ACK waits until the
// previous one is acknowledged, which Linux delays up to 40 ms while the
// link has nothing to send back, so a writer waiting for its batch's ACK
// would wait that long. TCP_QUICKACK does not stay set: it is set before
// each read.
type quickAckReader struct{ c net.Conn }

func (q quickAckReader) Read(p []byte) (int, error) {
	setQuickAck(q.c)
	return q.c.Read(p)
}
