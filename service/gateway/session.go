package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/replcompress"
	"github.com/replicad/terraform-provider-redis/internal/replproto"
	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// A session goes through three phases, as a replica connection to a Redis
// master does:
//
//	login     until a valid AUTH: only AUTH and QUIT; anything else gets
//	          NOAUTH and tells a stranger nothing;
//	handshake request/response, one reply per command: PING, REPLCONF, INFO
//	          (replication section only), SELECT, ECHO, CLIENT SETNAME, and
//	          REPLICAD.COMPRESS as the first command; REPLICAD.LINEAGE,
//	          answered by the gateway (Endpoint.Lineage); on a sharded
//	          database's endpoints, INFO cluster and CLUSTER SHARDS,
//	          answered by the gateway (see cluster.go); anything else gets
//	          NOPERM from the gateway itself;
//	stream    after PSYNC or SYNC: the source's bytes flow to the client,
//	          and only REPLCONF goes upstream (a master never answers a
//	          replica's commands, so nothing else has a purpose).
//
// Every command is parsed and checked here before anything reaches
// redis-server, whose own ACL for the replication user is a second fence.

// Limits of what a client may send. Replication needs only short commands.
const (
	maxArgLen   = 1 << 10
	maxArgCount = 16
	// defaultHandshakeTimeout bounds the time from connecting to PSYNC:
	// idle and slow connections are closed then.
	defaultHandshakeTimeout = 30 * time.Second
	// stalledReaderTimeout closes a session whose client has not taken a
	// write for that long: with the redis-server's output-buffer limit for
	// replicas it bounds what a destination that stops reading costs.
	stalledReaderTimeout = 60 * time.Second
	// maxReplyLen bounds a reply relayed during the handshake.
	maxReplyLen = 1 << 20
)

// errPolicy is a client's command the gateway refuses; the session goes on.
var errQuit = errors.New("client quit")

// replyWriter is where the session writes to the client: compressed once the
// client asked for it, counted always.
type replyWriter struct {
	conn    net.Conn
	w       io.Writer // counting, then compressing when level > 0
	flusher flusher   // the compressor; nil when uncompressed
}

type flusher interface{ Flush() error }

func (rw *replyWriter) write(p []byte) error {
	rw.conn.SetWriteDeadline(time.Now().Add(stalledReaderTimeout))
	if _, err := rw.w.Write(p); err != nil {
		return err
	}
	if rw.flusher != nil {
		// Flush at every write: the stream must not wait in the compressor,
		// or the destination would lag.
		return rw.flusher.Flush()
	}
	return nil
}

func (rw *replyWriter) writeString(s string) error { return rw.write([]byte(s)) }

// commandName is the upper-cased name of a command, "" for an empty one.
func commandName(args [][]byte) string {
	if len(args) == 0 {
		return ""
	}
	return strings.ToUpper(string(args[0]))
}

