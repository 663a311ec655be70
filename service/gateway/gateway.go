// Package gateway serves each database's replication endpoint: the port of
// its source URL. Destinations (the syncers of other databases, here or in
// another instance) connect to it as Redis replicas. The gateway
//
//   - requires TLS when the database's tls_mode says so, with the instance's
//     proxy certificate, and admits only the allowed client certificates;
//   - checks the admin password itself, then relays the session to
//     redis-server under an identity that may only replicate, so the source
//     URL is useless on the database's own port;
//   - compresses what it relays to the destination when the destination asks
//     (REPLICAD.COMPRESS <level> right after AUTH), which only a gateway
//     understands: a plain redis-server answers with an unknown-command error,
//     which is how a destination learns that a source cannot compress. The
//     codec is zstd when the destination offers it in that request (a plus
//     sign before the level), DEFLATE otherwise (see replcompress); before
//     AUTH a client gets NOAUTH to anything but AUTH and QUIT;
//   - accepts the previous admin password, after a regeneration, until its
//     grace period ends (so that destinations can move to the new URL without
//     an authentication error), then closes the sessions that used it;
//   - serves a sharded database as a Redis Cluster whose nodes are
//     replication endpoints, one per node (see cluster.go).
package gateway

import (
	"bufio"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/replicad/terraform-provider-redis/internal/acceptloop"
	"github.com/replicad/terraform-provider-redis/internal/cluster"
	"github.com/replicad/terraform-provider-redis/internal/replcompress"
	"github.com/replicad/terraform-provider-redis/internal/resp"
	"github.com/replicad/terraform-provider-redis/internal/throttle"
)

// CompressCommand is the command a destination sends after AUTH to have the
// rest of the session compressed (package replcompress owns the extension:
// zstd when the destination offered it with a plus sign before the level,
// else DEFLATE).
const CompressCommand = replcompress.Command

// CodecsCommand is the codec offer that destinations of an earlier
// development version sent before AUTH: answered NOAUTH, they ask for
// DEFLATE (see replcompress).
const CodecsCommand = replcompress.CodecsCommand

// Endpoint is the configuration of one database's replication endpoint.
type Endpoint struct {
	UID int
	// Node is 0 for the database's own endpoint (its source URL), i+1 for
	// the endpoint of node i of a sharded database.
	Node          int
	Listen        string // host:port
	AdminUser     string // the user name of the source URL
	AdminPassword string
	// PreviousAdminPassword is also accepted until PreviousAdminPasswordUntil.
	PreviousAdminPassword      string
	PreviousAdminPasswordUntil time.Time
	// TLS, when set, is required: plain-text sessions are refused.
	TLS *tls.Config
	// Upstream is how the gateway reaches redis-server.
	UpstreamNetwork, UpstreamAddr  string
	UpstreamUser, UpstreamPassword string
	// Refuse, when set, is why this endpoint does not stream: without
	// Cluster, authenticated sessions get it as an error at once; with
	// Cluster, PSYNC and SYNC get it (the database's own endpoint of a
	// sharded database, whose nodes' endpoints stream).
	Refuse string
	// Cluster, set on every endpoint of a sharded database, reads its
	// shards as a destination must see them: each node's address is its
	// replication endpoint (host and port). See cluster.go.
	Cluster func(ctx context.Context) (cluster.Topology, error)
	// Lineage, when set, is the database's lineage, the answer to
	// replproto.LineageCommand: a destination in it would close a
	// replication cycle.
	Lineage func() []string
}

// epKey names an endpoint: a database's, or one of its nodes'.
type epKey struct{ uid, node int }

// Gateway runs the endpoints of every database.
type Gateway struct {
	log      *slog.Logger
	metrics  *metrics
	throttle *throttle.Throttle
	// handshakeTimeout closes connections that have not reached PSYNC.
	handshakeTimeout time.Duration

	mu  sync.Mutex
	eps map[epKey]*endpoint

	// pending holds the connections of each peer address that are not yet
	// replicating, oldest first, across endpoints: idle or slow connections
	// of one address cannot take every file descriptor.
	pendingMu sync.Mutex
	pending   map[string][]net.Conn

	stop chan struct{}
	done chan struct{}
}

// maxPendingPerPeer bounds the connections of one address that are not yet
// replicating; past it, the oldest is closed. A destination opens one per
// source database at a time.
const maxPendingPerPeer = 128

