package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/internal/replproto"
	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// fakeRedis is the upstream of a gateway in these tests: it answers what a
// redis-server answers a replica, and records every command it receives.
type fakeRedis struct {
	ln net.Listener
	mu sync.Mutex
	// got holds the upper-cased command names received after AUTH.
	got []string
}

func startFakeRedis(t *testing.T) *fakeRedis {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &fakeRedis{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeRedis) serve(c net.Conn) {
	defer c.Close()
	rd := resp.NewReader(bufio.NewReader(c))
	for {
		args, _, err := rd.ReadCommand()
		if err != nil {
			return
		}
		name := strings.ToUpper(string(args[0]))
		if name != "AUTH" {
			f.mu.Lock()
			f.got = append(f.got, strings.ToUpper(string(bytes.Join(args, []byte(" ")))))
			f.mu.Unlock()
		}
		var reply string
		switch name {
		case "PING":
			reply = "+PONG\r\n"
		case "INFO":
			body := "# Replication\r\nrole:master\r\n"
			reply = "$" + strconv.Itoa(len(body)) + "\r\n" + body + "\r\n"
		case "PSYNC", "SYNC":
			c.Write([]byte("+FULLRESYNC 0123456789012345678901234567890123456789 0\r\n$0\r\n"))
			continue
		case "REPLCONF":
			if len(args) > 1 && strings.EqualFold(string(args[1]), "ACK") {
				continue // a master does not answer ACKs
			}
			reply = "+OK\r\n"
		default:
			reply = "+OK\r\n"
		}
		c.Write([]byte(reply))
	}
}

func (f *fakeRedis) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

// logLines is a slog handler that counts records by message.
type logLines struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Level.String()+" "+r.Message)
	return nil
}
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logLines) WithGroup(string) slog.Handler      { return l }
func (l *logLines) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

// startGateway runs a gateway with one endpoint in front of a fakeRedis.
// configure, when given, changes the gateway before it serves.
func startGateway(t *testing.T, configure ...func(*Gateway)) (*Gateway, string, *fakeRedis, *logLines) {
	t.Helper()
	up := startFakeRedis(t)
	logs := &logLines{}
	g := New(slog.New(logs), prometheus.NewRegistry())
	t.Cleanup(g.Close)
	for _, c := range configure {
		c(g)
	}
	addr := freeLoopbackAddr(t)
	require.NoError(t, g.Ensure(Endpoint{UID: 1, Listen: addr, AdminUser: "admin", AdminPassword: "secret",
		UpstreamNetwork: "tcp", UpstreamAddr: up.ln.Addr().String(), UpstreamUser: "admin", UpstreamPassword: "x"}))
	return g, addr, up, logs
}

// client is one connection to an endpoint.
type client struct {
	t  *testing.T
	c  net.Conn
	rd *resp.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &client{t: t, c: c, rd: resp.NewReader(bufio.NewReader(c))}
}

// send writes raw bytes and reads one reply.
func (c *client) send(raw string) resp.Value {
	c.t.Helper()
	_, err := io.WriteString(c.c, raw)
	require.NoError(c.t, err)
	v, err := c.rd.ReadValue()
	require.NoError(c.t, err, "reply to %q", raw)
	return v
}

func (c *client) do(args ...string) resp.Value {
	c.t.Helper()
	return c.send(string(resp.AppendCommandStrings(nil, args...)))
}

func TestMalformedCommandsGetAnErrorAndTheGatewayStaysUp(t *testing.T) {
	_, addr, up, _ := startGateway(t)
	for _, raw := range []string{"*0\r\n", "*-1\r\n"} {
		c := dial(t, addr)
		assert.Equal(t, "ERR empty command", string(c.send(raw).Str), "before AUTH: %q", raw)
		assert.Equal(t, "OK", string(c.do("AUTH", "secret").Str))
		assert.Equal(t, "ERR empty command", string(c.send(raw).Str), "after AUTH, as the first command: %q", raw)
		assert.Equal(t, "ERR empty command", string(c.send(raw).Str), "after AUTH: %q", raw)
		assert.Equal(t, "PONG", string(c.do("PING").Str), "the session goes on")
	}
	for _, raw := range []string{"*-5\r\n", "*1\r\n$-1\r\n", "*99999\r\n", "*1\r\n$99999999\r\n", "PING\r\n", "\x00\xff\r\n", "*1\r\n$4\r\nPINGxx"} {
		c := dial(t, addr)
		c.c.Write([]byte(raw))
		c.c.(*net.TCPConn).CloseWrite()
		// Whatever comes back (an error reply, or nothing), the connection ends.
		_, err := io.ReadAll(c.c)
		assert.NoError(t, err, "%q", raw)
	}
	// Still serving.
	c := dial(t, addr)
	assert.Equal(t, "OK", string(c.do("AUTH", "admin", "secret").Str))
	assert.Equal(t, "PONG", string(c.do("PING").Str))
	assert.NotContains(t, up.commands(), "", "no empty command reached redis-server")
}

