package replproto

import (
	"context"

	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// LineageCommand asks a redis-replicad replication endpoint for the
// lineage of its database: the database itself and every database it
// replicates from, directly or through others, each named by an opaque
// identity (instance/uid). A destination that finds itself in its
// source's lineage would form a replication cycle across instances, where
// each load makes the other side load again, for ever. Within one
// instance the API refuses cycles; across instances only the stream's
// ends can see them.
const LineageCommand = "REPLICAD.LINEAGE"

// Bounds of a lineage: a source answers at most MaxLineage identities of at
// most MaxLineageEntry bytes; a destination ignores what lies beyond.
const (
	MaxLineage      = 256
	MaxLineageEntry = 128
)

// askLineage sends LineageCommand when asked to. Any reply but an array
// of strings (an error from a plain redis-server or an older gateway)
// leaves the lineage unknown: the session goes on.
func (c *Conn) askLineage(ctx context.Context) error {
	if !c.opts.AskLineage {
		return nil
	}
	if err := c.writeCommand(ctx, LineageCommand, []byte(LineageCommand)); err != nil {
		return err
	}
	v, err := readLineageReply(c.rd)
	if err != nil {
		return ioError(LineageCommand, err)
	}
	c.lineage = ParseLineage(v)
	if c.opts.OnLineage != nil {
		return c.opts.OnLineage(c.lineage)
	}
	return nil
}

// readLineageReply reads the reply to LineageCommand. A real answer is
// small and flat: a source that sends more (past 1 MiB in all, or nested
// arrays) is refused before anything is allocated for it.
func readLineageReply(rd *resp.Reader) (resp.Value, error) {
	bulk, array, depth := rd.MaxBulkLen, rd.MaxArrayLen, rd.MaxDepth
	rd.MaxBulkLen, rd.MaxArrayLen, rd.MaxDepth = 1<<10, 4*MaxLineage, 1
	defer func() { rd.MaxBulkLen, rd.MaxArrayLen, rd.MaxDepth = bulk, array, depth }()
	return rd.ReadValue()
}

// Lineage is the source's lineage as it answered during the handshake;
// nil when it did not (not a redis-replicad endpoint, or not asked).
func (c *Conn) Lineage() []string { return c.lineage }

// ParseLineage reads a reply to LineageCommand: the strings of an array,
// at most MaxLineage of them, each at most MaxLineageEntry bytes (longer
// ones are skipped); nil for any other reply.
func ParseLineage(v resp.Value) []string {
	if v.Type != resp.Array || v.Null {
		return nil
	}
	out := []string{}
	for _, e := range v.Elems {
		if len(out) == MaxLineage {
			break
		}
		if (e.Type == resp.BulkString || e.Type == resp.SimpleString) && !e.Null && len(e.Str) > 0 && len(e.Str) <= MaxLineageEntry {
			out = append(out, string(e.Str))
		}
	}
	return out
}

// AppendLineage appends the reply to LineageCommand for lineage: an array
// of bulk strings, at most MaxLineage of them.
func AppendLineage(b []byte, lineage []string) []byte {
	return resp.AppendCommandStrings(b, lineage[:min(len(lineage), MaxLineage)]...)
}