// login reads commands until a valid AUTH, and returns the password that
// opened the session. Any other command before AUTH (PING, the codec offer
// of destinations of an earlier development version) gets NOAUTH, as from
// a redis-server with a password. Failed attempts are throttled per peer
// (see throttle.go).
func (e *endpoint) login(ctx context.Context, w io.Writer, rd *resp.Reader, cfg Endpoint, peer string) ([]byte, bool) {
	for {
		args, _, err := rd.ReadCommand()
		if err != nil {
			if isProtocolError(err) {
				io.WriteString(w, protocolErrorReply)
			}
			return nil, false
		}
		switch commandName(args) {
		case "":
			io.WriteString(w, "-ERR empty command\r\n")
		case "AUTH":
			var user, pw []byte
			switch len(args) {
			case 2:
				pw = args[1]
			case 3:
				user, pw = args[1], args[2]
			default:
				io.WriteString(w, "-ERR wrong number of arguments for 'auth' command\r\n")
				continue
			}
			// Per endpoint: a burst against one database does not slow
			// the destinations of another.
			key := peer + "/" + strconv.Itoa(cfg.UID) + "/" + strconv.Itoa(cfg.Node)
			if err := e.g.throttle.Wait(ctx, key); err != nil {
				// Closed without a reply: an error reply to AUTH means
				// wrong credentials to a client, which stops its sync;
				// a closed connection is retried.
				return nil, false
			}
			userOK := user == nil || string(user) == cfg.AdminUser
			if userOK && cfg.acceptsPassword(pw, time.Now()) {
				e.g.throttle.Succeeded(key)
				if _, err := io.WriteString(w, "+OK\r\n"); err != nil {
					return nil, false
				}
				return append([]byte(nil), pw...), true
			}
			e.g.metrics.refused.WithLabelValues(strconv.Itoa(cfg.UID), "password").Inc()
			e.g.throttle.Failed(key, "database", cfg.UID, "peer", peer)
			io.WriteString(w, "-WRONGPASS invalid username-password pair or user is disabled.\r\n")
		case "QUIT":
			io.WriteString(w, "+OK\r\n")
			return nil, false
		default:
			io.WriteString(w, "-NOAUTH Authentication required.\r\n")
		}
	}
}

// readCompression reads the first command after AUTH: the compression
// request, answered here, or the first command of the handshake (returned).
// The codec is zstd when the client offered it with the level's plus sign
// (the reply then says +ZSTD), DEFLATE otherwise (+OK, what every client
// understands).
func readCompression(w io.Writer, rd *resp.Reader) (compression, [][]byte, error) {
	args, _, err := rd.ReadCommand()
	if err != nil {
		if isProtocolError(err) {
			io.WriteString(w, protocolErrorReply)
		}
		return compression{}, nil, err
	}
	if commandName(args) != CompressCommand {
		return compression{}, cloneArgs(args), nil
	}
	level, zstdOffered, err := 0, false, errors.New("one argument: the level")
	if len(args) == 2 {
		level, zstdOffered, err = replcompress.ParseLevel(args[1])
	}
	if err != nil {
		io.WriteString(w, "-ERR "+err.Error()+"\r\n")
		return compression{}, nil, fmt.Errorf("bad compression request: %w", err)
	}
	c := compression{level: level, codec: replcompress.Deflate}
	if zstdOffered {
		c.codec = replcompress.Zstd
	}
	if _, err := io.WriteString(w, "+"+replcompress.Reply(c.codec)+"\r\n"); err != nil {
		return compression{}, nil, err
	}
	return c, nil, nil
}

// verdict is what the handshake phase does with one command of the client.
type verdict int

const (
	forward       verdict = iota // send upstream, relay its one reply
	startStream                  // send upstream, then relay the stream
	refuse                       // answer with the error, send nothing upstream
	quit                         // answer +OK and close
	answerInfo                   // INFO cluster of a sharded database: answered here
	answerShards                 // CLUSTER SHARDS of a sharded database: answered here
	answerLineage                // replproto.LineageCommand: answered here
)

