package replication

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/internal/resp"
)

func testLink(t *testing.T) *masterLink {
	t.Helper()
	l, err := newMasterLink(1, Access{}, slog.New(slog.NewTextHandler(io.Discard, nil)), 0, nil)
	require.NoError(t, err)
	t.Cleanup(func() { l.ln.Close() })
	return l
}

// handshakeOver runs the link's handshake against what a client sends,
// and returns the session (or the error) and what the link answered.
func handshakeOver(t *testing.T, l *masterLink, input []byte) (*linkSession, error, string) {
	t.Helper()
	s, _, err, got := handshakeLoadOver(t, l, input)
	return s, err, got
}

// handshakeLoadOver is handshakeOver that also returns the full sync the
// handshake handed the connection to, if any.
func handshakeLoadOver(t *testing.T, l *masterLink, input []byte) (*linkSession, *linkLoad, error, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer client.Close()
	server, err := ln.Accept()
	require.NoError(t, err)
	var got bytes.Buffer
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		io.Copy(&got, client)
	}()
	// All the input, then the end of it: the link reads no more.
	client.Write(input)
	client.(*net.TCPConn).CloseWrite()
	s, ld, err := l.handshake(context.Background(), server)
	server.Close()
	<-readDone
	return s, ld, err, got.String()
}

func cmds(args ...[]string) []byte {
	var b []byte
	for _, a := range args {
		b = resp.AppendCommandStrings(b, a...)
	}
	return b
}

func TestLinkHandshakeContinuesTheReplicasHistory(t *testing.T) {
	l := testLink(t)
	s, err, got := handshakeOver(t, l, cmds(
		[]string{"PING"}, []string{"AUTH", linkUser, l.secret},
		[]string{"REPLCONF", "listening-port", "6379"}, []string{"REPLCONF", "capa", "eof", "capa", "psync2"},
		[]string{"PSYNC", "0123456789012345678901234567890123456789", "1001"}))
	require.NoError(t, err)
	require.NotNil(t, s)
	assert.Equal(t, int64(1000), s.base, "the replica's offset is the one before the first byte it asks for")
	assert.Equal(t, "+PONG\r\n+OK\r\n+OK\r\n+OK\r\n+CONTINUE\r\n", got, "no replication id: the replica keeps its own")
}

func TestLinkHandshakeRefusesStrangers(t *testing.T) {
	l := testLink(t)
	for name, c := range map[string]struct {
		input []byte
		reply string
	}{
		"wrong password":      {cmds([]string{"AUTH", linkUser, "guess"}), "-WRONGPASS"},
		"wrong user":          {cmds([]string{"AUTH", "default", l.secret}), "-WRONGPASS"},
		"psync without auth":  {cmds([]string{"PSYNC", "?", "-1"}), "-NOAUTH"},
		"replconf first":      {cmds([]string{"REPLCONF", "capa", "eof"}), "-NOAUTH"},
		"no history":          {cmds([]string{"AUTH", linkUser, l.secret}, []string{"PSYNC", "?", "-1"}), "-ERR"},
		"bad offset":          {cmds([]string{"AUTH", linkUser, l.secret}, []string{"PSYNC", "abc", "x"}), "-ERR"},
		"other command":       {cmds([]string{"AUTH", linkUser, l.secret}, []string{"FLUSHALL"}), "-ERR"},
		"empty array":         {[]byte("*0\r\n"), ""},
		"garbage":             {[]byte("\x00\x01junk\r\n"), ""},
		"auth with one arg":   {cmds([]string{"AUTH", l.secret}), "-NOAUTH"},
		"negative bulk count": {[]byte("*1\r\n$-5\r\n"), ""},
	} {
		t.Run(name, func(t *testing.T) {
			s, err, got := handshakeOver(t, l, c.input)
			assert.Error(t, err)
			assert.Nil(t, s)
			assert.NotContains(t, got, "+CONTINUE")
			assert.NotContains(t, got, l.secret, "the secret never goes back")
			if c.reply != "" {
				assert.Contains(t, got, c.reply)
			}
		})
	}
}

