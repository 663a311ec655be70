package replication

import (
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

// errDestClientsOOM: the destination refused a write out of memory while
// its data fits: its clients held the memory.
var errDestClientsOOM = errors.New("the destination refused a write out of memory held by its clients' buffers")

// destOOMError is a write the destination refused out of memory, not yet
// told apart (classifyOOM).
type destOOMError struct{ msg string }

func (e *destOOMError) Error() string {
	return "the destination is out of memory (raise its memory_size): " + e.msg
}

func (e *destOOMError) Unwrap() error { return errFatal }

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

// classifyOOM turns an OOM of the destination into what to do about it:
// a fatal error when its data does not fit, errNeedFullSync (a reload
// once the clients are gone) when its clients held the memory.
func classifyOOM(ctx context.Context, c *redis.Client, msg string) error {
	m, err := readMemory(ctx, c)
	if err != nil || !m.dataFits() {
		return &destOOMError{msg: msg}
	}
	return fmt.Errorf("%w: %w: %s (its data takes %d MiB of its %d MiB; its clients took %d MiB when read after): it is loaded again",
		errNeedFullSync, errDestClientsOOM, msg, m.data()>>20, m.limit>>20, m.clients>>20)
}