func TestOnlyReplicationCommandsReachTheDatabase(t *testing.T) {
	_, addr, up, _ := startGateway(t)
	c := dial(t, addr)
	require.Equal(t, "OK", string(c.do("AUTH", "secret").Str))
	for _, cmd := range [][]string{
		{"CONFIG", "SET", "maxmemory", "1"}, {"ACL", "SETUSER", "default", "+@all"}, {"REPLICAOF", "example.com", "6379"},
		{"FLUSHALL"}, {"GET", "k"}, {"KEYS", "*"}, {"DEBUG", "SLEEP", "1"}, {"SHUTDOWN"}, {"MONITOR"},
		{"CLIENT", "KILL", "TYPE", "normal"}, {"EVAL", "return 1", "0"},
	} {
		v := c.do(cmd...)
		assert.True(t, v.IsError(), "%v must be refused", cmd)
		assert.Contains(t, string(v.Str), "NOPERM", "%v", cmd)
	}
	for _, cmd := range [][]string{{"AUTH", "replicad", "guess"}, {"HELLO", "3", "AUTH", "replicad", "guess"}} {
		v := c.do(cmd...)
		assert.True(t, v.IsError(), "%v must be refused", cmd[0])
	}
	info := c.do("INFO", "server", "keyspace")
	assert.Contains(t, string(info.Str), "role:master")
	assert.Equal(t, "PONG", string(c.do("PING").Str))
	assert.Equal(t, "OK", string(c.do("REPLCONF", "listening-port", "1").Str))
	_, err := c.c.Write(resp.AppendCommandStrings(nil, "PSYNC", "?", "-1"))
	require.NoError(t, err)
	line, err := bufio.NewReader(c.c).ReadString('\n')
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(line, "+FULLRESYNC"), line)

	assert.Equal(t, []string{"INFO REPLICATION", "PING", "REPLCONF LISTENING-PORT 1", "PSYNC ? -1"}, up.commands(),
		"what reached redis-server: INFO narrowed to replication, nothing refused")
}

func TestWrongPasswordsAreThrottledAndLoggedInAggregate(t *testing.T) {
	g, addr, _, logs := startGateway(t, func(g *Gateway) {
		g.throttle.Base, g.throttle.Max = 10*time.Millisecond, 40*time.Millisecond
	})
	const attempts = 40
	var wantDelay time.Duration
	for i := 1; i < attempts; i++ {
		wantDelay += g.throttle.DelayFor(i)
	}
	start := time.Now()
	// Half on one connection, half on a connection each, in parallel: the
	// throttle is per address, not per connection.
	c := dial(t, addr)
	for range attempts / 2 {
		assert.Contains(t, string(c.do("AUTH", "admin", "wrong").Str), "WRONGPASS")
	}
	var wg sync.WaitGroup
	for range attempts / 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dial(t, addr)
			assert.Contains(t, string(c.do("AUTH", "wrong").Str), "WRONGPASS")
		}()
	}
	wg.Wait()
	// A lower bound, not a timing assertion: attempts cannot come faster
	// than the delays the throttle imposes.
	assert.GreaterOrEqual(t, time.Since(start), wantDelay, "%d failed attempts must be slowed down", attempts)
	assert.Equal(t, 1, logs.count("WARN refused a replication session"), "one line for a burst of failures")
	// The right password still works, after the delay.
	c = dial(t, addr)
	assert.Equal(t, "OK", string(c.do("AUTH", "secret").Str))
	// The burst is summarised once its window ends.
	g.throttle.Succeeded("127.0.0.1/1/0")
	assert.Equal(t, 1, logs.count("WARN refused more replication sessions"), "the suppressed count is reported")
}

