// Package replcompress is the compression extension of redis-replicad's
// replication endpoints, both sides: a destination sends
// "REPLICAD.COMPRESS <level>" right after AUTH; a replication endpoint that
// agrees answers +OK and sends the rest of the session as one DEFLATE
// stream, flushed after each chunk it relays. Any other source (a plain
// redis-server) answers "unknown command", and the session goes on
// uncompressed.
package replcompress

import (
	"compress/flate"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Command is the request, sent right after AUTH.
const Command = "REPLICAD.COMPRESS"

// Levels a session may ask for (DEFLATE's fast end: the stream is relayed
// live, and higher levels cost CPU for little gain on Redis data). 0 in a
// source's settings means no compression.
const (
	MinLevel = 1
	MaxLevel = 6
)

// CheckLevel says why level is not a valid setting for a source (0: none).
func CheckLevel(level int) error {
	if level < 0 || level > MaxLevel {
		return fmt.Errorf("compression %d is out of range 0-%d", level, MaxLevel)
	}
	return nil
}

// ParseLevel reads the level argument of a request.
func ParseLevel(arg []byte) (int, error) {
	level, err := strconv.Atoi(string(arg))
	if err != nil || level < MinLevel || level > MaxLevel {
		return 0, fmt.Errorf("compression level must be %d to %d", MinLevel, MaxLevel)
	}
	return level, nil
}

// Request is the command asking for level, as its arguments.
func Request(level int) []string { return []string{Command, strconv.Itoa(level)} }

// Refused says whether an error reply to the request means the source cannot
// compress at all (it does not know the command), as opposed to an error of
// a source that can (a bad level, say).
func Refused(reply string) bool {
	return strings.Contains(strings.ToLower(reply), "unknown command")
}

// NewWriter is the server side: what it writes after +OK is compressed;
// Flush ends each relayed chunk so that the destination gets it at once.
func NewWriter(w io.Writer, level int) (*flate.Writer, error) {
	return flate.NewWriter(w, level)
}

// NewReader is the client side: it decompresses what follows +OK. Give it a
// reader that is an io.ByteReader (a bufio.Reader), so that it reads nothing
// ahead of need.
func NewReader(r io.Reader) io.ReadCloser { return flate.NewReader(r) }
