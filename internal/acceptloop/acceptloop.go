// Package acceptloop accepts connections the way a server that must not
// stop serving should: an error of the listener that is not its closing
// (too many open files, a connection aborted before it was accepted) is
// waited out, as net/http's server does, instead of ending the loop, which
// left a replication endpoint listening but never answering until the
// service restarted.
package acceptloop

import (
	"errors"
	"net"
	"time"
)

// Backoff bounds between retries of a failing Accept.
const (
	minWait = 5 * time.Millisecond
	maxWait = time.Second
)

// Accept returns the next connection of ln. It returns an error only once
// ln is closed; other errors are passed to failed (nil: ignored), then
// retried after a pause that doubles up to a second.
func Accept(ln net.Listener, failed func(error)) (net.Conn, error) {
	wait := time.Duration(0)
	for {
		c, err := ln.Accept()
		if err == nil {
			return c, nil
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		if failed != nil {
			failed(err)
		}
		wait = min(max(2*wait, minWait), maxWait)
		time.Sleep(wait)
	}
}
