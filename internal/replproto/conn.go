// Package replproto implements the replica side of the Redis replication
// protocol: the handshake (PING, AUTH, REPLCONF, PSYNC), the RDB transfer in
// both its length-prefixed and diskless "$EOF:<mark>" forms, and the command
// stream with its replication offsets and acknowledgements.
//
// Typical use:
//
//	c, err := replproto.Dial(ctx, opts)
//	defer c.Close()
//	sync, err := c.Handshake(ctx, lastReplID, lastAppliedOffset)
//	if sync.Full {
//		rdb, err := c.RDB(ctx)   // load rdb (an io.Reader, or rdb.Bufio()), then
//		err = rdb.Close()        // verify it was consumed entirely
//	}
//	for {
//		cmd, err := c.ReadCommand(ctx) // cmd.Args valid until the next call
//		apply(cmd.Args)
//		c.SetAppliedOffset(cmd.Offset) // what acks report; may lag, from any goroutine
//	}
//
// # Offsets
//
// The replication offset counts the bytes of the command stream, as the
// source counts them in master_repl_offset. After +FULLRESYNC <id> <off> the
// offset is off (the RDB describes the dataset at that offset); after
// +CONTINUE it is the offset passed to Handshake. Every Command carries the
// offset just after its last byte, so after applying it the caller has
// applied everything up to Command.Offset, and that is the value to persist
// and to pass to Handshake when reconnecting.
//
// # What ReadCommand returns
//
// Every command of the stream except REPLCONF is returned, including PING
// (sent by the source every repl-ping-replica-period), SELECT, MULTI and
// EXEC: they all advance the offset and the caller decides what to do with
// them. REPLCONF commands (in practice "REPLCONF GETACK *") are handled
// internally: GETACK is answered with REPLCONF ACK, and their bytes are
// included in the Offset of the next command returned (and in Offset()).
//
// # Acknowledgements
//
// The offset acknowledged to the source is the applied offset reported by
// the caller (SetAppliedOffset, or SendAck which also records it), never
// merely what was received: the source uses these acks for WAIT and
// min-replicas-to-write, which promise the data reached the replica. A GETACK
// is answered with the applied offset; when the caller has applied
// everything returned so far, the REPLCONF commands read since then (the
// GETACK itself included, as Redis counts it) are no-ops that count as
// applied, so the ack equals the source's master_repl_offset.
//
// Once the stream has started, the Conn acknowledges on its own every
// Options.AckInterval (1 s, like Redis replicas), because the source drops a
// replica that does not ack within repl-timeout (60 s by default), and a
// source doing diskless sync does not start the command stream until it
// gets an ACK after it has reaped its RDB child (which may be after the ACK
// the Conn sends as soon as the payload is received, so the first periodic
// acks come after 100, 200, 400 and 800 ms). The caller may also call
// SendAck, e.g. right after applying a batch.
//
// # Errors
//
// All errors are *Error, classified by Kind (ErrAuth, ErrConn, ErrSource,
// ErrTLS, ErrProtocol, ErrState); see IsRetryable. After an I/O or protocol
// error (including a cancelled context) the Conn is unusable and its socket
// already closed: dial again, passing the last applied offset to Handshake.
// Passwords never appear in errors or logs.
package replproto

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/monotime"
	"github.com/replicad/terraform-provider-redis/internal/replcompress"
	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// Defaults for zero Options fields.
const (
	DefaultDialTimeout = 10 * time.Second
	// DefaultReadTimeout must comfortably exceed the source's
	// repl-ping-replica-period (10 s by default), the longest a healthy
	// link stays silent; it matches Redis's own repl-timeout.
	DefaultReadTimeout = 60 * time.Second
	// DefaultAckInterval is how often Redis replicas acknowledge.
	DefaultAckInterval = time.Second
)

// readBufferSize is the size of the connection's read buffer: large enough
// that a typical command is parsed without a system call, and that RDB
// bytes are moved in big chunks.
const readBufferSize = 64 << 10

// Codecs a source may compress a session with (see replcompress).
const (
	CodecZstd    = replcompress.Zstd
	CodecDeflate = replcompress.Deflate
)

