// Package connlimit bounds the connections an HTTP server holds open
// without letting whoever opens the most lock everybody else out.
//
// A plain limit (netutil.LimitListener) leaves connections past it in the
// kernel's queue until one closes: a client that keeps a thousand idle
// connections open (each one re-opened as the server's timeouts close it)
// shut every other client out of the API for as long as it liked. Here a
// connection past the limit is accepted at once, and room is made for it
// by closing a connection that serves no request, taken from the address
// that holds the most: a flood only ever displaces its own connections,
// and a request being served is never cut, nor its answer.
package connlimit

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"
)

// defaultAnswerGrace bounds how long a connection whose handler returned
// is kept from displacement while the server writes its answer out. That
// takes microseconds, unless the server first waits for a request body
// the handler left unread (see Track): a client sending it a byte at a
// time must not hold its place for the server's whole read timeout.
const defaultAnswerGrace = 2 * time.Second

// Listener is a net.Listener holding at most max connections open. Its
// Track middleware, ConnContext and ConnState tell it which connections
// serve a request; without them every connection is taken for idle.
type Listener struct {
	net.Listener
	max   int
	grace time.Duration // see defaultAnswerGrace

	mu     sync.Mutex
	conns  []*conn       // in the order they were accepted
	freed  chan struct{} // closed (and replaced) whenever a connection closes or has answered
	closed chan struct{}
	once   sync.Once

	onWait func() // tests: Accept found no connection to displace
}

// New wraps ln, holding at most n connections (n < 1 counts as 1).
func New(ln net.Listener, n int) *Listener {
	return &Listener{Listener: ln, max: max(n, 1), grace: defaultAnswerGrace, freed: make(chan struct{}), closed: make(chan struct{})}
}

type conn struct {
	net.Conn
	l       *Listener
	host    string
	serving int // requests in a handler; guarded by l.mu
	// answering: a handler returned and the server has not reported the
	// connection idle yet, so its answer may not be out; since when.
	// Guarded by l.mu.
	answering bool
	answerAt  time.Time
	once      sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.forget(c) })
	return err
}

// Accept returns the next connection, closing an idle one of the
// address that holds the most when max are open. Only when every open
// connection serves a request or writes its answer does it wait, until
// one closes, has answered, or has taken longer than the grace to answer.
func (l *Listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &conn{Conn: nc, l: l, host: hostOf(nc.RemoteAddr())}
	for {
		l.mu.Lock()
		if len(l.conns) < l.max {
			l.conns = append(l.conns, c)
			l.mu.Unlock()
			return c, nil
		}
		victim, retry := l.victimLocked(time.Now())
		freed := l.freed
		l.mu.Unlock()
		if victim != nil {
			victim.Close()
			continue
		}
		if l.onWait != nil {
			l.onWait()
		}
		if err := l.wait(freed, retry); err != nil {
			nc.Close()
			return nil, err
		}
	}
}

// wait waits until freed is closed or, when retry > 0, for retry; it
// fails once the listener is closed.
func (l *Listener) wait(freed <-chan struct{}, retry time.Duration) error {
	var timeout <-chan time.Time
	if retry > 0 {
		t := time.NewTimer(retry)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-freed:
	case <-timeout:
	case <-l.closed:
		return net.ErrClosed
	}
	return nil
}

// Close closes the listener (not the connections it accepted).
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// victimLocked is the oldest idle connection of the address holding the
// most connections, or the oldest idle one at all when that address has
// none idle; nil when every connection serves a request or writes its
// answer, and then retry is when the first answer's grace ends (0: none).
// A connection is idle once the server said so, or if it never entered a
// handler, or if its answer's grace has passed.
func (l *Listener) victimLocked(now time.Time) (victim *conn, retry time.Duration) {
	count := make(map[string]int)
	top := ""
	for _, c := range l.conns {
		count[c.host]++
		if count[c.host] > count[top] {
			top = c.host
		}
	}
	var oldestIdle *conn
	for _, c := range l.conns {
		if c.serving > 0 {
			continue
		}
		if c.answering {
			if left := l.grace - now.Sub(c.answerAt); left > 0 {
				if retry == 0 || left < retry {
					retry = left
				}
				continue
			}
		}
		if c.host == top {
			return c, 0
		}
		if oldestIdle == nil {
			oldestIdle = c
		}
	}
	if oldestIdle != nil {
		return oldestIdle, 0
	}
	return nil, retry
}

func (l *Listener) forget(c *conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, o := range l.conns {
		if o == c {
			l.conns = append(l.conns[:i:i], l.conns[i+1:]...)
			break
		}
	}
	l.wakeLocked()
}

// wakeLocked wakes an Accept waiting for room: a connection closed, or
// went idle and may be displaced.
func (l *Listener) wakeLocked() {
	close(l.freed)
	l.freed = make(chan struct{})
}

// own is the connection of l under nc (a *tls.Conn's too), or nil.
func (l *Listener) own(nc net.Conn) *conn {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if c, ok := nc.(*conn); ok && c.l == l {
		return c
	}
	return nil
}

type connKey struct{}

// ConnContext is for http.Server.ConnContext: it lets Track find the
// connection of a request.
func (l *Listener) ConnContext(ctx context.Context, nc net.Conn) context.Context {
	if c := l.own(nc); c != nil {
		return context.WithValue(ctx, connKey{}, c)
	}
	return ctx
}

// ConnState is for http.Server.ConnState: a connection that has written
// its answer out and waits for the next request may be displaced now, and
// wakes an Accept that waits for room. Not at the handler's return: the
// answer may still sit in the server's buffer, and Accept would cut it.
func (l *Listener) ConnState(nc net.Conn, st http.ConnState) {
	if st != http.StateIdle {
		return
	}
	if c := l.own(nc); c != nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		c.answering = false
		l.wakeLocked()
	}
}

// Track marks a request's connection as serving while next handles it,
// so that Accept never closes it under the request, and then as answering
// until the server reports it idle, for at most the grace: the server
// reads what is left of a body the handler did not read (a refusal's)
// before it answers, and a flood of connections sending theirs a byte at
// a time would otherwise hold every place.
func (l *Listener) Track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Context().Value(connKey{}).(*conn)
		if c != nil {
			l.mu.Lock()
			c.serving++
			l.mu.Unlock()
			defer func() {
				l.mu.Lock()
				c.serving--
				if c.serving == 0 {
					c.answering, c.answerAt = true, time.Now()
				}
				l.mu.Unlock()
			}()
		}
		next.ServeHTTP(w, r)
	})
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
