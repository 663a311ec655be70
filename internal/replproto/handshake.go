package replproto

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"

	"github.com/replicad/terraform-provider-redis/internal/replcompress"
	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// Sync is the source's answer to PSYNC.
type Sync struct {
	// Full is true for +FULLRESYNC: an RDB payload follows (read it with
	// RDB), and the caller's dataset must be replaced by it. False for
	// +CONTINUE: the stream resumes right after the offset the caller gave.
	Full bool
	// ReplID is the source's replication ID: the one from +FULLRESYNC, the
	// new one from "+CONTINUE <newid>" (the source was promoted or
	// restarted), or else the one the caller asked for.
	ReplID string
	// Offset is the replication offset the stream continues from: the
	// dataset in the RDB is at this offset after +FULLRESYNC; after
	// +CONTINUE it is the offset the caller passed.
	Offset int64
}

// Handshake performs the replica handshake, one step per function in the
// order of Redis's own replica state machine (replication.c): PING, AUTH,
// REPLCONF listening-port, REPLCONF capa, PSYNC.
//
// replID and offset identify where the caller's data stands: the source's
// replication ID and the offset applied last (Command.Offset of the last
// command applied, or Sync.Offset when nothing was applied since the RDB).
// An empty replID asks for a full resync ("PSYNC ? -1"). On the wire PSYNC
// carries offset+1, the first byte wanted, as Redis replicas send it.
func (c *Conn) Handshake(ctx context.Context, replID string, offset int64) (Sync, error) {
	switch c.state {
	case stateNew:
	case stateBroken:
		return Sync{}, c.err
	default:
		return Sync{}, &Error{Op: "handshake", Kind: ErrState, Err: errors.New("handshake already performed")}
	}
	if replID != "" && offset < 0 {
		return Sync{}, &Error{Op: "handshake", Kind: ErrState, Err: fmt.Errorf("negative offset %d for replication ID %s", offset, replID)}
	}
	c.dc.ctx = ctx
	defer c.clearReadContext()

	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"PING", c.sendPing},
		{"AUTH", c.sendAuth},
		{replcompress.Command, c.sendCompress},
		{LineageCommand, c.askLineage},
		{"REPLCONF listening-port", c.sendListeningPort},
		{"REPLCONF capa", c.sendCapa},
	}
	for _, s := range steps {
		c.log.Debug("replication handshake", "step", s.name)
		if err := s.run(ctx); err != nil {
			return Sync{}, c.failErr(err)
		}
	}
	sync, err := c.sendPsync(ctx, replID, offset)
	if err != nil {
		return Sync{}, c.failErr(err)
	}
	c.replyLimits(false)
	return sync, nil
}

// roundTrip sends one command and reads its reply. Error replies are
// returned as values; err is for I/O and protocol failures.
func (c *Conn) roundTrip(ctx context.Context, op string, args ...string) (resp.Value, error) {
	bargs := make([][]byte, len(args))
	for i, a := range args {
		bargs[i] = []byte(a)
	}
	if err := c.writeCommand(ctx, op, bargs...); err != nil {
		return resp.Value{}, err
	}
	v, err := c.rd.ReadValue()
	if err != nil {
		return resp.Value{}, ioError(op, err)
	}
	return v, nil
}

// sendPing checks that the source answers before we go further. Like Redis,
// it accepts an authentication error here: the source requires AUTH, which
// is the next step, so PING then only proves the link works.
func (c *Conn) sendPing(ctx context.Context) error {
	v, err := c.roundTrip(ctx, "PING", "PING")
	if err != nil {
		var e *Error
		if c.opts.TLSConfig == nil && errors.As(err, &e) && e.Kind == ErrConn &&
			(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			e.Err = errors.Join(ErrClosedAtFirstCommand, e.Err)
		}
		return err
	}
	if se, ok := v.Err().(*resp.ServerError); ok {
		needsAuth := authCodes[se.Code()] || strings.HasPrefix(se.Msg, "ERR operation not permitted")
		if needsAuth && c.hasCredentials() {
			return nil
		}
		return c.replyError("PING", se)
	}
	if v.Type != resp.SimpleString || string(v.Str) != "PONG" {
		return &Error{Op: "PING", Kind: ErrProtocol, Err: fmt.Errorf("unexpected reply %.64s", v.String())}
	}
	return nil
}

func (c *Conn) hasCredentials() bool { return c.opts.Username != "" || c.opts.Password != "" }