// Options configure a connection to the source.
type Options struct {
	Addr               string      // host:port
	Username, Password string      // AUTH (username may be empty → AUTH <password>); no AUTH when both empty
	TLSConfig          *tls.Config // nil = plain TCP
	ListeningPort      int         // announced with REPLCONF listening-port (0 is fine)
	// DialTimeout bounds the TCP connect plus the TLS handshake.
	DialTimeout time.Duration
	// ReadTimeout is how long a read may wait for data, re-armed at every
	// read (so a link that keeps receiving PINGs or keepalive newlines never
	// times out). It also bounds each write.
	ReadTimeout time.Duration
	// AckInterval is the period of the automatic REPLCONF ACKs sent once
	// the command stream has started (0 = DefaultAckInterval). Negative
	// disables them: the caller must then call SendAck often enough to
	// stay within the source's repl-timeout.
	AckInterval time.Duration
	// Compression (1 to 6) asks the source to compress what it sends, right
	// after AUTH. Only a redis-replicad replication endpoint can; any other
	// source refuses and the session goes on uncompressed (see Compressed).
	// The codec is zstd when the source knows it, DEFLATE otherwise.
	Compression int
	// NoZstd does not offer zstd: the source compresses with DEFLATE, as
	// an instance that predates zstd asks it to (tests use it).
	NoZstd bool
	// AskLineage asks a redis-replicad source, during the handshake, which
	// databases it replicates from, itself included (see Lineage); any
	// other source refuses, and the session goes on.
	AskLineage bool
	// OnLineage, when set, is told the lineage before PSYNC (nil: the
	// source did not answer); an error ends the handshake with it, before
	// the source starts a sync for nothing.
	OnLineage func(lineage []string) error
	// MaxCommandBytes, when positive, bounds one command of the stream
	// (its arguments added up): a bigger one ends the session with an
	// error that wraps resp.ErrCommandTooBig, before its bytes are held.
	// A compressed stream can otherwise make the destination hold
	// gigabytes from a few kilobytes on the wire.
	MaxCommandBytes int64
	Logger          *slog.Logger // nil = discard
}

// Limits of the replies read during the handshake. A source answers each
// step with a short line (the lineage has its own limits, see
// readLineageReply); after REPLICAD.COMPRESS the replies come through the
// decompressor, where a few bytes on the wire can stand for a reply of
// any size, so the reader's stream defaults would not bound anything.
const (
	handshakeMaxBulk  = 64 << 10
	handshakeMaxArray = 64
	handshakeMaxDepth = 2
)

// replyLimits sets the reader's limits for the handshake (true) or for the
// stream that follows it.
func (c *Conn) replyLimits(handshake bool) {
	if handshake {
		c.rd.MaxBulkLen, c.rd.MaxArrayLen, c.rd.MaxDepth, c.rd.MaxCommandBytes = handshakeMaxBulk, handshakeMaxArray, handshakeMaxDepth, 0
		return
	}
	c.rd.MaxBulkLen, c.rd.MaxArrayLen, c.rd.MaxDepth = resp.DefaultMaxBulkLen, resp.DefaultMaxArrayLen, resp.DefaultMaxDepth
	c.rd.MaxCommandBytes = c.opts.MaxCommandBytes
	if c.opts.MaxCommandBytes > 0 {
		// A client may send a command of any number of arguments up to
		// Redis's own bound, and the source propagates it as it came (an
		// HSET of a million fields): the byte bound, which counts every
		// argument, is what holds the memory of one command.
		c.rd.MaxArrayLen = maxStreamArgs
	}
}

// maxStreamArgs is Redis's own bound on the arguments of one command
// (a multibulk length past INT_MAX is refused).
const maxStreamArgs = math.MaxInt32

type connState int

const (
	stateNew    connState = iota // connected, no handshake yet
	stateRDB                     // +FULLRESYNC received, RDB payload next
	stateStream                  // command stream
	stateBroken                  // an error made the stream position unknown
)

