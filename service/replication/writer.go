package replication

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/replicad/terraform-provider-redis/internal/layout"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// Batch bounds: a batch is applied (and, on the stream, committed) at once.
// Bigger batches amortise round trips; smaller ones bound memory and lag.
const (
	maxBatchItems = 2048
	maxBatchBytes = 1 << 20
	// maxInFlight batches are sent before the replies of the first are read.
	maxInFlight = 3
)

// errFatal marks errors that stop the sync instead of being retried: the
// destination refused what the source sent (out of memory, an unknown
// command), or the credentials are wrong.
var errFatal = errors.New("fatal")

type fatalError struct{ err error }

func (e *fatalError) Error() string   { return e.err.Error() }
func (e *fatalError) Unwrap() []error { return []error{errFatal, e.err} }

func fatal(format string, a ...any) error { return &fatalError{fmt.Errorf(format, a...)} }

// destWriter applies items to the destination over one connection of its
// own, authenticated as the service's internal user.
type destWriter struct {
	// mu guards conn against Close from another goroutine while redial
	// replaces it; the writer's own goroutine reads conn without it.
	mu     sync.Mutex
	conn   net.Conn
	bw     *bufio.Writer
	rd     *resp.Reader
	source string // checkpoint field: the source's address
	// onLinkWait is told when the writer waits for the master link that
	// another source's writer holds (heldBy names it); onLinkGot once it
	// has it, with the commands of the EXEC its holder sent last.
	onLinkWait func(heldBy func() (string, time.Time))
	onLinkGot  func(executesAhead int64)

	buf    []byte // the batch being built
	queued int    // replies expected for buf
	db     int    // the source's selected database, as of the last item
	replID string
	last   int64       // the offset after the last item encoded
	spare  [][]byte    // buffers of answered batches, for the next ones
	sets   msetBuilder // the plain SETs of the batch being encoded
	// hits are the positions in buf of commands that must answer 1
	// (item.mustChange); the batcher takes them after encoding.
	hits []int
	// lost counts the commands that answered 0 instead (the key is missing
	// at the destination), lostSample names the first ones.
	lost       int
	lostSample []string
	// armed is the connection's deadline as set last (see deadline).
	armed time.Time
	// cl, for a sharded destination, writes in its stead (clusterwriter.go).
	cl *clusterWriter
	// link: the stream's transactions go over the destination's master
	// link; ls is its session while this writer holds it (from a
	// transaction's MULTI to its EXEC).
	link *masterLink
	ls   *linkSession
	// bound is the link session on which the writer's position holds: the
	// one its syncer's session read the checkpoint through, or the one a
	// load over the link continued on (nil: the first one it takes). A
	// batch never goes over another session: the destination may have
	// connected again after a restart that kept less than it had applied
	// (SIGKILL with appendfsync everysec, an AOF rewrite cut short), and
	// only its checkpoint says where to continue (errLinkChanged).
	bound *linkSession
	// restarted, for a sharded destination, is closed once one of its
	// nodes restarted after this writer's session read its checkpoints
	// (nil: never). A node may come back with less than it had applied;
	// an idle writer would not notice until its next batch.
	restarted <-chan struct{}
}

// errDestRestarted ends a syncer's session whose sharded destination had a
// node restart: the syncer resumes from the checkpoints the nodes hold now.
var errDestRestarted = errors.New("a node of the destination restarted; resuming from the checkpoints it holds")

// errLinkChanged ends a syncer's session whose writer finds the
// destination's master link on a new session: the syncer resumes from the
// checkpoint the destination holds now.
var errLinkChanged = errors.New("the destination connected to its master link again; resuming from the checkpoint it holds")

func dialDestination(ctx context.Context, dest Access, source string) (*destWriter, error) {
	if dest.clustered() {
		return dialCluster(ctx, dest, source)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, dest.Network, dest.Addr)
	if err != nil {
		return nil, fmt.Errorf("connect to destination %s: %w", dest.Addr, err)
	}
	w := &destWriter{conn: conn, bw: bufio.NewWriterSize(conn, 64<<10), rd: newDestReader(conn), source: source}
	// A destination that accepts but does not answer (stopped, swapping)
	// must not hold the syncer's stop for the exchange's two minutes.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	err = w.do(ctx, "AUTH", dest.Username, dest.Password)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("authenticate to destination %s: %w", dest.Addr, err)
	}
	return w, nil
}

func newDestReader(conn net.Conn) *resp.Reader {
	return resp.NewReader(bufio.NewReaderSize(conn, 64<<10))
}

