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
//     which is how a destination learns that a source cannot compress;
//   - accepts the previous admin password, after a regeneration, until its
//     grace period ends (so that destinations can move to the new URL without
//     an authentication error), then closes the sessions that used it.
package gateway

import (
	"bufio"
	"compress/flate"
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
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// CompressCommand is the command a destination sends after AUTH to have the
// rest of the session compressed (DEFLATE with sync flushes, level 1 to 6).
const CompressCommand = "REPLICAD.COMPRESS"

// Endpoint is the configuration of one database's replication endpoint.
type Endpoint struct {
	UID           int
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
}

// Gateway runs the endpoints of every database.
type Gateway struct {
	log     *slog.Logger
	metrics *metrics

	mu  sync.Mutex
	eps map[int]*endpoint
}

// New returns a Gateway with no endpoints.
func New(log *slog.Logger, reg prometheus.Registerer) *Gateway {
	return &Gateway{log: log, metrics: newMetrics(reg), eps: map[int]*endpoint{}}
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
	client, upstream net.Conn
	cert             *x509.Certificate // the client's, when it showed one
	password         []byte            // the password it authenticated with
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

func (s *session) close() {
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
	e := g.eps[ep.UID]
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
		g.eps[ep.UID] = e
		e.mu.Lock()
		e.scheduleExpiry()
		e.mu.Unlock()
		go e.accept()
		return nil
	}
	e.update(ep)
	return nil
}

// Remove stops the endpoint of uid and closes its sessions.
func (g *Gateway) Remove(uid int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if e := g.eps[uid]; e != nil {
		e.stop()
		delete(g.eps, uid)
	}
}

// Close stops every endpoint.
func (g *Gateway) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for uid, e := range g.eps {
		e.stop()
		delete(g.eps, uid)
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
	old := e.cfg
	e.cfg = ep
	e.scheduleExpiry()
	now := time.Now()
	for s := range e.sessions {
		switch {
		case !ep.acceptsPassword(s.password, now):
			s.close() // its password no longer opens a session
		case ep.TLS != nil && s.cert == nil && requiresClientCert(ep.TLS):
			s.close()
		case ep.TLS != nil && s.cert != nil && ep.TLS.VerifyPeerCertificate != nil &&
			ep.TLS.VerifyPeerCertificate([][]byte{s.cert.Raw}, nil) != nil:
			s.close() // its certificate is no longer allowed
		case ep.TLS != nil && old.TLS == nil:
			s.close() // plain sessions must go once TLS is required
		}
	}
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
		c, err := e.ln.Accept()
		if err != nil {
			return
		}
		go e.serve(c)
	}
}

// serve runs one session: TLS, AUTH, optional compression, then relay.
func (e *endpoint) serve(raw net.Conn) {
	cfg := e.config()
	log := e.g.log.With("database", cfg.UID, "peer", raw.RemoteAddr().String())
	s := &session{client: raw}
	defer s.close()
	raw.SetDeadline(time.Now().Add(30 * time.Second)) // the handshake must be quick
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
		log.Warn("refused a plain-text replication session: TLS is required")
		io.WriteString(raw, "-ERR TLS is required to replicate from this database\r\n")
		return
	case cfg.TLS == nil && isTLS:
		log.Warn("refused a TLS replication session: the database does not have TLS enabled")
		return
	case cfg.TLS != nil:
		tc := tls.Server(conn, cfg.TLS)
		if err := tc.Handshake(); err != nil {
			e.g.metrics.refused.WithLabelValues(strconv.Itoa(cfg.UID), "tls").Inc()
			log.Warn("refused a replication session: TLS handshake failed", "err", err)
			return
		}
		if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
			s.cert = certs[0]
		}
		conn = tc
		br = bufio.NewReader(tc)
	}
	s.client = conn
	rd := resp.NewReader(br)
	rd.MaxBulkLen, rd.MaxArrayLen = 1<<20, 64 // only small commands before AUTH

	pw, ok := e.authenticate(conn, rd, cfg, log)
	if !ok {
		return
	}
	s.password = pw
	level, args, err := readCompression(conn, rd)
	if err != nil {
		return
	}
	upstream, err := dialUpstream(cfg)
	if err != nil {
		log.Error("replication session: cannot reach the database", "err", err)
		io.WriteString(conn, "-ERR the database is not available, try again\r\n")
		return
	}
	s.upstream = upstream
	if !e.track(s, cfg) {
		return
	}
	defer e.untrack(s)
	raw.SetDeadline(time.Time{})
	log.Info("replication session opened", "compression", level, "tls", cfg.TLS != nil)
	e.relay(s, br, args, level, cfg.UID)
	log.Info("replication session closed")
}

