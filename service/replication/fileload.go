package replication

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicad/terraform-provider-redis/internal/cluster"
	"github.com/replicad/terraform-provider-redis/internal/layout"
	"github.com/replicad/terraform-provider-redis/internal/rdb"
	"github.com/replicad/terraform-provider-redis/internal/replproto"
	"github.com/replicad/terraform-provider-redis/service/store"
)

// defaultFileRawLimit: in a load into a file, values up to this size are
// copied whole (the decoder holds one at a time); bigger ones are written
// from their chunks.
const defaultFileRawLimit = 64 << 20

// fileLoad is a full load that goes into an RDB file which the destination
// then loads natively, instead of commands: a redis-server loads an RDB
// several times faster than it runs the RESTOREs of the same keys, the
// service spends less too, and the destination serves its previous data
// until the file is complete, then switches to the new data in one step.
// It is used when one source (one server) is loaded into a destination
// that is one server.
type fileLoad struct {
	loader     RDBLoader
	db         store.Database
	generation string // its mark (generationMark)
	rawLimit   int
	// refuse is told when the dataset cannot be written to a file (a
	// stream too big to copy whole, or from a newer RDB version): the
	// destination's later loads use commands.
	refuse func(error)
	// link, when set, takes the dataset as a full sync instead of a file
	// (linkload.go); refuseLink is told when that cannot be done, and the
	// destination's later loads use a file.
	link       *masterLink
	refuseLink func(error)
	// merge, when set, takes the datasets of every source of the round
	// as one full sync over link (mergeload.go).
	merge *mergedLoad
}

// errFileRefused: the dataset cannot go through a file; the load starts
// again with commands.
var errFileRefused = errors.New("the dataset cannot be loaded from an RDB file; loading it with commands")

// loadFile is load's path for a fileLoad: the RDB is decoded into the file
// as it arrives, the destination loads it, and the writer then commits the
// same checkpoint that the file carries. When the destination's link can
// take it, the RDB goes there instead, and is loaded as it arrives.
func (s *syncer) loadFile(ctx context.Context, syn replproto.Sync, payload *replproto.RDBReader, br *bufio.Reader) error {
	fl := s.file
	if fl.merge != nil {
		return s.loadMerged(ctx, syn, payload, br)
	}
	if fl.link != nil && s.linkLoadFits(ctx) {
		return s.loadOverLink(ctx, syn, payload, br)
	}
	f, err := fl.loader.CreateRDB(fl.db)
	if err != nil {
		return err
	}
	path := f.Name()
	loaded := false
	defer func() {
		f.Close()
		if !loaded {
			os.Remove(path)
		}
	}()
	fw, err := rdb.NewFileWriter(f, s.destRDB)
	if err != nil {
		return err
	}
	if err := s.writeDataset(ctx, fw, syn, payload, br); err != nil {
		if errors.Is(err, rdb.ErrNotWritable) {
			fl.refuse(err)
			return fmt.Errorf("%w: %w: %w", errNeedFullSync, errFileRefused, err)
		}
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write the dataset of %s to a file: %w", s.url, err)
	}
	s.log.Info("dataset written to a file; the destination loads it", "source", s.url.String(), "bytes", payload.Transferred())
	loaded = true // consumed by LoadRDB, whatever happens
	if err := fl.loader.LoadRDB(ctx, fl.db, path); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// redis-server refused the file (or died on it: a payload our
		// decoder accepts and Redis does not, from a hostile source,
		// say). Commands go through checks that stop the sync instead.
		err = fmt.Errorf("load the dataset of %s into destination %d: %w", s.from(), fl.db.UID, err)
		fl.refuse(err)
		return fmt.Errorf("%w: %w: %w", errNeedFullSync, errFileRefused, err)
	}
	return s.checkLoadedMemory(ctx)
}