// FuzzLinkHandshake: whatever a local process sends the link, nothing
// panics, and only the right credentials before PSYNC open a session.
func FuzzLinkHandshake(f *testing.F) {
	f.Add([]byte("*1\r\n$4\r\nPING\r\n"))
	f.Add(cmds([]string{"AUTH", linkUser, "secret"}, []string{"PSYNC", "id", "5"}))
	f.Add([]byte("*0\r\n"))
	f.Add([]byte("*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n"))
	f.Fuzz(func(t *testing.T, input []byte) {
		l := testLink(t)
		l.secret = "secret"
		s, err, _ := handshakeOver(t, l, input)
		if s == nil {
			require.Error(t, err)
			return
		}
		authed := bytes.Contains(input, []byte(linkUser)) && bytes.Contains(input, []byte("secret"))
		assert.True(t, authed, "a session without the credentials")
	})
}

// A stranger's big command is refused at its header, before its bytes are
// taken: the link holds little for a connection that has not logged in.
func TestLinkHandshakeRefusesBigCommands(t *testing.T) {
	for _, input := range [][]byte{
		[]byte("*1\r\n$536870912\r\nPING"),
		[]byte("*1048576\r\n$4\r\nPING\r\n"),
	} {
		l := testLink(t)
		s, err, _ := handshakeOver(t, l, input)
		assert.Nil(t, s)
		assert.ErrorContains(t, err, "exceeds limit")
	}
}

// An offset that later bytes would overflow is refused, with a load
// waiting or not.
func TestLinkHandshakeRefusesAnOffsetOutOfRange(t *testing.T) {
	for _, pending := range []bool{false, true} {
		l := testLink(t)
		if pending {
			l.loadWant = make(chan *linkLoad, 1)
		}
		s, ld, err, got := handshakeLoadOver(t, l, cmds([]string{"AUTH", linkUser, l.secret}, []string{"REPLCONF", "capa", "eof"},
			[]string{"PSYNC", "0123456789012345678901234567890123456789", "9223372036854775807"}))
		assert.Nil(t, s)
		assert.Nil(t, ld)
		assert.ErrorContains(t, err, "out of range")
		assert.Contains(t, got, "-ERR replication offset out of range")
		if pending {
			assert.NotNil(t, l.loadWant, "the full sync still waits for the destination")
		}
	}
}

// With a full sync waiting for the destination, whatever a peer sends
// never gets it the load without the credentials, and never panics.
func FuzzLinkHandshakeWithALoadPending(f *testing.F) {
	f.Add(cmds([]string{"AUTH", linkUser, "secret"}, []string{"REPLCONF", "capa", "eof"}, []string{"PSYNC", "?", "-1"}))
	f.Add(cmds([]string{"AUTH", linkUser, "secret"}, []string{"PSYNC", "0123456789012345678901234567890123456789", "9223372036854775807"}))
	f.Add(cmds([]string{"PSYNC", "?", "-1"}))
	f.Add([]byte("*0\r\n"))
	f.Fuzz(func(t *testing.T, input []byte) {
		l := testLink(t)
		l.secret = "secret"
		want := make(chan *linkLoad, 1)
		l.loadWant = want
		s, ld, err, got := handshakeLoadOver(t, l, input)
		authed := bytes.Contains(input, []byte(linkUser)) && bytes.Contains(input, []byte("secret"))
		switch {
		case ld != nil:
			assert.True(t, authed, "a load without the credentials")
			<-ld.started
			assert.Same(t, ld, <-want, "the waiting full sync gets the connection")
			if ld.err == nil {
				assert.Contains(t, got, "+FULLRESYNC ", "the load starts with FULLRESYNC")
				assert.GreaterOrEqual(t, ld.offset, int64(1))
			}
		case s != nil:
			t.Fatalf("a session while a full sync waits: the load must take the PSYNC")
		default:
			require.Error(t, err)
			if !authed {
				assert.NotNil(t, l.loadWant, "a stranger's handshake leaves the full sync waiting for the destination")
			}
		}
	})
}

