package replication

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/replicad/terraform-provider-redis/service/store"
)

// The checkpoint of each source lives in the destination itself, in the
// reserved logical database, and is written in the same MULTI/EXEC as the
// commands it covers: after any crash, the destination's data and the offset
// to resume from agree.
const (
	checkpointKey = "replicad:checkpoints" // hash: source address -> checkpoint
	generationKey = "replicad:generation"  // string: the generation loaded
)

// checkpoint is how far the stream of one source has been applied.
type checkpoint struct {
	ReplID string
	Offset int64
	DB     int // the source's selected database at Offset
}

func (c checkpoint) String() string {
	return c.ReplID + " " + strconv.FormatInt(c.Offset, 10) + " " + strconv.Itoa(c.DB)
}

func parseCheckpoint(s string) (checkpoint, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return checkpoint{}, fmt.Errorf("malformed checkpoint %q", s)
	}
	off, err1 := strconv.ParseInt(f[1], 10, 64)
	db, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || len(f[0]) != 40 {
		return checkpoint{}, fmt.Errorf("malformed checkpoint %q", s)
	}
	return checkpoint{ReplID: f[0], Offset: off, DB: db}, nil
}

// generationMark is what a destination holds for the generation of db it
// was loaded for: the number, and a MAC of it under the database's
// internal password, which applications never see. While a database is
// not a destination its application user may write anything in the
// checkpoint database (sharded: any key); a generation and checkpoints of
// a source's live history planted there made a new Replica Of skip its
// load and stream on top of the planted data, saying in-sync. Without the
// password the mark cannot be forged, and a generation's number never
// comes back for a database (it only grows), so an old mark cannot be
// replayed.
func generationMark(db store.Database) string {
	mac := hmac.New(sha256.New, []byte(db.InternalPassword))
	fmt.Fprintf(mac, "redis-replicad generation %d %d", db.UID, db.ReplicaGeneration)
	return strconv.FormatInt(db.ReplicaGeneration, 10) + ":" + hex.EncodeToString(mac.Sum(nil)[:16])
}

// markGeneration is the generation number of a mark, for the logs (0: none).
func markGeneration(mark string) int64 {
	n, _, _ := strings.Cut(mark, ":")
	g, _ := strconv.ParseInt(n, 10, 64)
	return g
}

// readCheckpoints returns the generation mark the destination holds and the
// checkpoint of every source that has one. c is a client of the checkpoint
// database (layout.CheckpointDB).
func readCheckpoints(ctx context.Context, c *redis.Client) (string, map[string]checkpoint, error) {
	pipe := c.Pipeline()
	gen := pipe.Get(ctx, generationKey)
	all := pipe.HGetAll(ctx, checkpointKey)
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return "", nil, fmt.Errorf("read checkpoints: %w", err)
	}
	g := gen.Val()
	out := map[string]checkpoint{}
	for src, v := range all.Val() {
		cp, err := parseCheckpoint(v)
		if err != nil {
			continue // a full sync will replace it
		}
		out[src] = cp
	}
	return g, out, nil
}

// flushForGeneration empties the destination, checkpoints included, and
// records the generation (its mark) it is about to be loaded for. A crash
// after this leaves no checkpoint, so the next start loads everything again.
func flushForGeneration(ctx context.Context, c *redis.Client, gen string) error {
	pipe := c.TxPipeline()
	// FLUSHALL keeps function libraries: a library of a former source
	// would outlive it.
	pipe.FlushAll(ctx)
	pipe.Do(ctx, "FUNCTION", "FLUSH")
	pipe.Set(ctx, generationKey, gen, 0)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("flush destination for generation %d: %w", markGeneration(gen), err)
	}
	return nil
}

// isCheckpointCommand says whether a command of a source's checkpoint
// database only touches this service's own keys: the source is a
// destination of another syncer (a chain), whose checkpoints must not be
// copied downstream.
func isCheckpointCommand(args [][]byte) bool {
	if len(args) < 2 {
		return false
	}
	k := args[1]
	return string(k) == checkpointKey || string(k) == generationKey
}

// unstaged is cmd with its first argument's staging prefix removed (a key
// of the load built under a temporary name), or nil when it has none.
func unstaged(cmd [][]byte, prefix []byte) [][]byte {
	if len(cmd) < 2 || !bytes.HasPrefix(cmd[1], prefix) {
		return nil
	}
	return [][]byte{cmd[0], cmd[1][len(prefix):]}
}