// Conn is a replication link to a source, as seen by a replica.
//
// ReadCommand, Handshake and RDB must be called from one goroutine (the
// reader). SendAck, SetAppliedOffset, Offset and Close may be called from any
// goroutine.
type Conn struct {
	opts Options
	log  *slog.Logger

	dc *deadlineConn // the TCP connection, with per-read deadlines
	nc net.Conn      // dc, or a TLS client over it
	br *bufio.Reader
	rd *resp.Reader

	// Reader-goroutine state.
	// idle, when set, runs when ReadCommand consumed commands it handles
	// itself and is about to wait for the network (see OnIdle).
	idle       func()
	state      connState
	err        error // sticky error once state is stateBroken
	replID     string
	compressed string   // the codec the source compresses with, "" for none
	lineage    []string // the source's answer to LineageCommand

	// Offsets, read from other goroutines.
	offset  atomic.Int64 // bytes of the stream consumed so far
	applied atomic.Int64 // highest offset the caller reported as applied
	// The ack logic needs these two consistently, hence the mutex.
	posMu    sync.Mutex
	returned int64 // offset after the last command returned by ReadCommand
	noopEnd  int64 // end of the REPLCONF/empty commands consumed since then

	ackerStarted bool          // reader-goroutine state
	done         chan struct{} // closed by Close: stops the acker
	closeCause   atomic.Pointer[Error]

	wmu  sync.Mutex // serializes writes: acks come from the reader and from the caller
	wbuf []byte     // guarded by wmu

	closed    atomic.Bool
	closeOnce sync.Once

	// noInitialAck disables the ACK sent after the RDB; tests use it to
	// show that a diskless source really waits for it.
	noInitialAck bool
}

// Dial connects to the source (and performs the TLS handshake when
// TLSConfig is set). The returned Conn is ready for Handshake.
func Dial(ctx context.Context, o Options) (*Conn, error) {
	o = o.withDefaults()
	dctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	d := net.Dialer{KeepAlive: 15 * time.Second}
	raw, err := d.DialContext(dctx, "tcp", o.Addr)
	if err != nil {
		return nil, &Error{Op: "dial", Kind: ErrConn, Err: err}
	}
	dc := &deadlineConn{Conn: raw, timeout: o.ReadTimeout}
	var nc net.Conn = dc
	if o.TLSConfig != nil {
		cfg := o.TLSConfig.Clone()
		if cfg.ServerName == "" {
			// Verify the certificate against the host we dialed, as any
			// TLS client would; tls.Client does not infer it.
			host, _, _ := net.SplitHostPort(o.Addr)
			cfg.ServerName = host
		}
		tc := tls.Client(dc, cfg)
		dc.ctx = dctx
		err := tc.HandshakeContext(dctx)
		dc.ctx = nil
		if err != nil {
			raw.Close()
			e := tlsError(err)
			if e.Kind == ErrConn && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil && dc.read.Load() == 0 {
				e.Err = errors.Join(ErrNoTLSAnswer, e.Err)
			}
			return nil, e
		}
		nc = tc
	}
	c := newConn(o, dc, nc)
	c.log.Debug("connected to source", "tls", o.TLSConfig != nil)
	return c, nil
}

