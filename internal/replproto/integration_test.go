package replproto

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
)

// session is a replica connection that has completed a full sync.
type session struct {
	c    *Conn
	sync Sync
	rdb  []byte
}

// fullSync dials s, performs a full resync and reads the RDB.
func fullSync(t *testing.T, s *redisServer, o Options) session {
	t.Helper()
	ctx := testContext(t)
	c, err := Dial(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	sync, err := c.Handshake(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !sync.Full {
		t.Fatalf("PSYNC ? -1 answered %+v", sync)
	}
	rdb, err := c.RDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rdb)
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Close(); err != nil {
		t.Fatal(err)
	}
	if rdb.Transferred() != int64(len(data)) || !rdb.Complete() {
		t.Fatalf("Transferred %d, Complete %v, read %d bytes", rdb.Transferred(), rdb.Complete(), len(data))
	}
	return session{c: c, sync: sync, rdb: data}
}

// readUntil reads commands until the stream reaches offset, returning them
// as strings. Replication PINGs are skipped unless keepPings.
func readUntil(t *testing.T, c *Conn, offset int64, keepPings bool) []string {
	t.Helper()
	ctx := testContext(t)
	var got []string
	for c.Offset() < offset {
		cmd, err := c.ReadCommand(ctx)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		if cmd.Offset != c.Offset() {
			t.Fatalf("command offset %d, connection offset %d", cmd.Offset, c.Offset())
		}
		if cmd.Is("PING") && !keepPings {
			continue
		}
		got = append(got, argsString(cmd.Args))
	}
	if c.Offset() != offset {
		t.Fatalf("stream offset %d went past the source's %d", c.Offset(), offset)
	}
	return got
}

// writeWorkload writes the commands of the brief on the source and returns
// them as the source propagates them (Redis 7 rewrites relative expiries as
// absolute ones), with a placeholder for timestamps.
func writeWorkload(cl *testClient) []string {
	cl.do("SET", "k1", "v1")
	cl.do("INCR", "counter")
	cl.do("MULTI")
	cl.do("SET", "k2", "v2")
	cl.do("INCR", "counter")
	cl.do("EXEC")
	cl.do("SELECT", "3")
	cl.do("SET", "k3", "v3")
	cl.do("EXPIRE", "k3", "1000")
	return []string{
		"SELECT 0", // the source selects the DB first after a full sync
		"SET k1 v1",
		"INCR counter",
		"MULTI",
		"SET k2 v2",
		"INCR counter",
		"EXEC",
		"SELECT 3",
		"SET k3 v3",
		"PEXPIREAT k3 <ts>",
	}
}

func maskTimestamps(cmds []string) []string {
	out := make([]string, len(cmds))
	for i, c := range cmds {
		f := strings.Fields(c)
		if len(f) == 3 && f[0] == "PEXPIREAT" {
			f[2] = "<ts>"
		}
		out[i] = strings.Join(f, " ")
	}
	return out
}

func equalStrings(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

func TestFullSyncDiskBased(t *testing.T) { testFullSync(t, false) }
func TestFullSyncDiskless(t *testing.T)  { testFullSync(t, true) }

func testFullSync(t *testing.T, diskless bool) {
	mode := "no"
	if diskless {
		mode = "yes"
	}
	s := startRedis(t, "repl-diskless-sync", mode, "repl-diskless-sync-delay", "0")
	cl := s.client()
	cl.do("SET", "preexisting", "before-sync")
	cl.do("RPUSH", "list", "a", "b", "c")

	sess := fullSync(t, s, s.options())
	info := cl.info("replication")
	if sess.sync.ReplID != info["master_replid"] {
		t.Fatalf("replid %s, source has %s", sess.sync.ReplID, info["master_replid"])
	}
	if strconv.FormatInt(sess.sync.Offset, 10) != info["master_repl_offset"] {
		t.Fatalf("FULLRESYNC offset %d, source at %s", sess.sync.Offset, info["master_repl_offset"])
	}
	checkRDB(t, sess.rdb)

	want := writeWorkload(cl)
	masterOff := cl.masterOffset()
	got := readUntil(t, sess.c, masterOff, false)
	if !equalStrings(maskTimestamps(got), want) {
		t.Fatalf("stream:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if sess.c.Offset() != masterOff {
		t.Fatalf("offset %d, source master_repl_offset %d", sess.c.Offset(), masterOff)
	}

	// The RDB bytes are exactly a valid dump: another redis-server loads it.
	loaded := startRedisWithRDB(t, sess.rdb)
	lc := loaded.client()
	if v := lc.do("GET", "preexisting"); string(v.Str) != "before-sync" {
		t.Fatalf("GET preexisting from the loaded RDB = %v", v)
	}
	if v := lc.do("LRANGE", "list", "0", "-1"); v.String() != `["a", "b", "c"]` {
		t.Fatalf("LRANGE from the loaded RDB = %v", v)
	}
}

// checkRDB checks the framing of a received RDB: the magic at the start,
// and at the end the EOF opcode followed by the 8-byte checksum (so neither
// the "$EOF:" mark nor stream bytes were included).
func checkRDB(t *testing.T, data []byte) {
	t.Helper()
	if len(data) < 18 || string(data[:7]) != "REDIS00" {
		t.Fatalf("RDB does not start with REDIS00: %q", data[:min(len(data), 16)])
	}
	if data[len(data)-9] != 0xFF {
		t.Fatalf("RDB does not end with EOF opcode + checksum: tail %x", data[len(data)-min(len(data), 50):])
	}
}

// startRedisWithRDB starts a server that loads the given dump at startup.
func startRedisWithRDB(t *testing.T, rdb []byte) *redisServer {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "loaded.rdb"), rdb, 0o600); err != nil {
		t.Fatal(err)
	}
	return startRedis(t, "dir", dir, "dbfilename", "loaded.rdb")
}

// After a disconnect, PSYNC with the last offset continues with only the
// commands written since; unknown IDs and offsets get a full resync.
func TestPartialResync(t *testing.T) {
	s := startRedis(t, "repl-diskless-sync", "no")
	cl := s.client()
	sess := fullSync(t, s, s.options())
	writeWorkload(cl)
	readUntil(t, sess.c, cl.masterOffset(), false)
	replID, offset := sess.sync.ReplID, sess.c.Offset()
	sess.c.Close()

	cl2 := s.client() // on DB 0, while the stream was last on DB 3
	cl2.do("SET", "p1", "1")
	cl2.do("SET", "p2", "2")

	ctx := testContext(t)
	c, err := Dial(ctx, s.options())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sync, err := c.Handshake(ctx, replID, offset)
	if err != nil {
		t.Fatal(err)
	}
	if sync != (Sync{Full: false, ReplID: replID, Offset: offset}) {
		t.Fatalf("Handshake(%s, %d) = %+v, want CONTINUE", replID, offset, sync)
	}
	got := readUntil(t, c, cl.masterOffset(), false)
	if want := []string{"SELECT 0", "SET p1 1", "SET p2 2"}; !equalStrings(got, want) {
		t.Fatalf("after CONTINUE got %q, want %q", got, want)
	}

	for _, tt := range []struct {
		name   string
		replID string
		offset int64
	}{
		{"unknown replid", "0123456789abcdef0123456789abcdef01234567", offset},
		{"offset ahead of the source", replID, offset + 1000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Dial(ctx, s.options())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			sync, err := c.Handshake(ctx, tt.replID, tt.offset)
			if err != nil {
				t.Fatal(err)
			}
			if !sync.Full || sync.ReplID != replID {
				t.Fatalf("Handshake(%s, %d) = %+v, want a full resync", tt.replID, tt.offset, sync)
			}
			rdb, err := c.RDB(ctx)
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(rdb.Bufio())
			if err != nil || rdb.Close() != nil {
				t.Fatal(err)
			}
			checkRDB(t, data)
		})
	}
}

