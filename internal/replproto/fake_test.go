package replproto

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/resp"
	"github.com/stretchr/testify/require"
)

// fakeSource is the source end of a net.Pipe: tests script what it sends,
// and everything the replica sends is parsed and queued on cmds.
type fakeSource struct {
	t       *testing.T
	conn    net.Conn
	cmds    chan []string
	wg      sync.WaitGroup
	closing atomic.Bool // the test is over: failures of the script are noise
}

// run runs a script of the fake source; the test's cleanup waits for it.
func (f *fakeSource) run(script func()) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		script()
	}()
}

func (f *fakeSource) errorf(format string, args ...any) {
	if !f.closing.Load() {
		f.t.Errorf(format, args...)
	}
}

const testReplID = "0123456789abcdef0123456789abcdef01234567"

// newFakePair returns a replica Conn connected to a fake source.
func newFakePair(t *testing.T, o Options) (*fakeSource, *Conn) {
	t.Helper()
	client, server := net.Pipe()
	o.Addr = "fake:6379"
	if o.AckInterval == 0 {
		o.AckInterval = -1 // scripts expect exact command sequences
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = 5 * time.Second // a broken reader fails fast
	}
	o = o.withDefaults()
	if testing.Verbose() {
		o.Logger = testLogger(t)
	}
	dc := &deadlineConn{Conn: client, timeout: o.ReadTimeout}
	c := newConn(o, dc, dc)
	f := &fakeSource{t: t, conn: server, cmds: make(chan []string, 100)}
	go f.readLoop()
	t.Cleanup(func() {
		f.closing.Store(true)
		c.Close()
		server.Close()
		f.wg.Wait()
	})
	return f, c
}

// readLoop parses what the replica writes. A malformed command (e.g. two
// writes interleaved) fails the test.
func (f *fakeSource) readLoop() {
	defer close(f.cmds)
	r := resp.NewReader(bufio.NewReader(f.conn))
	for {
		args, _, err := r.ReadCommand()
		if err != nil {
			if errors.Is(err, resp.ErrProtocol) {
				f.errorf("fake source: replica sent a malformed command: %v", err)
			}
			return
		}
		s := make([]string, len(args))
		for i, a := range args {
			s[i] = string(a)
		}
		f.cmds <- s
	}
}