// handshakeCommand decides what happens to one command of the handshake
// phase. It may rewrite the command (INFO is narrowed to its replication
// section). clustered says the endpoint is a sharded database's: INFO
// cluster and CLUSTER SHARDS are then answered by the gateway. It never
// panics, whatever args holds: it is fuzzed.
func handshakeCommand(args [][]byte, clustered bool) (verdict, [][]byte, string) {
	switch name := commandName(args); name {
	case "":
		return refuse, nil, "-ERR empty command\r\n"
	case "PSYNC", "SYNC":
		return startStream, args, ""
	case "REPLCONF":
		// redis-server answers ACK and GETACK of a client that is not yet
		// its replica with nothing: relayed, the session would wait for a
		// reply that never comes.
		if len(args) >= 2 && (strings.EqualFold(string(args[1]), "ACK") || strings.EqualFold(string(args[1]), "GETACK")) {
			return refuse, nil, "-ERR REPLCONF " + strings.ToUpper(string(args[1])) + " belongs to a replication stream: send it after PSYNC\r\n"
		}
		return forward, args, ""
	case "PING", "ECHO", "SELECT":
		return forward, args, ""
	case "INFO":
		if clustered && len(args) == 2 && strings.EqualFold(string(args[1]), "cluster") {
			return answerInfo, nil, ""
		}
		return forward, [][]byte{[]byte("INFO"), []byte("replication")}, ""
	case "CLUSTER":
		if len(args) == 2 && strings.EqualFold(string(args[1]), "SHARDS") {
			if clustered {
				return answerShards, nil, ""
			}
			return refuse, nil, "-ERR This instance has cluster support disabled\r\n"
		}
	case "CLIENT":
		if len(args) == 3 && strings.EqualFold(string(args[1]), "SETNAME") {
			return forward, args, ""
		}
	case "QUIT":
		return quit, nil, "+OK\r\n"
	case "AUTH", "HELLO":
		return refuse, nil, "-ERR this replication session is already authenticated\r\n"
	case replproto.LineageCommand:
		if len(args) == 1 {
			return answerLineage, nil, ""
		}
		return refuse, nil, "-ERR wrong number of arguments for '" + strings.ToLower(replproto.LineageCommand) + "' command\r\n"
	case CompressCommand:
		return refuse, nil, "-ERR " + CompressCommand + " must come right after AUTH\r\n"
	case CodecsCommand:
		return refuse, nil, "-ERR " + CodecsCommand + " is not used: offer zstd with a plus sign before the level of " + CompressCommand + "\r\n"
	}
	return refuse, nil, "-NOPERM a replication endpoint serves PSYNC, SYNC, REPLCONF, PING, INFO replication and, for a sharded database, INFO cluster and CLUSTER SHARDS only\r\n"
}

// upstream is the session's connection to redis-server, made when the
// first command that needs it comes: the questions a sharded database's
// endpoint answers itself (INFO cluster, CLUSTER SHARDS) need none, so
// discovery works while the node behind the endpoint is down.
type upstream struct {
	dial func() (net.Conn, *resp.Reader, error)
	conn net.Conn
	rd   *resp.Reader
}

func (u *upstream) get() (net.Conn, *resp.Reader, error) {
	if u.conn == nil {
		c, rd, err := u.dial()
		if err != nil {
			return nil, nil, err
		}
		u.conn, u.rd = c, rd
	}
	return u.conn, u.rd, nil
}

// handshakeEnv is what a handshake answers with besides redis-server.
type handshakeEnv struct {
	up *upstream
	// shards writes the answer to CLUSTER SHARDS; nil when the endpoint
	// is not a sharded database's.
	shards func() ([]byte, error)
	// refuse, when set, is the error PSYNC and SYNC get: the endpoint
	// does not stream (a sharded database's own, whose nodes stream).
	refuse string
	// lineage answers replproto.LineageCommand; nil: an empty lineage.
	lineage func() []string
	// idle, when set, is how long a logged-in client has to send its
	// next command once one is answered. A destination's source probe
	// keeps its session and asks INFO every few seconds: the handshake's
	// deadline, counted from the connection, cut it and made it dial
	// again. A client that stops asking is still closed after idle.
	idle time.Duration
	// admitStream, when set, says whether the session may stream: the
	// endpoint bounds its streams (maxSessionsPerEndpoint).
	admitStream func() bool
}

