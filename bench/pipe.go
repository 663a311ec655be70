package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// pipe is a pipelined RESP writer on one connection: a goroutine writes
// commands while another reads and counts the replies, with at most window
// commands unanswered. It is the harness's load generator, lighter than a
// general client so that it leaves the CPU to what is measured.
type pipe struct {
	conn   net.Conn
	bw     *bufio.Writer
	br     *bufio.Reader
	window int64

	sent   int64        // writer goroutine only
	acked  atomic.Int64 // replies read
	errs   atomic.Int64 // error replies
	first  atomic.Pointer[string]
	wake   chan struct{} // the reader made room in the window
	rdDone chan struct{}
	rdErr  error
}

func dialPipe(ctx context.Context, addr, password string, window int) (*pipe, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &pipe{conn: conn, bw: bufio.NewWriterSize(conn, 64<<10), br: bufio.NewReaderSize(conn, 64<<10),
		window: int64(window), wake: make(chan struct{}, 1), rdDone: make(chan struct{})}
	if password != "" {
		p.bw.WriteString("*2\r\n$4\r\nAUTH\r\n$" + strconv.Itoa(len(password)) + "\r\n" + password + "\r\n")
		if err := p.bw.Flush(); err != nil {
			conn.Close()
			return nil, err
		}
		line, err := p.br.ReadString('\n')
		if err != nil || line != "+OK\r\n" {
			conn.Close()
			return nil, fmt.Errorf("AUTH: %q %v", line, err)
		}
	}
	go p.readLoop()
	return p, nil
}

func (p *pipe) close() {
	p.conn.Close()
	<-p.rdDone
}

func (p *pipe) readLoop() {
	defer close(p.rdDone)
	for {
		n, err := p.readReply()
		if err != nil {
			p.rdErr = err
			select {
			case p.wake <- struct{}{}:
			default:
			}
			return
		}
		p.acked.Add(n)
		if p.br.Buffered() == 0 {
			select {
			case p.wake <- struct{}{}:
			default:
			}
		}
	}
}

// readReply reads one reply and returns 1 (it is one command's answer).
func (p *pipe) readReply() (int64, error) {
	line, err := p.br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 3 {
		return 0, fmt.Errorf("short reply %q", line)
	}
	switch line[0] {
	case '+', ':':
	case '-':
		if p.errs.Add(1) == 1 {
			s := string(line[:len(line)-2])
			p.first.Store(&s)
		}
	case '$':
		n, _ := strconv.Atoi(string(line[1 : len(line)-2]))
		if n >= 0 {
			if _, err := p.br.Discard(n + 2); err != nil {
				return 0, err
			}
		}
	case '*':
		n, _ := strconv.Atoi(string(line[1 : len(line)-2]))
		for i := 0; i < n; i++ {
			if _, err := p.readReply(); err != nil {
				return 0, err
			}
		}
	default:
		return 0, fmt.Errorf("unexpected reply %q", line)
	}
	return 1, nil
}

// gen appends the next commands to dst and says how many it appended;
// 0 means there are no more.
type gen func(dst []byte) ([]byte, int)

// run writes what g generates until g ends, ctx ends or stop is closed,
// pacing to rate commands/s when rate > 0, and waits for every reply.
func (p *pipe) run(ctx context.Context, g gen, rate float64, stop <-chan struct{}) error {
	buf := make([]byte, 0, 64<<10)
	began := time.Now()
	// A paced writer waits for about 16 commands to be due (at least
	// 200 µs, at most 5 ms): at a low rate (one of many sources) it does
	// not wake thousands of times a second for one command each.
	pause := 200 * time.Microsecond
	if rate > 0 {
		pause = min(max(time.Duration(16/rate*float64(time.Second)), pause), 5*time.Millisecond)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-stop:
			return p.drain(ctx)
		case <-p.rdDone:
			return p.readErr()
		default:
		}
		// Window: wait for replies.
		for p.sent-p.acked.Load() >= p.window {
			select {
			case <-p.wake:
			case <-ctx.Done():
				return ctx.Err()
			case <-p.rdDone:
				return p.readErr()
			}
		}
		budget := int64(256)
		if rate > 0 {
			due := int64(rate*time.Since(began).Seconds()) - p.sent
			if due <= 0 {
				time.Sleep(pause)
				continue
			}
			budget = min(budget, due)
		}
		budget = min(budget, p.window-(p.sent-p.acked.Load()))
		buf = buf[:0]
		n := int64(0)
		for n < budget && len(buf) < 48<<10 {
			var k int
			buf, k = g(buf)
			if k == 0 {
				break
			}
			n += int64(k)
		}
		if n == 0 {
			return p.drain(ctx)
		}
		if _, err := p.bw.Write(buf); err != nil {
			return err
		}
		if err := p.bw.Flush(); err != nil {
			return err
		}
		p.sent += n
	}
}

func (p *pipe) readErr() error {
	if p.rdErr == nil || errors.Is(p.rdErr, io.EOF) {
		return errors.New("connection closed")
	}
	return p.rdErr
}

// drain waits until every command sent is answered.
func (p *pipe) drain(ctx context.Context) error {
	for p.acked.Load() < p.sent {
		select {
		case <-p.wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-p.rdDone:
			if p.acked.Load() < p.sent {
				return p.readErr()
			}
		}
	}
	return nil
}

func (p *pipe) errSummary() error {
	if n := p.errs.Load(); n > 0 {
		return fmt.Errorf("%d commands failed, the first with %s", n, *p.first.Load())
	}
	return nil
}

// load runs g on conns connections in parallel (each with its own
// generator from mk) and returns the commands answered.
func load(ctx context.Context, addr, password string, conns int, mk func(i int) gen) (int64, error) {
	var wg sync.WaitGroup
	errs := make([]error, conns)
	counts := make([]int64, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := dialPipe(ctx, addr, password, 4096)
			if err != nil {
				errs[i] = err
				return
			}
			defer p.close()
			errs[i] = p.run(ctx, mk(i), 0, nil)
			if errs[i] == nil {
				errs[i] = p.errSummary()
			}
			counts[i] = p.acked.Load()
		}()
	}
	wg.Wait()
	var total int64
	for i := range conns {
		if errs[i] != nil {
			return 0, errs[i]
		}
		total += counts[i]
	}
	return total, nil
}

// appendCmd appends a RESP command.
func appendCmd(dst []byte, args ...[]byte) []byte {
	dst = append(dst, '*')
	dst = strconv.AppendInt(dst, int64(len(args)), 10)
	dst = append(dst, '\r', '\n')
	for _, a := range args {
		dst = append(dst, '$')
		dst = strconv.AppendInt(dst, int64(len(a)), 10)
		dst = append(dst, '\r', '\n')
		dst = append(dst, a...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}
