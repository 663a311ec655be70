package replproto

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func selfSignedCert(t *testing.T) tls.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "source"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

// tlsPair is a replica Conn over TLS on loopback, and the source's end.
func tlsPair(t *testing.T) (*Conn, *tls.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); accepted <- c }()
	raw, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	srv := tls.Server(<-accepted, &tls.Config{Certificates: []tls.Certificate{selfSignedCert(t)}})
	o := Options{Addr: "fake:1", AckInterval: -1, ReadTimeout: 5 * time.Second}.withDefaults()
	dc := &deadlineConn{Conn: raw, timeout: o.ReadTimeout}
	tc := tls.Client(dc, &tls.Config{InsecureSkipVerify: true})
	go srv.Handshake()
	require.NoError(t, tc.Handshake())
	return newConn(o, dc, tc), srv
}

// Over TLS, a small command and the start of a big one come in separate
// records of one read of the network; TLS hands out the first record,
// then the second from its own buffer, without a read of the network. The
// wait for the rest of the big command is still in the middle of a
// command: not caught up. (The mark of a wait between commands was cleared
// only by a read of the network.)
func TestCaughtUpOnlyBetweenCommandsOverTLS(t *testing.T) {
	c, srv := tlsPair(t)
	f := &fakeSource{t: t, conn: srv, cmds: make(chan []string, 100)}
	go f.readLoop()
	defer func() { f.closing.Store(true); c.Close(); srv.Close(); f.wg.Wait() }()

	whole := cmd("SET", "big", strings.Repeat("v", 1<<20))
	start, sent, rest := make(chan struct{}), make(chan struct{}), make(chan struct{})
	letRest := sync.OnceFunc(func() { close(rest) })
	defer letRest() // before the cleanup above, which waits for the script
	f.run(func() {
		f.handshake([]string{"PSYNC", testReplID, "501"}, "+CONTINUE\r\n")
		<-start
		f.send(cmd("SET", "a", "1")) // one record
		f.send(whole[:1000])         // another
		close(sent)
		<-rest
		f.send(whole[1000:])
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.Handshake(ctx, testReplID, 500)
	require.NoError(t, err)
	close(start)
	<-sent // both records are in the socket's buffer (loopback)
	since := time.Now()
	first, err := c.ReadCommand(ctx)
	require.NoError(t, err)
	require.Equal(t, "SET a 1", argsString(first.Args))
	go func() { _, _ = c.ReadCommand(ctx) }()
	waitFor(t, "not caught up while the command is half received", func() bool { return !c.CaughtUp(since, time.Now()) })
	for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); {
		require.False(t, c.CaughtUp(since, time.Now()), "caught up in the middle of a command (over TLS)")
		time.Sleep(time.Millisecond)
	}
	letRest()
}

// A source over TLS that closes the connection sends close_notify: TLS
// ends the stream with io.EOF while the socket under it returned data, and
// that still counts as the source closing it (a TLS source's cut of a full
// sync was not counted as a cut).
func TestClosedByPeerOverTLS(t *testing.T) {
	c, srv := tlsPair(t)
	defer c.Close()
	f := &fakeSource{t: t, conn: srv, cmds: make(chan []string, 100)}
	go f.readLoop()
	defer func() { f.closing.Store(true); f.wg.Wait() }()
	f.run(func() {
		f.handshake([]string{"PSYNC", testReplID, "501"}, "+CONTINUE\r\n")
		f.send(cmd("SET", "a", "1"))
		srv.Close() // close_notify, then FIN
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.Handshake(ctx, testReplID, 500)
	require.NoError(t, err)
	_, err = c.ReadCommand(ctx)
	require.NoError(t, err)
	_, err = c.ReadCommand(ctx)
	require.Error(t, err)
	require.True(t, c.ClosedByPeer(), "the source closed the connection: %v", err)
}
