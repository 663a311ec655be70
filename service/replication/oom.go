package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// A destination refuses a write with OOM when its used memory is over its
// maxmemory, and its clients' buffers count there: readers that do not
// read their replies, or announce a huge argument, or thousands of
// connections opened at once (anyone who reaches the port can open them)
// can put it over without any data, for a while. So an OOM while the data
// itself fits is not the end of the sync at once: the destination is
// loaded again (a batch it discarded may be followed by batches it
// applied, so resuming is not safe). The second such OOM within an hour
// stops the sync as any OOM did: then the data is the cause (close to
// maxmemory, with one big write on top), or the clients hold their memory
// for good. Evicting clients (maxmemory-clients) is not done: a reader of
// a big value holds its size in its reply, legitimately.

// maxClientOOMs reloads for clients' OOMs within clientOOMWindow stop the
// sync: the data is then the cause (destination.run).
const (
	maxClientOOMs   = 2
	clientOOMWindow = time.Hour
)

// oomRecount is how long classifyOOM reads the memory again while the
// data seems not to fit.
const oomRecount = 1500 * time.Millisecond

// errDestClientsOOM: the destination refused a write out of memory while
// its data fits: its clients held the memory.
var errDestClientsOOM = errors.New("the destination refused a write out of memory held by its clients' buffers")

// destOOMError is a write the destination refused out of memory, not yet
// told apart (classifyOOM). node is the shard of a sharded destination
// that refused it (nil: the destination's one server).
type destOOMError struct {
	msg  string
	node *Access
	// used and limit are the data and maxmemory of the server that
	// refused the write, as classifyOOM read them (limit 0: not read).
	used, limit int64
	// shards is how many shards the sharded destination has: each holds
	// memory_size / shards, which is its maxmemory (limit).
	shards int
}

func (e *destOOMError) Error() string {
	s := "the destination is out of memory (raise its memory_size): " + e.msg
	if e.limit > 0 {
		// Redis' own words name no figure: say what takes what.
		if e.node != nil && e.shards > 1 {
			// A shard's maxmemory is only its part of memory_size:
			// calling it the memory_size contradicts what the user set,
			// and one shard fills first when keys gather in its slots.
			s += fmt.Sprintf("; the shard's data takes %d MiB of its %d MiB (a memory_size of %d MiB split across %d shards; keys that share a hash tag, {...}, are all in one shard)",
				e.used>>20, e.limit>>20, (e.limit*int64(e.shards))>>20, e.shards)
		} else {
			s += fmt.Sprintf("; its data takes %d MiB, its memory_size is %d MiB", e.used>>20, e.limit>>20)
		}
	}
	return s
}

func (e *destOOMError) Unwrap() error { return errFatal }

// execAbortBecause is how Redis answers an EXEC it refuses itself (not for
// a command refused while queued: that is "... because of previous
// errors."), followed by the reason.
var execAbortBecause = []byte("EXECABORT Transaction discarded because of: ")

// oomReply says whether msg, an error reply of the destination, refused a
// write out of memory, and returns that refusal: an OOM, or the EXECABORT
// of an EXEC that Redis refused out of memory. Redis checks the memory
// again at EXEC for a transaction of writes, and the commands it queued
// hold their arguments until then: the last of a transaction of big
// values can take the server over maxmemory, and only its EXEC is refused.
func oomReply(msg []byte) ([]byte, bool) {
	if bytes.HasPrefix(msg, []byte("OOM")) {
		return msg, true
	}
	if rest, ok := bytes.CutPrefix(msg, execAbortBecause); ok && bytes.HasPrefix(rest, []byte("OOM")) {
		return rest, true
	}
	return nil, false
}

// memoryUse is what INFO memory says of a destination's memory.
type memoryUse struct{ used, clients, limit int64 }

func readMemory(ctx context.Context, c *redis.Client) (memoryUse, error) {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return memoryUse{}, fmt.Errorf("read the destination's memory: %w", err)
	}
	return memoryUse{used: infoInt(info, "used_memory"), clients: infoInt(info, "mem_clients_normal"), limit: infoInt(info, "maxmemory")}, nil
}

// data is the memory that is not normal clients' buffers.
func (m memoryUse) data() int64 { return m.used - m.clients }

// dataFits says whether the data leaves a sixteenth of maxmemory free: an
// OOM then came from the clients' buffers.
func (m memoryUse) dataFits() bool { return m.limit == 0 || m.data() <= m.limit-m.limit/16 }

// clientsFreed says whether the clients' buffers are back within that
// sixteenth (or the whole is under maxmemory by it): the data that fitted
// fits with them.
func (m memoryUse) clientsFreed() bool {
	return m.limit == 0 || m.clients <= m.limit/16 || m.used <= m.limit-m.limit/16
}

// clientsOOMError is an OOM blamed on the clients of node (the server, or
// the shard, that refused the write): the destination is loaded again
// once they free their memory.
type clientsOOMError struct {
	node Access
	msg  string
}

func (e *clientsOOMError) Error() string { return e.msg }

func (e *clientsOOMError) Unwrap() []error { return []error{errNeedFullSync, errDestClientsOOM} }

// classifyOOM turns an OOM of the destination into what to do about it:
// a fatal error when the data of the server that refused the write (dest,
// or the shard named in oom) does not fit, a clientsOOMError (a reload
// once the clients are gone) when its clients held the memory.
func classifyOOM(ctx context.Context, dest Access, oom *destOOMError) error {
	node := dest
	if oom.node != nil {
		node = *oom.node
	}
	c := node.client(0)
	defer c.Close()
	// Redis counts a client's buffers in mem_clients_normal in its cron,
	// each client about once a second: a reader's buffer that just grew
	// shows in used_memory first. So a reading where the data does not
	// fit is taken again until it does or a second and a half passed.
	//
	// The figures are read even when ctx ended: another source's OOM
	// ends the round, and this source's error would not name them.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var m memoryUse
	var err error
	for deadline := time.Now().Add(oomRecount); ; {
		if m, err = readMemory(rctx, c); err == nil && m.dataFits() {
			break
		}
		if err == nil {
			oom.used, oom.limit = m.data(), m.limit
		}
		if time.Now().After(deadline) || rctx.Err() != nil {
			return oom
		}
		select {
		case <-ctx.Done():
			return oom
		case <-time.After(100 * time.Millisecond):
		}
	}
	return &clientsOOMError{node: node, msg: fmt.Sprintf("%s: %s: %s (its data takes %d MiB of its %d MiB; its clients took %d MiB when read after): it is loaded again",
		errNeedFullSync, errDestClientsOOM, oom.msg, m.data()>>20, m.limit>>20, m.clients>>20)}
}