func (w *destWriter) Close() error {
	if w.cl != nil {
		return w.cl.close()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.conn.Close()
}

// do runs one command and checks its reply.
func (w *destWriter) do(ctx context.Context, args ...string) error {
	w.buf = resp.AppendCommandStrings(w.buf[:0], args...)
	w.queued = 1
	_, err := w.flush(ctx, false)
	return err
}

func (w *destWriter) add(args ...string) {
	w.buf = resp.AppendCommandStrings(w.buf, args...)
	w.queued++
}

// flush sends the batch and reads its replies.
func (w *destWriter) flush(ctx context.Context, tx bool) (int, error) {
	n, err := w.send(ctx)
	if err != nil {
		return 0, err
	}
	return w.receive(ctx, sentBatch{replies: n, tx: tx})
}

// deadline bounds one exchange with the destination: two minutes, less at
// most a second, since the deadline is moved at most once a second (each
// move resets two runtime timers, and a stream makes thousands of
// exchanges a second).
func (w *destWriter) deadline(ctx context.Context) {
	deadline := time.Now().Add(2 * time.Minute)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	} else if !w.armed.Before(deadline.Add(-time.Second)) {
		return
	}
	w.conn.SetDeadline(deadline)
	w.armed = deadline
}

// send writes the commands built in buf and returns how many replies they
// will get.
func (w *destWriter) send(ctx context.Context) (int, error) {
	n := w.queued
	defer func() { w.buf, w.queued = w.buf[:0], 0 }()
	if err := w.write(ctx); err != nil {
		return 0, err
	}
	return n, nil
}

// takeBatch takes the batch built in buf and how many replies it will get,
// and starts the next one in a spare buffer.
func (w *destWriter) takeBatch() (int, []byte) {
	n, sent := w.queued, w.buf
	if k := len(w.spare); k > 0 {
		w.buf, w.spare = w.spare[k-1][:0], w.spare[:k-1]
	} else {
		w.buf = nil
	}
	w.queued = 0
	return n, sent
}

// sendKeep is send for a batch: it also returns the bytes sent, which the
// batch keeps until its replies are read, to name a command the
// destination refuses. w.buf becomes a spare buffer (give the returned one
// back with recycle).
func (w *destWriter) sendKeep(ctx context.Context) (int, []byte, error) {
	n, sent := w.takeBatch()
	if err := w.writeBytes(ctx, sent); err != nil {
		return 0, nil, err
	}
	return n, sent, nil
}

// sendLink is sendKeep for a transaction's piece over the master link:
// commit says that it ends with the EXEC. The writer holds the link from
// the piece that opens the transaction to the one that commits it.
func (w *destWriter) sendLink(ctx context.Context, commit bool, executes int) (*linkSession, int64, int, []byte, error) {
	n, sent := w.takeBatch()
	if w.ls == nil {
		s, err := w.link.session(ctx)
		if err != nil {
			return nil, 0, 0, nil, err
		}
		if w.bound == nil {
			w.bound = s
		} else if s != w.bound {
			return nil, 0, 0, nil, errLinkChanged
		}
		if !s.tryLock(w.source) {
			// Another source's transaction holds the link, from its
			// MULTI to its EXEC, however long it takes to arrive.
			if w.onLinkWait != nil {
				w.onLinkWait(s.heldBy)
			}
			err := s.lock(ctx, w.source)
			if w.onLinkGot != nil && err == nil {
				// The holder's EXEC may still be running.
				w.onLinkGot(s.lastExecutes.Load())
			}
			if err != nil {
				return nil, 0, 0, nil, fmt.Errorf("wait for the destination's master link: %w", err)
			}
		}
		w.ls = s
	}
	s := w.ls
	end, err := s.write(ctx, sent, commit, w.source)
	if commit {
		s.lastExecutes.Store(int64(executes))
	}
	if err != nil || commit {
		w.ls = nil
		s.unlock()
	}
	if err != nil {
		return nil, 0, 0, nil, err
	}
	return s, end, n, sent, nil
}

// endLink lets the link go when the writer stops inside a transaction.
func (w *destWriter) endLink() {
	if s := w.ls; s != nil {
		w.ls = nil
		s.discard()
		s.unlock()
	}
}

// recycle takes back a buffer returned by sendKeep.
func (w *destWriter) recycle(b []byte) {
	if b != nil && cap(b) <= 4*maxBatchBytes && len(w.spare) <= maxInFlight {
		w.spare = append(w.spare, b[:0])
	}
}

func (w *destWriter) write(ctx context.Context) error { return w.writeBytes(ctx, w.buf) }