// loadOverLink sends the dataset to the destination as a full sync over
// its master link, which it loads as it arrives (linkload.go).
func (s *syncer) loadOverLink(ctx context.Context, syn replproto.Sync, payload *replproto.RDBReader, br *bufio.Reader) error {
	fl := s.file
	ld, err := fl.link.fullSync(ctx)
	if err != nil {
		return fmt.Errorf("start the load of %s over the destination's master link: %w", s.url, err)
	}
	defer s.watchLoadWrites(ld)()
	fw, err := rdb.NewStreamWriter(ld, s.destRDB, fl.rawLimit)
	if err == nil {
		err = s.writeDataset(ctx, fw, syn, payload, br)
	}
	if err != nil {
		ld.abort()
		switch {
		case errors.Is(err, rdb.ErrTooBigToStream):
			// A file can take it.
			fl.refuseLink(err)
			return fmt.Errorf("%w: %w", errNeedFullSync, err)
		case errors.Is(err, rdb.ErrNotWritable):
			// Nor can a file (a stream that came in chunks).
			fl.refuse(err)
			return fmt.Errorf("%w: %w: %w", errNeedFullSync, errFileRefused, err)
		}
		return err
	}
	s.log.Info("dataset sent over the destination's master link; it loads it", "source", s.url.String(), "bytes", payload.Transferred())
	next, err := ld.finish(ctx)
	if err != nil {
		if errors.Is(err, errLinkLoadRefused) {
			// A payload our decoder accepts and Redis does not: the
			// file load reports what Redis says, or falls back to
			// commands.
			fl.refuseLink(err)
			return fmt.Errorf("%w: %w", errNeedFullSync, err)
		}
		return err
	}
	s.loadedLink = next // the writer continues there (see destWriter.bound)
	return s.checkLoadedMemory(ctx)
}

// linkLoadFits: the destination can hold its current data and the new
// dataset at once while it loads over the link (at most half its memory
// is used). It has no way to know the new dataset's size before it
// arrives; the RDB's used-mem is still checked as it arrives.
func (s *syncer) linkLoadFits(ctx context.Context) bool {
	c := s.destAccess().client(0)
	defer c.Close()
	return halfMemoryFree(ctx, c)
}

// halfMemoryFree: the server c uses at most half its maxmemory (or has
// none).
func halfMemoryFree(ctx context.Context, c *redis.Client) bool {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return false
	}
	used, limit := infoInt(info, "used_memory"), infoInt(info, "maxmemory")
	return limit == 0 || used <= limit/2
}

// writeDataset decodes the source's RDB into fw, with the checkpoints that
// the destination holds once the dataset is loaded.
func (s *syncer) writeDataset(ctx context.Context, fw *rdb.FileWriter, syn replproto.Sync, payload *replproto.RDBReader, br *bufio.Reader) error {
	if err := s.decodeDataset(ctx, fw, payload, br); err != nil {
		return err
	}
	// The dataset carries what the destination's checkpoint database
	// holds once the load is committed: a crash after the destination
	// loaded it resumes from there.
	cp := checkpoint{ReplID: syn.ReplID, Offset: syn.Offset, DB: 0}
	if err := fw.Close(loadMarks(s.file.generation, map[string]string{s.checkpointKey(): cp.String()})...); err != nil {
		return fmt.Errorf("write the dataset of %s: %w", s.url, err)
	}
	return nil
}

// loadMarks are the keys a loaded dataset ends with: the generation it
// belongs to, and the checkpoint of each source in it.
func loadMarks(generation string, checkpoints map[string]string) []rdb.Extra {
	return []rdb.Extra{
		{DB: layout.CheckpointDB, Key: generationKey, Value: generation},
		{DB: layout.CheckpointDB, Key: checkpointKey, Fields: checkpoints},
	}
}

// watchLoadWrites lets the watchdog see the load's writes to the
// destination (a destination that stopped reading holds one), until the
// returned function is called.
func (s *syncer) watchLoadWrites(ld *linkLoad) func() {
	s.status.set(func(st *sourceStatus) { st.loadWriting = ld.writingSince })
	return func() { s.status.set(func(st *sourceStatus) { st.loadWriting = nil }) }
}

