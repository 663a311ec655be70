package replication

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/layout"
	"github.com/replicad/terraform-provider-redis/internal/rdb"
	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// rawValueLimit: during a full load, a key whose RDB encoding takes at most
// this many bytes is written whole with RESTORE, which the destination loads
// as it loads an RDB (several times cheaper than replaying the value as
// commands); bigger keys are written in chunks of commands, so memory stays
// bounded whatever the biggest key.
const rawValueLimit = 256 << 10

// rdbVersion returns the newest RDB version the destination reads: the one
// it writes in the footer of DUMP, asked of the generation key that every
// loaded destination holds in the checkpoint database. 0 (RESTORE unused)
// when it cannot tell.
func (w *destWriter) rdbVersion(ctx context.Context) (int, error) {
	if w.cl != nil {
		return w.cl.rdbVersion(ctx)
	}
	// The generation key is there once a destination was loaded; before
	// that, a key made for the question and deleted in the same
	// transaction.
	v, err := w.dumpVersion(ctx, false)
	if v != 0 || err != nil {
		return v, err
	}
	return w.dumpVersion(ctx, true)
}

// dumpVersion sends, in the checkpoint database, a DUMP of the generation
// key, or with probe one of a key it creates and deletes in the same
// transaction, and returns the RDB version of the payload (0: none).
func (w *destWriter) dumpVersion(ctx context.Context, probe bool) (int, error) {
	const probeKey = "replicad:rdb-version"
	w.buf = resp.AppendCommandStrings(w.buf[:0], "SELECT", strconv.Itoa(layout.CheckpointDB))
	n := 3
	if !probe {
		w.buf = resp.AppendCommandStrings(w.buf, "DUMP", generationKey)
	} else {
		w.buf = resp.AppendCommandStrings(w.buf, "MULTI")
		w.buf = resp.AppendCommandStrings(w.buf, "SET", probeKey, "1")
		w.buf = resp.AppendCommandStrings(w.buf, "DUMP", probeKey)
		w.buf = resp.AppendCommandStrings(w.buf, "DEL", probeKey)
		w.buf = resp.AppendCommandStrings(w.buf, "EXEC")
		n = 7
	}
	w.buf = resp.AppendCommandStrings(w.buf, "SELECT", "0")
	defer func() { w.buf = w.buf[:0] }()
	w.deadline(ctx)
	if _, err := w.bw.Write(w.buf); err != nil {
		return 0, fmt.Errorf("write to destination: %w", err)
	}
	if err := w.bw.Flush(); err != nil {
		return 0, fmt.Errorf("write to destination: %w", err)
	}
	version := 0
	found := func(payload []byte) {
		// The payload ends with the 2-byte version and the 8-byte CRC64.
		if len(payload) >= 11 {
			version = int(binary.LittleEndian.Uint16(payload[len(payload)-10:]))
		}
	}
	for i := range n {
		v, err := w.rd.ReadValue()
		if err != nil {
			return 0, fmt.Errorf("read reply from destination: %w", err)
		}
		if v.IsError() {
			return 0, fmt.Errorf("destination refused DUMP: %s", v.Str)
		}
		switch {
		case !probe && i == 1 && !v.Null:
			found(v.Str)
		case probe && i == 5 && len(v.Elems) == 3 && !v.Elems[1].Null:
			found(v.Elems[1].Str)
		}
	}
	return version, nil
}

// restoreAsCommands applies a RESTORE of the stream whose payload the
// destination cannot read (a newer source's RDB version) as the commands
// that build the same value, decoded here: otherwise the destination would
// refuse it. The commands go in one transaction (the source's, when the
// RESTORE is in one), so the key appears whole. It returns false, having
// done nothing, for any other command.
func (s *syncer) restoreAsCommands(ctx context.Context, p *producer, args [][]byte, off int64, at time.Time, inTx bool) (bool, error) {
	if len(args) < 4 || !equalFold(args[0], "RESTORE") && !equalFold(args[0], "RESTORE-ASKING") {
		return false, nil
	}
	// The destination trusts its master's RESTOREs (sanitize-dump-payload
	// does not check them), and a crafted payload would crash it when
	// read: the service decodes each one first, as it does a full sync's.
	// RESTORE-ASKING too: Redis runs it outside a cluster as well.
	if err := rdb.DecodeDump(ctx, args[1], args[3], rdb.BaseHandler{}); err != nil {
		return true, fatal("the source ran %s %q with a payload that does not decode (corrupt, or crafted to crash the server that reads it): it is not applied: %v", strings.ToUpper(string(args[0])), args[1], err)
	}
	if !equalFold(args[0], "RESTORE") {
		return false, nil
	}
	if s.destRDB == 0 {
		return false, nil
	}
	version, ok := rdb.DumpVersion(args[3])
	if !ok || version <= s.destRDB {
		return false, nil
	}
	key := args[1]
	ttl, err := strconv.ParseInt(string(args[2]), 10, 64)
	if err != nil {
		return false, nil // the destination says what is wrong with it
	}
	abs := false
	for _, a := range args[4:] {
		abs = abs || equalFold(a, "ABSTTL")
	}
	add := func(kind kind, cmd [][]byte) error {
		it, enc := item{kind: kind, offset: off, at: at}, [][]byte(nil)
		if cmd != nil {
			it, enc = classify(cmd, off, at)
		}
		return p.add(ctx, it, enc)
	}
	if !inTx {
		if err := add(kindTxBegin, nil); err != nil {
			return true, err
		}
	}
	emit := func(cmd [][]byte) error {
		if equalFold(cmd[0], "SELECT") {
			return nil // the stream's database is selected already
		}
		return add(kindCommand, cmd)
	}
	if err := rdb.DecodeDump(ctx, key, args[3], rdb.NewCommandWriter(emit, rdb.WithReplaceKeys())); err != nil {
		return true, fatal("the source ran RESTORE %q with an RDB %d payload, which the destination (RDB %d) cannot read and this service cannot decode: %v", key, version, s.destRDB, err)
	}
	if ttl > 0 {
		cmd := "PEXPIRE"
		if abs {
			cmd = "PEXPIREAT"
		}
		if err := add(kindCommand, [][]byte{[]byte(cmd), key, args[2]}); err != nil {
			return true, err
		}
	}
	if !inTx {
		return true, add(kindTxEnd, nil)
	}
	return true, nil
}