func TestLinkSessionCountsAcks(t *testing.T) {
	server, replica := net.Pipe()
	defer replica.Close()
	s := &linkSession{link: testLink(t), conn: server, rd: resp.NewReader(bufio.NewReader(server)), bw: bufio.NewWriter(server),
		base: 500, sem: make(chan struct{}, 1), ackCh: make(chan struct{}), done: make(chan struct{})}
	go s.readAcks()
	// The replica reads what the link writes.
	sent := make(chan []byte, 1)
	go func() {
		b := make([]byte, 4096)
		n, _ := io.ReadAtLeast(replica, b, 10)
		sent <- b[:n]
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.lock(ctx, "src"))
	holder, _ := s.heldBy()
	assert.Equal(t, "src", holder)
	batch := cmds([]string{"MULTI"}, []string{"SET", "k", "v"}, []string{"EXEC"})
	end, err := s.write(ctx, batch, true, "src")
	require.NoError(t, err)
	s.unlock()
	assert.Equal(t, int64(len(batch)), end)
	wire := <-sent
	assert.True(t, bytes.HasPrefix(wire, batch))

	waited := make(chan error, 1)
	go func() { waited <- s.waitAck(ctx, end) }()
	replica.Write(cmds([]string{"REPLCONF", "ACK", "510"})) // not yet
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.acked == 10
	}, 5*time.Second, time.Millisecond, "the first ACK is read")
	select {
	case err := <-waited:
		t.Fatalf("applied before its acknowledgement: %v", err)
	default:
	}
	replica.Write(cmds([]string{"REPLCONF", "ACK", strconv.FormatInt(500+end, 10)}))
	require.NoError(t, <-waited)
	replica.Close()
	require.Eventually(t, func() bool { return s.failed() != nil }, 5*time.Second, 10*time.Millisecond, "a closed link ends the session")
	assert.Error(t, s.waitAck(ctx, end+1000))
}

func TestDescribeBatchNamesTheSourcesCommands(t *testing.T) {
	b := cmds([]string{"MULTI"}, []string{"SELECT", "0"}, []string{"LPUSH", "clash", "x"}, []string{"SELECT", "16"},
		[]string{"HSET", checkpointKey, "src", "cp"}, []string{"EXEC"})
	assert.Equal(t, `LPUSH "clash" ...`, describeBatch(b))
	many := cmds([]string{"MULTI"}, []string{"INCR", "a"}, []string{"INCR", "b"}, []string{"INCR", "c"}, []string{"INCR", "d"}, []string{"EXEC"})
	assert.Equal(t, `INCR "a", INCR "b", INCR "c" and 1 more`, describeBatch(many))
}

func TestLastLinkErrorReadsTheReplicasLog(t *testing.T) {
	p := filepath.Join(t.TempDir(), "redis.log")
	log := "1:S 28 Nov 2026 # == CRITICAL == This replica is sending an error to its master: 'first' after processing the command 'exec'\n" +
		"1:S 28 Nov 2026 * other\n" +
		"1:S 28 Nov 2026 # == CRITICAL == This replica is sending an error to its master: '-WRONGTYPE Operation against a key' after processing the command 'exec'\n"
	require.NoError(t, os.WriteFile(p, []byte(log), 0o600))
	assert.Equal(t, "'-WRONGTYPE Operation against a key' after processing the command 'exec'", lastLinkError(p))
	assert.Contains(t, lastLinkError(filepath.Join(t.TempDir(), "missing")), "see the destination's log")

	log += "1:S # == CRITICAL == This replica is sending an error to its master: '-OOM command not allowed when used memory > 'maxmemory'.' after processing the command 'set'\n" +
		"1:S # == CRITICAL == This replica is sending an error to its master: '-EXECABORT Transaction discarded because of previous errors.' after processing the command 'exec'\n"
	require.NoError(t, os.WriteFile(p, []byte(log), 0o600))
	assert.Equal(t, "'-OOM command not allowed when used memory > 'maxmemory'.' after processing the command 'set' (the transaction was discarded)", lastLinkError(p),
		"the cause, not the EXEC it aborted")

	// An EXEC refused by itself names its cause: the line before is an
	// older error, not this one's.
	log += "1:S # == CRITICAL == This replica is sending an error to its master: '-EXECABORT Transaction discarded because of: OOM command not allowed when used memory > 'maxmemory'.' after processing the command 'exec'\n"
	require.NoError(t, os.WriteFile(p, []byte(log), 0o600))
	assert.Equal(t, "'-EXECABORT Transaction discarded because of: OOM command not allowed when used memory > 'maxmemory'.' after processing the command 'exec'", lastLinkError(p))
}