// maxSessionsPerEndpoint bounds the replication sessions of one database
// that stream: each may make redis-server buffer up to its replica
// output-buffer limit.
const maxSessionsPerEndpoint = 64

// maxQuestionSessionsPerEndpoint bounds the logged-in sessions of one
// database that do not stream (yet), apart from the streams, so that they
// do not take the streams' places: each destination keeps one for its
// source probe beside its stream, and each stream is one of them until its
// PSYNC.
const maxQuestionSessionsPerEndpoint = 2 * maxSessionsPerEndpoint

// New returns a Gateway with no endpoints. Close stops it.
func New(log *slog.Logger, reg prometheus.Registerer) *Gateway {
	g := &Gateway{log: log, metrics: newMetrics(reg), throttle: throttle.New(log, "replication session"), handshakeTimeout: defaultHandshakeTimeout,
		eps: map[epKey]*endpoint{}, pending: map[string][]net.Conn{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go g.flushLoop()
	return g
}

// flushLoop reports the failed logins that the throttle held back.
func (g *Gateway) flushLoop() {
	defer close(g.done)
	t := time.NewTicker(throttle.LogWindow / 4)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			g.throttle.Flush()
		case <-g.stop:
			return
		}
	}
}

func (g *Gateway) admitPending(uid int, peer string, c net.Conn) {
	g.pendingMu.Lock()
	defer g.pendingMu.Unlock()
	conns := g.pending[peer]
	if len(conns) >= maxPendingPerPeer {
		// The newcomer wins over the oldest: a flood of idle connections
		// cannot keep a destination on the same address out.
		g.metrics.refused.WithLabelValues(strconv.Itoa(uid), "too_many_pending").Inc()
		conns[0].Close()
		conns = conns[1:]
	}
	g.pending[peer] = append(conns, c)
}

func (g *Gateway) releasePending(peer string, c net.Conn) {
	g.pendingMu.Lock()
	defer g.pendingMu.Unlock()
	conns := g.pending[peer]
	for i, o := range conns {
		if o == c {
			conns = append(conns[:i:i], conns[i+1:]...)
			break
		}
	}
	if len(conns) == 0 {
		delete(g.pending, peer)
	} else {
		g.pending[peer] = conns
	}
}

type endpoint struct {
	g  *Gateway
	ln net.Listener

	mu       sync.Mutex
	cfg      Endpoint
	sessions map[*session]struct{}
	done     chan struct{}
	// expiry closes the sessions of the previous password when its grace
	// period ends.
	expiry *time.Timer
}

type session struct {
	client   net.Conn
	tls      bool              // the session came over TLS
	cert     *x509.Certificate // the client's, when it showed one
	password []byte            // the password it authenticated with

	// upstream is made during the handshake (see upstream in session.go)
	// while close may be called by an update of the endpoint.
	mu       sync.Mutex
	upstream net.Conn
	closed   bool

	// streaming: the session got past PSYNC. Guarded by endpoint.mu.
	streaming bool
}

// setUpstream records the session's connection to redis-server, unless
// the session is already closed.
func (s *session) setUpstream(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.upstream = c
	return true
}

// acceptsPassword reports whether pw opens a session at now: the current
// admin password, or the previous one during its grace period.
func (ep Endpoint) acceptsPassword(pw []byte, now time.Time) bool {
	if subtle.ConstantTimeCompare(pw, []byte(ep.AdminPassword)) == 1 {
		return true
	}
	return ep.PreviousAdminPassword != "" && now.Before(ep.PreviousAdminPasswordUntil) &&
		subtle.ConstantTimeCompare(pw, []byte(ep.PreviousAdminPassword)) == 1
}

func (s *session) upstreamConn() net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.upstream
}

func (s *session) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.client.Close()
	if s.upstream != nil {
		s.upstream.Close()
	}
}

