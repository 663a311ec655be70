package redistest

import (
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards TCP connections to a target, and can cut them all at once:
// a network fault the test controls.
type Proxy struct {
	Addr   string
	target string
	ln     net.Listener

	mu    sync.Mutex
	conns []net.Conn
	cuts  int

	// A slow link: what the target sends goes on in chunks of slowChunk
	// bytes, slowGap apart (0: at full speed).
	slowChunk atomic.Int64
	slowGap   atomic.Int64
	// down: the link is cut until Restore; new connections are closed.
	down atomic.Bool
	// forwarded counts the bytes the target sent that went on.
	forwarded atomic.Int64
	// stalled, while open, holds what the target sends: the connections
	// stay open and silent (nil: not stalled). Guarded by mu.
	stalled chan struct{}
}

// Stall holds every byte the target sends, the connections left open, until
// Unstall: a link that goes silent without closing (a half-open connection,
// a frozen router).
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled == nil {
		p.stalled = make(chan struct{})
	}
}

// Unstall lets what Stall held go on.
func (p *Proxy) Unstall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled != nil {
		close(p.stalled)
		p.stalled = nil
	}
}

// waitUnstalled returns once the proxy is not stalled.
func (p *Proxy) waitUnstalled() {
	p.mu.Lock()
	ch := p.stalled
	p.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

// Forwarded is how many bytes from the target the proxy has passed on so
// far, over every connection: a test waits for part of a transfer with it.
func (p *Proxy) Forwarded() int64 { return p.forwarded.Load() }

// Down cuts every open connection and refuses new ones until Restore: a
// link down for as long as the test says.
func (p *Proxy) Down() {
	p.down.Store(true)
	p.Cut()
}

// Restore accepts connections again after Down.
func (p *Proxy) Restore() { p.down.Store(false) }

// Slow makes what the target sends arrive in chunks of chunk bytes, gap
// apart, as over a slow link: a value of the stream is split across many
// reads. Slow(0, 0) restores full speed.
func (p *Proxy) Slow(chunk int, gap time.Duration) {
	p.slowChunk.Store(int64(chunk))
	p.slowGap.Store(int64(gap))
}

// copyDown forwards what the target sends, slowly when asked.
func (p *Proxy) copyDown(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for b := buf[:n]; len(b) > 0; {
			p.waitUnstalled()
			chunk := len(b)
			if c := int(p.slowChunk.Load()); c > 0 && c < chunk {
				chunk = c
			}
			if _, werr := dst.Write(b[:chunk]); werr != nil {
				return
			}
			p.forwarded.Add(int64(chunk))
			b = b[chunk:]
			if gap := time.Duration(p.slowGap.Load()); gap > 0 {
				time.Sleep(gap) // the slow link's pace, not a wait for an outcome
			}
		}
		if err != nil {
			return
		}
	}
}

// StartProxy listens on a free loopback port and forwards to target.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	addr := "127.0.0.1:0"
	if _, _, ok := testPorts(); ok {
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.Unstall(); p.Cut() })
	return p
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.down.Load() {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go func() { io.Copy(u, c); u.Close() }()
		go func() { p.copyDown(c, u); c.Close() }()
	}
}

// Cut closes every open connection; new ones are accepted again.
func (p *Proxy) Cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns) / 2
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.cuts++
	return n
}