func (w *destWriter) writeBytes(ctx context.Context, b []byte) error {
	w.deadline(ctx)
	if _, err := w.bw.Write(b); err != nil {
		return fmt.Errorf("write to destination: %w", err)
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("write to destination: %w", err)
	}
	return nil
}

// receive reads the replies of what send sent. Any error stops the sync,
// naming the command that failed when b kept what it sent: a command
// refused at queue time (which aborts EXEC) or outside a transaction, and,
// in a transaction (b.tx), a command failing at run time inside EXEC's
// array of results. The source ran every one of them successfully, so the
// destination has diverged (a type clash between sources, a payload its
// version cannot read): it must be said, never only logged.
func (w *destWriter) receive(ctx context.Context, b sentBatch) (int, error) {
	if w.cl != nil {
		return w.cl.receive(ctx, b)
	}
	if b.link != nil {
		if !b.commit {
			return 0, nil // a piece: applied with the transaction's EXEC
		}
		if err := b.link.waitAck(ctx, b.linkEnd); err != nil {
			return 0, fmt.Errorf("wait for the destination to apply a batch: %w", err)
		}
		return 0, nil
	}
	w.deadline(ctx)
	var firstErr, nestedErr error
	failures := 0
	hits := b.hits
	nested := &resp.Nested{Error: func(at int, msg []byte) {
		failures++
		if nestedErr == nil {
			nestedErr = fmt.Errorf("the destination failed a replicated command: %s: %s", b.queuedCommand(at), msg)
		}
	}}
	if len(hits) > 0 {
		nested.Int = func(at int, v int64) {
			for len(hits) > 0 && hits[0] < at {
				hits = hits[1:]
			}
			if len(hits) > 0 && hits[0] == at {
				hits = hits[1:]
				if v == 0 {
					w.lost++
					if len(w.lostSample) < 5 {
						w.lostSample = append(w.lostSample, b.queuedCommand(at))
					}
				}
			}
		}
	}
	for i := 0; i < b.replies; i++ {
		msg, err := w.rd.SkipValueIndexed(nested)
		if err != nil {
			return 0, fmt.Errorf("read reply from destination: %w", err)
		}
		if msg != nil {
			if refusal, ok := oomReply(msg); ok {
				return 0, &destOOMError{msg: string(refusal)} // told apart by the syncer (classifyOOM)
			}
			if bytes.HasPrefix(msg, []byte("LOADING")) || bytes.HasPrefix(msg, []byte("BUSY ")) {
				// The destination restarted and is reading its AOF: retry.
				return 0, fmt.Errorf("destination not ready: %s", msg)
			}
			if firstErr == nil {
				firstErr = fmt.Errorf("the destination refused a replicated command: %s: %s", b.command(i), msg)
			}
			failures++
		}
		if firstErr == nil && nestedErr != nil {
			firstErr = nestedErr
		}
	}
	if firstErr != nil {
		return failures, &fatalError{firstErr}
	}
	return failures, nil
}

// readCheckpoint reads this source's checkpoint from the destination.
func (w *destWriter) readCheckpoint(ctx context.Context) (checkpoint, bool, error) {
	if w.cl != nil {
		return w.cl.readCheckpoint(ctx)
	}
	deadline := time.Now().Add(30 * time.Second)
	w.conn.SetDeadline(deadline)
	w.armed = deadline
	buf := resp.AppendCommandStrings(nil, "SELECT", strconv.Itoa(layout.CheckpointDB))
	buf = resp.AppendCommandStrings(buf, "HGET", checkpointKey, w.source)
	if _, err := w.conn.Write(buf); err != nil {
		return checkpoint{}, false, fmt.Errorf("read checkpoint: %w", err)
	}
	var v resp.Value
	for range 2 {
		var err error
		if v, err = w.rd.ReadValue(); err != nil {
			return checkpoint{}, false, fmt.Errorf("read checkpoint: %w", err)
		}
		if v.IsError() {
			return checkpoint{}, false, fmt.Errorf("read checkpoint: %s", v.Str)
		}
	}
	if v.Null {
		return checkpoint{}, false, nil
	}
	cp, err := parseCheckpoint(string(v.Str))
	if err != nil {
		return checkpoint{}, false, nil
	}
	return cp, true, nil
}

