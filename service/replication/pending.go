package replication

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/replicad/terraform-provider-redis/internal/rdb"
	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// A stream loaded as commands (too big for RESTORE, or a payload the
// destination cannot read) gets its consumer groups' pending entries with
// XCLAIM, which only takes an ID the stream holds. The writer keeps the
// entries deleted at the source that the RDB still lists long enough to
// claim them (see rdb.CommandWriter); the pending entries of messages the
// RDB no longer has (trimmed, or deleted with their whole listpack) cannot
// be recreated. pendingCounter counts what each group should hold, so that
// the load can check it and say what is missing, instead of leaving it to
// a code comment.

// maxCheckedGroups bounds the groups checked after a load (one map entry
// each); past it, the rest are not checked, and the note says so.
const maxCheckedGroups = 10000

type pendingKey struct {
	db         int
	key, group string
}

// pendingCounter is the load's rdb.Handler: a CommandWriter that also
// counts the pending entries it writes, per stream key and group.
type pendingCounter struct {
	*rdb.CommandWriter
	counts    map[pendingKey]int64
	unchecked bool // more groups than maxCheckedGroups
}

func newPendingCounter(w *rdb.CommandWriter) *pendingCounter {
	return &pendingCounter{CommandWriter: w, counts: map[pendingKey]int64{}}
}

func (h *pendingCounter) StreamPending(k *rdb.KeyMeta, group, consumer []byte, pel []rdb.PendingEntry) error {
	pk := pendingKey{db: k.DB, key: string(k.Key), group: string(group)}
	if _, ok := h.counts[pk]; ok || len(h.counts) < maxCheckedGroups {
		h.counts[pk] += int64(len(pel))
	} else {
		h.unchecked = true
	}
	return h.CommandWriter.StreamPending(k, group, consumer, pel)
}

// checkPending asks the destination how many entries each counted group
// has pending, and returns a note on those that hold fewer ("" when every
// one is whole). The stream has not moved yet: it runs before any command
// of the stream is sent.
func (w *destWriter) checkPending(ctx context.Context, h *pendingCounter) (string, error) {
	if w.cl != nil {
		return w.cl.checkPending(ctx, h)
	}
	if h == nil || (len(h.counts) == 0 && !h.unchecked) {
		return "", nil
	}
	var short []string
	var lost int64
	for pk, want := range h.counts {
		w.buf = resp.AppendCommandStrings(w.buf[:0], "SELECT", strconv.Itoa(pk.db))
		w.buf = resp.AppendCommandStrings(w.buf, "XPENDING", pk.key, pk.group)
		if err := w.write(ctx); err != nil {
			return "", err
		}
		w.buf = w.buf[:0]
		var v resp.Value
		for range 2 {
			var err error
			if v, err = w.rd.ReadValue(); err != nil {
				return "", fmt.Errorf("read reply from destination: %w", err)
			}
			if v.IsError() {
				return "", fmt.Errorf("check the pending entries of stream %q: %s", pk.key, v.Str)
			}
		}
		var got int64
		if len(v.Elems) > 0 {
			got = v.Elems[0].Int
		}
		if got < want {
			lost += want - got
			if len(short) < 5 {
				short = append(short, fmt.Sprintf("%q group %q: %d of %d", pk.key, pk.group, got, want))
			}
		}
	}
	return pendingNote(lost, short, h.unchecked), nil
}

// pendingNote says what a load's check of the pending entries found.
func pendingNote(lost int64, short []string, unchecked bool) string {
	var note string
	if lost > 0 {
		note = fmt.Sprintf("%d pending entries of consumer groups refer to stream messages deleted or trimmed at the source, which Redis cannot recreate through commands (XCLAIM needs the message): %s", lost, strings.Join(short, "; "))
	}
	if unchecked {
		if note != "" {
			note += "; "
		}
		note += fmt.Sprintf("pending entries of consumer groups past the first %d were not checked", maxCheckedGroups)
	}
	return note
}