func TestHandshakeCommandDecisions(t *testing.T) {
	args := func(s ...string) [][]byte {
		out := make([][]byte, len(s))
		for i, a := range s {
			out[i] = []byte(a)
		}
		return out
	}
	for _, tc := range []struct {
		in        [][]byte
		want      verdict
		clustered bool
	}{
		{args("INFO", "cluster"), forward, false}, {args("INFO", "Cluster"), answerInfo, true}, {args("INFO", "cluster", "x"), forward, true},
		{args("CLUSTER", "SHARDS"), refuse, false}, {args("cluster", "shards"), answerShards, true},
		{args("CLUSTER", "NODES"), refuse, true}, {args("CLUSTER", "SHARDS", "x"), refuse, true}, {args("CLUSTER"), refuse, true},
		{nil, refuse, false}, {args(), refuse, false}, {args("psync", "?", "-1"), startStream, false}, {args("SYNC"), startStream, false},
		{args("ping"), forward, false}, {args("REPLCONF", "capa", "eof"), forward, false}, {args("INFO"), forward, false},
		{args("CLIENT", "SETNAME", "x"), forward, false}, {args("CLIENT", "KILL", "x"), refuse, false}, {args("CLIENT"), refuse, false},
		{args("QUIT"), quit, false}, {args("AUTH", "x"), refuse, false}, {args("HELLO", "3"), refuse, false},
		{args(CompressCommand, "1"), refuse, false}, {args(CodecsCommand, "zstd"), refuse, false}, {args("CONFIG", "GET", "*"), refuse, false}, {args(""), refuse, false},
		{args("REPLCONF", "ACK", "10"), refuse, false}, {args("replconf", "getack", "*"), refuse, false}, {args("REPLCONF", "listening-port", "1"), forward, false},
		{args("replicad.lineage"), answerLineage, false}, {args(replproto.LineageCommand), answerLineage, true}, {args(replproto.LineageCommand, "x"), refuse, false},
	} {
		got, cmd, _ := handshakeCommand(tc.in, tc.clustered)
		assert.Equal(t, tc.want, got, "%q", tc.in)
		if tc.want == forward && commandName(tc.in) == "INFO" {
			assert.Equal(t, args("INFO", "replication"), cmd)
		}
	}
}

