package app

import (
	"net"
	"sync"
)

// perPeerListener bounds the connections each remote address holds open
// at once: past max, a new one is closed as soon as it is accepted. The
// API's overall bound (netutil.LimitListener) makes the others wait, so
// that one host holding a thousand half-open TLS handshakes made every
// caller wait with them; with this, it holds its own share only.
type perPeerListener struct {
	net.Listener
	max int

	mu    sync.Mutex
	count map[string]int
}

func limitPerPeer(ln net.Listener, max int) net.Listener {
	return &perPeerListener{Listener: ln, max: max, count: map[string]int{}}
}

func (l *perPeerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host, _, err := net.SplitHostPort(c.RemoteAddr().String())
		if err != nil {
			return c, nil // not an IP address: nothing to count by
		}
		l.mu.Lock()
		over := l.count[host] >= l.max
		if !over {
			l.count[host]++
		}
		l.mu.Unlock()
		if over {
			c.Close()
			continue
		}
		return &peerConn{Conn: c, release: func() { l.release(host) }}, nil
	}
}

func (l *perPeerListener) release(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count[host]--; l.count[host] <= 0 {
		delete(l.count, host)
	}
}

// peerConn gives its address's place back once, when closed.
type peerConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *peerConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