func (o Options) withDefaults() Options {
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.AckInterval == 0 {
		o.AckInterval = DefaultAckInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// newConn wraps an established connection: nc is dc, or TLS over dc.
func newConn(o Options, dc *deadlineConn, nc net.Conn) *Conn {
	br := bufio.NewReaderSize(boundaryReader{peerReader{nc, &dc.peerClosed}, &dc.atBoundary}, readBufferSize)
	c := &Conn{
		opts: o,
		log:  o.Logger.With("source", o.Addr),
		dc:   dc,
		nc:   nc,
		br:   br,
		rd:   resp.NewReader(br),
		done: make(chan struct{}),
	}
	c.replyLimits(true)
	return c
}

// Compressed reports whether the source agreed to compress the session.
func (c *Conn) Compressed() bool { return c.compressed != "" }

// Done is closed once the connection is closed: by Close, or by the acker
// when an ACK cannot be sent (the source closed it, say).
func (c *Conn) Done() <-chan struct{} { return c.done }

// ClosedByPeer says whether a read or a write met the source closing the
// connection (EOF, reset, broken pipe). An error of the session that is not from the source (the
// destination closing its end, say) leaves it false.
func (c *Conn) ClosedByPeer() bool { return c.dc.peerClosed.Load() }

// Codec is the codec the source compresses the session with (CodecZstd or
// CodecDeflate), "" when it does not compress.
func (c *Conn) Codec() string { return c.compressed }

// WireBytes is the number of bytes received on the connection so far, as
// they crossed the network (compressed, and with TLS framing when TLS is on).
func (c *Conn) WireBytes() int64 { return c.dc.read.Load() }

// ReplID returns the source's replication ID, known after Handshake.
func (c *Conn) ReplID() string { return c.replID }

// Offset returns the replication offset of the stream consumed so far,
// including REPLCONF commands handled internally. It can be called from any
// goroutine.
func (c *Conn) Offset() int64 { return c.offset.Load() }

// SetAppliedOffset records that the stream has been applied up to offset;
// it is what the Conn acknowledges when the source asks with GETACK. It only
// moves forward, and can be called from any goroutine.
func (c *Conn) SetAppliedOffset(offset int64) {
	for {
		cur := c.applied.Load()
		if offset <= cur || c.applied.CompareAndSwap(cur, offset) {
			return
		}
	}
}

// AppliedOffset returns the highest offset reported as applied.
func (c *Conn) AppliedOffset() int64 { return c.applied.Load() }

// SendAck sends REPLCONF ACK <offset> and records offset as applied (see
// SetAppliedOffset). Safe to call concurrently with ReadCommand. It is bounded
// by the read timeout rather than a context: an ack is small and a blocked
// write means the link is dead.
func (c *Conn) SendAck(offset int64) error {
	c.SetAppliedOffset(offset)
	return c.sendAck(context.Background(), offset)
}

func (c *Conn) sendAck(ctx context.Context, offset int64) error {
	var num [20]byte
	return c.writeCommand(ctx, "ACK", []byte("REPLCONF"), []byte("ACK"), strconv.AppendInt(num[:0], offset, 10))
}

// ackOffset is the offset to report to a GETACK: what the caller applied,
// extended over the REPLCONF commands consumed internally when the caller is
// caught up with everything ReadCommand returned (those commands have no
// effect to apply).
//
// It may run in the acker goroutine while the reader moves on, hence the
// snapshot under posMu: reading the offsets one by one could combine a new
// no-op end with an old returned offset and acknowledge an unapplied
// command. The applied offset may be loaded after the snapshot: it only
// grows, and applying past the snapshot's returned offset keeps the
// snapshot's no-op range valid.
func (c *Conn) ackOffset() int64 {
	c.posMu.Lock()
	returned, noopEnd := c.returned, c.noopEnd
	c.posMu.Unlock()
	applied := c.applied.Load()
	if applied >= returned {
		return max(applied, noopEnd)
	}
	return applied
}

// startStream is called when the command stream begins (after the RDB, or
// on +CONTINUE): from then on the source expects periodic acks.
func (c *Conn) startStream() {
	c.state = stateStream
	if c.opts.AckInterval > 0 && !c.ackerStarted {
		c.ackerStarted = true
		go c.ackLoop()
	}
}

// ackLoop acknowledges the applied offset periodically, like the replica
// cron of Redis. The first acks come quickly: a diskless source only starts
// the stream on an ACK received after it reaped its RDB child.
func (c *Conn) ackLoop() {
	wait := min(100*time.Millisecond, c.opts.AckInterval)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-timer.C:
		}
		if err := c.sendAck(context.Background(), c.ackOffset()); err != nil {
			if c.closed.Load() {
				return
			}
			// A failed write leaves the link unusable: close it, so the
			// reader stops too, and let it report why.
			var e *Error
			if errors.As(err, &e) {
				c.closeCause.Store(e)
			}
			c.log.Warn("periodic ACK failed; closing the connection", "err", err)
			_ = c.Close()
			return
		}
		wait = min(wait*2, c.opts.AckInterval)
		timer.Reset(wait)
	}
}

// Close closes the connection. A ReadCommand blocked in another goroutine
// returns with an error.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		close(c.done)
		err = c.nc.Close()
	})
	return err
}

// writeCommand sends one command, serialized with other writers.
func (c *Conn) writeCommand(ctx context.Context, op string, args ...[]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed.Load() {
		return &Error{Op: op, Kind: ErrConn, Err: net.ErrClosed}
	}
	c.wbuf = resp.AppendCommand(c.wbuf[:0], args...)
	if err := c.write(ctx, c.wbuf); err != nil {
		return ioError(op, err)
	}
	return nil
}

// write writes b with a deadline from the read timeout and ctx, and aborts
// when ctx is cancelled. Caller holds wmu.
func (c *Conn) write(ctx context.Context, b []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_ = c.nc.SetWriteDeadline(deadlineFor(ctx, c.opts.ReadTimeout))
	if ctx.Done() == nil {
		_, err := c.nc.Write(b)
		return err
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = c.dc.Conn.SetWriteDeadline(aLongTimeAgo)
		close(fired)
	})
	_, err := c.nc.Write(b)
	if !stop() {
		<-fired
	}
	return ctxError(ctx, err)
}

