package acceptloop

import (
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// failing is a listener whose first Accepts fail as a process out of file
// descriptors sees them fail.
type failing struct {
	net.Listener
	failures int
}

func (f *failing) Accept() (net.Conn, error) {
	if f.failures > 0 {
		f.failures--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return f.Listener.Accept()
}

func TestAcceptWaitsOutErrorsOtherThanClosing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	f := &failing{Listener: ln, failures: 3}
	client, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer client.Close()

	var seen []error
	c, err := Accept(f, func(err error) { seen = append(seen, err) })
	require.NoError(t, err, "a listener out of file descriptors for a while still serves afterwards")
	defer c.Close()
	assert.Len(t, seen, 3)
	assert.True(t, errors.Is(seen[0], syscall.EMFILE))
	assert.Equal(t, client.LocalAddr().String(), c.RemoteAddr().String())

	require.NoError(t, ln.Close())
	_, err = Accept(f, nil)
	require.ErrorIs(t, err, net.ErrClosed, "a closed listener ends the loop")
}