// Ensure starts the endpoint of ep.UID, or updates it. A new password closes
// the sessions of passwords no longer accepted; a new TLS configuration closes the sessions it would not
// admit any more (and every plain one when TLS becomes required).
func (g *Gateway) Ensure(ep Endpoint) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	key := epKey{ep.UID, ep.Node}
	e := g.eps[key]
	if e != nil && e.cfg.Listen != ep.Listen {
		e.stop()
		e = nil
	}
	if e == nil {
		ln, err := net.Listen("tcp", ep.Listen)
		if err != nil {
			return fmt.Errorf("listen for replication of database %d on %s: %w", ep.UID, ep.Listen, err)
		}
		e = &endpoint{g: g, ln: ln, cfg: ep, sessions: map[*session]struct{}{}, done: make(chan struct{})}
		g.eps[key] = e
		e.mu.Lock()
		e.scheduleExpiry()
		e.mu.Unlock()
		go e.accept()
		return nil
	}
	e.update(ep)
	return nil
}

// Remove stops the endpoints of uid (its own and its nodes') and closes
// their sessions.
func (g *Gateway) Remove(uid int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, e := range g.eps {
		if k.uid == uid {
			e.stop()
			delete(g.eps, k)
		}
	}
	// Its series go with it: a deleted database's would stay for ever,
	// without a name.
	db := prometheus.Labels{"database": strconv.Itoa(uid)}
	g.metrics.refused.DeletePartialMatch(db)
	g.metrics.wireBytes.DeletePartialMatch(db)
	g.metrics.plainBytes.DeletePartialMatch(db)
}

// Close stops every endpoint.
func (g *Gateway) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, e := range g.eps {
		e.stop()
		delete(g.eps, k)
	}
	select {
	case <-g.stop:
	default:
		close(g.stop)
		<-g.done
	}
}

func (e *endpoint) stop() {
	e.ln.Close()
	<-e.done
	e.mu.Lock()
	if e.expiry != nil {
		e.expiry.Stop()
	}
	for s := range e.sessions {
		s.close()
	}
	e.mu.Unlock()
}

func (e *endpoint) update(ep Endpoint) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cfg = ep
	e.scheduleExpiry()
	now := time.Now()
	for s := range e.sessions {
		if !ep.admits(s, now) {
			s.close()
		}
	}
}

// admits reports whether the endpoint's settings let session s replicate at
// now: its password is accepted, it came over TLS when TLS is required, and
// its certificate is allowed. A session is checked again when it starts to
// replicate (track), since it may have logged in under settings changed
// meanwhile.
func (ep Endpoint) admits(s *session, now time.Time) bool {
	switch {
	case !ep.acceptsPassword(s.password, now):
		return false // its password no longer opens a session
	case ep.TLS == nil:
		return true
	case !s.tls:
		return false // plain sessions must go once TLS is required
	case s.cert == nil:
		return !requiresClientCert(ep.TLS)
	case ep.TLS.VerifyPeerCertificate != nil:
		// its certificate may no longer be allowed
		return ep.TLS.VerifyPeerCertificate([][]byte{s.cert.Raw}, nil) == nil
	}
	return true
}

// scheduleExpiry arms the timer that closes the sessions of the previous
// password when its grace period ends. e.mu must be held.
func (e *endpoint) scheduleExpiry() {
	if e.expiry != nil {
		e.expiry.Stop()
		e.expiry = nil
	}
	if e.cfg.PreviousAdminPassword == "" {
		return
	}
	e.expiry = time.AfterFunc(time.Until(e.cfg.PreviousAdminPasswordUntil), e.expirePrevious)
}

// expirePrevious closes the sessions whose password is no longer accepted.
func (e *endpoint) expirePrevious() {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	n := 0
	for s := range e.sessions {
		if !e.cfg.acceptsPassword(s.password, now) {
			s.close()
			n++
		}
	}
	if n > 0 {
		e.g.log.Info("the grace period of the previous admin password ended; its replication sessions are closed",
			"database", e.cfg.UID, "sessions", n)
	}
}

func requiresClientCert(c *tls.Config) bool { return c.ClientAuth == tls.RequireAnyClientCert }

func (e *endpoint) config() Endpoint {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cfg
}

func (e *endpoint) accept() {
	defer close(e.done)
	for {
		c, err := acceptloop.Accept(e.ln, func(err error) {
			e.g.log.Warn("replication endpoint: accepting a connection failed; retrying", "database", e.config().UID, "err", err)
		})
		if err != nil {
			return // closed
		}
		go e.serve(c)
	}
}