// fail records a stream-breaking error: the position in the stream is lost,
// so every later call returns the same error. The socket is closed at once,
// which also stops the acker: nothing useful can be sent on it any more.
func (c *Conn) fail(err *Error) error {
	if c.closed.Load() && errors.Is(err, ErrConn) {
		if cause := c.closeCause.Load(); cause != nil {
			err = cause
		} else {
			err.Err = net.ErrClosed
		}
	}
	c.state = stateBroken
	c.err = err
	_ = c.Close()
	return err
}

// failErr is fail for errors of unknown type.
func (c *Conn) failErr(err error) error {
	var e *Error
	if !errors.As(err, &e) {
		e = ioError("stream", err)
	}
	return c.fail(e)
}

// clearReadContext ends the effect of the context a reading method stored
// in c.dc.ctx (only the reader goroutine reads, so a plain field suffices).
func (c *Conn) clearReadContext() { c.dc.ctx = nil }

var aLongTimeAgo = time.Unix(1, 0)

func deadlineFor(ctx context.Context, timeout time.Duration) time.Time {
	d := time.Now().Add(timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	return d
}

// deadlineConn re-arms the read deadline before the reads of the socket,
// so the timeout measures silence rather than the duration of a call
// (reading a multi-gigabyte RDB can take longer than any fixed timeout).
// It sits under TLS, so TLS reads are covered too. Reads also stop when the
// context set by the reader is cancelled.
//
// A stream is read in many small reads: the deadline is moved at most once
// per rearmEvery (so silence is detected after timeout-rearmEvery to
// timeout), and the cancellation callback is registered once per context,
// not per read.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
	ctx     context.Context // set by the reader goroutine around its reads
	read    atomic.Int64    // bytes received on the wire
	// When the read under way began, 0 when none is (monotime stamps), and when
	// the last read that waited for the network ended (see CaughtUp).
	readingSince atomic.Int64
	waitedEnd    atomic.Int64
	// midSince: when the read under way in the middle of a command began
	// (0 when none is). A wait for the rest of a command undoes an earlier
	// wait between commands: the command is not received.
	midSince atomic.Int64
	// atBoundary: the reader has consumed every byte received so far and
	// waits for the start of the next command (set by ReadCommand, cleared
	// as soon as the stream's reader gets bytes: see boundaryReader). A
	// wait in the middle of a command (a value of 200 MB arriving) is not a
	// wait for the source.
	atBoundary atomic.Bool
	// peerClosed: a read or a write met the source closing the connection
	// (EOF, reset, broken pipe), as opposed to our end closing it or a
	// timeout.
	peerClosed atomic.Bool

	// Reader-goroutine state: the context whose cancellation moves the
	// deadline to the past (registered until that context ends or a read
	// under another one), and how to unregister that.
	watched   context.Context
	unwatch   func() bool
	unwatched chan struct{} // closed when the callback has run

	mu    sync.Mutex
	armed time.Time // the read deadline set last
}

// rearmEvery bounds how often a read moves the deadline.
const rearmEvery = time.Second

func (d *deadlineConn) Read(p []byte) (n int, err error) {
	defer func() { d.read.Add(int64(n)) }()
	ctx := d.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if ctx.Done() != nil && ctx != d.watched {
		d.watch(ctx)
	}
	d.arm(ctx)
	// The callback runs only once ctx is cancelled: cancelled after this
	// check, it moves the deadline to the past behind arm, and the read
	// below returns.
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	boundary := d.atBoundary.Load()
	began := time.Now()
	if boundary {
		d.readingSince.Store(monotime.Stamp(began))
	} else {
		d.midSince.Store(monotime.Stamp(began))
	}
	n, err = d.Conn.Read(p)
	if err != nil && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		d.peerClosed.Store(true)
	}
	ended := time.Now()
	waited := ended.Sub(began) >= waitedRead
	if boundary {
		d.readingSince.Store(0)
		if waited {
			d.waitedEnd.Store(monotime.Stamp(ended))
		}
	} else {
		d.midSince.Store(0)
		if waited {
			d.waitedEnd.Store(0)
		}
	}
	return n, ctxError(ctx, err)
}

