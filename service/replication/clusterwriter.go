package replication

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/cluster"
	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// clusterWriter is the writer of a source into a sharded destination
// (clusterdest.go has the checkpoints' layout). It routes each command by
// the hash slot of its keys to the master serving the slot, over one
// connection per master. A batch of the stream becomes, per slot it
// touches, one MULTI/EXEC on that slot's master that also writes the
// slot's checkpoint, then, on every master, the shard's checkpoint. A
// load batch is its commands routed by slot, without transactions; its end
// writes every shard's checkpoint.
//
// A source transaction, or a command, whose keys lie in several slots is
// applied slot by slot (a cluster runs no transaction across slots):
// atomic per slot, not across. A command that cannot be split that way
// (RENAME of keys of two slots, say) stops the sync, naming it.
type clusterWriter struct {
	parent *destWriter // the replID, offset and db of the stream
	source string
	topo   *destTopology
	shards []*destWriter // per shard of topo
	meta   *redis.Client // COMMAND GETKEYS, for the commands the table cannot place
	cmds   map[string]*redis.CommandInfo
	gen    string
	// applied: per slot, how far this source's commands are applied (from
	// the checkpoints read as the session began); nil after a full load.
	applied []int64
	// load: the batch being encoded is the full load's.
	load bool

	// The batch being encoded: per slot, its commands; and their count.
	groups map[int][]byte
	counts map[int]int
	// checks: per slot, the commands of its group that must answer 1
	// (item.mustChange); execChecks: per shard, the EXECs sent with such
	// commands in this batch (see receive).
	checks     map[int][]mustAnswer
	execChecks [][]execCheck
	// splits counts the source transactions and commands applied slot by
	// slot; splitSample names the first.
	splits      int
	splitSample string
	txSlots     map[int]bool // the slots of the source transaction being encoded
	inTx        bool
	mustChange  bool // the command being routed must answer 1
	args        [][]byte
}

// dialCluster connects to every master of a sharded destination.
func dialCluster(ctx context.Context, dest Access, source string) (*destWriter, error) {
	t, err := discoverDest(ctx, dest)
	if err != nil {
		return nil, err
	}
	cw := &clusterWriter{source: source, topo: t, groups: map[int][]byte{}, counts: map[int]int{}}
	for _, sh := range t.shards {
		w, err := dialDestination(ctx, sh.acc, source)
		if err != nil {
			cw.close()
			return nil, fmt.Errorf("destination shard %s: %w", sh.addr, err)
		}
		cw.shards = append(cw.shards, w)
	}
	cw.meta = t.shards[0].acc.client(0)
	if cw.cmds, err = cw.meta.Command(ctx).Result(); err != nil {
		cw.close()
		return nil, fmt.Errorf("read the destination's command table: %w", err)
	}
	// The generation this load or stream is for: a FLUSHALL of the source
	// keeps it (flushAll).
	g, err := cw.meta.HGet(ctx, shardCheckpointKey(t.shards[0].first()), generationField).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		cw.close()
		return nil, fmt.Errorf("read the destination's generation: %w", err)
	}
	cw.gen = g
	parent := &destWriter{cl: cw, source: source}
	cw.parent = parent
	return parent, nil
}

func (cw *clusterWriter) close() error {
	var first error
	for _, w := range cw.shards {
		if err := w.Close(); err != nil && first == nil {
			first = err
		}
	}
	if cw.meta != nil {
		cw.meta.Close()
	}
	return first
}

// readCheckpoint reads this source's checkpoints on every master: it
// returns where to resume (the smallest shard checkpoint) and keeps, per
// slot, what is applied already.
func (cw *clusterWriter) readCheckpoint(ctx context.Context) (checkpoint, bool, error) {
	st, err := readDestState(ctx, cw.topo)
	if err != nil {
		return checkpoint{}, false, err
	}
	cp, ok := st.resume(cw.source)
	if !ok {
		return checkpoint{}, false, nil
	}
	cw.applied = st.applied(cw.topo, cw.source)
	return cp, true, nil
}

