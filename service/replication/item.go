package replication

import (
	"bytes"
	"strconv"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/layout"
)

// kind says what the writer does with an item.
type kind uint8

const (
	kindCommand  kind = iota // raw is a command to apply
	kindOffset               // nothing to apply; only the offset moves (PING)
	kindSelect               // the source selected db
	kindTxBegin              // MULTI of a source transaction
	kindTxEnd                // EXEC of a source transaction
	kindFlushAll             // FLUSHALL: flush the 16 application databases only
	kindLoadDone             // the RDB is loaded: commit the checkpoint at offset
	kindBadDB                // a command names database db, which the destination does not offer; raw is its name
)

// item travels from a syncer's reader to its writer. raw is the command
// already encoded in RESP (in the arena of the item's block, see queue.go),
// so the writer only concatenates bytes.
type item struct {
	kind   kind
	raw    []byte
	db     int
	offset int64 // replication offset after this item (stream items, kindLoadDone)
	replID string
	at     time.Time // when it was received, for the lag

	// What the writer may reorder (see mset.go): keys says what the
	// producer is to fill in; key is the one key of the command (in raw), nil
	// when its keys are not known; setArgs, for a plain SET, is where its key
	// and value arguments start in raw.
	keys    keyInfo
	key     []byte
	setArgs int
	// mustChange: the source sends the command only when it changed the
	// key (PEXPIREAT, PERSIST), so the destination must answer 1; 0 says
	// the destination lost the key (see destWriter.receive).
	mustChange bool
}

// classify turns a command of the replication stream into an item, and
// returns the arguments to encode as its raw bytes (nil: none).
func classify(args [][]byte, offset int64, at time.Time) (item, [][]byte) {
	it := item{kind: kindCommand, offset: offset, at: at}
	name := args[0]
	switch {
	case len(args) == 1 && equalFold(name, "PING"):
		it.kind = kindOffset
	case len(args) == 2 && equalFold(name, "SELECT"):
		if db, err := strconv.Atoi(string(args[1])); err == nil {
			it.kind, it.db = kindSelect, db
			return it, nil
		}
		return it, args
	case len(args) == 1 && equalFold(name, "MULTI"):
		it.kind = kindTxBegin
	case len(args) == 1 && equalFold(name, "EXEC"):
		it.kind = kindTxEnd
	case equalFold(name, "FLUSHALL"):
		it.kind = kindFlushAll
		if len(args) > 1 {
			it.raw = bytes.Clone(args[1]) // ASYNC or SYNC; FLUSHALL is rare enough to allocate
		}
	default:
		if db, bad := dbArgOutOfRange(args); bad {
			it.kind, it.db, it.raw = kindBadDB, db, bytes.ToUpper(args[0])
			return it, nil
		}
		it.keys = keysOf(args)
		it.mustChange = len(args) >= 2 && (equalFold(name, "PEXPIREAT") || equalFold(name, "PERSIST"))
		return it, args
	}
	return it, nil
}

func equalFold(b []byte, s string) bool { return len(b) == len(s) && bytes.EqualFold(b, []byte(s)) }

// dbArgOutOfRange finds, in the commands that name a logical database
// (MOVE key db, SWAPDB a b, COPY src dst DB db), one the destination does
// not offer to sources: the checkpoint database and beyond. Applied, it
// would write into the checkpoints, or fail and be lost.
func dbArgOutOfRange(args [][]byte) (int, bool) {
	return findDBArg(args, func(arg []byte) (int, bool) {
		db, err := strconv.Atoi(string(arg))
		if err != nil {
			return 0, false // the source accepted it, so it cannot happen; the destination would refuse it
		}
		return db, db < 0 || db >= layout.CheckpointDB
	})
}

// findDBArg runs check on each database argument of MOVE, SWAPDB and
// COPY ... DB, and returns the first it flags.
func findDBArg(args [][]byte, check func(arg []byte) (int, bool)) (int, bool) {
	name := args[0]
	switch {
	case len(args) == 3 && equalFold(name, "MOVE"):
		return check(args[2])
	case len(args) == 3 && equalFold(name, "SWAPDB"):
		if db, bad := check(args[1]); bad {
			return db, true
		}
		return check(args[2])
	case len(args) > 3 && equalFold(name, "COPY"):
		for i := 3; i+1 < len(args); i++ {
			if equalFold(args[i], "DB") {
				return check(args[i+1])
			}
		}
	}
	return 0, false
}

// reservedDBCommand adapts, for a source that is a redis-replicad database,
// a command that moves or copies a key into logical database 16: that
// database is the service's own (the checkpoints of a destination), which
// its application user can reach (Redis cannot refuse one SELECT argument
// cleanly) but which no application should use. What an application puts
// there is not replicated, and the sync goes on (the source's sync_note
// counts it): stopping every destination of the source, as for a database
// a destination does not have, would let an application user stop them
// all. A MOVE into it takes the key out of the application's databases, so
// it becomes a DEL; a COPY into it changes nothing there, and is dropped.
// It returns nil, false for any other command.
func reservedDBCommand(args [][]byte) (out [][]byte, drop bool) {
	db, ok := findDBArg(args, func(arg []byte) (int, bool) {
		db, err := strconv.Atoi(string(arg))
		return db, err == nil && db == layout.CheckpointDB
	})
	if !ok || db != layout.CheckpointDB {
		return nil, false
	}
	switch {
	case equalFold(args[0], "MOVE"):
		return [][]byte{[]byte("DEL"), args[1]}, false
	case equalFold(args[0], "COPY"):
		return nil, true
	}
	return nil, false // SWAPDB: refused to applications
}

// movesOut says whether a command run in logical database 16 moves or
// copies a key into a database the applications use (MOVE k 0, COPY a b DB
// 3): what it brings there is unknown to a destination that does not
// replicate database 16 (reservedDBCommand).
func movesOut(args [][]byte) bool {
	_, ok := findDBArg(args, func(arg []byte) (int, bool) {
		db, err := strconv.Atoi(string(arg))
		return db, err == nil && db >= 0 && db < layout.CheckpointDB
	})
	return ok && (equalFold(args[0], "MOVE") || equalFold(args[0], "COPY"))
}
