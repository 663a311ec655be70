package replication

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/cluster"
)

// A sharded destination (a Redis Cluster the service runs) has database 0
// only, and a MULTI/EXEC there may touch one hash slot only. So its
// checkpoints are kept per slot and per shard, in database 0, under keys
// whose hash tag puts them in the slot (or a slot of the shard) they
// describe:
//
//   - replicad:{<tag of slot s>}:cp, a hash: source -> checkpoint, written
//     in the MULTI/EXEC that applies a batch's commands of slot s. It says
//     how far the source's commands of slot s are applied.
//   - replicad:{<tag of the shard's first slot>}:shard, a hash: source ->
//     checkpoint, written on each master after the batch's transactions on
//     that master. It says how far every slot of the shard is applied; it
//     also keeps the generation loaded.
//
// A shard's replica receives its master's writes in order, so whatever
// prefix of them a promoted replica holds, its slot and shard checkpoints
// describe exactly the data it holds. A source resumes from the smallest
// shard checkpoint, and each command is skipped when its slot's checkpoint
// (or its shard's, if larger) shows it applied.
//
// Applications see these keys (SCAN, KEYS, DBSIZE) in database 0, read
// only like the rest of a destination: the prefix replicad: is the
// service's.
const (
	clusterSlotSuffix  = "}:cp"
	clusterShardSuffix = "}:shard"
	clusterKeyPrefix   = "replicad:{"
	generationField    = "generation"
)

// slotTags[s] is a short string whose CRC16 puts a key tagged with it in
// slot s. Computed once; read only after.
var slotTags = sync.OnceValue(func() []string {
	tags := make([]string, cluster.Slots)
	left := cluster.Slots
	for i := 0; left > 0; i++ {
		t := strconv.FormatInt(int64(i), 36)
		if s := cluster.KeySlot([]byte(t)); tags[s] == "" {
			tags[s] = t
			left--
		}
	}
	return tags
})

func slotCheckpointKey(slot int) string {
	return clusterKeyPrefix + slotTags()[slot] + clusterSlotSuffix
}

func shardCheckpointKey(firstSlot int) string {
	return clusterKeyPrefix + slotTags()[firstSlot] + clusterShardSuffix
}

// clustered says whether a is a sharded database.
func (a Access) clustered() bool { return len(a.Nodes) > 0 }

// destShard is a master of a sharded destination and the slots it serves.
type destShard struct {
	addr  string // as the cluster announces it
	acc   Access // how the service reaches it
	slots []cluster.Range
}

func (s destShard) first() int { return s.slots[0].Start }

// destTopology is the masters of a sharded destination as its nodes see
// them now.
type destTopology struct {
	shards []destShard
	owner  []int16 // slot -> index in shards
}