// authenticate reads commands until a valid AUTH and returns the password
// it gave. PING before AUTH gets NOAUTH, as from a redis-server with a
// password.
func (e *endpoint) authenticate(conn net.Conn, rd *resp.Reader, cfg Endpoint, log *slog.Logger) ([]byte, bool) {
	for {
		args, _, err := rd.ReadCommand()
		if err != nil {
			return nil, false
		}
		switch strings.ToUpper(string(args[0])) {
		case "AUTH":
			var user, pw []byte
			switch len(args) {
			case 2:
				pw = args[1]
			case 3:
				user, pw = args[1], args[2]
			default:
				io.WriteString(conn, "-ERR wrong number of arguments for 'auth' command\r\n")
				continue
			}
			userOK := user == nil || string(user) == cfg.AdminUser
			if userOK && cfg.acceptsPassword(pw, time.Now()) {
				_, err := io.WriteString(conn, "+OK\r\n")
				return append([]byte(nil), pw...), err == nil
			}
			e.g.metrics.refused.WithLabelValues(strconv.Itoa(cfg.UID), "password").Inc()
			log.Warn("refused a replication session: wrong user name or password")
			io.WriteString(conn, "-WRONGPASS invalid username-password pair or user is disabled.\r\n")
		case "QUIT":
			return nil, false
		default:
			io.WriteString(conn, "-NOAUTH Authentication required.\r\n")
		}
	}
}

// readCompression reads the first command after AUTH: the compression
// request, answered here, or the first command for redis-server (returned).
func readCompression(conn net.Conn, rd *resp.Reader) (int, [][]byte, error) {
	args, _, err := rd.ReadCommand()
	if err != nil {
		return 0, nil, err
	}
	if !strings.EqualFold(string(args[0]), CompressCommand) {
		return 0, cloneArgs(args), nil
	}
	level := 0
	if len(args) == 2 {
		level, _ = strconv.Atoi(string(args[1]))
	}
	if level < 1 || level > 6 {
		io.WriteString(conn, "-ERR compression level must be 1 to 6\r\n")
		return 0, nil, errors.New("bad compression level")
	}
	if _, err := io.WriteString(conn, "+OK\r\n"); err != nil {
		return 0, nil, err
	}
	return level, nil, nil
}

func cloneArgs(args [][]byte) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = append([]byte(nil), a...)
	}
	return out
}

func dialUpstream(cfg Endpoint) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, cfg.UpstreamNetwork, cfg.UpstreamAddr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(resp.AppendCommandStrings(nil, "AUTH", cfg.UpstreamUser, cfg.UpstreamPassword)); err != nil {
		c.Close()
		return nil, err
	}
	v, err := resp.NewReader(bufio.NewReaderSize(c, 64)).ReadValue()
	if err != nil || v.IsError() {
		c.Close()
		return nil, fmt.Errorf("authenticate to the database: %v %v", err, v.Err())
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

func (e *endpoint) track(s *session, cfg Endpoint) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.cfg.acceptsPassword(s.password, time.Now()) {
		return false // regenerated while this session was logging in
	}
	e.sessions[s] = struct{}{}
	return true
}

func (e *endpoint) untrack(s *session) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.sessions, s)
}

// relay copies both ways until either side closes. The first command for
// redis-server (already read) goes first; what the client had buffered
// follows. Replies are compressed when asked.
func (e *endpoint) relay(s *session, clientBuf *bufio.Reader, first [][]byte, level, uid int) {
	label := strconv.Itoa(uid)
	wire := e.g.metrics.wireBytes.WithLabelValues(label)
	plain := e.g.metrics.plainBytes.WithLabelValues(label)
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		if first != nil {
			if _, err := s.upstream.Write(resp.AppendCommand(nil, first...)); err != nil {
				return
			}
		}
		io.Copy(s.upstream, clientBuf)
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		out := &countingWriter{w: s.client, n: wire}
		if level == 0 {
			// Uncompressed, both counters move with every write.
			io.Copy(&countingWriter{w: out, n: plain}, s.upstream)
			return
		}
		fw, _ := flate.NewWriter(out, level)
		buf := make([]byte, 64<<10)
		for {
			n, err := s.upstream.Read(buf)
			if n > 0 {
				plain.Add(float64(n))
				// Flush at every read: the stream must not wait in the
				// compressor, or the destination would lag.
				if _, werr := fw.Write(buf[:n]); werr != nil {
					return
				}
				if werr := fw.Flush(); werr != nil {
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
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "replicad", Subsystem: "gateway", Name: "refused_sessions_total",
			Help: "Replication sessions refused, by reason (plaintext, tls, password)."}, []string{"database", "reason"}),
		wireBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "replicad", Subsystem: "gateway", Name: "sent_wire_bytes_total",
			Help: "Bytes sent to destinations, after compression."}, []string{"database"}),
		plainBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "replicad", Subsystem: "gateway", Name: "sent_bytes_total",
			Help: "Bytes sent to destinations, before compression."}, []string{"database"}),
	}
	reg.MustRegister(m.refused, m.wireBytes, m.plainBytes)
	return m
}
