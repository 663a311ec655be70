package connlimit

import (
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dialFrom opens a connection to addr from the loopback address ip.
func dialFrom(t *testing.T, ip, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// serve runs an HTTP server on a Listener of at most n connections,
// tracked as the API's server does, and returns its address.
func serve(t *testing.T, n int, h http.HandlerFunc) (*Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := New(ln, n)
	srv := &http.Server{ConnContext: l.ConnContext, ConnState: l.ConnState, ReadHeaderTimeout: time.Minute, Handler: l.Track(h)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l, ln.Addr().String()
}

// holding is a handler that holds the first n requests until release is
// closed, each telling inHandler once it is in the handler.
func holding(n int) (h http.HandlerFunc, inHandler, release chan struct{}) {
	inHandler, release = make(chan struct{}, n), make(chan struct{})
	var held atomic.Int64
	return func(http.ResponseWriter, *http.Request) {
		if held.Add(1) <= int64(n) {
			inHandler <- struct{}{}
			<-release
		}
	}, inHandler, release
}

// get sends a GET request on c.
func get(t *testing.T, c net.Conn) {
	t.Helper()
	_, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	require.NoError(t, err)
}

// answer is the start of the answer that c receives within 5 s.
func answer(t *testing.T, c net.Conn, msgAndArgs ...any) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	require.NoError(t, err, msgAndArgs...)
	return string(buf[:n])
}

// closedByServer says whether the server closed c (EOF within a while).
func closedByServer(c net.Conn, within time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(within))
	_, err := c.Read(make([]byte, 1))
	return err == io.EOF
}

// A connection past the limit displaces an idle one of the address that
// holds the most connections, never a connection serving a request, nor
// the lone connection of another address.
func TestAFloodDisplacesItsOwnIdleConnections(t *testing.T) {
	h, inHandler, release := holding(1)
	_, addr := serve(t, 3, h)

	// The oldest: a request being served, from the flooding address.
	busy := dialFrom(t, "127.0.0.1", addr)
	get(t, busy)
	<-inHandler
	other := dialFrom(t, "127.0.0.2", addr) // another client, idle
	idle := dialFrom(t, "127.0.0.1", addr)  // the flood's first idle one
	// Past the limit: the flood's idle connection goes.
	dialFrom(t, "127.0.0.1", addr)
	assert.True(t, closedByServer(idle, 5*time.Second), "the flooding address's idle connection is closed")
	assert.False(t, closedByServer(other, 200*time.Millisecond), "another address's connection stays")
	assert.False(t, closedByServer(busy, 200*time.Millisecond), "a connection serving a request stays")
	close(release)
	assert.Contains(t, answer(t, busy), "HTTP/1.1 200", "the request served to its end")
}

// When every connection serves a request, a new one waits for room, and
// a closed listener ends that wait.
func TestAcceptWaitsWhileAllServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := New(ln, 1)
	first := dialFrom(t, "127.0.0.1", ln.Addr().String())
	c, err := l.Accept()
	require.NoError(t, err)
	defer c.Close()
	l.mu.Lock()
	l.conns[0].serving = 1
	l.mu.Unlock()
	dialFrom(t, "127.0.0.1", ln.Addr().String())
	accepted := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		accepted <- err
	}()
	select {
	case err := <-accepted:
		t.Fatalf("accepted past the limit while every connection serves: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	assert.False(t, closedByServer(first, 10*time.Millisecond))
	require.NoError(t, l.Close())
	select {
	case err := <-accepted:
		assert.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waits after Close")
	}
}

// When every connection served a request and they all end up idle (kept
// alive by their clients), the connection waiting for room displaces one
// at once: it does not wait for a server timeout to close one.
func TestAWaitingConnectionIsServedOnceTheOthersGoIdle(t *testing.T) {
	h, inHandler, release := holding(1)
	_, addr := serve(t, 1, h)

	busy := dialFrom(t, "127.0.0.1", addr)
	get(t, busy)
	<-inHandler
	waiting := dialFrom(t, "127.0.0.2", addr)
	get(t, waiting)
	close(release)
	// The busy connection's answer arrives and it stays open, idle.
	require.Contains(t, answer(t, busy), "HTTP/1.1 200")
	assert.Contains(t, answer(t, waiting, "the waiting connection is served once the other one is idle"), "HTTP/1.1 200")
}

// A connection whose handler has returned, but whose answer the server
// has not written out yet, is not displaced: the connection past the limit
// waits until that answer is out (the answer arrives, then the other
// connection is served). The server is held at that step here; a real
// one is there for microseconds, which a busy machine stretches.
func TestAnAnswerNotYetWrittenIsNotCut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := New(ln, 1)
	l.grace = time.Minute
	waits := make(chan struct{}, 1)
	l.onWait = func() {
		select {
		case waits <- struct{}{}:
		default:
		}
	}
	returned, proceed := make(chan struct{}, 1), make(chan struct{})
	var first atomic.Bool
	tracked := l.Track(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv := &http.Server{ConnContext: l.ConnContext, ConnState: l.ConnState, ReadHeaderTimeout: time.Minute,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tracked.ServeHTTP(w, r)
			if first.CompareAndSwap(false, true) {
				// The handler has returned; the answer is not written yet.
				returned <- struct{}{}
				<-proceed
			}
		})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	busy := dialFrom(t, "127.0.0.1", addr)
	get(t, busy)
	<-returned
	waiting := dialFrom(t, "127.0.0.2", addr)
	get(t, waiting)
	displaced := func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.conns) == 1 && l.conns[0].host == "127.0.0.2"
	}
	deadline := time.Now().Add(time.Minute)
	for waited := false; !waited; {
		select {
		case <-waits:
			waited = true
		case <-time.After(5 * time.Millisecond):
		}
		if !waited && (displaced() || time.Now().After(deadline)) {
			t.Error("the connection past the limit did not wait for the answer to be written out")
			break
		}
	}
	close(proceed)
	assert.Contains(t, answer(t, busy, "the answer is not cut"), "HTTP/1.1 200")
	assert.Contains(t, answer(t, waiting, "served once the other connection is idle"), "HTTP/1.1 200")
}

// A request whose body the handler left unread (a refusal: 401 before the
// body is read) holds no place once its handler returned, though the
// server still waits for that body before it answers: a flood of them,
// each sending its body a byte at a time, would otherwise keep every place
// for as long as the server's read timeout.
func TestAnUnreadBodyDoesNotHoldAPlace(t *testing.T) {
	entered := make(chan struct{}, 1)
	l, addr := serve(t, 1, func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		w.WriteHeader(http.StatusUnauthorized)
	})
	l.mu.Lock()
	l.grace = 200 * time.Millisecond // the default's 2 s would do, slower
	l.mu.Unlock()
	slow := dialFrom(t, "127.0.0.1", addr)
	_, err := slow.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nx"))
	require.NoError(t, err)
	<-entered
	require.Eventually(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.conns) == 1 && l.conns[0].serving == 0
	}, 5*time.Second, time.Millisecond, "the refusal's handler returned")
	other := dialFrom(t, "127.0.0.2", addr)
	get(t, other)
	assert.Contains(t, answer(t, other, "another client is served while a request's body trickles in"), "HTTP/1.1 401")
}