// Idle and slow connections are closed once the handshake time is up, and
// hold nothing: a destination can still replicate.
func TestIdleAndSlowConnectionsAreClosed(t *testing.T) {
	_, addr, _, _ := startGateway(t, func(g *Gateway) { g.handshakeTimeout = time.Second })
	idle := dial(t, addr)
	slow := dial(t, addr)
	authed := dial(t, addr)
	require.Equal(t, "OK", string(authed.do("AUTH", "secret").Str))
	go func() {
		// One byte at a time, never a whole command.
		for _, b := range []byte("*2\r\n$4\r\nAUTH\r\n$6\r\nsec") {
			if _, err := slow.c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	for name, c := range map[string]*client{"idle": idle, "slow": slow, "authenticated but idle": authed} {
		start := time.Now()
		_, err := io.ReadAll(c.c)
		// Closed by the gateway: an orderly end, or a reset when the client
		// was still writing; never the test's own deadline.
		if err != nil {
			assert.ErrorIs(t, err, syscall.ECONNRESET, name)
		}
		assert.Less(t, time.Since(start), 20*time.Second, "%s: closed by the gateway, not by the test's deadline", name)
	}
	c := dial(t, addr)
	assert.Equal(t, "OK", string(c.do("AUTH", "secret").Str))
}

// Hundreds of idle connections from one address do not keep a destination
// on that address from replicating at once.
func TestIdleConnectionsDoNotLockOutADestination(t *testing.T) {
	_, addr, _, _ := startGateway(t)
	idle := make([]*client, 3*maxPendingPerPeer)
	for k := range idle {
		idle[k] = dial(t, addr)
	}
	c := dial(t, addr)
	assert.Equal(t, "OK", string(c.do("AUTH", "secret").Str))
	_, err := c.c.Write(resp.AppendCommandStrings(nil, "PSYNC", "?", "-1"))
	require.NoError(t, err)
	line, err := c.rd.Buffered().ReadString('\n')
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(line, "+FULLRESYNC"), line)
	// The oldest idle ones were closed to make room.
	_, err = io.ReadAll(idle[0].c)
	assert.NoError(t, err)
}

// A protocol error is answered without quoting the input, which may hold a
// password (an inline AUTH, say).
func TestProtocolErrorsDoNotEchoInput(t *testing.T) {
	_, addr, _, _ := startGateway(t)
	for _, in := range []string{"AUTH admin hunter2-secret\r\n", "*2\r\n$4\r\nAUTH\r\nhunter2-secret\r\n"} {
		c := dial(t, addr)
		_, err := io.WriteString(c.c, in)
		require.NoError(t, err)
		out, _ := io.ReadAll(c.c)
		assert.Contains(t, string(out), "Protocol error")
		assert.NotContains(t, string(out), "hunter2")
	}
}

// The lineage question is answered by the gateway itself, after AUTH only,
// with the endpoint's lineage, and never reaches redis-server.
func TestLineageIsAnsweredAfterAuthOnly(t *testing.T) {
	g, addr, up, _ := startGateway(t)
	ep := g.eps[epKey{1, 0}].config()
	ep.Lineage = func() []string { return []string{"instance/1", "other/4"} }
	require.NoError(t, g.Ensure(ep))
	c := dial(t, addr)
	assert.True(t, c.do(replproto.LineageCommand).IsError(), "before AUTH")
	require.Equal(t, "OK", string(c.do("AUTH", "secret").Str))
	assert.Equal(t, []string{"instance/1", "other/4"}, replproto.ParseLineage(c.do(replproto.LineageCommand)))
	assert.Equal(t, "PONG", string(c.do("PING").Str), "the session goes on")
	assert.NotContains(t, strings.Join(up.commands(), " "), "LINEAGE", "answered by the gateway")
}

// A burst of wrong passwords from connections that give up at once locks
// nobody out for long: turns are reserved at most maxWait ahead (the rest
// are closed), and the throttle is per endpoint, so a destination of
// another database is not slowed at all.
func TestABurstOfWrongPasswordsLocksNobodyOut(t *testing.T) {
	g, addr, up, _ := startGateway(t, func(g *Gateway) {
		// Without the bound, 300 reserved turns of 1 s would hold a
		// correct password 300 s, far past the client's deadline (30 s).
		g.throttle.Base, g.throttle.Max, g.throttle.MaxWait = time.Second, time.Second, 2*time.Second
	})
	other := freeLoopbackAddr(t)
	require.NoError(t, g.Ensure(Endpoint{UID: 2, Listen: other, AdminUser: "admin", AdminPassword: "other-secret",
		UpstreamNetwork: "tcp", UpstreamAddr: up.ln.Addr().String(), UpstreamUser: "admin", UpstreamPassword: "x"}))

	var wg sync.WaitGroup
	for range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			_, _ = c.Write(resp.AppendCommandStrings(nil, "AUTH", "admin", "guess"))
			c.Close()
		}()
	}
	wg.Wait()
	assert.Equal(t, "OK", string(dial(t, other).do("AUTH", "admin", "other-secret").Str), "another endpoint is not slowed")
	// The burst's last connections are still being refused for a moment:
	// a client retries, as a destination does.
	redistest.Eventually(t, 20*time.Second, "the attacked endpoint takes a correct password once the burst ends", func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(resp.AppendCommandStrings(nil, "AUTH", "admin", "secret")); err != nil {
			return err
		}
		v, err := resp.NewReader(bufio.NewReader(c)).ReadValue()
		if err != nil {
			return err
		}
		if string(v.Str) != "OK" {
			return fmt.Errorf("%s", v.String())
		}
		return nil
	})
}

// A TLS client of an endpoint without TLS learns that what answered does
// not speak TLS (the cause), not that the connection was closed.
func TestATLSClientOfAPlainEndpointIsToldItIsNotTLS(t *testing.T) {
	_, addr, _, _ := startGateway(t)
	raw, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	err = tls.Client(raw, &tls.Config{InsecureSkipVerify: true}).Handshake()
	var notTLS tls.RecordHeaderError
	require.ErrorAs(t, err, &notTLS, "%v", err)
}