// sendAuth authenticates when credentials are configured. Every error reply
// to AUTH is ErrAuth: whatever the wording (WRONGPASS, or "AUTH called
// without any password configured"), the credentials do not match the
// source's configuration, which retrying will not change.
func (c *Conn) sendAuth(ctx context.Context) error {
	if !c.hasCredentials() {
		return nil
	}
	args := []string{"AUTH", c.opts.Password}
	if c.opts.Username != "" {
		args = []string{"AUTH", c.opts.Username, c.opts.Password}
	}
	v, err := c.roundTrip(ctx, "AUTH", args...)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && errors.Is(err, io.EOF) {
			// What a redis-replicad gateway does while it throttles a
			// burst of failed authentications from this address.
			e.Err = fmt.Errorf("%w (the source closed the connection without answering AUTH: a redis-replicad source does so while it throttles failed authentications from this address)", e.Err)
		}
		return err
	}
	if se, ok := v.Err().(*resp.ServerError); ok {
		e := c.replyError("AUTH", se)
		e.Kind = ErrAuth
		return e
	}
	if v.Type != resp.SimpleString || string(v.Str) != "OK" {
		return &Error{Op: "AUTH", Kind: ErrProtocol, Err: fmt.Errorf("unexpected reply %.64s", v.String())}
	}
	c.log.Debug("authenticated", "user", c.opts.Username)
	return nil
}

// sendCompress asks a redis-replicad source to compress the rest of the
// session (with a flush after each chunk it relays). The request offers
// zstd (a plus sign before the level, which a source that predates zstd
// reads as the same level). It answers +ZSTD when it compresses with zstd
// (only if we offered it), +OK with DEFLATE. A
// source that does not know the command (any plain redis-server) answers
// with an error, and the session goes on uncompressed.
func (c *Conn) sendCompress(ctx context.Context) error {
	if c.opts.Compression <= 0 {
		return nil
	}
	offerZstd := !c.opts.NoZstd
	v, err := c.roundTrip(ctx, replcompress.Command, replcompress.Request(c.opts.Compression, offerZstd)...)
	if err != nil {
		return err
	}
	if v.IsError() {
		c.log.Info("the source does not compress", "reply", string(v.Str))
		return nil
	}
	if c.br.Buffered() != 0 {
		return &Error{Op: replcompress.Command, Kind: ErrProtocol, Err: errors.New("data after the reply to the compression request")}
	}
	codec := ""
	if v.Type == resp.SimpleString {
		codec = replcompress.CodecOfReply(string(v.Str))
	}
	if codec == "" {
		return &Error{Op: replcompress.Command, Kind: ErrProtocol, Err: fmt.Errorf("the source answered %.64s, which names no codec this instance decodes (+ZSTD or +OK for DEFLATE)", v.String())}
	}
	if codec == replcompress.Zstd && !offerZstd {
		return &Error{Op: replcompress.Command, Kind: ErrProtocol, Err: errors.New("the source chose zstd, which was not offered")}
	}
	// From here on, what the source sends is compressed. The bufio reader
	// under it is a ByteReader, so DEFLATE reads nothing ahead of need;
	// zstd reads whole blocks, which the source flushes one at a time.
	src, err := replcompress.NewDecompressor(c.br, codec)
	if err != nil {
		return &Error{Op: replcompress.Command, Kind: ErrProtocol, Err: err}
	}
	c.br = bufio.NewReaderSize(boundaryReader{src, &c.dc.atBoundary}, readBufferSize)
	c.rd = resp.NewReader(c.br)
	c.replyLimits(true)
	c.compressed = codec
	c.log.Debug("the source compresses", "codec", codec, "compression_level", c.opts.Compression)
	return nil
}

// sendListeningPort announces the port shown in the source's INFO for this
// replica. Redis replicas ignore a refusal (the source may predate the
// option) and so do we, except for permission errors, which PSYNC would
// hit anyway.
func (c *Conn) sendListeningPort(ctx context.Context) error {
	return c.optionalReplconf(ctx, "REPLCONF listening-port",
		"REPLCONF", "listening-port", strconv.Itoa(c.opts.ListeningPort))
}

// sendCapa declares that we understand the diskless "$EOF:" RDB format
// (eof) and the PSYNC2 replication IDs (psync2), so the source may use them.
func (c *Conn) sendCapa(ctx context.Context) error {
	return c.optionalReplconf(ctx, "REPLCONF capa", "REPLCONF", "capa", "eof", "capa", "psync2")
}