// rdbVersion is the RDB version the destination's first master writes.
func (cw *clusterWriter) rdbVersion(ctx context.Context) (int, error) {
	sh := cw.topo.shards[0]
	dump, err := cw.meta.Dump(ctx, shardCheckpointKey(sh.first())).Result()
	if err != nil {
		if errors.Is(err, redis.Nil) {
			return 0, nil
		}
		return 0, fmt.Errorf("destination refused DUMP: %w", err)
	}
	if len(dump) < 11 {
		return 0, nil
	}
	return int(binary.LittleEndian.Uint16([]byte(dump[len(dump)-10:]))), nil
}

// clusterPart is what a batch sent to one master.
type clusterPart struct {
	shard   int
	replies int
	sent    []byte
	checks  []execCheck
}

// mustAnswer is a command that must answer 1 (PEXPIREAT, PERSIST: the
// source sends them only when they changed the key): its index in its
// transaction's results, and what it is, to name it.
type mustAnswer struct {
	at   int
	what string
}

// execCheck is an EXEC, by the index of its reply among what the batch
// sent its master, and the results in it that must be 1.
type execCheck struct {
	reply  int
	checks []mustAnswer
}

// encodeBatch routes a batch's items into the masters' buffers. load: the
// items are the load's (no transactions); the load's end writes the first
// checkpoint.
func (cw *clusterWriter) encodeBatch(ctx context.Context, batch []item, load bool) (sentBatch, error) {
	w := cw.parent
	cw.load = load
	var sb sentBatch
	for _, it := range batch {
		switch it.kind {
		case kindCommand:
			if load {
				if err := cw.routeLoad(ctx, it.raw); err != nil {
					return sentBatch{}, err
				}
				continue
			}
			if w.db != 0 {
				if apply, err := cw.inOtherDB(it.raw, w.db); err != nil {
					return sentBatch{}, err
				} else if !apply {
					w.last = it.offset
					continue
				}
			}
			cw.mustChange = it.mustChange
			err := cw.route(ctx, it.raw, it.offset)
			cw.mustChange = false
			if err != nil {
				return sentBatch{}, err
			}
			w.last = it.offset
		case kindOffset:
			w.last = it.offset
		case kindTxBegin:
			w.last = it.offset
			cw.inTx, cw.txSlots = true, map[int]bool{}
		case kindTxEnd:
			w.last = it.offset
			if len(cw.txSlots) > 1 {
				cw.split("a source transaction (MULTI/EXEC) over keys of " + strconv.Itoa(len(cw.txSlots)) + " hash slots")
			}
			cw.inTx, cw.txSlots = false, nil
		case kindSelect:
			// Selecting another database is not using it (see inOtherDB).
			w.last = it.offset
			w.db = it.db
		case kindBadDB:
			return sentBatch{}, fatal("the source ran %s with logical database %d; a sharded destination (a Redis Cluster) has database 0 only: the sync stops before applying it", it.raw, it.db)
		case kindFlushAll:
			cw.flushAll(it.raw, it.offset)
			w.last = it.offset
		case kindLoadDone:
			w.db, w.replID, w.last = 0, it.replID, it.offset
			cp := checkpoint{ReplID: it.replID, Offset: it.offset}
			cw.emitGroups(nil)
			cw.markShards(cp)
			sb = sentBatch{commit: true, loadDone: true, cp: cp}
		}
	}
	if !load {
		cp := checkpoint{ReplID: w.replID, Offset: w.last}
		cw.emitGroups(&cp)
		cw.markShards(cp)
		sb = sentBatch{commit: true, cp: cp}
	} else if !sb.loadDone {
		cw.emitGroups(nil)
	}
	return sb, nil
}

// inOtherDB decides about a command the source ran in database db, not
// 0. A FLUSHDB there empties what the destination never had (a database
// with keys stops the load or the stream first): nothing to do. Which
// database is selected does not matter to PUBLISH and FUNCTION. Anything
// else would write where a cluster has no database: the sync stops. (A
// source that is a destination too flushes every database of its own at
// a FLUSHALL, and selects its checkpoint database for its checkpoints,
// which the reader drops.)
func (cw *clusterWriter) inOtherDB(raw []byte, db int) (apply bool, err error) {
	args, err := splitRaw(raw, cw.args[:0])
	if err != nil {
		return false, fatal("a replicated command could not be read back: %v", err)
	}
	cw.args = args
	switch {
	case equalFold(args[0], "FLUSHDB"):
		return false, nil
	case equalFold(args[0], "PUBLISH") || equalFold(args[0], "FUNCTION"):
		return true, nil
	}
	return false, fatal("the source ran %s in logical database %d; a sharded destination (a Redis Cluster) has database 0 only: the sync stops before applying it", describe(args), db)
}