// sentBatch is a batch sent to the destination whose replies are not read
// yet.
type sentBatch struct {
	replies int
	tx      bool // ends with EXEC
	commit  bool // commits cp
	// loadDone: the commit of the full load's first checkpoint.
	loadDone bool
	cp       checkpoint // the checkpoint it commits
	// sent is what was sent, kept to name a command the destination
	// refuses; opens says it starts with the MULTI, before counts the
	// commands queued by earlier pieces of the same transaction.
	sent   []byte
	opens  bool
	before int
	// executes: the commands its EXEC runs, earlier pieces' included.
	executes int
	// hits: the indexes in EXEC's results of the commands that must
	// answer 1 (destWriter.hits).
	hits []int
	// parts: what a batch for a sharded destination sent each master.
	parts []clusterPart
	// link: the master link session it went over, and the offset there
	// whose acknowledgement says it is applied.
	link    *linkSession
	linkEnd int64
	items   int
	bytes   int       // of the source's commands
	first   time.Time // when its first and last items were received
	last    time.Time
}

// encodeLoad builds a batch of the initial load. Its commands are not
// wrapped in a transaction (a dataset can be far bigger than one); a crash
// during the load leaves no checkpoint, so the load starts over after a
// flush. The item that ends the load adds the transaction that commits the
// first checkpoint.
func (w *destWriter) encodeLoad(batch []item) (sentBatch, error) {
	for _, it := range batch {
		switch it.kind {
		case kindCommand:
			w.buf = append(w.buf, it.raw...)
			w.queued++
		case kindLoadDone:
			w.db, w.replID, w.last = 0, it.replID, it.offset
			cp := checkpoint{ReplID: it.replID, Offset: it.offset, DB: 0}
			w.add("MULTI")
			w.add("SELECT", strconv.Itoa(layout.CheckpointDB))
			w.add("HSET", checkpointKey, w.source, cp.String())
			w.add("EXEC")
			return sentBatch{tx: true, commit: true, cp: cp}, nil
		}
	}
	return sentBatch{}, nil
}

// encodeStream builds a whole batch of the command stream: MULTI, its
// commands and its checkpoint, EXEC.
func (w *destWriter) encodeStream(batch []item) (sentBatch, error) {
	w.openTx()
	if err := w.encodeItems(batch); err != nil {
		return sentBatch{}, err
	}
	return w.commitTx(), nil
}

// openTx starts the destination's transaction of a batch.
func (w *destWriter) openTx() {
	w.add("MULTI")
	w.add("SELECT", strconv.Itoa(w.appDB()))
}

// appDB is the database to select for the source's selected one: the
// checkpoint database is never selected for a source's commands (and none
// may come while the source has it selected).
func (w *destWriter) appDB() int {
	if w.db == layout.CheckpointDB {
		return 0
	}
	return w.db
}

// encodeItems appends items of the stream to the open transaction. Its
// plain SETs become MSETs (see mset.go); the gathered SETs are written
// before it returns, since the items' bytes go back to the queue then.
func (w *destWriter) encodeItems(batch []item) error {
	flushSets := func() {
		var wrote bool
		if w.buf, wrote = w.sets.flush(w.buf); wrote {
			w.queued++
		}
	}
	for _, it := range batch {
		w.last = it.offset
		switch it.kind {
		case kindCommand:
			if w.db == layout.CheckpointDB {
				return checkDB(w.db) // not a checkpoint of a chained source
			}
			if it.setArgs > 0 {
				w.sets.add(it)
				continue
			}
			if w.sets.holds(it) {
				flushSets()
			}
			if it.mustChange {
				w.hits = append(w.hits, w.queued)
			}
			if w.link == nil {
				w.buf = append(w.buf, asPrimary(it.raw)...)
			} else {
				w.buf = append(w.buf, it.raw...)
			}
			w.queued++
		case kindBadDB:
			return fatal("the source ran %s with logical database %d; destinations offer databases 0 to %d (%d holds replication checkpoints): the sync stops before applying it", it.raw, it.db, layout.CheckpointDB-1, layout.CheckpointDB)
		case kindSelect:
			flushSets()
			if it.db == layout.CheckpointDB {
				// Only the checkpoints of a chained source are written
				// there, and the reader drops them: select nothing.
				w.db = it.db
				continue
			}
			if err := checkDB(it.db); err != nil {
				return err
			}
			w.db = it.db
			w.add("SELECT", strconv.Itoa(it.db))
		case kindFlushAll:
			flushSets()
			// The reserved database holds the checkpoints of every source:
			// flush only the ones applications use.
			for db := range layout.CheckpointDB {
				w.add("SELECT", strconv.Itoa(db))
				if len(it.raw) > 0 {
					w.add("FLUSHDB", string(it.raw))
				} else {
					w.add("FLUSHDB")
				}
			}
			w.add("SELECT", strconv.Itoa(w.appDB()))
		}
	}
	flushSets()
	return nil
}

