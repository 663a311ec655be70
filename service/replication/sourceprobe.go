package replication

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/redisurl"
	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// A question to the source on a second connection (INFO replication)
// tells a frozen source or link from a source with nothing to say: both
// leave the stream's reader waiting, and a source sends a ping only every
// repl-ping-replica-period (10 s by default), so without it the status
// said in-sync, with a lag of 0, for the whole silence limit (15 s) while
// the source may have taken writes that never arrived.
//
// The connection is kept for the session: a new one every period cost a
// TLS handshake and an AUTH each time, and each counted against the
// source's connection limits (a gateway's sessions, maxclients).
const (
	// probeEvery is how often the source is asked.
	probeEvery = 2 * time.Second
	// probeTimeout bounds one question: a source that does not answer it,
	// over a link that brings nothing of its stream either, is frozen, or
	// the link is (the same path holds both back).
	probeTimeout = 5 * time.Second
	// probeClientName names the probe's connection in the source's CLIENT
	// LIST, for an operator who wonders what it is.
	probeClientName = "replicad-probe"
	// probeMaxReply bounds a reply: INFO replication is a few hundred
	// bytes, plus a line per replica of the source.
	probeMaxReply = 1 << 20
)

// errUnanswered: the source did not answer within the question's deadline.
var errUnanswered = errors.New("no answer in time")

// sourceProber asks a source a question every period until its context
// ends or the source will not answer it (a user that may not run INFO):
// the session then goes on with the silence limit alone.
type sourceProber struct {
	// period and timeout are probeEvery and probeTimeout unless set
	// (tests).
	period, timeout time.Duration

	mu sync.Mutex
	// unanswered is when the question that timed out, with none answered
	// since, was asked; zero while the source answers.
	unanswered time.Time
	// dials counts the connections the prober opened.
	dials int
	// answer is what the source said in its last answer to the question.
	answer probeAnswer
}

// probeAnswer is what a source's answer to INFO replication said of its
// replication stream, and when it came.
type probeAnswer struct {
	at time.Time
	// replID and offset are the source's master_replid and
	// master_repl_offset; offset is -1 when the answer did not have them
	// (a server or a proxy without the replication section).
	replID string
	offset int64
}

// quietAt says whether the source is known to have had nothing for the
// session in the last fresh: it answered within it, in the offset space
// of the stream the session reads (the same replication id), at an offset
// the session has received. Unknown or not comparable is not quiet: the
// caller falls back on the source's pings.
func (p *sourceProber) quietAt(now time.Time, fresh time.Duration, replID string, received int64) bool {
	p.mu.Lock()
	a := p.answer
	p.mu.Unlock()
	return !a.at.IsZero() && now.Sub(a.at) <= fresh && a.offset >= 0 &&
		replID != "" && a.replID == replID && a.offset <= received
}

func (p *sourceProber) unansweredSince() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.unanswered
}

func (p *sourceProber) dialCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dials
}

func (p *sourceProber) run(ctx context.Context, u redisurl.Source, tlsCfg *tls.Config, log func(msg string, args ...any)) {
	period, timeout := p.period, p.timeout
	if period <= 0 {
		period = probeEvery
	}
	if timeout <= 0 {
		timeout = probeTimeout
	}
	var pc *probeConn
	defer func() { pc.close() }()
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		asked := time.Now()
		var err error
		var ans probeAnswer
		pc, ans, err = p.ask(ctx, pc, u, tlsCfg, asked.Add(timeout))
		var refused refusedError
		switch {
		case errors.As(err, &refused):
			log("the source does not answer INFO replication; its status relies on its pings", "reason", err)
			return
		case err == nil:
			p.mu.Lock()
			p.unanswered = time.Time{}
			// The source's offset when it was asked: what is quiet at the
			// question's time, not at the answer's.
			ans.at = asked
			p.answer = ans
			p.mu.Unlock()
		case errors.Is(err, errUnanswered) && ctx.Err() == nil:
			p.mu.Lock()
			if p.unanswered.IsZero() {
				p.unanswered = asked
			}
			p.mu.Unlock()
		}
		// Other failures (refused, reset) end the session's stream too,
		// whose error says what happened; the next period dials again.
	}
}

// refusedError: the source answered, but not the question (no permission,
// wrong password, an unknown command, a reply that is not RESP): asking
// again would get the same answer.
type refusedError struct{ err error }

func (e refusedError) Error() string { return e.err.Error() }
func (e refusedError) Unwrap() error { return e.err }

// ask asks the question on pc, the connection kept from the last one, or
// on a new connection when there is none or pc failed (the source closed
// it: CLIENT KILL, its timeout, a restart). It returns the connection to
// keep, nil when there is none. A connection whose question timed out is
// closed: its reply may still come, out of step with the next question.
func (p *sourceProber) ask(ctx context.Context, pc *probeConn, u redisurl.Source, tlsCfg *tls.Config, deadline time.Time) (*probeConn, probeAnswer, error) {
	qctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if pc != nil {
		ans, err := pc.info(deadline)
		if err == nil {
			return pc, ans, nil
		}
		pc.close()
		var refused refusedError
		if errors.As(err, &refused) || timedOut(qctx, err) {
			return nil, ans, probeFailure(qctx, err)
		}
		// Broken while idle: one new connection, in the same deadline.
	}
	p.mu.Lock()
	p.dials++
	p.mu.Unlock()
	pc, err := dialProbe(qctx, ctx, u, tlsCfg, deadline)
	var ans probeAnswer
	if err == nil {
		ans, err = pc.info(deadline)
	}
	if err != nil {
		pc.close()
		return nil, ans, probeFailure(qctx, err)
	}
	return pc, ans, nil
}