func TestAuthRequirepass(t *testing.T) {
	const password = "s3cret-source-pw"
	s := startRedis(t, "requirepass", password)
	ctx := testContext(t)

	for _, tt := range []struct {
		name     string
		password string
	}{
		{"no password", ""},
		{"wrong password", "wrong-guess-pw"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := s.options()
			o.Password = tt.password
			c, err := Dial(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Handshake(ctx, "", 0)
			if !errors.Is(err, ErrAuth) || IsRetryable(err) {
				t.Fatalf("err = %v, want non-retryable ErrAuth", err)
			}
			if strings.Contains(err.Error(), password) || (tt.password != "" && strings.Contains(err.Error(), tt.password)) {
				t.Fatalf("password in error message: %v", err)
			}
		})
	}

	o := s.options()
	o.Password = password
	sess := fullSync(t, s, o)
	checkRDB(t, sess.rdb)
}

func TestAuthACLUser(t *testing.T) {
	s := startRedis(t)
	cl := s.client()
	cl.do("ACL", "SETUSER", "repl", "on", ">repl-user-pw", "+psync", "+replconf", "+ping")
	cl.do("ACL", "SETUSER", "weak", "on", ">weak-user-pw", "+ping")
	ctx := testContext(t)

	for _, tt := range []struct {
		name, user, password, inReply string
	}{
		{"wrong password", "repl", "not-the-pw", "WRONGPASS"},
		{"unknown user", "nobody", "repl-user-pw", "WRONGPASS"},
		{"no replication permission", "weak", "weak-user-pw", "NOPERM"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := s.options()
			o.Username, o.Password = tt.user, tt.password
			c, err := Dial(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Handshake(ctx, "", 0)
			var e *Error
			if !errors.Is(err, ErrAuth) || !errors.As(err, &e) || !strings.Contains(e.Reply, tt.inReply) {
				t.Fatalf("err = %v, want ErrAuth with %s", err, tt.inReply)
			}
			if strings.Contains(err.Error(), tt.password) {
				t.Fatalf("password in error message: %v", err)
			}
		})
	}

	o := s.options()
	o.Username, o.Password = "repl", "repl-user-pw"
	sess := fullSync(t, s, o)
	cl.do("SET", "x", "1")
	if got := readUntil(t, sess.c, cl.masterOffset(), false); !equalStrings(got, []string{"SELECT 0", "SET x 1"}) {
		t.Fatalf("stream as ACL user: %q", got)
	}
}