// expect waits for the next command from the replica and checks it.
func (f *fakeSource) expect(want ...string) {
	f.t.Helper()
	select {
	case got, ok := <-f.cmds:
		if !ok {
			f.errorf("fake source: connection closed, expected %q", want)
			return
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			f.errorf("fake source: got %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		f.errorf("fake source: timed out waiting for %q", want)
	}
}

// send writes raw bytes (chunks are written separately, so the replica sees
// them in separate reads when it keeps up).
func (f *fakeSource) send(chunks ...string) {
	for _, c := range chunks {
		if _, err := f.conn.Write([]byte(c)); err != nil {
			return // the replica hung up; the test checks its side
		}
	}
}

// handshake plays the source side of a successful handshake up to PSYNC,
// which it answers with psyncReply.
func (f *fakeSource) handshake(psyncArgs []string, psyncReply string) {
	f.expect("PING")
	f.send("+PONG\r\n")
	f.expect("REPLCONF", "listening-port", "0")
	f.send("+OK\r\n")
	f.expect("REPLCONF", "capa", "eof", "capa", "psync2")
	f.send("+OK\r\n")
	f.expect(psyncArgs...)
	f.send(psyncReply)
}

func cmd(args ...string) string { return string(resp.AppendCommandStrings(nil, args...)) }

func TestHandshakeSequenceAndFullSync(t *testing.T) {
	f, c := newFakePair(t, Options{Username: "repl", Password: "s3cret", ListeningPort: 6390})
	payload := "REDIS0010" + strings.Repeat("\x00\xff", 100)
	header := "$" + itoa(len(payload)) + "\r\n"
	f.run(func() {
		f.expect("PING")
		f.send("-NOAUTH Authentication required.\r\n") // accepted: AUTH comes next
		f.expect("AUTH", "repl", "s3cret")
		f.send("+OK\r\n")
		f.expect("REPLCONF", "listening-port", "6390")
		f.send("+OK\r\n")
		f.expect("REPLCONF", "capa", "eof", "capa", "psync2")
		f.send("+OK\r\n")
		f.expect("PSYNC", "?", "-1")
		f.send("\n", "\n", "+FULLRESYNC "+testReplID+" 1000\r\n", "\n", "\n")
		f.send(header, payload[:50], payload[50:])
		f.expect("REPLCONF", "ACK", "1000") // the first ACK after the RDB
		f.send(cmd("SELECT", "0"), cmd("SET", "k", "v"))
	})
	ctx := context.Background()
	sync, err := c.Handshake(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if sync != (Sync{Full: true, ReplID: testReplID, Offset: 1000}) {
		t.Fatalf("sync = %+v", sync)
	}
	if _, err := c.ReadCommand(ctx); !errors.Is(err, ErrState) {
		t.Fatalf("ReadCommand before RDB: %v, want ErrState", err)
	}
	rdb, err := c.RDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rdb.Size() != int64(len(payload)) {
		t.Fatalf("Size = %d", rdb.Size())
	}
	got, err := readAllSmall(rdb, 7)
	if err != nil || string(got) != payload {
		t.Fatalf("payload: %q, %v", got, err)
	}
	if rdb.Transferred() != int64(len(payload)) || !rdb.Complete() {
		t.Fatalf("Transferred = %d, Complete = %v", rdb.Transferred(), rdb.Complete())
	}
	if err := rdb.Close(); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		args string
		off  int64
	}{
		{"SELECT 0", 1000 + int64(len(cmd("SELECT", "0")))},
		{"SET k v", 1000 + int64(len(cmd("SELECT", "0"))+len(cmd("SET", "k", "v")))},
	}
	for _, w := range want {
		got, err := c.ReadCommand(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if argsString(got.Args) != w.args || got.Offset != w.off {
			t.Fatalf("command %q @%d, want %q @%d", argsString(got.Args), got.Offset, w.args, w.off)
		}
	}
	if c.Offset() != want[1].off {
		t.Fatalf("Offset() = %d", c.Offset())
	}
}

func TestPsyncContinue(t *testing.T) {
	const newID = "fedcba9876543210fedcba9876543210fedcba98"
	for _, tt := range []struct {
		reply  string
		wantID string
	}{
		{"+CONTINUE\r\n", testReplID},
		{"+CONTINUE " + newID + "\r\n", newID},
	} {
		f, c := newFakePair(t, Options{})
		f.run(func() {
			// PSYNC asks for the byte after the last one applied.
			f.handshake([]string{"PSYNC", testReplID, "501"}, tt.reply)
			f.send(cmd("SET", "a", "1"))
		})
		sync, err := c.Handshake(context.Background(), testReplID, 500)
		if err != nil {
			t.Fatal(err)
		}
		if sync != (Sync{Full: false, ReplID: tt.wantID, Offset: 500}) || c.ReplID() != tt.wantID {
			t.Fatalf("sync = %+v", sync)
		}
		got, err := c.ReadCommand(context.Background())
		if err != nil || got.Offset != 500+int64(len(cmd("SET", "a", "1"))) {
			t.Fatalf("command after CONTINUE: %+v, %v", got, err)
		}
		if _, err := c.RDB(context.Background()); !errors.Is(err, ErrState) {
			t.Fatalf("RDB after CONTINUE: %v, want ErrState", err)
		}
	}
}

// The diskless form: the mark is held back whatever the read sizes and
// however the bytes are split, including a payload that ends with most of
// the mark.
func TestRDBEOFMarkSplitAcrossReads(t *testing.T) {
	mark := strings.Repeat("ab", 20)
	payload := "REDIS0010" + strings.Repeat("x", 5000) + mark[:39] + "\xff12345678"
	for _, chunk := range []int{1, 3, 39, 40, 41, 1000, 1 << 20} {
		for _, readSize := range []int{1, 40, 4096} {
			f, c := newFakePair(t, Options{})
			stream := "$EOF:" + mark + "\r\n" + payload + mark
			f.run(func() {
				f.handshake([]string{"PSYNC", "?", "-1"}, "+FULLRESYNC "+testReplID+" 7\r\n")
				for i := 0; i < len(stream); i += chunk {
					f.send(stream[i:min(i+chunk, len(stream))])
				}
				// Like Redis, stream commands only after the first ACK.
				f.expect("REPLCONF", "ACK", "7")
				f.send(cmd("PING"))
			})
			ctx := context.Background()
			if _, err := c.Handshake(ctx, "", 0); err != nil {
				t.Fatal(err)
			}
			rdb, err := c.RDB(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got, err := readAllSmall(rdb, readSize)
			if err != nil {
				t.Fatalf("chunk %d read %d: %v", chunk, readSize, err)
			}
			if string(got) != payload {
				t.Fatalf("chunk %d read %d: payload of %d bytes, want %d (tail %q)", chunk, readSize, len(got), len(payload), got[max(0, len(got)-50):])
			}
			if rdb.Size() != -1 || rdb.Transferred() != int64(len(payload)) {
				t.Fatalf("Size %d Transferred %d", rdb.Size(), rdb.Transferred())
			}
			if err := rdb.Close(); err != nil {
				t.Fatal(err)
			}
			cmd, err := c.ReadCommand(ctx)
			if err != nil || !cmd.Is("ping") || cmd.Offset != 7+14 {
				t.Fatalf("after the RDB: %+v, %v", cmd, err)
			}
		}
	}
}

func TestRDBTruncated(t *testing.T) {
	mark := strings.Repeat("cd", 20)
	for _, tt := range []struct {
		name   string
		stream string
	}{
		{"sized", "$100\r\nREDIS0010abc"},
		{"diskless without mark", "$EOF:" + mark + "\r\nREDIS0010" + strings.Repeat("y", 100)},
		{"diskless with wrong mark", "$EOF:" + mark + "\r\nREDIS0010" + strings.Repeat("y", 100) + strings.Repeat("ef", 20)},
		{"diskless with partial mark", "$EOF:" + mark + "\r\nREDIS0010" + mark[:39]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFakePair(t, Options{})
			f.run(func() {
				f.handshake([]string{"PSYNC", "?", "-1"}, "+FULLRESYNC "+testReplID+" 0\r\n")
				f.send(tt.stream)
				f.conn.Close()
			})
			if _, err := c.Handshake(context.Background(), "", 0); err != nil {
				t.Fatal(err)
			}
			rdb, err := c.RDB(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			_, err = readAllSmall(rdb, 4096)
			if !errors.Is(err, ErrConn) || !errors.Is(err, io.ErrUnexpectedEOF) || !IsRetryable(err) {
				t.Fatalf("truncated RDB: err = %v, want retryable ErrConn / unexpected EOF", err)
			}
			if err := rdb.Close(); err == nil {
				t.Fatal("Close after a truncated RDB succeeded")
			}
			if _, err := c.ReadCommand(context.Background()); err == nil {
				t.Fatal("ReadCommand after a truncated RDB succeeded")
			}
		})
	}
}

// A diskless RDB whose end is followed by something else than the mark
// (a broken source or proxy) is a protocol error as soon as the decoder has
// read the RDB's end, as Redis's "Replication stream EOF marker is broken":
// the reader must not take the source's pings that follow for payload and
// wait for a mark that never comes.
func TestRDBBrokenEOFMarkAfterTheRDB(t *testing.T) {
	mark := strings.Repeat("cd", 20)
	payload := "REDIS0010" + strings.Repeat("y", 100) + "\xff12345678"
	for _, viaBufio := range []bool{false, true} {
		t.Run(fmt.Sprintf("bufio=%v", viaBufio), func(t *testing.T) {
			f, c := newFakePair(t, Options{})
			stop := make(chan struct{})
			defer close(stop)
			f.run(func() {
				f.handshake([]string{"PSYNC", "?", "-1"}, "+FULLRESYNC "+testReplID+" 0\r\n")
				// The wrong mark and a ping come with the RDB, so that the
				// decoder's buffer may take them.
				f.send("$EOF:"+mark+"\r\n", payload+strings.Repeat("ef", 20)+cmd("PING"))
				// The source goes on pinging, as a live source does.
				for {
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
						if _, err := f.conn.Write([]byte(cmd("PING"))); err != nil {
							return
						}
					}
				}
			})
			ctx := context.Background()
			_, err := c.Handshake(ctx, "", 0)
			require.NoError(t, err)
			rdb, err := c.RDB(ctx)
			require.NoError(t, err)
			// The decoder reads the RDB up to its checksum, and not a byte
			// more (its buffer may hold what came after).
			var r io.Reader = rdb
			if viaBufio {
				r = rdb.Bufio()
			}
			got := make([]byte, len(payload))
			_, err = io.ReadFull(r, got)
			require.NoError(t, err)
			require.Equal(t, payload, string(got))

			closed := make(chan error, 1)
			go func() { closed <- rdb.Close() }()
			select {
			case err := <-closed:
				require.Error(t, err, "an RDB followed by a wrong mark was accepted")
				require.ErrorIs(t, err, ErrProtocol)
				require.Contains(t, err.Error(), "mark")
			case <-time.After(3 * time.Second):
				c.Close()
				t.Fatalf("Close still reads 3s after the RDB ended, followed by a wrong mark and the source's pings (%d bytes taken as payload)", rdb.Transferred())
			}
			_, err = c.ReadCommand(ctx)
			require.Error(t, err, "the stream goes on after a broken mark")
		})
	}
}

func TestRDBCloseDrainsUnread(t *testing.T) {
	f, c := newFakePair(t, Options{})
	payload := "REDIS0010" + strings.Repeat("z", 300)
	f.run(func() {
		f.handshake([]string{"PSYNC", "?", "-1"}, "+FULLRESYNC "+testReplID+" 0\r\n")
		f.send("$" + itoa(len(payload)) + "\r\n" + payload)
		f.expect("REPLCONF", "ACK", "0")
		f.send(cmd("SET", "after", "rdb"))
	})
	ctx := context.Background()
	if _, err := c.Handshake(ctx, "", 0); err != nil {
		t.Fatal(err)
	}
	rdb, err := c.RDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	br := rdb.Bufio()
	head := make([]byte, 9)
	if _, err := br.Read(head); err != nil || string(head) != "REDIS0010" {
		t.Fatalf("Bufio read: %q %v", head, err)
	}
	err = rdb.Close()
	if !errors.Is(err, ErrRDBNotConsumed) || !strings.Contains(err.Error(), "300 bytes") {
		t.Fatalf("Close with 300 bytes unread: %v", err)
	}
	// The rest was drained: the stream is usable.
	got, err := c.ReadCommand(ctx)
	if err != nil || argsString(got.Args) != "SET after rdb" {
		t.Fatalf("after drained RDB: %+v, %v", got, err)
	}
}

func TestGarbageReplies(t *testing.T) {
	for _, tt := range []struct {
		name  string
		reply string
	}{
		{"http", "HTTP/1.1 400 Bad Request\r\n\r\n"},
		{"unknown simple string", "+WHATEVER\r\n"},
		{"short replid", "+FULLRESYNC abc 0\r\n"},
		{"bad offset", "+FULLRESYNC " + testReplID + " -5\r\n"},
		{"missing offset", "+FULLRESYNC " + testReplID + "\r\n"},
		{"integer", ":1\r\n"},
		{"continue after ? -1", "+CONTINUE\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFakePair(t, Options{})
			f.run(func() { f.handshake([]string{"PSYNC", "?", "-1"}, tt.reply) })
			_, err := c.Handshake(context.Background(), "", 0)
			if !errors.Is(err, ErrProtocol) || IsRetryable(err) {
				t.Fatalf("err = %v, want non-retryable ErrProtocol", err)
			}
			var e *Error
			if !errors.As(err, &e) || e.Op != "PSYNC" {
				t.Fatalf("err = %#v, want *Error with Op PSYNC", err)
			}
		})
	}
	t.Run("rdb header", func(t *testing.T) {
		f, c := newFakePair(t, Options{})
		f.run(func() {
			f.handshake([]string{"PSYNC", "?", "-1"}, "+FULLRESYNC "+testReplID+" 0\r\n")
			f.send("\n\nREDIS0010\r\n")
		})
		if _, err := c.Handshake(context.Background(), "", 0); err != nil {
			t.Fatal(err)
		}
		if _, err := c.RDB(context.Background()); !errors.Is(err, ErrProtocol) {
			t.Fatalf("err = %v, want ErrProtocol", err)
		}
	})
	t.Run("stream", func(t *testing.T) {
		f, c := newFakePair(t, Options{})
		f.run(func() {
			f.handshake([]string{"PSYNC", testReplID, "1"}, "+CONTINUE\r\n")
			f.send(cmd("SET", "a", "b"), "GARBAGE\r\n")
		})
		ctx := context.Background()
		if _, err := c.Handshake(ctx, testReplID, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ReadCommand(ctx); err != nil {
			t.Fatal(err)
		}
		_, err := c.ReadCommand(ctx)
		if !errors.Is(err, ErrProtocol) {
			t.Fatalf("err = %v, want ErrProtocol", err)
		}
		if _, err2 := c.ReadCommand(ctx); err2 != err {
			t.Fatalf("error not sticky: %v then %v", err, err2)
		}
	})
}

func TestErrorClassification(t *testing.T) {
	const password = "pa55-word-xyz"
	tests := []struct {
		name    string
		opts    Options
		script  func(f *fakeSource)
		kind    error
		retry   bool
		op      string
		inReply string
	}{
		{
			name: "NOAUTH without credentials",
			script: func(f *fakeSource) {
				f.expect("PING")
				f.send("-NOAUTH Authentication required.\r\n")
			},
			kind: ErrAuth, op: "PING", inReply: "NOAUTH",
		},
		{
			name: "wrong password",
			opts: Options{Password: password},
			script: func(f *fakeSource) {
				f.expect("PING")
				f.send("-NOAUTH Authentication required.\r\n")
				f.expect("AUTH", password)
				// A misbehaving proxy echoing the password must not leak it.
				f.send("-WRONGPASS invalid username-password pair or user is disabled (" + password + ")\r\n")
			},
			kind: ErrAuth, op: "AUTH", inReply: "WRONGPASS",
		},
		{
			name: "NOPERM on REPLCONF",
			script: func(f *fakeSource) {
				f.expect("PING")
				f.send("+PONG\r\n")
				f.expect("REPLCONF", "listening-port", "0")
				f.send("-NOPERM User default has no permissions to run the 'replconf' command\r\n")
			},
			kind: ErrAuth, op: "REPLCONF listening-port", inReply: "NOPERM",
		},
		{
			name: "LOADING on PSYNC",
			script: func(f *fakeSource) {
				f.handshake([]string{"PSYNC", "?", "-1"}, "-LOADING Redis is loading the dataset in memory\r\n")
			},
			kind: ErrSource, retry: true, op: "PSYNC", inReply: "LOADING",
		},
		{
			name: "NOMASTERLINK on PSYNC",
			script: func(f *fakeSource) {
				f.handshake([]string{"PSYNC", "?", "-1"}, "-NOMASTERLINK Can't SYNC while not connected with my master\r\n")
			},
			kind: ErrSource, retry: true, op: "PSYNC", inReply: "NOMASTERLINK",
		},
		{
			name: "NOPERM on PSYNC",
			script: func(f *fakeSource) {
				f.handshake([]string{"PSYNC", "?", "-1"}, "-NOPERM this user has no permissions to run the 'psync' command\r\n")
			},
			kind: ErrAuth, op: "PSYNC", inReply: "NOPERM",
		},
		{
			name: "connection closed",
			script: func(f *fakeSource) {
				f.expect("PING")
				f.conn.Close()
			},
			kind: ErrConn, retry: true, op: "PING",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFakePair(t, tt.opts)
			f.run(func() { tt.script(f) })
			_, err := c.Handshake(context.Background(), "", 0)
			if !errors.Is(err, tt.kind) || IsRetryable(err) != tt.retry {
				t.Fatalf("err = %v, want kind %v, retryable %v", err, tt.kind, tt.retry)
			}
			var e *Error
			if !errors.As(err, &e) || e.Op != tt.op || !strings.Contains(e.Reply, tt.inReply) {
				t.Fatalf("err = %#v, want Op %q and reply containing %q", err, tt.op, tt.inReply)
			}
			if strings.Contains(err.Error(), password) {
				t.Fatalf("password in error: %v", err)
			}
		})
	}
}

// Refusals of the optional REPLCONF options are ignored, like Redis does.
func TestReplconfRefusalIgnored(t *testing.T) {
	f, c := newFakePair(t, Options{})
	f.run(func() {
		f.expect("PING")
		f.send("+PONG\r\n")
		f.expect("REPLCONF", "listening-port", "0")
		f.send("-ERR Unrecognized REPLCONF option: listening-port\r\n")
		f.expect("REPLCONF", "capa", "eof", "capa", "psync2")
		f.send("-ERR Unrecognized REPLCONF option: capa\r\n")
		f.expect("PSYNC", "?", "-1")
		f.send("+FULLRESYNC " + testReplID + " 0\r\n")
	})
	if _, err := c.Handshake(context.Background(), "", 0); err != nil {
		t.Fatal(err)
	}
}

// GETACK is answered with the applied offset, extended over the REPLCONF
// bytes when the caller has applied everything returned. PING counts.
func TestGetAckOffsets(t *testing.T) {
	f, c := newFakePair(t, Options{})
	getack := cmd("REPLCONF", "GETACK", "*")
	set := cmd("SET", "k", "v")
	ping := cmd("PING")
	const start = 100
	acks := make(chan string, 10)
	f.run(func() {
		f.handshake([]string{"PSYNC", testReplID, "101"}, "+CONTINUE\r\n")
		f.send(set, getack)
		acks <- nextAck(f)
		f.send(ping, getack)
		acks <- nextAck(f)
		f.send(cmd("SET", "x", "y"))
	})
	ctx := context.Background()
	if _, err := c.Handshake(ctx, testReplID, start); err != nil {
		t.Fatal(err)
	}
	// SET returned but not applied: the ack is the starting offset.
	got, err := c.ReadCommand(ctx)
	if err != nil || got.Offset != start+int64(len(set)) {
		t.Fatalf("SET: %+v %v", got, err)
	}
	readAsync := func() chan Command {
		ch := make(chan Command, 1)
		go func() {
			cmd, err := c.ReadCommand(ctx)
			if err != nil {
				t.Error(err)
			}
			ch <- cmd
		}()
		return ch
	}
	next := readAsync() // consumes GETACK, answers it, returns PING
	if a := <-acks; a != itoa(start) {
		t.Fatalf("ack before applying = %s, want %d", a, start)
	}
	pingCmd := <-next
	wantPing := int64(start + len(set) + len(getack) + len(ping))
	if !pingCmd.Is("PING") || pingCmd.Offset != wantPing {
		t.Fatalf("PING: %+v, want offset %d (the first GETACK counts)", pingCmd, wantPing)
	}
	// Everything returned is applied: the ack covers the GETACK too.
	c.SetAppliedOffset(pingCmd.Offset)
	next = readAsync()
	if a, want := <-acks, itoa(int(wantPing)+len(getack)); a != want {
		t.Fatalf("ack after applying = %s, want %s", a, want)
	}
	if last := <-next; last.Offset != wantPing+int64(len(getack)+len(cmd("SET", "x", "y"))) {
		t.Fatalf("last command %+v", last)
	}
	if c.AppliedOffset() != wantPing {
		t.Fatalf("AppliedOffset = %d", c.AppliedOffset())
	}
	c.SetAppliedOffset(5) // never moves backwards
	if c.AppliedOffset() != wantPing {
		t.Fatalf("AppliedOffset moved backwards to %d", c.AppliedOffset())
	}
}

func nextAck(f *fakeSource) string {
	select {
	case got := <-f.cmds:
		if len(got) != 3 || got[0] != "REPLCONF" || got[1] != "ACK" {
			f.errorf("expected REPLCONF ACK, got %q", got)
			return ""
		}
		return got[2]
	case <-time.After(5 * time.Second):
		f.errorf("no ACK")
		return ""
	}
}

// Acks sent from another goroutine while the reader answers GETACKs must
// not interleave on the wire (the fake source fails on malformed commands).
func TestConcurrentAcks(t *testing.T) {
	f, c := newFakePair(t, Options{})
	const n = 200
	f.run(func() {
		f.handshake([]string{"PSYNC", testReplID, "1"}, "+CONTINUE\r\n")
		for i := 0; i < n; i++ {
			f.send(cmd("REPLCONF", "GETACK", "*"), cmd("SET", "k", strings.Repeat("v", i)))
		}
	})
	ctx := context.Background()
	if _, err := c.Handshake(ctx, testReplID, 0); err != nil {
		t.Fatal(err)
	}
	// The handshake script has consumed its commands: from now on the
	// replica only sends acks.
	var acks int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for got := range f.cmds {
			if got[0] != "REPLCONF" || got[1] != "ACK" {
				t.Errorf("unexpected %q", got)
			}
			acks++
		}
	}()
	stop := make(chan struct{})
	ackerDone := make(chan struct{})
	go func() {
		defer close(ackerDone)
		for {
			select {
			case <-stop:
				return
			default:
				if err := c.SendAck(c.AppliedOffset()); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	for i := 0; i < n; i++ {
		cmd, err := c.ReadCommand(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c.SetAppliedOffset(cmd.Offset)
	}
	close(stop)
	<-ackerDone
	c.Close()
	<-done
	if acks < n {
		t.Fatalf("%d acks, want at least %d (one per GETACK)", acks, n)
	}
}

// Once streaming, the Conn acks by itself, quickly at first, reporting the
// applied offset extended over internal REPLCONFs; Close stops it.
func TestPeriodicAcks(t *testing.T) {
	f, c := newFakePair(t, Options{AckInterval: 300 * time.Millisecond})
	set := cmd("SET", "k", "v")
	getack := cmd("REPLCONF", "GETACK", "*")
	f.run(func() { f.handshake([]string{"PSYNC", testReplID, "11"}, "+CONTINUE\r\n") })
	ctx := context.Background()
	start := time.Now()
	if _, err := c.Handshake(ctx, testReplID, 10); err != nil {
		t.Fatal(err)
	}
	// First acks at about 100, 300 (100+200) and 600 (300+300) ms.
	var times []time.Duration
	for range 3 {
		if a := nextAck(f); a != "10" {
			t.Fatalf("periodic ack = %s, want 10", a)
		}
		times = append(times, time.Since(start))
	}
	// Lower bounds only: an ack cannot come before its time, but a loaded
	// machine (the race detector, CI) may deliver it late.
	if times[1] < 250*time.Millisecond || times[2] < 450*time.Millisecond || times[2] > 10*time.Second {
		t.Fatalf("ack times %v, want about 100ms, 300ms, 600ms", times)
	}
	// A returned command not yet applied is not acknowledged; once it is,
	// the GETACK after it counts too.
	f.run(func() { f.send(set, getack) })
	got, err := c.ReadCommand(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = c.ReadCommand(ctx) }() // consumes the GETACK, then blocks
	if a := nextAck(f); a != "10" {
		t.Fatalf("ack with SET unapplied = %s, want 10", a)
	}
	c.SetAppliedOffset(got.Offset)
	want := itoa(10 + len(set) + len(getack))
	deadline := time.Now().Add(3 * time.Second)
	for a := nextAck(f); a != want; a = nextAck(f) {
		if time.Now().After(deadline) || a == "" {
			t.Fatalf("ack = %s, want %s", a, want)
		}
	}
	c.Close()
	for range f.cmds {
		// drain until the pipe closes: nothing else is expected
	}
}

// The read timeout measures silence: keepalive newlines re-arm it.
func TestKeepalivesRefreshReadTimeout(t *testing.T) {
	// The timeout leaves room for a loaded machine (the race detector, CI)
	// to be late with a keepalive; the keepalives last 3x the timeout.
	f, c := newFakePair(t, Options{ReadTimeout: time.Second})
	f.run(func() {
		f.handshake([]string{"PSYNC", "?", "-1"}, "")
		for range 30 { // 3 s of keepalives, 3x the timeout
			f.send("\n")
			time.Sleep(100 * time.Millisecond)
		}
		f.send("+FULLRESYNC " + testReplID + " 0\r\n")
		for range 30 {
			f.send("\n")
			time.Sleep(100 * time.Millisecond)
		}
		f.send("$9\r\nREDIS0010")
	})
	ctx := context.Background()
	if _, err := c.Handshake(ctx, "", 0); err != nil {
		t.Fatal(err)
	}
	rdb, err := c.RDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readAllSmall(rdb, 100); err != nil || string(got) != "REDIS0010" {
		t.Fatalf("%q %v", got, err)
	}
	// The source went silent: the timeout fires, as a retryable error.
	start := time.Now()
	_, err = c.ReadCommand(ctx)
	if !errors.Is(err, ErrConn) || !IsRetryable(err) || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("silent source: err = %v, want retryable timeout", err)
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 20*time.Second {
		t.Fatalf("timed out after %v, want about 1s", d)
	}
}

func TestContextCancelInterruptsRead(t *testing.T) {
	f, c := newFakePair(t, Options{})
	f.run(func() { f.handshake([]string{"PSYNC", testReplID, "1"}, "+CONTINUE\r\n") })
	if _, err := c.Handshake(context.Background(), testReplID, 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.ReadCommand(ctx)
	if !errors.Is(err, context.Canceled) || IsRetryable(err) {
		t.Fatalf("err = %v, want context.Canceled, not retryable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancellation took %v", d)
	}
	// A context deadline is reported as such, not as a source timeout.
	f2, c2 := newFakePair(t, Options{})
	f2.run(func() { f2.expect("PING") })
	dctx, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if _, err := c2.Handshake(dctx, "", 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("handshake past ctx deadline: %v", err)
	}
}

func TestCloseUnblocksReader(t *testing.T) {
	f, c := newFakePair(t, Options{})
	f.run(func() { f.handshake([]string{"PSYNC", testReplID, "1"}, "+CONTINUE\r\n") })
	if _, err := c.Handshake(context.Background(), testReplID, 0); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, func() { c.Close() })
	if _, err := c.ReadCommand(context.Background()); !errors.Is(err, ErrConn) || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("err = %v, want ErrConn wrapping net.ErrClosed", err)
	}
	if err := c.SendAck(1); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("SendAck after Close: %v", err)
	}
	if c.ClosedByPeer() {
		t.Fatal("ClosedByPeer after our own Close: the source did not close it")
	}
}

// The source closing the connection is told apart from our end closing it
// (TestCloseUnblocksReader): only the first may be blamed on the source.
func TestClosedByPeerWhenTheSourceCloses(t *testing.T) {
	f, c := newFakePair(t, Options{})
	f.run(func() {
		f.handshake([]string{"PSYNC", testReplID, "1"}, "+CONTINUE\r\n")
		f.send(cmd("SET", "a", "1"))
		f.conn.Close()
	})
	if _, err := c.Handshake(context.Background(), testReplID, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadCommand(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.ClosedByPeer() {
		t.Fatal("ClosedByPeer while the source is connected")
	}
	if _, err := c.ReadCommand(context.Background()); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want EOF", err)
	}
	if !c.ClosedByPeer() {
		t.Fatal("the source closed the connection, and ClosedByPeer says not")
	}
}

func TestEmptyCommandsCounted(t *testing.T) {
	f, c := newFakePair(t, Options{})
	f.run(func() {
		f.handshake([]string{"PSYNC", testReplID, "11"}, "+CONTINUE\r\n")
		f.send("*0\r\n", cmd("REPLCONF", "SOMETHING"), cmd("SET", "a", "b"))
	})
	if _, err := c.Handshake(context.Background(), testReplID, 10); err != nil {
		t.Fatal(err)
	}
	got, err := c.ReadCommand(context.Background())
	want := int64(10 + 4 + len(cmd("REPLCONF", "SOMETHING")) + len(cmd("SET", "a", "b")))
	if err != nil || got.Offset != want {
		t.Fatalf("%+v %v, want offset %d", got, err, want)
	}
}

func TestHandshakeMisuse(t *testing.T) {
	f, c := newFakePair(t, Options{})
	if _, err := c.Handshake(context.Background(), testReplID, -1); !errors.Is(err, ErrState) {
		t.Fatalf("negative offset: %v", err)
	}
	f.run(func() { f.handshake([]string{"PSYNC", "?", "-1"}, "+FULLRESYNC "+testReplID+" 0\r\n") })
	if _, err := c.Handshake(context.Background(), "", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Handshake(context.Background(), "", 0); !errors.Is(err, ErrState) {
		t.Fatalf("second handshake: %v", err)
	}
}

func TestErrorMessage(t *testing.T) {
	e := &Error{Op: "AUTH", Kind: ErrAuth, Reply: "WRONGPASS invalid"}
	if got := e.Error(); got != "replproto: AUTH: authentication failed: source replied -WRONGPASS invalid" {
		t.Fatalf("Error() = %q", got)
	}
}

// readAllSmall reads r to EOF with reads of at most size bytes.
func readAllSmall(r interface{ Read([]byte) (int, error) }, size int) ([]byte, error) {
	var out bytes.Buffer
	buf := make([]byte, size)
	for {
		n, err := r.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			if err == io.EOF {
				return out.Bytes(), nil
			}
			return out.Bytes(), err
		}
	}
}

func argsString(args [][]byte) string {
	s := make([]string, len(args))
	for i, a := range args {
		s[i] = string(a)
	}
	return strings.Join(s, " ")
}

func itoa(n int) string { return strconv.Itoa(n) }

// testLogger logs through t.Log, shown with -v or on failure.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// A source that closed the connection while nothing was read (the replica
// busy elsewhere) is met by a write, an ACK: that counts as the source
// closing it too.
func TestClosedByPeerOnAWrite(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	(<-accepted).Close()
	o := Options{Addr: "source:6379", ReadTimeout: 5 * time.Second, AckInterval: -1}.withDefaults()
	dc := &deadlineConn{Conn: client, timeout: o.ReadTimeout}
	c := newConn(o, dc, dc)
	defer c.Close()
	// The first write may succeed (the kernel takes it, the peer answers
	// with a reset); a later one fails.
	deadline := time.Now().Add(10 * time.Second)
	for !c.ClosedByPeer() {
		if time.Now().After(deadline) {
			t.Fatal("writes to a closed connection never failed as closed by the peer")
		}
		if _, err := c.dc.Write([]byte(cmd("REPLCONF", "ACK", "1"))); err != nil && !c.ClosedByPeer() {
			t.Fatalf("write error %v not counted as the peer closing", err)
		}
	}
}
