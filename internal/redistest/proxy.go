package redistest

import (
	"bytes"
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
	// stallStreams limits a stall to the connections that asked for a
	// replication stream (PSYNC or SYNC). Guarded by mu.
	stallStreams bool
	// cutAround, when set, is where the next full sync's connection is
	// cut, in bytes from the end of its RDB (see CutAroundRDBEnd).
	// Guarded by mu.
	cutAround *int
	// holed are the client sides of the connections BlackHole swallowed;
	// closed ends their wait when the proxy is cleaned up. Guarded by mu.
	holed  map[net.Conn]bool
	closed chan struct{}
}

// BlackHole holds what the target sends on the connections open now, for
// ever, the connections left open; later connections pass: a route that
// died under established connections only (a NAT entry dropped), where a
// peer that dials again gets through.
func (p *Proxy) BlackHole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holed == nil {
		p.holed = map[net.Conn]bool{}
	}
	for i := 0; i < len(p.conns); i += 2 {
		p.holed[p.conns[i]] = true
	}
}

// waitHoled blocks while the connection to client c is black-holed.
func (p *Proxy) waitHoled(c net.Conn) {
	p.mu.Lock()
	holed := p.holed[c]
	p.mu.Unlock()
	if holed {
		<-p.closed
	}
}

// CutAroundRDBEnd cuts the next connection that carries an RDB (a full
// sync) delta bytes from the RDB's end: its last byte not sent (-1), sent
// and nothing after it (0), or part of what follows (delta > 0). Only
// that connection is cut, once, having forwarded exactly that much.
func (p *Proxy) CutAroundRDBEnd(delta int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutAround = &delta
}

// rdbEnd finds where the RDB of a full sync ends in what a source sent on
// one connection (from its first byte): -1 while it cannot tell yet.
func rdbEnd(seen []byte) int {
	i := bytes.Index(seen, []byte("+FULLRESYNC "))
	if i < 0 {
		return -1
	}
	// The payload's header, '$', comes after the line and the newlines
	// the source sends while it prepares the RDB.
	j := bytes.IndexByte(seen[i:], '$')
	if j < 0 {
		return -1
	}
	head := i + j
	eol := bytes.Index(seen[head:], []byte("\r\n"))
	if eol < 0 {
		return -1
	}
	body := head + eol + 2
	if mark, ok := bytes.CutPrefix(seen[head+1:head+eol], []byte("EOF:")); ok {
		k := bytes.Index(seen[body:], mark)
		if k < 0 {
			return -1
		}
		return body + k + len(mark)
	}
	n, err := strconv.Atoi(string(seen[head+1 : head+eol]))
	if err != nil {
		return -1
	}
	return body + n
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

// StallStreams holds what the target sends on the connections that asked
// for a replication stream (PSYNC or SYNC) only, until Unstall: a link that
// holds the stream while other connections to the same server (a status
// question) pass.
func (p *Proxy) StallStreams() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled == nil {
		p.stalled = make(chan struct{})
	}
	p.stallStreams = true
}

// Unstall lets what Stall held go on.
func (p *Proxy) Unstall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled != nil {
		close(p.stalled)
		p.stalled = nil
	}
	p.stallStreams = false
}

// waitUnstalled returns once the proxy is not stalled, for a connection
// that carries a replication stream or not.
func (p *Proxy) waitUnstalled(stream bool) {
	p.mu.Lock()
	ch := p.stalled
	if p.stallStreams && !stream {
		ch = nil
	}
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
func (p *Proxy) copyDown(dst, src net.Conn, stream *atomic.Bool) {
	buf := make([]byte, 32<<10)
	// What this connection carried, while a cut around the end of its RDB
	// may be due; how much it forwarded, and where it is cut (-1: not).
	var seen []byte
	total, limit := 0, -1
	for {
		n, err := src.Read(buf)
		if limit < 0 && n > 0 && (seen != nil || p.cutArmed()) {
			seen = append(seen, buf[:n]...)
			if end := rdbEnd(seen); end >= 0 {
				if d, ok := p.takeCut(); ok {
					limit = max(end+d, 0)
				}
				seen = nil
			}
		}
		for b := buf[:n]; len(b) > 0; {
			p.waitUnstalled(stream.Load())
			p.waitHoled(dst)
			chunk := len(b)
			if c := int(p.slowChunk.Load()); c > 0 && c < chunk {
				chunk = c
			}
			if limit >= 0 {
				if chunk = min(chunk, limit-total); chunk <= 0 {
					break
				}
			}
			if _, werr := dst.Write(b[:chunk]); werr != nil {
				return
			}
			total += chunk
			p.forwarded.Add(int64(chunk))
			b = b[chunk:]
			if gap := time.Duration(p.slowGap.Load()); gap > 0 {
				time.Sleep(gap) // the slow link's pace, not a wait for an outcome
			}
		}
		if limit >= 0 && total >= limit {
			src.Close()
			return
		}
		if err != nil {
			return
		}
	}
}

// CutPending says whether the cut CutAroundRDBEnd asked for is still to
// come.
func (p *Proxy) CutPending() bool { return p.cutArmed() }

func (p *Proxy) cutArmed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cutAround != nil
}

// takeCut takes the armed cut, for one connection only.
func (p *Proxy) takeCut() (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cutAround == nil {
		return 0, false
	}
	d := *p.cutAround
	p.cutAround = nil
	return d, true
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
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, closed: make(chan struct{})}
	go p.serve()
	t.Cleanup(func() { ln.Close(); close(p.closed); p.Unstall(); p.Cut() })
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
		stream := new(atomic.Bool)
		go func() { copyUp(u, c, stream); u.Close() }()
		go func() { p.copyDown(c, u, stream); c.Close() }()
	}
}

// copyUp forwards what the client sends, noting a connection that asks for
// a replication stream.
func copyUp(dst, src net.Conn, stream *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !stream.Load() {
			up := bytes.ToUpper(buf[:n])
			if bytes.Contains(up, []byte("PSYNC")) || bytes.Contains(up, []byte("\r\nSYNC\r\n")) {
				stream.Store(true)
			}
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
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
