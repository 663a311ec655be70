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
// and a request being served is never cut.
package connlimit

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
)

// Listener is a net.Listener holding at most max connections open. Its
// Track middleware, ConnContext and ConnState tell it which connections
// serve a request; without them every connection is taken for idle.
type Listener struct {
	net.Listener
	max int

	mu     sync.Mutex
	conns  []*conn       // in the order they were accepted
	freed  chan struct{} // closed (and replaced) whenever a connection closes or has answered
	closed chan struct{}
	once   sync.Once
}

// New wraps ln, holding at most n connections (n < 1 counts as 1).
func New(ln net.Listener, n int) *Listener {
	return &Listener{Listener: ln, max: max(n, 1), freed: make(chan struct{}), closed: make(chan struct{})}
}

type conn struct {
	net.Conn
	l       *Listener
	host    string
	serving int // requests in a handler; guarded by l.mu
	once    sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.forget(c) })
	return err
}

// Accept returns the next connection, closing an idle one of the
// address that holds the most when max are open. Only when every open
// connection serves a request does it wait, until one closes or has
// answered.
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
		victim, freed := l.victimLocked(), l.freed
		l.mu.Unlock()
		if victim != nil {
			victim.Close()
			continue
		}
		select {
		case <-freed:
		case <-l.closed:
			nc.Close()
			return nil, net.ErrClosed
		}
	}
}

// Close closes the listener (not the connections it accepted).
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// victimLocked is the oldest idle connection of the address holding the
// most connections, or the oldest idle one at all when that address has
// none idle; nil when every connection serves a request.
func (l *Listener) victimLocked() *conn {
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
		if c.host == top {
			return c
		}
		if oldestIdle == nil {
			oldestIdle = c
		}
	}
	return oldestIdle
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
// its answer out and waits for the next request wakes an Accept that
// waits because every connection served a request, which may displace it
// now. Not at the handler's return: the answer may still sit in the
// server's buffer, and the woken Accept would cut it.
func (l *Listener) ConnState(nc net.Conn, st http.ConnState) {
	if st != http.StateIdle {
		return
	}
	if c := l.own(nc); c != nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.wakeLocked()
	}
}

// Track marks a request's connection as serving while next handles it,
// so that Accept never closes it under the request. Only while the
// handler runs: not from the request's first byte, nor until the answer
// is out, since the server reads what is left of a body the handler did
// not read (a refusal's) before it answers, and a flood of connections
// sending theirs a byte at a time would hold every place.
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