// discoverDest reads the destination's slot map from the first node that
// answers, and requires every slot served by a master the service can
// reach: during a failover, until the cluster promotes a replica, it is
// an error to retry.
func discoverDest(ctx context.Context, a Access) (*destTopology, error) {
	ports := make([]int, 0, len(a.Nodes))
	for p := range a.Nodes {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	var last error
	for _, p := range ports {
		c := a.Nodes[p].client(0)
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		t, err := cluster.Discover(qctx, c, true)
		cancel()
		c.Close()
		if err != nil {
			last = err
			continue
		}
		dt, err := a.destTopology(t)
		if err != nil {
			last = err
			continue
		}
		return dt, nil
	}
	return nil, fmt.Errorf("read the slot map of the sharded destination: %w", last)
}

func (a Access) destTopology(t cluster.Topology) (*destTopology, error) {
	dt := &destTopology{owner: make([]int16, cluster.Slots)}
	for i := range dt.owner {
		dt.owner[i] = -1
	}
	for _, sh := range t.Shards {
		m, ok := sh.Master()
		if !ok || !m.Online() {
			return nil, fmt.Errorf("slots %s have no online master yet", sh.Key())
		}
		_, port, err := net.SplitHostPort(m.Addr)
		if err != nil {
			return nil, fmt.Errorf("master %q: %w", m.Addr, err)
		}
		pn, _ := strconv.Atoi(port)
		acc, ok := a.Nodes[pn]
		if !ok {
			return nil, fmt.Errorf("master %s is not a node of this database", m.Addr)
		}
		for _, r := range sh.Slots {
			for s := r.Start; s <= r.End; s++ {
				dt.owner[s] = int16(len(dt.shards))
			}
		}
		dt.shards = append(dt.shards, destShard{addr: m.Addr, acc: acc, slots: sh.Slots})
	}
	for s, o := range dt.owner {
		if o < 0 {
			return nil, fmt.Errorf("slot %d is not served (the cluster is not ok)", s)
		}
	}
	return dt, nil
}

// destState is what a sharded destination holds of the checkpoints.
type destState struct {
	// gens: the generation mark each shard holds ("": none).
	gens []string
	// shard[i][source]: shard i's checkpoint of the source.
	shard []map[string]checkpoint
	// slot[source][slot]: the checkpoints of slots, read from the slot's
	// master.
	slot map[string]map[int]checkpoint
}

// readDestState reads every checkpoint key of every master.
func readDestState(ctx context.Context, t *destTopology) (*destState, error) {
	st := &destState{gens: make([]string, len(t.shards)), shard: make([]map[string]checkpoint, len(t.shards)), slot: map[string]map[int]checkpoint{}}
	for i, sh := range t.shards {
		st.shard[i] = map[string]checkpoint{}
		c := sh.acc.client(0)
		err := func() error {
			defer c.Close()
			var keys []string
			iter := c.Scan(ctx, 0, clusterKeyPrefix+"*", 1000).Iterator()
			for iter.Next(ctx) {
				keys = append(keys, iter.Val())
			}
			if err := iter.Err(); err != nil {
				return err
			}
			pipe := c.Pipeline()
			vals := make([]*redis.MapStringStringCmd, len(keys))
			for j, k := range keys {
				vals[j] = pipe.HGetAll(ctx, k)
			}
			if len(keys) > 0 {
				if _, err := pipe.Exec(ctx); err != nil {
					return err
				}
			}
			for j, k := range keys {
				switch {
				case strings.HasSuffix(k, clusterShardSuffix):
					for f, v := range vals[j].Val() {
						if f == generationField {
							st.gens[i] = v
						} else if cp, err := parseCheckpoint(v); err == nil {
							st.shard[i][f] = cp
						}
					}
				case strings.HasSuffix(k, clusterSlotSuffix):
					slot := cluster.KeySlot([]byte(k))
					if int(t.owner[slot]) != i {
						continue // not this master's slot (a leftover)
					}
					for f, v := range vals[j].Val() {
						if cp, err := parseCheckpoint(v); err == nil {
							if st.slot[f] == nil {
								st.slot[f] = map[int]checkpoint{}
							}
							st.slot[f][slot] = cp
						}
					}
				}
			}
			return nil
		}()
		if err != nil {
			return nil, fmt.Errorf("read the checkpoints of destination shard %s: %w", sh.addr, err)
		}
	}
	return st, nil
}

// generation is the generation mark every shard holds, "" when they
// disagree or one holds none (a load was cut short).
func (st *destState) generation() string {
	g := st.gens[0]
	for _, x := range st.gens {
		if x != g {
			return ""
		}
	}
	return g
}

// resume is where source resumes from: its smallest shard checkpoint,
// false when a shard holds none.
func (st *destState) resume(source string) (checkpoint, bool) {
	var out checkpoint
	for i, m := range st.shard {
		cp, ok := m[source]
		if !ok {
			return checkpoint{}, false
		}
		if i == 0 || cp.Offset < out.Offset {
			out = cp
		}
	}
	return out, true
}

// applied is, for each slot, how far source's commands are applied there.
func (st *destState) applied(t *destTopology, source string) []int64 {
	out := make([]int64, cluster.Slots)
	for s := range out {
		out[s] = st.shard[t.owner[s]][source].Offset
		if cp, ok := st.slot[source][s]; ok && cp.Offset > out[s] {
			out[s] = cp.Offset
		}
	}
	return out
}

// clusterPrep is the destination side of a round for a sharded
// destination: the checkpoints of every source, whether the round must
// load everything, and a client of the master that keeps the nodes of
// clustered sources (saveNodes, plan).
func (d *destination) clusterPrep(ctx context.Context, dest Access, forceFull bool) (map[string]checkpoint, bool, *redis.Client, error) {
	t, err := waitDest(ctx, dest)
	if err != nil {
		return nil, false, nil, fmt.Errorf("destination %d: %w", d.db.UID, err)
	}
	st, err := readDestState(ctx, t)
	if err != nil {
		return nil, false, nil, err
	}
	gen := st.generation()
	cps := map[string]checkpoint{}
	for key := range st.shard[0] {
		if cp, ok := st.resume(key); ok {
			cps[key] = cp
		}
	}
	marked := gen == generationMark(d.db)
	full := forceFull || !marked
	d.log.Info("destination checkpoints", "destination", d.db.UID, "shards", len(t.shards), "generation", markGeneration(gen), "want_generation", d.db.ReplicaGeneration,
		"generation_marked", marked, "checkpoints", len(cps), "force_full", forceFull)
	hints := t.shards[t.owner[cluster.KeySlot([]byte(checkpointKey))]].acc.client(0)
	return cps, full, hints, nil
}

// waitDest waits, a minute at most, until the destination's slot map has
// an online master for every slot.
func waitDest(ctx context.Context, dest Access) (*destTopology, error) {
	readyCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		t, err := discoverDest(readyCtx, dest)
		if err == nil {
			return t, nil
		}
		select {
		case <-readyCtx.Done():
			return nil, err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// flushClusterDest empties every master of a sharded destination and
// records the generation about to be loaded in its shard checkpoint key.
// A crash before every master is flushed leaves some without the
// generation: the next round loads everything again.
func flushClusterDest(ctx context.Context, dest Access, gen string) error {
	t, err := waitDest(ctx, dest)
	if err != nil {
		return err
	}
	return flushCluster(ctx, t, gen)
}

// flushCluster empties every master and records the generation about to
// be loaded in its shard checkpoint key.
func flushCluster(ctx context.Context, t *destTopology, gen string) error {
	for _, sh := range t.shards {
		c := sh.acc.client(0)
		pipe := c.TxPipeline()
		pipe.FlushAll(ctx)
		pipe.Do(ctx, "FUNCTION", "FLUSH") // FLUSHALL keeps them
		pipe.HSet(ctx, shardCheckpointKey(sh.first()), generationField, gen)
		cmds, err := pipe.Exec(ctx)
		c.Close()
		if err != nil {
			return fmt.Errorf("shard %s: %w", sh.addr, queuedError(cmds, err))
		}
	}
	return nil
}

// queuedError is the error of a transaction that failed: the error that
// the server gave a command at queue time (an OOM, say) rather than the
// EXECABORT that hides it. (The command is not named: go-redis may file
// the error under another command of the transaction.)
func queuedError(cmds []redis.Cmder, err error) error {
	if !strings.HasPrefix(err.Error(), "EXECABORT") {
		return err
	}
	for _, cmd := range cmds {
		if e := cmd.Err(); e != nil && !strings.HasPrefix(e.Error(), "EXECABORT") {
			return fmt.Errorf("the transaction was refused: %w", e)
		}
	}
	return err
}

// isClusterRedirect says whether an error reply of a cluster node means
// that the slot map changed or is changing (a failover, a node that is no
// longer master): the session ends, and the next one reads the slot map
// and the checkpoints again.
func isClusterRedirect(msg []byte) bool {
	for _, p := range []string{"MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN", "READONLY", "MASTERDOWN", "LOADING"} {
		if len(msg) >= len(p) && strings.EqualFold(string(msg[:len(p)]), p) {
			return true
		}
	}
	return false
}

var errDestMoved = errors.New("the sharded destination's slot map changed")

// sortedSlots returns the keys of m in increasing order.
func sortedSlots(m map[int][]byte) []int {
	out := make([]int, 0, len(m))
	for s := range m {
		out = append(out, s)
	}
	sort.Ints(out)
	return out
}

// clearClusterCheckpoints deletes the checkpoint keys of every master of
// a sharded database that is no longer a destination, and the nodes of
// its clustered sources (checkpointKey): database 0 holds the
// applications' keys only again.
func clearClusterCheckpoints(ctx context.Context, dest Access) error {
	t, err := discoverDest(ctx, dest)
	if err != nil {
		return err
	}
	for i, sh := range t.shards {
		c := sh.acc.client(0)
		err := func() error {
			defer c.Close()
			var keys []string
			iter := c.Scan(ctx, 0, clusterKeyPrefix+"*", 1000).Iterator()
			for iter.Next(ctx) {
				keys = append(keys, iter.Val())
			}
			if err := iter.Err(); err != nil {
				return err
			}
			if int(t.owner[cluster.KeySlot([]byte(checkpointKey))]) == i {
				keys = append(keys, checkpointKey)
			}
			pipe := c.Pipeline()
			for _, k := range keys {
				pipe.Del(ctx, k) // a key a command: each in its own slot
			}
			_, err := pipe.Exec(ctx)
			return err
		}()
		if err != nil {
			return fmt.Errorf("shard %s: %w", sh.addr, err)
		}
	}
	return nil
}
