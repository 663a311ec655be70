package replproto

import (
	"context"
	"errors"
)

// Command is one command of the replication stream.
type Command struct {
	// Args are the command name and its arguments. They point into the
	// connection's read buffer and are valid only until the next call to
	// ReadCommand: copy what must outlive it.
	Args [][]byte
	// Offset is the replication offset just after this command: once it is
	// applied, the caller has applied the stream up to Offset.
	Offset int64
	// Raw is the command as it came, when it came buffered whole (nil
	// otherwise): the RESP encoding of Args (resp.Reader.Raw), valid as
	// long as they are.
	Raw []byte
}

// Is reports whether the command's name is name, ignoring ASCII case.
func (c Command) Is(name string) bool {
	return len(c.Args) > 0 && equalFold(c.Args[0], name)
}

// ReadCommand returns the next command of the stream. It handles REPLCONF
// (GETACK) itself and returns everything else, including PING, SELECT, MULTI
// and EXEC (see the package documentation). The timeout is re-armed for each
// read of the socket, so an idle but healthy link (the source PINGs every
// repl-ping-replica-period) never times out.
func (c *Conn) ReadCommand(ctx context.Context) (Command, error) {
	switch c.state {
	case stateStream:
	case stateBroken:
		return Command{}, c.err
	case stateRDB:
		return Command{}, &Error{Op: "stream", Kind: ErrState, Err: errors.New("RDB payload not consumed: read it and call RDBReader.Close first")}
	default:
		return Command{}, &Error{Op: "stream", Kind: ErrState, Err: errors.New("handshake not performed")}
	}
	if err := ctx.Err(); err != nil {
		return Command{}, &Error{Op: "stream", Kind: ErrConn, Err: err}
	}
	c.dc.ctx = ctx
	defer c.clearReadContext()

	for {
		// Nothing buffered: a wait for the network now is one for the
		// next command (CaughtUp).
		c.dc.atBoundary.Store(c.br.Buffered() == 0)
		args, n, err := c.rd.ReadCommand()
		if err != nil {
			return Command{}, c.fail(ioError("stream", err))
		}
		off := c.offset.Add(n)
		if len(args) == 0 || equalFold(args[0], "REPLCONF") {
			// Nothing for the caller to apply: the bytes count, and the
			// no-op range after the last returned command grows.
			c.posMu.Lock()
			c.noopEnd = off
			c.posMu.Unlock()
			if len(args) > 0 {
				if err := c.handleReplconf(ctx, args); err != nil {
					return Command{}, c.failErr(err)
				}
			}
			if c.idle != nil && c.br.Buffered() == 0 {
				c.idle()
			}
			continue
		}
		c.posMu.Lock()
		c.returned, c.noopEnd = off, off
		c.posMu.Unlock()
		return Command{Args: args, Offset: off, Raw: c.rd.Raw()}, nil
	}
}

// OnIdle sets f to run, on the reader goroutine, when ReadCommand has
// consumed a command it handles itself (REPLCONF GETACK) and is about to
// wait for the network. A caller that decides whether to pass on what it
// read by looking at Buffered (nothing more buffered: pass it on now)
// would otherwise wait, holding the commands before it, for a next
// command that may not come soon: a source sends GETACK right after a
// transaction (WAIT, a shutdown, a replica's master link).
func (c *Conn) OnIdle(f func()) { c.idle = f }

// handleReplconf answers REPLCONF GETACK with the applied offset. Other
// REPLCONF subcommands from a source have no meaning for a replica and are
// ignored (their bytes are still counted).
func (c *Conn) handleReplconf(ctx context.Context, args [][]byte) error {
	if len(args) >= 2 && equalFold(args[1], "GETACK") {
		off := c.ackOffset()
		c.log.Debug("answering GETACK", "ack_offset", off, "stream_offset", c.offset.Load())
		return c.sendAck(ctx, off)
	}
	c.log.Debug("ignoring REPLCONF from source", "subcommand", string(args[min(1, len(args)-1)]))
	return nil
}

// equalFold compares ASCII case-insensitively without allocating.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Buffered returns how many bytes of the stream are already received and
// not yet returned: when it is 0, the next ReadCommand waits for the
// network. Reader goroutine only.
func (c *Conn) Buffered() int { return c.br.Buffered() }