// serve runs one session: TLS, login, optional compression, handshake, then
// the stream. A panic ends this session only, never the service.
func (e *endpoint) serve(raw net.Conn) {
	cfg := e.config()
	peer := peerHost(raw.RemoteAddr())
	log := e.g.log.With("database", cfg.UID, "peer", raw.RemoteAddr().String())
	if cfg.Node > 0 {
		log = log.With("node", cfg.Node-1)
	}
	s := &session{client: raw}
	defer s.close()
	defer func() {
		if r := recover(); r != nil {
			e.g.metrics.panics.Inc()
			log.Error("replication session failed: internal error, session closed", "panic", fmt.Sprint(r))
		}
	}()
	e.g.admitPending(cfg.UID, peer, raw)
	pending := true
	defer func() {
		if pending {
			e.g.releasePending(peer, raw)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), e.g.handshakeTimeout)
	defer cancel()
	raw.SetDeadline(time.Now().Add(e.g.handshakeTimeout)) // the handshake must be quick
	br := bufio.NewReader(raw)
	first, err := br.Peek(1)
	if err != nil {
		return
	}
	isTLS := first[0] == 0x16 // a TLS record: handshake
	var conn net.Conn = &bufferedConn{Conn: raw, r: br}
	switch {
	case cfg.TLS != nil && !isTLS:
		e.g.metrics.refused.WithLabelValues(strconv.Itoa(cfg.UID), "plaintext").Inc()
		log.Debug("refused a plain-text replication session: TLS is required")
		io.WriteString(raw, "-ERR TLS is required to replicate from this database\r\n")
		return
	case cfg.TLS == nil && isTLS:
		e.g.metrics.refused.WithLabelValues(strconv.Itoa(cfg.UID), "tls").Inc()
		log.Debug("refused a TLS replication session: the database does not have TLS enabled")
		// Plain text, not a TLS alert: the client's TLS layer then says
		// that what answered does not speak TLS, which is the cause.
		io.WriteString(raw, "-ERR this replication endpoint does not use TLS\r\n")
		return
	case cfg.TLS != nil:
		tc := tls.Server(conn, cfg.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			e.g.metrics.refused.WithLabelValues(strconv.Itoa(cfg.UID), "tls").Inc()
			log.Debug("refused a replication session: TLS handshake failed", "err", err)
			return
		}
		s.tls = true
		if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
			s.cert = certs[0]
		}
		conn = tc
		br = bufio.NewReader(tc)
	}
	s.client = conn
	rd := resp.NewReader(br)
	rd.MaxBulkLen, rd.MaxArrayLen = maxArgLen, maxArgCount

	pw, ok := e.login(ctx, conn, rd, cfg, peer)
	if !ok {
		return
	}
	s.password = pw
	comp, firstCmd, err := readCompression(conn, rd)
	if err != nil {
		return
	}
	if cfg.Refuse != "" && cfg.Cluster == nil {
		io.WriteString(conn, "-ERR "+sanitize(cfg.Refuse)+"\r\n")
		return
	}
	// Past login, a session lives as long as it asks (handshakeEnv.idle),
	// beyond the handshake's context; each call below bounds itself.
	sctx, scancel := context.WithCancel(context.Background())
	defer scancel()
	up := &upstream{dial: func() (net.Conn, *resp.Reader, error) {
		c, rd, err := dialUpstream(sctx, cfg)
		if err != nil {
			log.Error("replication session: cannot reach the database", "err", err)
			return nil, nil, err
		}
		if !s.setUpstream(c) {
			c.Close()
			return nil, nil, net.ErrClosed
		}
		return c, rd, nil
	}}
	if !e.track(s, cfg) {
		return
	}
	defer e.untrack(s)
	e.g.releasePending(peer, raw)
	pending = false

	label := strconv.Itoa(cfg.UID)
	wire := e.g.metrics.wireBytes.WithLabelValues(label)
	plain := e.g.metrics.plainBytes.WithLabelValues(label)
	rw := &replyWriter{conn: conn, w: &countingWriter{w: conn, n: wire}}
	if comp.level > 0 {
		cw, err := replcompress.NewCompressor(rw.w, comp.codec, comp.level)
		if err != nil {
			log.Error("replication session: cannot start compression", "err", err)
			return
		}
		rw.w, rw.flusher = cw, cw
	}
	rw.w = &countingWriter{w: rw.w, n: plain}

	env := handshakeEnv{up: up, refuse: cfg.Refuse, lineage: cfg.Lineage, idle: e.g.handshakeTimeout,
		admitStream: func() bool { return e.admitStream(s, cfg) }}
	if cfg.Cluster != nil {
		env.shards = func() ([]byte, error) {
			ctx, cancel := context.WithTimeout(sctx, e.g.handshakeTimeout)
			defer cancel()
			t, err := cfg.Cluster(ctx)
			if err != nil {
				return nil, err
			}
			return appendShards(nil, t, cfg.TLS != nil), nil
		}
	}
	streaming, err := handshake(rw, rd, firstCmd, env)
	if !streaming {
		if err != nil && !errors.Is(err, errQuit) {
			log.Debug("replication session ended during the handshake", "err", err)
		}
		return
	}
	raw.SetReadDeadline(time.Time{})
	log.Info("replication session opened", "compression", comp.level, "codec", comp.codec, "tls", cfg.TLS != nil)
	e.stream(s, rd, rw, up.rd)
	log.Info("replication session closed")
}