// handshake relays the client's commands one at a time, each with its
// reply, until PSYNC or SYNC, which it sends upstream and returns true.
func handshake(w *replyWriter, rd *resp.Reader, first [][]byte, env handshakeEnv) (bool, error) {
	args := first
	for {
		if args == nil {
			if env.idle > 0 {
				w.conn.SetReadDeadline(time.Now().Add(env.idle))
			}
			var err error
			if args, _, err = rd.ReadCommand(); err != nil {
				if isProtocolError(err) {
					w.writeString(protocolErrorReply)
				}
				return false, err
			}
		}
		v, cmd, reply := handshakeCommand(args, env.shards != nil)
		args = nil
		switch v {
		case refuse:
			if err := w.writeString(reply); err != nil {
				return false, err
			}
			continue
		case quit:
			w.writeString(reply)
			return false, errQuit
		case answerInfo:
			if err := w.writeString("$" + strconv.Itoa(len(clusterInfo)) + "\r\n" + clusterInfo + "\r\n"); err != nil {
				return false, err
			}
			continue
		case answerLineage:
			var l []string
			if env.lineage != nil {
				l = env.lineage()
			}
			if err := w.write(replproto.AppendLineage(nil, l)); err != nil {
				return false, err
			}
			continue
		case answerShards:
			out, err := env.shards()
			if err != nil {
				out = []byte("-ERR cannot read the shards of this database now, try again: " + sanitize(err.Error()) + "\r\n")
			}
			if err := w.write(out); err != nil {
				return false, err
			}
			continue
		case startStream:
			if env.refuse != "" {
				w.writeString("-ERR " + sanitize(env.refuse) + "\r\n")
				return false, errQuit
			}
			if env.admitStream != nil && !env.admitStream() {
				w.writeString(tooManySessions)
				return false, errQuit
			}
		}
		up, upRd, err := env.up.get()
		if err != nil {
			w.writeString("-ERR the database is not available, try again\r\n")
			return false, fmt.Errorf("reach the database: %w", err)
		}
		up.SetDeadline(time.Now().Add(defaultHandshakeTimeout))
		if _, err := up.Write(resp.AppendCommand(nil, cmd...)); err != nil {
			return false, fmt.Errorf("send to the database: %w", err)
		}
		if v == startStream {
			up.SetDeadline(time.Time{})
			return true, nil
		}
		val, err := upRd.ReadValue()
		if err != nil {
			return false, fmt.Errorf("read the database's reply: %w", err)
		}
		if err := w.write(resp.AppendValue(nil, val)); err != nil {
			return false, err
		}
	}
}

// forwardReplconf sends the client's REPLCONF commands upstream during the
// stream phase (ACKs, and GETACK answers) and drops anything else.
func forwardReplconf(rd *resp.Reader, up net.Conn) error {
	for {
		args, _, err := rd.ReadCommand()
		if err != nil {
			return err
		}
		if commandName(args) != "REPLCONF" {
			continue
		}
		if _, err := up.Write(resp.AppendCommand(nil, args...)); err != nil {
			return err
		}
	}
}

func cloneArgs(args [][]byte) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = append([]byte(nil), a...)
	}
	return out
}

func isProtocolError(err error) bool {
	return err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isNetError(err)
}

func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed)
}

// sanitize keeps a message of the service on one line, for a RESP error
// reply.
func sanitize(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

// protocolErrorReply answers input that is not RESP. It never quotes the
// input back: a malformed line may hold a password.
const protocolErrorReply = "-ERR Protocol error: expected a RESP array of bulk strings, within the endpoint's limits\r\n"

// dialUpstream connects to redis-server as the replication user.
func dialUpstream(ctx context.Context, cfg Endpoint) (net.Conn, *resp.Reader, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, cfg.UpstreamNetwork, cfg.UpstreamAddr)
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(resp.AppendCommandStrings(nil, "AUTH", cfg.UpstreamUser, cfg.UpstreamPassword)); err != nil {
		c.Close()
		return nil, nil, err
	}
	rd := resp.NewReader(bufio.NewReaderSize(c, 64<<10))
	rd.MaxBulkLen = maxReplyLen
	v, err := rd.ReadValue()
	if err != nil || v.IsError() {
		c.Close()
		return nil, nil, fmt.Errorf("authenticate to the database: %v %v", err, v.Err())
	}
	c.SetDeadline(time.Time{})
	return c, rd, nil
}