// commitTx ends the open transaction with the checkpoint of everything
// encoded so far.
func (w *destWriter) commitTx() sentBatch {
	cp := checkpoint{ReplID: w.replID, Offset: w.last, DB: w.db}
	w.add("SELECT", strconv.Itoa(layout.CheckpointDB))
	w.add("HSET", checkpointKey, w.source, cp.String())
	w.add("EXEC")
	return sentBatch{tx: true, commit: true, cp: cp}
}

// checkDB refuses the logical databases the destination does not offer to
// sources: the checkpoint database and beyond.
func checkDB(db int) error {
	if db < 0 || db >= layout.CheckpointDB {
		return fatal("the source uses logical database %d; destinations offer databases 0 to %d (%d holds replication checkpoints)", db, layout.CheckpointDB-1, layout.CheckpointDB)
	}
	return nil
}

// command describes the i-th command of what b sent.
func (b sentBatch) command(i int) string {
	if b.sent == nil {
		return fmt.Sprintf("command %d of a batch", i+1)
	}
	rd := resp.NewReader(bufio.NewReader(bytes.NewReader(b.sent)))
	for n := 0; ; n++ {
		args, _, err := rd.ReadCommand()
		if err != nil {
			return fmt.Sprintf("command %d of a batch", i+1)
		}
		if n == i {
			return describe(args)
		}
	}
}

// queuedCommand describes the command at index at of the transaction's
// EXEC results.
func (b sentBatch) queuedCommand(at int) string {
	j := at - b.before
	if j < 0 {
		return fmt.Sprintf("command %d of a source transaction streamed to the destination", at+1)
	}
	if b.opens {
		j++ // the MULTI
	}
	return b.command(j)
}

// execCommand describes the command at index at of the results of the
// EXEC that is reply i of what was sent: the at-th command queued after
// the MULTI that opened it.
func (b sentBatch) execCommand(i, at int) string {
	multi := -1
	if b.sent != nil {
		rd := resp.NewReader(bufio.NewReader(bytes.NewReader(b.sent)))
		for n := 0; n < i; n++ {
			args, _, err := rd.ReadCommand()
			if err != nil {
				break
			}
			if len(args) == 1 && strings.EqualFold(string(args[0]), "MULTI") {
				multi = n
			}
		}
	}
	if multi < 0 {
		return fmt.Sprintf("command %d of a transaction", at+1)
	}
	return b.command(multi + 1 + at)
}

// describe names a command by its name and first argument (the key, for
// most), without its values, which may be big or binary.
func describe(args [][]byte) string {
	if len(args) == 0 {
		return "an empty command"
	}
	out := strings.ToUpper(string(args[0]))
	if len(args) > 2 && out == "XGROUP" {
		// XGROUP <subcommand> <key> ...: the key says which stream.
		out += " " + strings.ToUpper(string(args[1]))
		args = args[1:]
	}
	if len(args) > 1 {
		k := args[1]
		if len(k) > 64 {
			k = k[:64]
		}
		out += " " + strconv.Quote(string(k))
	}
	if len(args) > 2 {
		out += " ..."
	}
	return out
}

// asPrimary is a command of the stream in a form that a primary accepts
// from a client. Over the master link the destination takes the stream as
// a replica, which accepts what its master propagates; written as a client
// (no master link), an exact stream trim with LIMIT, as a source
// propagates an approximate one, is a syntax error there and stopped the
// sync (see withoutExactTrimLimit).
func asPrimary(raw []byte) []byte {
	name := commandName(raw)
	if !equalFold(name, "XADD") && !equalFold(name, "XTRIM") {
		return raw
	}
	args, _, err := resp.NewReader(bufio.NewReader(bytes.NewReader(raw))).ReadCommand()
	if err != nil {
		return raw
	}
	if trimmed, ok := withoutExactTrimLimit(args); ok {
		return resp.AppendCommand(nil, trimmed...)
	}
	return raw
}

// commandName is the first argument of an encoded command (nil: not one).
func commandName(raw []byte) []byte {
	// *<count>\r\n$<len>\r\n<name>\r\n
	i := bytes.Index(raw, []byte("\r\n$"))
	if len(raw) == 0 || raw[0] != '*' || i < 0 {
		return nil
	}
	rest := raw[i+3:]
	j := bytes.Index(rest, []byte("\r\n"))
	if j < 0 {
		return nil
	}
	n, err := strconv.Atoi(string(rest[:j]))
	if err != nil || n < 0 || j+2+n > len(rest) {
		return nil
	}
	return rest[j+2 : j+2+n]
}