// stream relays the source's stream to the client, and the client's
// REPLCONF commands (ACKs) to the source, until either side closes.
func (e *endpoint) stream(s *session, rd *resp.Reader, rw *replyWriter, upRd *resp.Reader) {
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		defer func() {
			if r := recover(); r != nil {
				e.g.metrics.panics.Inc()
				e.g.log.Error("replication session failed: internal error, session closed", "panic", fmt.Sprint(r))
			}
		}()
		rd.MaxArrayLen = maxArgCount
		forwardReplconf(rd, s.upstreamConn())
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		up := upRd.Buffered()
		buf := make([]byte, 64<<10)
		for {
			n, err := up.Read(buf)
			if n > 0 {
				if werr := rw.write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	<-done
	s.close()
	<-done
}

func (e *endpoint) track(s *session, cfg Endpoint) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.cfg.admits(s, time.Now()) {
		// The password was regenerated, or TLS or the client
		// certificates changed, while this session was logging in.
		return false
	}
	if e.countLocked(false) >= maxQuestionSessionsPerEndpoint {
		e.g.metrics.refused.WithLabelValues(strconv.Itoa(cfg.UID), "too_many_sessions").Inc()
		io.WriteString(s.client, tooManySessions)
		return false
	}
	e.sessions[s] = struct{}{}
	return true
}

const tooManySessions = "-ERR too many replication sessions of this database\r\n"

// admitStream counts s among the sessions that stream, unless there are as
// many as allowed.
func (e *endpoint) admitStream(s *session, cfg Endpoint) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.countLocked(true) >= maxSessionsPerEndpoint {
		e.g.metrics.refused.WithLabelValues(strconv.Itoa(cfg.UID), "too_many_sessions").Inc()
		return false
	}
	s.streaming = true
	return true
}

// countLocked counts the tracked sessions that stream, or that do not.
func (e *endpoint) countLocked(streaming bool) int {
	n := 0
	for s := range e.sessions {
		if s.streaming == streaming {
			n++
		}
	}
	return n
}

func (e *endpoint) untrack(s *session) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.sessions, s)
}

func peerHost(a net.Addr) string {
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

type countingWriter struct {
	w io.Writer
	n prometheus.Counter
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(float64(n))
	return n, err
}

// bufferedConn reads through the bufio.Reader that peeked at the first byte.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

type metrics struct {
	refused               *prometheus.CounterVec
	wireBytes, plainBytes *prometheus.CounterVec
	panics                prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "replicad", Subsystem: "gateway", Name: "refused_sessions_total",
			Help: "Replication sessions refused, by reason (plaintext, tls, password, too_many_pending: the oldest of an address closed for a newer one, too_many_sessions)."}, []string{"database", "reason"}),
		wireBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "replicad", Subsystem: "gateway", Name: "sent_wire_bytes_total",
			Help: "Bytes sent to destinations, after compression."}, []string{"database"}),
		plainBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "replicad", Subsystem: "gateway", Name: "sent_bytes_total",
			Help: "Bytes sent to destinations, before compression."}, []string{"database"}),
	}
	m.panics = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "replicad", Subsystem: "gateway", Name: "session_panics_total",
		Help: "Replication sessions ended by an internal error (each closed that session only)."})
	reg.MustRegister(m.refused, m.wireBytes, m.plainBytes, m.panics)
	return m
}