// shardBaseMemory is about what an empty master of a Redis Cluster uses.
const shardBaseMemory = 2 << 20

// decodeDataset decodes the source's RDB into fw, leaving out what never
// leaves the service (its checkpoints, its reserved database), and checks
// the memory the source says it uses against the destination's.
func (s *syncer) decodeDataset(ctx context.Context, fw *rdb.FileWriter, payload *replproto.RDBReader, br *bufio.Reader) error {
	fl := s.file
	fw.Keep = func(k *rdb.KeyMeta) (bool, error) {
		if s.slots != nil && !s.slots.has(cluster.KeySlot(k.Key)) {
			return false, fmt.Errorf("%w: %s in slot %d", errOutsideShard, s.url.Addr(), cluster.KeySlot(k.Key))
		}
		if k.DB == layout.CheckpointDB {
			// The checkpoints of a source that is a destination too
			// never leave the instance that owns them.
			if k := string(k.Key); k == checkpointKey || k == generationKey {
				return false, nil
			}
			if s.serviceSource {
				s.status.set(func(st *sourceStatus) { st.reserved++ })
				return false, nil // see reservedDB
			}
		}
		return true, checkDB(k.DB)
	}
	// A native load ignores maxmemory: a dataset far bigger than the
	// destination may use (twice, since the source's figure counts its
	// buffers and fragmentation too) is refused before it is loaded, from
	// the memory the source says it uses; the memory the loaded data takes
	// is checked after.
	fw.OnAux = func(key, value []byte) error {
		if string(key) != "used-mem" {
			return nil
		}
		used, err := strconv.ParseInt(string(value), 10, 64)
		if err != nil || used < 0 || fl.db.MemorySize <= 0 {
			return nil
		}
		if fl.merge != nil {
			// The shards of a merged load land at once: their sum, less
			// an allowance for each master's own fixed use (about 2 MiB
			// when empty) past the first, which the destination does
			// not take again.
			allowance := int64(len(fl.merge.want)-1) * shardBaseMemory
			if total := fl.merge.usedMem.Add(used); total > 2*fl.db.MemorySize+allowance {
				return fatal("the destination is out of memory (raise its memory_size): the shards of the source use %d MiB together so far (their RDBs' used-mem), the destination's memory_size is %d MiB",
					total>>20, fl.db.MemorySize>>20)
			}
			return nil
		}
		if used > 2*fl.db.MemorySize {
			return fatal("the destination is out of memory (raise its memory_size): the source uses %d MiB (its RDB's used-mem), the destination's memory_size is %d MiB",
				used>>20, fl.db.MemorySize>>20)
		}
		return nil
	}
	// A hash table of more entries than a sixteenth of the destination's
	// memory cannot fit (8 bytes a bucket, and far more an entry): its
	// count, which Redis allocates a table for before it reads an entry,
	// does not go to the destination before the entries are read.
	opts := []rdb.Option{rdb.WithRawValues(fl.rawLimit, s.destRDB), rdb.WithMaxStreamedEntries(fl.db.MemorySize / 16)}
	// Nor does a dataset whose RDB alone passes twice the destination's
	// memory_size (as the source's used-mem above): a source that does
	// not say, or lies, would otherwise fill the disk with the file, or
	// the destination's memory over its link, which a load takes past
	// maxmemory.
	if fl.db.MemorySize > 0 {
		fw.MaxSize = 2*fl.db.MemorySize + maxLoadSlack
	}
	if err := rdb.NewDecoder(br, opts...).Decode(ctx, fw); err != nil {
		if errors.Is(err, rdb.ErrTooBig) {
			return fatal("the destination is out of memory (raise its memory_size): the dataset of %s takes more than %d MiB as an RDB, the destination's memory_size is %d MiB",
				s.from(), fw.MaxSize>>20, fl.db.MemorySize>>20)
		}
		if errors.Is(err, errFatal) || errors.Is(err, rdb.ErrNotWritable) {
			return err
		}
		if errors.Is(err, rdb.ErrUnsupported) {
			return &fatalError{fmt.Errorf("load the dataset of %s: %w", s.from(), err)}
		}
		return fmt.Errorf("load the dataset of %s: %w", s.from(), err)
	}
	if err := payload.Close(); err != nil {
		return fmt.Errorf("load the dataset of %s: %w", s.from(), err)
	}
	return nil
}