func (c *Conn) optionalReplconf(ctx context.Context, op string, args ...string) error {
	v, err := c.roundTrip(ctx, op, args...)
	if err != nil {
		return err
	}
	if se, ok := v.Err().(*resp.ServerError); ok {
		if authCodes[se.Code()] {
			return c.replyError(op, se)
		}
		c.log.Warn("source refused a replication option; continuing", "step", op, "reply", c.redact(se.Msg))
		return nil
	}
	if v.Type != resp.SimpleString {
		return &Error{Op: op, Kind: ErrProtocol, Err: fmt.Errorf("unexpected reply %.64s", v.String())}
	}
	return nil
}

// sendPsync asks to continue from offset+1 in replID's history, or for a
// full resync, and interprets the answer.
func (c *Conn) sendPsync(ctx context.Context, replID string, offset int64) (Sync, error) {
	args := []string{"PSYNC", "?", "-1"}
	if replID != "" {
		args = []string{"PSYNC", replID, strconv.FormatInt(offset+1, 10)}
	}
	if err := c.writeCommand(ctx, "PSYNC", []byte(args[0]), []byte(args[1]), []byte(args[2])); err != nil {
		return Sync{}, err
	}
	// While it starts the RDB child the source may send newlines to keep
	// the link alive before it replies.
	if err := c.skipKeepalives(); err != nil {
		return Sync{}, ioError("PSYNC", err)
	}
	v, err := c.rd.ReadValue()
	if err != nil {
		return Sync{}, ioError("PSYNC", err)
	}
	if se, ok := v.Err().(*resp.ServerError); ok {
		return Sync{}, c.replyError("PSYNC", se)
	}
	if v.Type != resp.SimpleString {
		return Sync{}, psyncProtoError(v)
	}
	fields := strings.Fields(string(v.Str))
	switch {
	case len(fields) == 3 && fields[0] == "FULLRESYNC":
		off, err := strconv.ParseInt(fields[2], 10, 64)
		if err != nil || off < 0 || !validReplID(fields[1]) {
			return Sync{}, psyncProtoError(v)
		}
		c.startAt(fields[1], off)
		c.state = stateRDB
		c.log.Info("source requires a full resync", "replid", fields[1], "offset", off, "asked_replid", replID, "asked_offset", offset)
		return Sync{Full: true, ReplID: fields[1], Offset: off}, nil

	case len(fields) >= 1 && len(fields) <= 2 && fields[0] == "CONTINUE":
		if replID == "" {
			// We asked for a full resync; continuing makes no sense.
			return Sync{}, psyncProtoError(v)
		}
		id := replID
		if len(fields) == 2 {
			if !validReplID(fields[1]) {
				return Sync{}, psyncProtoError(v)
			}
			id = fields[1]
		}
		c.startAt(id, offset)
		c.startStream()
		c.log.Info("partial resync accepted", "replid", id, "offset", offset, "replid_changed", id != replID)
		return Sync{ReplID: id, Offset: offset}, nil
	}
	return Sync{}, psyncProtoError(v)
}

func psyncProtoError(v resp.Value) *Error {
	return &Error{Op: "PSYNC", Kind: ErrProtocol, Err: fmt.Errorf("unexpected reply %.80s", v.String())}
}

func (c *Conn) startAt(replID string, offset int64) {
	c.replID = replID
	c.offset.Store(offset)
	c.applied.Store(offset)
	c.posMu.Lock()
	c.returned, c.noopEnd = offset, offset
	c.posMu.Unlock()
}

// validReplID checks the shape of a replication ID: 40 hexadecimal
// characters, as Redis generates them.
func validReplID(id string) bool {
	if len(id) != 40 {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !('0' <= ch && ch <= '9' || 'a' <= ch && ch <= 'f' || 'A' <= ch && ch <= 'F') {
			return false
		}
	}
	return true
}

// skipKeepalives consumes the bare newlines a source sends to keep the link
// alive while it prepares a reply or the RDB. They are outside the
// replication stream: they do not count in the offset.
func (c *Conn) skipKeepalives() error {
	skipped := 0
	for {
		b, err := c.br.Peek(1)
		if err != nil {
			return err
		}
		switch {
		case b[0] == '\n':
			_, _ = c.br.Discard(1)
		case b[0] == '\r':
			// Tolerate "\r\n" too; a lone '\r' is left for the parser.
			b, err := c.br.Peek(2)
			if err != nil || b[1] != '\n' {
				return err
			}
			_, _ = c.br.Discard(2)
		default:
			if skipped > 0 {
				c.log.Debug("skipped keepalive newlines", "count", skipped)
			}
			return nil
		}
		skipped++
	}
}