// Write is the connection's, noting a source that closed it: a write (an
// ACK, say) can be the first to meet it, while nothing is read.
func (d *deadlineConn) Write(p []byte) (int, error) {
	n, err := d.Conn.Write(p)
	if err != nil && (errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)) {
		d.peerClosed.Store(true)
	}
	return n, err
}

// waitedRead is how long a read must block to count as waiting for the
// network: the source had sent nothing more when it began.
const waitedRead = time.Millisecond

// caughtUpWindow: a connection whose last wait for the network is older
// than this is not caught up any more (its reader has been busy since).
const caughtUpWindow = time.Second

// CaughtUp reports whether the reader has consumed everything the source
// sent, as far as the connection can tell: since since, one of its reads
// has waited for the network between two commands (is waiting now, or did
// within the last second). A read that waits for the rest of a command
// does not count: the command is not received, and the lag, which counts
// received commands, cannot show it. A reader that resumes a stream with a backlog reads it without
// ever waiting; the applied offset alone cannot tell, since the source's
// backlog is not received yet.
func (c *Conn) CaughtUp(since, now time.Time) bool {
	n, s := monotime.Stamp(now), monotime.Stamp(since)
	if ms := c.dc.midSince.Load(); ms != 0 && n-ms >= int64(waitedRead) {
		return false // waiting for the rest of a command
	}
	if rs := c.dc.readingSince.Load(); rs != 0 && rs >= s && n-rs >= int64(waitedRead) {
		return true
	}
	we := c.dc.waitedEnd.Load()
	return we != 0 && we >= s && n-we <= int64(caughtUpWindow)
}

// ReadWaiting is how long the read under way has waited for the network,
// between commands or in the middle of one (an RDB's bytes): 0 when no
// read is under way, because the reader is busy with what it read or held
// back by what it hands its bytes to. A source that sends nothing at all,
// on a connection that stays open, shows as a wait that only grows.
func (c *Conn) ReadWaiting(now time.Time) time.Duration {
	since := max(c.dc.readingSince.Load(), c.dc.midSince.Load())
	if since == 0 {
		return 0
	}
	return max(now.Sub(monotime.Time(since)), 0)
}

// watch makes the cancellation of ctx interrupt a blocked read by moving
// the deadline to the past. The previous context's callback, if it ran, is
// waited for, so that it cannot clobber a later deadline.
func (d *deadlineConn) watch(ctx context.Context) {
	if d.unwatch != nil && !d.unwatch() {
		<-d.unwatched
	}
	fired := make(chan struct{})
	d.watched, d.unwatched = ctx, fired
	d.unwatch = context.AfterFunc(ctx, func() {
		d.mu.Lock()
		_ = d.Conn.SetReadDeadline(aLongTimeAgo)
		d.armed = aLongTimeAgo
		d.mu.Unlock()
		close(fired)
	})
}

// arm moves the read deadline to the timeout from now (or ctx's deadline,
// if sooner), unless it was moved less than rearmEvery ago.
func (d *deadlineConn) arm(ctx context.Context) {
	want := deadlineFor(ctx, d.timeout)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, exact := ctx.Deadline(); !exact && d.timeout > 2*rearmEvery && !d.armed.Before(want.Add(-rearmEvery)) {
		return
	}
	_ = d.Conn.SetReadDeadline(want)
	d.armed = want
}

// ctxError reports a deadline error caused by ctx (cancelled, or its own
// deadline reached before the timeout's) as the context's error, so callers
// can tell "asked to stop" from "the source went silent".
func ctxError(ctx context.Context, err error) error {
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	// The socket deadline taken from ctx can fire a moment before ctx's
	// own timer marks it done.
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return err
}

// boundaryReader is what the stream's reader (the bufio.Reader the RESP
// parser reads) reads from: the bytes under it may come from TLS's or the
// decompressor's own buffers, without a read of the network, so it is
// there, not at the network, that the first bytes of the next command are
// seen (they clear the mark of a wait between commands).
// peerReader notes a read that met the source closing the connection. Over
// TLS the source's close_notify ends the stream with io.EOF while the
// socket under it still returned data, so deadlineConn cannot see it.
type peerReader struct {
	r          io.Reader
	peerClosed *atomic.Bool
}

func (p peerReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if err != nil && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		p.peerClosed.Store(true)
	}
	return n, err
}

type boundaryReader struct {
	r          io.Reader
	atBoundary *atomic.Bool
}

func (b boundaryReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		b.atBoundary.Store(false)
	}
	return n, err
}