// maxStreamCommand is the biggest command of a source's stream that a
// destination of memorySize reads: one its data could not hold twice over.
// The bound protects the service, which holds a command whole before it
// applies it: a compressed stream delivers a command of gigabytes from a
// few kilobytes on the wire. 0 (size unknown) leaves the RESP reader's
// own limits.
func maxStreamCommand(memorySize int64) int64 {
	if memorySize <= 0 {
		return 0
	}
	return 2*memorySize + maxLoadSlack
}

// maxLoadSlack: what an RDB written for a load may take past twice the
// destination's memory_size (the service's own keys, the RDB's framing).
const maxLoadSlack = 64 << 20

// checkLoadedMemory stops the sync when the data a file brought takes more
// than the destination's maxmemory, as a load by commands would have.
func (s *syncer) checkLoadedMemory(ctx context.Context) error {
	c := s.destAccess().client(0)
	defer c.Close()
	// A load over the link swaps the new dataset in and frees the previous
	// one in the background: until that is done, used_memory counts both.
	// Judge the loaded data once the previous one is freed.
	wait := time.NewTimer(time.Minute)
	defer wait.Stop()
	for {
		info, err := c.Info(ctx, "memory").Result()
		if err != nil {
			return fmt.Errorf("after the load: read the destination's memory: %w", err)
		}
		if infoInt(info, "lazyfree_pending_objects") == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wait.C:
			s.log.Warn("the destination still frees its previous dataset a minute after the load; its memory is judged now", "source", s.url.String())
		case <-time.After(50 * time.Millisecond):
			continue
		}
		break
	}
	m, err := readMemory(ctx, c)
	if err != nil {
		return fmt.Errorf("after the load: %w", err)
	}
	// Its clients' buffers are not the loaded data (oom.go).
	if m.limit > 0 && m.data() > m.limit {
		return fatal("the destination is out of memory (raise its memory_size): the loaded data takes %d MiB, its maxmemory is %d MiB", m.data()>>20, m.limit>>20)
	}
	return nil
}

// infoInt is a numeric field of an INFO reply (0 when absent).
func infoInt(info, field string) int64 {
	n, _ := strconv.ParseInt(infoField(info, field), 10, 64)
	return n
}

// infoField is the value of field in an INFO reply, "" when it is absent.
func infoField(info, field string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// fileLoadFor is the fileLoad of a full round of units, or nil when the
// load goes by commands: several sources, or a clustered one, go into one
// dataset, which a file load would replace at each source's end.
func (d *destination) fileLoadFor(units []unit) *fileLoad {
	loader, ok := d.m.cfg.Destinations.(RDBLoader)
	if !ok || d.noFile.Load() || len(units) != 1 || units[0].shard != "" || d.db.Clustered() {
		return nil
	}
	limit := d.m.cfg.FileLoadRawLimit
	if limit <= 0 {
		limit = defaultFileRawLimit
	}
	fl := &fileLoad{loader: loader, db: d.db, generation: generationMark(d.db), rawLimit: limit, refuse: func(err error) {
		d.noFile.Store(true)
		d.log.Warn("the source's dataset cannot be loaded from an RDB file; this destination loads with commands from now on", "destination", d.db.UID, "err", err)
	}}
	if d.link != nil && !d.noLinkLoad.Load() && !d.m.cfg.NoLinkLoad {
		fl.link = d.link
		fl.refuseLink = func(err error) {
			d.noLinkLoad.Store(true)
			d.log.Warn("the source's dataset cannot be loaded over the destination's master link; this destination loads from an RDB file from now on", "destination", d.db.UID, "err", err)
		}
	}
	return fl
}