// WAIT makes the source send REPLCONF GETACK; the replica answers with what
// the caller applied, so WAIT succeeds only once the write is applied.
func TestGetAckAnsweredWithAppliedOffset(t *testing.T) {
	s := startRedis(t)
	cl := s.client()
	sess := fullSync(t, s, s.options())
	c := sess.c

	var applying atomic.Bool
	readerDone := make(chan error, 1)
	go func() {
		ctx := context.Background()
		for {
			cmd, err := c.ReadCommand(ctx)
			if err != nil {
				readerDone <- err
				return
			}
			if applying.Load() {
				c.SetAppliedOffset(cmd.Offset)
			}
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-readerDone
	})

	// Received but not applied: WAIT must not count this replica.
	cl.do("SET", "y", "1")
	if v := cl.do("WAIT", "1", "300"); v.Int != 0 {
		t.Fatalf("WAIT with nothing applied = %v, want 0", v)
	}
	if r := cl.replica0(); r["offset"] != strconv.FormatInt(sess.sync.Offset, 10) {
		t.Fatalf("replica offset %s advanced without anything applied", r["offset"])
	}

	applying.Store(true)
	cl.do("SET", "z", "1")
	if v := cl.do("WAIT", "1", "5000"); v.Int != 1 {
		t.Fatalf("WAIT with the write applied = %v, want 1", v)
	}
	// The ack covers the GETACK itself: the source sees the replica fully
	// caught up, at master_repl_offset.
	eventually(t, "replica offset = master_repl_offset", func() bool {
		return cl.replica0()["offset"] == strconv.FormatInt(cl.masterOffset(), 10)
	})
}

// A diskless source starts the command stream only after the replica's
// first ACK, which the Conn sends itself once the RDB is received.
func TestDisklessStreamStartsOnFirstAck(t *testing.T) {
	s := startRedis(t, "repl-diskless-sync", "yes", "repl-diskless-sync-delay", "0")
	cl := s.client()
	ctx := testContext(t)
	o := s.options()
	o.AckInterval = -1
	c, err := Dial(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.noInitialAck = true // show what happens without it
	if _, err := c.Handshake(ctx, "", 0); err != nil {
		t.Fatal(err)
	}
	rdb, err := c.RDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, rdb); err != nil || rdb.Close() != nil {
		t.Fatal(err)
	}
	// Let the source finish its side of the transfer, so that an ACK now
	// is one it acts on.
	eventually(t, "source done with the RDB transfer", func() bool {
		return cl.replica0()["state"] == "online"
	})
	cl.do("SET", "k", "v")

	cmds := make(chan Command, 1)
	go func() {
		cmd, err := c.ReadCommand(ctx)
		if err != nil {
			t.Error(err)
		}
		cmds <- cmd
	}()
	select {
	case cmd := <-cmds:
		t.Fatalf("source streamed %q before any ACK", cmd.Args)
	case <-time.After(700 * time.Millisecond):
	}
	if err := c.SendAck(c.Offset()); err != nil {
		t.Fatal(err)
	}
	select {
	case cmd := <-cmds:
		if argsString(cmd.Args) != "SELECT 0" {
			t.Fatalf("first command %q", cmd.Args)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no command after the ACK")
	}
}

// The source drops a replica that does not acknowledge within repl-timeout;
// the automatic acks keep it online, with a fresh lag.
func TestAcksKeepReplicaOnline(t *testing.T) {
	s := startRedis(t, "repl-timeout", "1", "repl-diskless-sync", "no")
	cl := s.client()
	// Acks more often than the default second: with repl-timeout 1 on a
	// loaded test machine, a late tick must not make this test flaky.
	ackedOpts := s.options()
	ackedOpts.AckInterval = 300 * time.Millisecond
	acked := fullSync(t, s, ackedOpts)
	silentOpts := s.options()
	silentOpts.AckInterval = -1
	silent := fullSync(t, s, silentOpts)
	eventually(t, "two replicas online", func() bool {
		info := cl.info("replication")
		return info["connected_slaves"] == "2" && strings.Contains(info["slave0"], "state=online") && strings.Contains(info["slave1"], "state=online")
	})

	// The silent replica is disconnected: its next read ends.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := silent.c.ReadCommand(ctx)
	if !errors.Is(err, ErrConn) || !IsRetryable(err) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("silent replica: err = %v, want the source to hang up", err)
	}
	eventually(t, "only the acking replica connected", func() bool {
		return cl.info("replication")["connected_slaves"] == "1"
	})
	// lag is whole seconds since the replica's last ACK.
	if r := cl.replica0(); r["state"] != "online" || (r["lag"] != "0" && r["lag"] != "1") {
		t.Fatalf("after the timeout: slave0 = %v, want the acking replica online with lag <= 1", r)
	}
	// The acking replica still receives the stream.
	cl.do("SET", "still", "here")
	if got := readUntil(t, acked.c, cl.masterOffset(), false); !equalStrings(got, []string{"SELECT 0", "SET still here"}) {
		t.Fatalf("acking replica stream: %q", got)
	}
}