func clusterDBError(db int) error {
	return fatal("the source uses logical database %d; a sharded destination (a Redis Cluster) has database 0 only: the sync stops before applying it", db)
}

// split records a source transaction or command applied slot by slot.
func (cw *clusterWriter) split(what string) {
	if cw.splits == 0 {
		cw.splitSample = what
	}
	cw.splits++
}

// add appends a command of slot s to the batch's group of s.
func (cw *clusterWriter) add(slot int, raw []byte) {
	if cw.mustChange && !cw.load {
		if cw.checks == nil {
			cw.checks = map[int][]mustAnswer{}
		}
		what := "a command"
		if args, err := splitRaw(raw, nil); err == nil {
			what = describe(args)
		}
		cw.checks[slot] = append(cw.checks[slot], mustAnswer{at: cw.counts[slot], what: what})
	}
	cw.groups[slot] = append(cw.groups[slot], raw...)
	cw.counts[slot]++
	if cw.inTx {
		cw.txSlots[slot] = true
	}
}

// route places a command of the stream: whole in its slot's group, or
// split by slot when its keys lie in several and its meaning allows it.
// A command whose slot is applied already (the checkpoint of its slot is
// past its offset) is skipped.
func (cw *clusterWriter) route(ctx context.Context, raw []byte, offset int64) error {
	args, err := splitRaw(raw, cw.args[:0])
	if err != nil {
		return fatal("a replicated command could not be read back: %v", err)
	}
	cw.args = args
	if db, ok := otherDB(args); ok {
		return fatal("the source ran %s with logical database %d; a sharded destination (a Redis Cluster) has database 0 only: the sync stops before applying it", strings.ToUpper(string(args[0])), db)
	}
	if isKeyless(args) {
		return cw.keyless(args, raw, offset)
	}
	keys, err := cw.keyIndexes(ctx, args)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return cw.keyless(args, raw, offset)
	}
	for _, k := range keys {
		if isCheckpointName(args[k]) {
			return fatal("the source writes key %q, a name a sharded destination keeps for its replication checkpoints: the sync stops before applying it", args[k])
		}
	}
	if trimmed, ok := withoutExactTrimLimit(args); ok {
		raw = resp.AppendCommand(nil, trimmed...)
	}
	slot := cluster.KeySlot(args[keys[0]])
	same := true
	for _, k := range keys[1:] {
		if cluster.KeySlot(args[k]) != slot {
			same = false
			break
		}
	}
	if same {
		cw.addUnlessApplied(slot, raw, offset)
		return nil
	}
	name := strings.ToUpper(string(args[0]))
	step := 0
	switch name {
	case "DEL", "UNLINK", "TOUCH":
		step = 1
	case "MSET", "MSETNX":
		step = 2 // MSETNX reached the stream because it set every key
		name = "MSET"
	default:
		return fatal("the source ran %s on keys of several hash slots, which a sharded destination cannot apply (the command cannot be split by slot without changing its meaning): the sync stops before applying it", describe(args))
	}
	cw.split(describe(args) + " over keys of several hash slots")
	bySlot := map[int][][]byte{}
	var order []int
	for i := 1; i+step-1 < len(args); i += step {
		s := cluster.KeySlot(args[i])
		if _, ok := bySlot[s]; !ok {
			order = append(order, s)
			bySlot[s] = [][]byte{[]byte(name)}
		}
		bySlot[s] = append(bySlot[s], args[i:i+step]...)
	}
	for _, s := range order {
		cw.addUnlessApplied(s, resp.AppendCommand(nil, bySlot[s]...), offset)
	}
	return nil
}