// A removed database's series go with it.
func TestRemoveDeletesTheDatabaseSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := New(slog.New(&logLines{}), reg)
	t.Cleanup(g.Close)
	up := startFakeRedis(t)
	addr := freeLoopbackAddr(t)
	require.NoError(t, g.Ensure(Endpoint{UID: 7, Listen: addr, AdminUser: "admin", AdminPassword: "secret",
		UpstreamNetwork: "tcp", UpstreamAddr: up.ln.Addr().String(), UpstreamUser: "admin", UpstreamPassword: "x"}))
	assert.Contains(t, string(dial(t, addr).do("AUTH", "admin", "wrong").Str), "WRONGPASS")
	count := func() int {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		n := 0
		for _, mf := range mfs {
			for _, m := range mf.Metric {
				for _, lp := range m.Label {
					if lp.GetName() == "database" && lp.GetValue() == "7" {
						n++
					}
				}
			}
		}
		return n
	}
	require.Positive(t, count(), "a refused session is counted")
	g.Remove(7)
	assert.Zero(t, count(), "no series of a removed database")
}

// freeLoopbackAddr is a loopback address nothing listens on just now.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// A logged-in session that keeps asking (a destination's source probe
// asks INFO replication every 2 s on one connection for as long as its
// sync streams) is kept past the handshake time, and logs nothing while it
// asks; once it stops asking it is closed, one handshake time after its
// last question. It was cut at the handshake time counted from its
// connection, and the probe dialled again.
func TestAQuestioningSessionIsKeptUntilItStopsAsking(t *testing.T) {
	const limit = time.Second
	_, addr, up, logs := startGateway(t, func(g *Gateway) { g.handshakeTimeout = limit })
	c := dial(t, addr)
	require.Equal(t, "OK", string(c.do("AUTH", "secret").Str))
	opened := time.Now()
	tick := time.NewTicker(limit / 4)
	defer tick.Stop()
	asked := 0
	for time.Since(opened) < 4*limit {
		<-tick.C
		info := c.do("INFO", "replication")
		require.False(t, info.IsError(), "question %d after %s: %s", asked, time.Since(opened), info.Str)
		asked++
	}
	assert.Equal(t, 0, logs.count(""), "nothing logged while the session asks")
	last := time.Now()
	_, err := io.ReadAll(c.c)
	assert.NoError(t, err, "closed by the gateway, not by the test's deadline")
	idle := time.Since(last)
	assert.GreaterOrEqual(t, idle, limit-100*time.Millisecond, "closed once idle for the handshake time")
	assert.Less(t, idle, 10*limit, "closed once idle for the handshake time")
	assert.LessOrEqual(t, logs.count(""), 1, "at most one line when it ends")
	n := 0
	for _, cmd := range up.commands() {
		if cmd == "INFO REPLICATION" {
			n++
		}
	}
	assert.Equal(t, asked, n, "every question reached redis-server")
}

// Each destination keeps a session that does not stream beside its stream
// (its source probe): those sessions do not take the streams' places. The
// endpoint allows maxSessionsPerEndpoint streams and, apart from them,
// maxQuestionSessionsPerEndpoint sessions that do not stream; past either,
// a session is refused. 64 probe sessions took every place, and no
// destination could stream.
func TestSessionsThatDoNotStreamDoNotTakeTheStreamsPlaces(t *testing.T) {
	_, addr, _, _ := startGateway(t)
	ask := func() *client {
		c := dial(t, addr)
		require.Equal(t, "OK", string(c.do("AUTH", "secret").Str))
		return c
	}
	for k := 0; k < maxSessionsPerEndpoint; k++ {
		info := ask().do("INFO", "replication")
		require.False(t, info.IsError(), "question session %d: %s", k, info.Str)
	}
	psync := func(c *client) string {
		_, err := c.c.Write(resp.AppendCommandStrings(nil, "PSYNC", "?", "-1"))
		require.NoError(t, err)
		line, err := c.rd.Buffered().ReadString('\n')
		require.NoError(t, err)
		return line
	}
	for k := 0; k < maxSessionsPerEndpoint; k++ {
		line := psync(ask())
		require.True(t, strings.HasPrefix(line, "+FULLRESYNC"), "stream %d: %s", k, line)
	}
	assert.Contains(t, psync(ask()), "too many replication sessions", "one stream more")
	for k := maxSessionsPerEndpoint; k < maxQuestionSessionsPerEndpoint; k++ {
		info := ask().do("INFO", "replication")
		require.False(t, info.IsError(), "question session %d: %s", k, info.Str)
	}
	assert.Contains(t, string(ask().do("INFO", "replication").Str), "too many replication sessions", "one question session more")
}