func TestDescribeBatchNamesACommandCutShort(t *testing.T) {
	b := cmds([]string{"MULTI"}, []string{"SELECT", "0"}, []string{"SET", "blob:1", strings.Repeat("x", 100000)}, []string{"EXEC"})
	assert.Equal(t, `SET "blob:1" ...`, describeBatch(b[:200]))
	assert.Equal(t, "", describeBatch([]byte("*garbage")))
}

// FuzzDescribeBatch: whatever bytes a batch begins with, naming it never
// panics.
func FuzzDescribeBatch(f *testing.F) {
	f.Add(cmds([]string{"MULTI"}, []string{"SET", "k", "v"}, []string{"EXEC"}))
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$-1\r\n"))
	f.Add([]byte("*1\r\n$99999999999999999999\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) { _ = describeBatch(b) })
}

// attach gives up, so that it can be tried again, when the destination is
// no longer a replica of the link while it waits for it to connect (a
// destination restarted meanwhile, whose config makes it a replica of port
// 0), instead of waiting 30 s for a connection that never comes.
func TestLinkAttachNoticesARestartedDestination(t *testing.T) {
	// The application user (default) is read-only, as the service makes
	// it: attach waits for that (TestAttachWaitsForTheApplicationUserToBeReadOnly).
	dst := redistest.Start(t, "--enable-debug-command", "yes",
		"--user", "default", "on", "nopass", "~*", "&*", "+@all", "-@write",
		"--user", "svc", "on", ">svc", "~*", "&*", "+@all")
	l, err := newMasterLink(1, Access{Network: "tcp", Addr: dst.Addr(), Username: "svc", Password: "svc"}, slog.New(slog.NewTextHandler(io.Discard, nil)), 0, nil)
	require.NoError(t, err)
	t.Cleanup(func() { l.ln.Close() })
	// Nobody accepts on the link: the destination connects, never gets
	// past its handshake, and attach waits.
	c := l.acc.client(0)
	defer c.Close()
	ctx := redistest.Ctx(t)
	attached := make(chan error, 1)
	go func() { attached <- l.attach(ctx, c) }()
	other := dst.Client()
	redistest.Eventually(t, 10*time.Second, "the destination is a replica of the link", func() error {
		info, err := other.Info(ctx, "replication").Result()
		if err != nil || infoInt(info, "master_port") != int64(l.port()) {
			return fmt.Errorf("%v %q", err, info)
		}
		return nil
	})
	require.NoError(t, other.Do(ctx, "REPLICAOF", "127.0.0.1", "0").Err()) // as a restart would
	select {
	case err := <-attached:
		require.ErrorContains(t, err, "no longer a replica of the service")
	case <-time.After(10 * time.Second):
		t.Fatal("attach still waits for a destination that will not connect")
	}
}

// A local process hammering the link's port with bad handshakes gets one
// log line per refusalLogEvery, which counts them, not one per connection.
func TestLinkRefusalsAreLoggedSparingly(t *testing.T) {
	var logged bytes.Buffer
	l, err := newMasterLink(1, Access{}, slog.New(slog.NewTextHandler(&logged, nil)), 0, nil)
	require.NoError(t, err)
	t.Cleanup(func() { l.ln.Close() })
	for range 1000 {
		l.refused(fmt.Errorf("wrong credentials"))
	}
	assert.Equal(t, 1, strings.Count(logged.String(), "refused a connection"), "one line for the burst:\n%s", logged.String())
	l.pendingMu.Lock()
	l.refusalLast = time.Now().Add(-refusalLogEvery) // as if the window passed
	l.pendingMu.Unlock()
	l.refused(fmt.Errorf("wrong credentials"))
	assert.Equal(t, 2, strings.Count(logged.String(), "refused a connection"))
	assert.Contains(t, logged.String(), "refused=1000", "the next line counts the refusals it stands for")
}

// A writer sends only over the link session its position holds on: a new
// session may be a destination that restarted with less than it applied.
func TestWriterStaysOnTheLinkSessionOfItsCheckpoint(t *testing.T) {
	l := testLink(t)
	session := func() *linkSession {
		server, replica := net.Pipe()
		t.Cleanup(func() { replica.Close() })
		go io.Copy(io.Discard, replica) // the replica reads what it is sent
		return newLinkSession(l, server, resp.NewReader(bufio.NewReader(server)), 0)
	}
	install := func(s *linkSession) {
		l.mu.Lock()
		l.sess = s
		l.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first := session()
	install(first)
	w := &destWriter{link: l, bound: first, source: "src"}
	batch := cmds([]string{"MULTI"}, []string{"INCR", "k"}, []string{"EXEC"})

	w.buf = append(w.buf[:0], batch...)
	s, _, _, _, err := w.sendLink(ctx, true, 1)
	require.NoError(t, err)
	assert.Same(t, first, s)

	second := session()
	install(second)
	w.buf = append(w.buf[:0], batch...)
	_, _, _, _, err = w.sendLink(ctx, true, 1)
	require.ErrorIs(t, err, errLinkChanged)
	assert.Zero(t, second.sent, "nothing went over the new session")

	// A writer not yet bound (after a reload's swap) takes the session it
	// finds.
	w.bound = nil
	w.buf = append(w.buf[:0], batch...)
	s, _, _, _, err = w.sendLink(ctx, true, 1)
	require.NoError(t, err)
	assert.Same(t, second, s)
	assert.Same(t, second, w.bound)
}

// The batches named when the destination fails a command: one that holds
// only the service's checkpoint says so (it was named as an empty one,
// "source x: ").
func TestSuspectsNameACheckpointOnlyBatch(t *testing.T) {
	s := &linkSession{}
	data := cmds([]string{"MULTI"}, []string{"SELECT", "0"}, []string{"SET", "k", "v"}, []string{"EXEC"})
	cp := cmds([]string{"MULTI"}, []string{"SELECT", "16"}, []string{"HSET", checkpointKey, "src", "cp"}, []string{"EXEC"})
	s.remember(10, "a:1", data)
	s.remember(20, "b:2", cp)
	which, n := s.suspects(0)
	assert.Equal(t, 2, n)
	assert.Equal(t, `source a:1: SET "k" ...; source b:2: the service's checkpoint only`, which)
	which, n = s.suspects(10)
	assert.Equal(t, 1, n)
	assert.Equal(t, `source b:2: the service's checkpoint only`, which)
}

// A destination that just restarted gives its application user start
// rules that admit writes (its AOF's replay needs them) until the service
// applies the real ones: the link must not make it a writable replica
// before then, or applications' writes land in it (a write right after a
// restart was applied, now and then, when the attach won the race).
func TestAttachWaitsForTheApplicationUserToBeReadOnly(t *testing.T) {
	dest := redistest.Start(t, "--replicaof", "127.0.0.1", "0", "--replica-read-only", "yes", "--enable-debug-command", "yes",
		"--user", "default", "on", "nopass", "~*", "&*", "+@all", "-@admin",
		"--user", "svc", "on", ">svc", "~*", "&*", "+@all")
	l := testLink(t)
	c := redis.NewClient(&redis.Options{Addr: dest.Addr(), MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	svc := redis.NewClient(&redis.Options{Addr: dest.Addr(), Username: "svc", Password: "svc", MaxRetries: -1})
	t.Cleanup(func() { svc.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = l.attach(ctx, svc) // fails: nothing connects within 2 s, or the user never becomes read-only
	got, err := svc.ConfigGet(context.Background(), "replica-read-only").Result()
	require.NoError(t, err)
	assert.Equal(t, "yes", got["replica-read-only"], "the destination was made writable while its application user may write")
	err = c.Set(context.Background(), "app", "x", 0).Err()
	require.Error(t, err, "an application's write was applied")

	// Once the real rules are there, the attach goes on.
	require.NoError(t, svc.Do(context.Background(), "ACL", "SETUSER", "default", "-@write").Err())
	actx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = l.attach(actx, svc) }()
	defer func() { stop(); <-done }()
	redistest.Eventually(t, 10*time.Second, "the destination is made a writable replica", func() error {
		got, err := svc.ConfigGet(context.Background(), "replica-read-only").Result()
		if err != nil || got["replica-read-only"] != "no" {
			return fmt.Errorf("replica-read-only %v (%v)", got, err)
		}
		return nil
	})
}