// withoutExactTrimLimit drops the LIMIT of an XADD or XTRIM whose trim is
// exact. A source rewrites an approximate trim ("MAXLEN ~ 1000 LIMIT 100")
// into the exact one it made ("MAXLEN = 1012"), keeping the LIMIT: its
// replicas and its AOF accept that, but a sharded destination is a plain
// primary, which refuses it as a syntax error (LIMIT needs "~"), and the
// sync stopped. Without its LIMIT the exact trim removes the same entries.
func withoutExactTrimLimit(args [][]byte) ([][]byte, bool) {
	xadd := equalFold(args[0], "XADD")
	if !xadd && !equalFold(args[0], "XTRIM") {
		return nil, false
	}
	limit, approx := -1, false
	// Options follow the key; for XADD they end at the entry's ID.
	for i := 2; i < len(args); i++ {
		switch {
		case equalFold(args[i], "NOMKSTREAM") && xadd:
		case equalFold(args[i], "MAXLEN") || equalFold(args[i], "MINID"):
			if i+1 < len(args) && (string(args[i+1]) == "~" || string(args[i+1]) == "=") {
				approx = string(args[i+1]) == "~"
				i++
			}
			i++ // the threshold
		case equalFold(args[i], "LIMIT") && i+1 < len(args):
			limit = i
			i++
		default:
			i = len(args) // XADD's ID, or something this does not know
		}
	}
	if limit < 0 || approx {
		return nil, false
	}
	out := make([][]byte, 0, len(args)-2)
	out = append(out, args[:limit]...)
	return append(out, args[limit+2:]...), true
}

// keyless places a command without keys. A function library goes to
// every master (each runs functions on its own keys), a PUBLISH to one (the
// cluster delivers it to every node's subscribers): each in the
// transaction of a slot of the master, so that it is applied once, with
// that slot's checkpoint. FLUSHDB empties every master. Anything else
// cannot be placed and stops the sync.
func (cw *clusterWriter) keyless(args [][]byte, raw []byte, offset int64) error {
	switch {
	case equalFold(args[0], "FLUSHDB"):
		var mode []byte
		if len(args) > 1 {
			mode = args[1]
		}
		cw.flushAll(mode, offset)
	case equalFold(args[0], "FUNCTION"):
		for _, sh := range cw.topo.shards {
			cw.addUnlessApplied(sh.first(), raw, offset)
		}
	case equalFold(args[0], "PUBLISH"):
		cw.addUnlessApplied(cw.topo.shards[0].first(), raw, offset)
	default:
		return fatal("the source ran %s, which has no key to place it on a shard of the sharded destination: the sync stops before applying it", describe(args))
	}
	return nil
}

// isKeyless names the commands without keys that keyless places.
func isKeyless(args [][]byte) bool {
	return equalFold(args[0], "FLUSHDB") || equalFold(args[0], "FUNCTION") || equalFold(args[0], "PUBLISH")
}

// addUnlessApplied adds a command of the stream at offset to slot's group,
// unless the slot's checkpoint shows it applied.
func (cw *clusterWriter) addUnlessApplied(slot int, raw []byte, offset int64) {
	if cw.applied == nil || offset > cw.applied[slot] {
		cw.add(slot, raw)
	}
}

// flushAll empties every master, keeping this source's shard checkpoint
// (the offset of the flush) and the generation in the same transaction.
// Other sources' checkpoints go with the data: each writes its own again
// with its next batch, and one that stops before that loads again.
func (cw *clusterWriter) flushAll(mode []byte, offset int64) {
	cw.barrier()
	cp := checkpoint{ReplID: cw.parent.replID, Offset: offset}
	for i, w := range cw.shards {
		w.add("MULTI")
		if len(mode) > 0 {
			w.add("FLUSHALL", string(mode))
		} else {
			w.add("FLUSHALL")
		}
		key := shardCheckpointKey(cw.topo.shards[i].first())
		w.add("HSET", key, cw.source, cp.String(), generationField, cw.gen)
		w.add("EXEC")
	}
	// Replayed after a crash, the flush empties every master again, so
	// what follows it is applied again everywhere.
	cw.applied = nil
}