// The source's replication PINGs are returned and counted in the offset.
func TestSourcePingCounted(t *testing.T) {
	s := startRedis(t, "repl-ping-replica-period", "1")
	cl := s.client()
	sess := fullSync(t, s, s.options())
	ctx := testContext(t)
	ping, err := sess.c.ReadCommand(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !ping.Is("PING") {
		t.Fatalf("got %q, want the source's PING", ping.Args)
	}
	// Nothing else was written: the PING is the first thing in the stream.
	if want := sess.sync.Offset + int64(len(cmd("PING"))); ping.Offset != want {
		t.Fatalf("PING offset %d, want %d", ping.Offset, want)
	}
	// Offsets keep matching the source's through PINGs and writes.
	readUntil(t, sess.c, cl.masterOffset(), true)
	cl.do("SET", "a", "b")
	readUntil(t, sess.c, cl.masterOffset(), true)
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	caPEM, certFile, keyFile, caFile := makeTLSFiles(t, dir)
	tlsPort := strconv.Itoa(redistest.FreePort(t))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	clientTLS := &tls.Config{RootCAs: pool}

	srv := startRedisTLS(t, clientTLS,
		"port", "0",
		"tls-port", tlsPort,
		"tls-cert-file", certFile,
		"tls-key-file", keyFile,
		"tls-ca-cert-file", caFile,
		"tls-auth-clients", "no",
		"repl-diskless-sync", "yes", "repl-diskless-sync-delay", "0",
	)
	cl := srv.client()
	sess := fullSync(t, srv, srv.options())
	checkRDB(t, sess.rdb)
	cl.do("SET", "over", "tls")
	if got := readUntil(t, sess.c, cl.masterOffset(), false); !equalStrings(got, []string{"SELECT 0", "SET over tls"}) {
		t.Fatalf("stream over TLS: %q", got)
	}

	// A certificate we do not trust: a configuration error, not retryable.
	o := srv.options()
	o.TLSConfig = &tls.Config{RootCAs: x509.NewCertPool()}
	_, err := Dial(testContext(t), o)
	if !errors.Is(err, ErrTLS) || IsRetryable(err) {
		t.Fatalf("untrusted certificate: err = %v, want non-retryable ErrTLS", err)
	}
}

func startRedisTLS(t *testing.T, clientTLS *tls.Config, config ...string) *redisServer {
	t.Helper()
	// The readiness check already needs the client's TLS configuration.
	return startRedisWith(t, &redisServer{t: t, tls: clientTLS}, config...)
}

// makeTLSFiles writes a CA and a server certificate for 127.0.0.1.
func makeTLSFiles(t *testing.T, dir string) (caPEM []byte, certFile, keyFile, caFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "replproto test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certFile = write("server.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}))
	keyFile = write("server.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	caFile = write("ca.crt", caPEM)
	return caPEM, certFile, keyFile, caFile
}
