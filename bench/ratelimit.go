package bench

import (
	"io"
	"net"
	"sync"
	"time"
)

// linkProxy is a TCP proxy on loopback that carries each direction at most
// at a link's bandwidth: it simulates a WAN link between two instances
// (no added latency, only the bandwidth).
type linkProxy struct {
	ln          net.Listener
	target      string
	bytesPerSec float64
	wg          sync.WaitGroup
	mu          sync.Mutex
	conns       map[net.Conn]struct{}
}

// startLinkProxy listens on a free loopback port and forwards every
// connection to target at bytesPerSec each way. Stop it with close.
func startLinkProxy(target string, bytesPerSec float64) (*linkProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &linkProxy{ln: ln, target: target, bytesPerSec: bytesPerSec, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *linkProxy) addr() string { return p.ln.Addr().String() }

func (p *linkProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, up) {
			return
		}
		p.wg.Add(2)
		go p.pump(up, c)
		go p.pump(c, up)
	}
}

func (p *linkProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

// pump copies src to dst, pacing the writes so that dst never receives
// faster than the link's bandwidth: each chunk is due when the previous
// ones would have crossed the link. An idle link earns no credit.
func (p *linkProxy) pump(dst, src net.Conn) {
	defer p.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 16<<10)
	var due time.Time
	for {
		n, err := src.Read(buf)
		if n > 0 {
			now := time.Now()
			if due.Before(now) {
				due = now
			}
			due = due.Add(time.Duration(float64(n) / p.bytesPerSec * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			return
		}
	}
}

// close stops the proxy and its connections.
func (p *linkProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}