// routeLoad places a command of the full load. A key built in chunks under
// a staging name (rdb.WithStaging) is given a hash tag of its final key's
// slot, so that its RENAME stays within the slot.
func (cw *clusterWriter) routeLoad(ctx context.Context, raw []byte) error {
	args, err := splitRaw(raw, cw.args[:0])
	if err != nil {
		return fatal("a command of the load could not be read back: %v", err)
	}
	cw.args = args
	if equalFold(args[0], "SELECT") && len(args) == 2 {
		if db, _ := strconv.Atoi(string(args[1])); db != 0 {
			return clusterDBError(db)
		}
		return nil
	}
	staged := false
	for i := 1; i < len(args) && i <= 2; i++ {
		if rest, ok := bytes.CutPrefix(args[i], stagingPrefix); ok {
			if final, ok := stagedKey(rest); ok {
				tag := slotTags()[cluster.KeySlot(final)]
				name := append(append([]byte(nil), stagingPrefix...), '{')
				name = append(append(name, tag...), "}:"...)
				args[i] = append(name, rest...)
				staged = true
			}
		}
	}
	if staged {
		raw = resp.AppendCommand(nil, args...)
	}
	return cw.route(ctx, raw, 0)
}

// stagedKey finds the final key in what follows stagingPrefix in a staged
// name: the source's host:port, a colon, the key. The port is the first
// run of digits between two colons (a host has no colon, or is an IPv6
// address in brackets).
func stagedKey(rest []byte) ([]byte, bool) {
	for i := 0; i < len(rest); i++ {
		if rest[i] != ':' {
			continue
		}
		j := i + 1
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j > i+1 && j < len(rest) && rest[j] == ':' {
			return rest[j+1:], true
		}
	}
	return nil, false
}

// stagingPrefix starts the names of keys a load builds in chunks
// (syncer.load): replicad:load:<nonce>:, the nonce drawn at random by each
// process. A source may hold keys of any name: with a fixed prefix, a
// source key named replicad:load:<the source's address>:<key> beside a big
// <key> was deleted (or built upon) by the staging of <key>, and on a
// sharded destination any source key named so was renamed, all while the
// destination said in-sync.
var stagingPrefix = []byte("replicad:load:" + strconv.FormatUint(rand.Uint64(), 36) + ":")

