package bench

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The proxy carries every byte, in order, and never faster than its link:
// 2 MB at 10 MB/s take at least 0.2 s (a lower bound only: a busy machine
// may be slower).
func TestLinkProxyCarriesAllAtTheLinksRate(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	payload := make([]byte, 2<<20)
	for i := range payload {
		payload[i] = byte(rand.IntN(256))
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write(payload)
	}()
	p, err := startLinkProxy(ln.Addr().String(), 10e6)
	require.NoError(t, err)
	defer p.close()
	c, err := net.Dial("tcp", p.addr())
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	began := time.Now()
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(payload, got), "the bytes that crossed the proxy (%d of %d)", len(got), len(payload))
	assert.GreaterOrEqual(t, time.Since(began), 190*time.Millisecond, "faster than the link")
}