// timedOut says whether err ended a wait at the question's deadline.
func timedOut(qctx context.Context, err error) bool {
	var ne net.Error
	return errors.Is(qctx.Err(), context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// probeFailure makes a failure at the question's deadline errUnanswered.
func probeFailure(qctx context.Context, err error) error {
	var refused refusedError
	if !errors.As(err, &refused) && timedOut(qctx, err) {
		return fmt.Errorf("%w: %w", errUnanswered, err)
	}
	return err
}

// probeConn is the prober's connection to the source, logged in.
type probeConn struct {
	conn net.Conn
	rd   *resp.Reader
	// stop undoes the close at the end of the session's context.
	stop func() bool
}

// dialProbe connects to the source at u and logs in, within qctx; the
// connection is closed when sessionCtx ends.
func dialProbe(qctx, sessionCtx context.Context, u redisurl.Source, tlsCfg *tls.Config, deadline time.Time) (*probeConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(qctx, "tcp", u.Addr())
	if err != nil {
		return nil, err
	}
	pc := &probeConn{conn: conn}
	// A connection blocked in a read or write ends with the session.
	pc.stop = context.AfterFunc(sessionCtx, func() { conn.Close() })
	conn.SetDeadline(deadline)
	if tlsCfg != nil {
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(qctx); err != nil {
			pc.close()
			return nil, err
		}
		pc.conn = tc
	}
	var buf []byte
	if u.Password != "" {
		if u.Username != "" {
			buf = resp.AppendCommandStrings(buf, "AUTH", u.Username, u.Password)
		} else {
			buf = resp.AppendCommandStrings(buf, "AUTH", u.Password)
		}
	}
	buf = resp.AppendCommandStrings(buf, "CLIENT", "SETNAME", probeClientName)
	if _, err := pc.conn.Write(buf); err != nil {
		pc.close()
		return nil, err
	}
	pc.rd = resp.NewReader(bufio.NewReader(pc.conn))
	pc.rd.MaxBulkLen, pc.rd.MaxArrayLen = probeMaxReply, 1024
	if u.Password != "" {
		v, err := pc.read()
		if err != nil {
			pc.close()
			return nil, err
		}
		if v.IsError() {
			pc.close()
			// The session's own AUTH says so in its status.
			return nil, refusedError{errAuthRefused}
		}
	}
	// A user that may not name its connection (NOPERM), or a server
	// without CLIENT SETNAME, can still be asked.
	if _, err := pc.read(); err != nil {
		pc.close()
		return nil, err
	}
	return pc, nil
}

// info asks INFO replication and reads the answer by deadline. Any answer
// but an error says the source and the link work; the answer's offset is
// read when it has one (a Redis-compatible proxy may lack the section).
func (pc *probeConn) info(deadline time.Time) (probeAnswer, error) {
	ans := probeAnswer{offset: -1}
	pc.conn.SetDeadline(deadline)
	if _, err := pc.conn.Write(resp.AppendCommandStrings(nil, "INFO", "replication")); err != nil {
		return ans, err
	}
	v, err := pc.read()
	if err != nil {
		return ans, err
	}
	if v.IsError() {
		if !busyReply(string(v.Str)) {
			return ans, refusedError{fmt.Errorf("INFO replication: %s", v.Str)}
		}
		return ans, nil
	}
	ans.replID, ans.offset = replicationPosition(string(v.Str))
	return ans, nil
}

// replicationPosition reads master_replid and master_repl_offset from an
// INFO replication answer; offset -1 when either is missing or malformed,
// or when the source is a replica whose own master link is down: its
// offset stands still because it has lost its master, not because nothing
// happens (the silence limit still reads it, as before the probe's offset).
func replicationPosition(info string) (replID string, offset int64) {
	offset = -1
	haveOffset, linkDown := false, false
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch k {
		case "master_replid":
			replID = v
		case "master_link_status":
			linkDown = v != "up"
		case "master_repl_offset":
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil && n >= 0 {
				offset, haveOffset = n, true
			}
		}
	}
	if replID == "" || !haveOffset || linkDown {
		return "", -1
	}
	return replID, offset
}

// busyReply says whether an error reply says the source is busy (a script
// past busy-reply-threshold, a dataset loading): it answers, so it is not
// frozen, and will answer the question later.
func busyReply(msg string) bool {
	code, _, _ := strings.Cut(msg, " ")
	switch code {
	case "BUSY", "LOADING", "MASTERDOWN", "TRYAGAIN":
		return true
	}
	return false
}

// read reads one reply; what is not RESP within the limits is a refusal
// (asking again would read the same).
func (pc *probeConn) read() (resp.Value, error) {
	v, err := pc.rd.ReadValue()
	var ne net.Error
	if err != nil && !errors.As(err, &ne) && !errors.Is(err, net.ErrClosed) && !isEOF(err) {
		return v, refusedError{fmt.Errorf("the source's reply is not RESP: %w", err)}
	}
	return v, err
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func (pc *probeConn) close() {
	if pc == nil {
		return
	}
	pc.stop()
	pc.conn.Close()
}