// keyIndexes says which arguments of a command are keys: from the
// destination's command table, or, for the commands whose keys move
// (ZUNIONSTORE, SORT ... STORE, XGROUP CREATE, ...), from the destination
// itself (COMMAND GETKEYS).
func (cw *clusterWriter) keyIndexes(ctx context.Context, args [][]byte) ([]int, error) {
	if equalFold(args[0], "SPUBLISH") && len(args) == 3 {
		return []int{1}, nil // a shard channel lives in the slot of its name
	}
	info := cw.cmds[strings.ToLower(string(args[0]))]
	if len(args) == 1 {
		return nil, nil
	}
	if info != nil && info.FirstKeyPos > 0 && !hasFlag(info.Flags, "movablekeys") {
		last := int(info.LastKeyPos)
		if last < 0 {
			last = len(args) + last
		}
		step := max(int(info.StepCount), 1)
		var out []int
		for i := int(info.FirstKeyPos); i <= last && i < len(args); i += step {
			out = append(out, i)
		}
		return out, nil
	}
	iargs := make([]any, len(args))
	for i, a := range args {
		iargs[i] = string(a)
	}
	keys, err := cw.meta.CommandGetKeys(ctx, iargs...).Result()
	if err != nil {
		var rerr redis.Error
		if errors.As(err, &rerr) {
			if strings.Contains(err.Error(), "no key arguments") {
				return nil, nil
			}
			// The destination's answer will not change: say it.
			return nil, fatal("the sharded destination cannot tell the keys of %s, to route it by slot: %v", describe(args), err)
		}
		return nil, fmt.Errorf("find the keys of %s: %w", describe(args), err)
	}
	// The keys' positions: the first argument equal to each key, in order.
	var out []int
	at := 1
	for _, k := range keys {
		for ; at < len(args); at++ {
			if string(args[at]) == k {
				out = append(out, at)
				at++
				break
			}
		}
	}
	return out, nil
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

// barrier writes the commands gathered so far before a command that
// concerns every slot: on the stream, committed with the slots'
// checkpoints at the offset reached before that command.
func (cw *clusterWriter) barrier() {
	if cw.load {
		cw.emitGroups(nil)
		return
	}
	cw.emitGroups(&checkpoint{ReplID: cw.parent.replID, Offset: cw.parent.last})
}

// emitGroups writes the gathered commands of each slot to its master: in
// a MULTI/EXEC that also writes the slot's checkpoint cp, or, without cp
// (the load), as they are.
func (cw *clusterWriter) emitGroups(cp *checkpoint) {
	for _, s := range sortedSlots(cw.groups) {
		w := cw.shards[cw.topo.owner[s]]
		if cp != nil {
			w.add("MULTI")
		}
		w.buf = append(w.buf, cw.groups[s]...)
		w.queued += cw.counts[s]
		if cp != nil {
			w.add("HSET", slotCheckpointKey(s), cw.source, cp.String())
			w.add("EXEC")
			if c := cw.checks[s]; len(c) > 0 {
				i := cw.topo.owner[s]
				if cw.execChecks == nil {
					cw.execChecks = make([][]execCheck, len(cw.shards))
				}
				cw.execChecks[i] = append(cw.execChecks[i], execCheck{reply: w.queued - 1, checks: c})
			}
		}
	}
	clear(cw.groups)
	clear(cw.counts)
	clear(cw.checks)
}

// markShards writes cp as every shard's checkpoint of this source, after
// what the batch sent it: each master then holds every command up to cp
// of its slots.
func (cw *clusterWriter) markShards(cp checkpoint) {
	for i, w := range cw.shards {
		w.add("HSET", shardCheckpointKey(cw.topo.shards[i].first()), cw.source, cp.String())
	}
}

// send writes every master's part of the batch.
func (cw *clusterWriter) send(ctx context.Context, sb *sentBatch) error {
	for i, w := range cw.shards {
		if w.queued == 0 {
			continue
		}
		n, sent, err := w.sendKeep(ctx)
		if err != nil {
			return fmt.Errorf("destination shard %s: %w", cw.topo.shards[i].addr, err)
		}
		part := clusterPart{shard: i, replies: n, sent: sent}
		if cw.execChecks != nil {
			part.checks, cw.execChecks[i] = cw.execChecks[i], nil
		}
		sb.parts = append(sb.parts, part)
	}
	return nil
}

// receive reads the replies of every master's part. A reply that says the
// slot map changed (a failover) ends the session without stopping the
// sync: the next session reads the slot map and the checkpoints again.
func (cw *clusterWriter) receive(ctx context.Context, sb sentBatch) (int, error) {
	var moved, firstErr error
	var oom *destOOMError
	for _, p := range sb.parts {
		w := cw.shards[p.shard]
		addr := cw.topo.shards[p.shard].addr
		partOOM := false
		w.deadline(ctx)
		part := sentBatch{sent: p.sent}
		reply := 0 // the reply being read
		nested := &resp.Nested{Error: func(at int, msg []byte) {
			if isClusterRedirect(msg) {
				if moved == nil {
					moved = fmt.Errorf("%w: shard %s: %s", errDestMoved, addr, msg)
				}
			} else if firstErr == nil {
				firstErr = fmt.Errorf("the destination failed a replicated command in a transaction on shard %s: %s: %s%s", addr, part.execCommand(reply, at), msg, selfExpiredHint(msg))
			}
		}}
		checks := p.checks
		for i := 0; i < p.replies; i++ {
			nested.Int = nil
			if len(checks) > 0 && checks[0].reply == i {
				nested.Int = cw.checkAnswers(checks[0].checks)
				checks = checks[1:]
			}
			reply = i
			msg, err := w.rd.SkipValueIndexed(nested)
			if err != nil {
				w.recycle(p.sent)
				return 0, fmt.Errorf("read reply from destination shard %s: %w", addr, err)
			}
			refusal, isOOM := oomReply(msg)
			switch {
			case msg == nil:
			case isOOM:
				// Told apart by the syncer (classifyOOM), with the
				// memory of this shard.
				partOOM = true
				if oom == nil {
					acc := cw.topo.shards[p.shard].acc
					oom = &destOOMError{msg: fmt.Sprintf("shard %s: %s", addr, refusal), node: &acc, shards: len(cw.topo.shards)}
				}
			case partOOM && bytes.HasPrefix(msg, []byte("EXECABORT")):
				// The EXEC of a transaction a queued command of which was
				// refused out of memory: that refusal is the error.
			case isClusterRedirect(msg) || bytes.HasPrefix(msg, []byte("EXECABORT")):
				if moved == nil {
					moved = fmt.Errorf("%w: shard %s: %s", errDestMoved, addr, msg)
				}
			case firstErr == nil:
				firstErr = fmt.Errorf("the destination refused a replicated command on shard %s: %s: %s%s", addr, part.command(i), msg, selfExpiredHint(msg))
			}
		}
		w.recycle(p.sent)
	}
	if oom != nil {
		// Before a slot move elsewhere in the batch: retrying the batch
		// elsewhere would meet the same shard out of memory.
		return 0, oom
	}
	if moved != nil {
		// A queued command refused because the slot moved aborts its
		// EXEC: nothing of it applied, the checkpoints say so.
		return 0, moved
	}
	if firstErr != nil {
		var fe *fatalError
		if errors.As(firstErr, &fe) {
			return 0, firstErr
		}
		return 0, &fatalError{firstErr}
	}
	return 0, nil
}

// selfExpiredHint explains an error that says a key is missing: a sharded
// destination is a primary and expires keys by itself, so a key the source
// still held when it ran the command may have expired there while the
// destination lagged (README, "Sharded destinations expire keys by
// themselves"). Without it, the error reads like a bug of the service.
func selfExpiredHint(msg []byte) string {
	m := bytes.ToLower(msg)
	if !bytes.Contains(m, []byte("no such key")) && !bytes.Contains(m, []byte("key to exist")) {
		return ""
	}
	return " (the key may have expired on the destination by itself while it lagged: a sharded destination expires keys itself; a full resync, restarting the sync, loads it again)"
}

// checkAnswers returns the callback that counts, in the results of one
// EXEC, the commands that answered 0 where they must answer 1: the
// destination had already expired their key by itself (see
// destWriter.receive).
func (cw *clusterWriter) checkAnswers(checks []mustAnswer) func(at int, v int64) {
	return func(at int, v int64) {
		for len(checks) > 0 && checks[0].at < at {
			checks = checks[1:]
		}
		if len(checks) > 0 && checks[0].at == at {
			if v == 0 {
				w := cw.parent
				w.lost++
				if len(w.lostSample) < 5 {
					w.lostSample = append(w.lostSample, checks[0].what)
				}
			}
			checks = checks[1:]
		}
	}
}

// splitRaw parses one RESP-encoded command (as resp.AppendCommand writes
// it) into its arguments, which alias raw.
func splitRaw(raw []byte, dst [][]byte) ([][]byte, error) {
	if len(raw) < 4 || raw[0] != '*' {
		return nil, errors.New("not a RESP array")
	}
	i := bytes.IndexByte(raw, '\r')
	if i < 0 || i+1 >= len(raw) || raw[i+1] != '\n' {
		return nil, errors.New("truncated command")
	}
	n, ok := parseLen(raw[1:i])
	if !ok || n < 1 {
		return nil, fmt.Errorf("bad argument count %q", raw[1:i])
	}
	at := i + 2
	for range n {
		if at >= len(raw) || raw[at] != '$' {
			return nil, errors.New("truncated command")
		}
		j := bytes.IndexByte(raw[at:], '\r')
		if j < 0 || at+j+1 >= len(raw) || raw[at+j+1] != '\n' {
			return nil, errors.New("truncated command")
		}
		size, ok := parseLen(raw[at+1 : at+j])
		if !ok {
			return nil, errors.New("bad argument length")
		}
		start := at + j + 2
		if start+size+2 > len(raw) || raw[start+size] != '\r' || raw[start+size+1] != '\n' {
			return nil, errors.New("truncated command")
		}
		dst = append(dst, raw[start:start+size:start+size])
		at = start + size + 2
	}
	return dst, nil
}

// checkPending is destWriter.checkPending on the masters: each stream's
// pending entries asked of the master of its slot.
func (cw *clusterWriter) checkPending(ctx context.Context, h *pendingCounter) (string, error) {
	if h == nil || (len(h.counts) == 0 && !h.unchecked) {
		return "", nil
	}
	clients := make([]*redis.Client, len(cw.topo.shards))
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	var short []string
	var lost int64
	for pk, want := range h.counts {
		i := cw.topo.owner[cluster.KeySlot([]byte(pk.key))]
		if clients[i] == nil {
			clients[i] = cw.topo.shards[i].acc.client(0)
		}
		p, err := clients[i].XPending(ctx, pk.key, pk.group).Result()
		if err != nil {
			return "", fmt.Errorf("check the pending entries of stream %q: %w", pk.key, err)
		}
		if p.Count < want {
			lost += want - p.Count
			if len(short) < 5 {
				short = append(short, fmt.Sprintf("%q group %q: %d of %d", pk.key, pk.group, p.Count, want))
			}
		}
	}
	return pendingNote(lost, short, h.unchecked), nil
}

// sendCluster is send for a sharded destination: the whole batch, routed
// by slot. A source transaction is never sent in pieces (full waits for
// its end): its slots' parts are committed with the batch.
func (b *batcher) sendCluster(ctx context.Context) error {
	cw := b.w.cl
	sb, err := cw.encodeBatch(ctx, b.items, b.loading)
	if err != nil {
		return err
	}
	if b.loading {
		sb.loadDone, b.loading = b.loadDone, !b.loadDone
	}
	sb.items, sb.bytes = len(b.items), b.size
	sb.first, sb.last = b.items[0].at, b.lastAt
	b.c.release() // the items' bytes are in the masters' buffers now
	clear(b.items)
	b.items, b.size, b.loadDone = b.items[:0], 0, false
	b.state = batchEmpty
	if cw.splits > 0 {
		b.s.splitByShard(cw.splits, cw.splitSample)
		cw.splits, cw.splitSample = 0, ""
	}
	b.s.status.setWriter(writerSending, len(b.inFlight), 0)
	if err := cw.send(ctx, &sb); err != nil {
		return err
	}
	b.s.metrics.batches.Inc()
	b.inFlight = append(b.inFlight, sb)
	if sb.loadDone {
		return b.checkLoad(ctx)
	}
	return nil
}

// splitByShard says, the first time in a session, that source
// transactions or multi-key commands were applied slot by slot: atomic per
// slot of the sharded destination, not across.
func (s *syncer) splitByShard(n int, sample string) {
	s.splitCount += n
	if s.splitNoted {
		return
	}
	s.splitNoted = true
	note := "the destination is sharded: " + sample + " was applied slot by slot (atomic within each hash slot, not across slots); so are later ones"
	s.log.Warn("a source transaction or command spans hash slots of the sharded destination; applied slot by slot", "source", s.url.String(), "first", sample)
	s.status.set(func(st *sourceStatus) {
		if st.syncNote == "" {
			st.syncNote = note
		} else if !strings.Contains(st.syncNote, "slot by slot") {
			st.syncNote += "; " + note
		}
	})
}

// parseLen reads a length of RESP: decimal digits only.
func parseLen(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 10 || (len(b) > 1 && b[0] == '0') {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// otherDB finds, in the commands that name a logical database (MOVE key
// db, SWAPDB a b, COPY src dst DB db), one other than 0, which a cluster
// does not have.
func otherDB(args [][]byte) (int, bool) {
	return findDBArg(args, func(arg []byte) (int, bool) {
		db, err := strconv.Atoi(string(arg))
		return db, err != nil || db != 0
	})
}

// isCheckpointName says whether key is one of a sharded destination's
// checkpoint keys (replicad:{tag}:cp, replicad:{tag}:shard).
func isCheckpointName(key []byte) bool {
	return bytes.HasPrefix(key, []byte(clusterKeyPrefix)) &&
		(bytes.HasSuffix(key, []byte(clusterSlotSuffix)) || bytes.HasSuffix(key, []byte(clusterShardSuffix)))
}
