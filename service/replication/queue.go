package replication

import (
	"context"

	"github.com/replicad/terraform-provider-redis/internal/resp"
)

// Items travel from a syncer's reader to its writer in blocks: one channel
// operation, one wake-up of the writer and no allocation per block instead
// of per command. Blocks circulate between the two goroutines: the reader
// fills a free block and sends it, the writer gives it back once its items
// are encoded into a batch. So the queue's memory is bounded by
// queueBlocks blocks of about blockBytes (or of one bigger item), and the
// reader waits, and stops reading the source, when the writer falls behind.
const (
	blockItems  = 256      // items per block at most
	blockBytes  = 64 << 10 // a block is sent once its items' bytes reach this
	queueBlocks = 64       // blocks in circulation
)

type block struct {
	items []item
	arena []byte // the RESP encoding of the items' commands
}

type queue struct {
	full chan *block // reader -> writer; closed by the reader when it stops
	free chan *block // writer -> reader
}

func newQueue() *queue {
	q := &queue{full: make(chan *block, queueBlocks), free: make(chan *block, queueBlocks)}
	for range queueBlocks {
		q.free <- &block{arena: make([]byte, 0, blockBytes)}
	}
	return q
}

// producer is the reader's end of a queue.
type producer struct {
	q   *queue
	cur *block
	// onSend is called with each block before it is sent (metrics, status).
	onSend func(b *block)
}

// add queues it; when args is not nil, it.raw is their RESP encoding.
// It sends the block when full, and waits for a free one when it must.
func (p *producer) add(ctx context.Context, it item, args [][]byte) error {
	return p.addEncoded(ctx, it, args, nil)
}

// addEncoded is add with enc, when not nil, the RESP encoding of args as
// it came from the source, copied instead of encoding args again.
func (p *producer) addEncoded(ctx context.Context, it item, args [][]byte, enc []byte) error {
	if p.cur == nil {
		select {
		case p.cur = <-p.q.free:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b := p.cur
	if args != nil {
		start := len(b.arena)
		// A reallocation leaves earlier items pointing into the old array,
		// which stays valid; the block keeps the last one.
		if enc != nil {
			b.arena = append(b.arena, enc...)
		} else {
			b.arena = resp.AppendCommand(b.arena, args...)
		}
		it.raw = b.arena[start:len(b.arena):len(b.arena)]
		if it.keys != keysUnknown {
			it.key, it.setArgs = locateKey(it.raw, args, it.keys)
		}
	}
	b.items = append(b.items, it)
	if len(b.items) >= blockItems || len(b.arena) >= blockBytes {
		return p.flush(ctx)
	}
	return nil
}

// flush sends the block being filled, if any.
func (p *producer) flush(ctx context.Context) error {
	b := p.cur
	if b == nil || len(b.items) == 0 {
		return nil
	}
	if p.onSend != nil {
		p.onSend(b)
	}
	select {
	case p.q.full <- b:
		p.cur = nil
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close tells the writer that nothing more comes (after flush).
func (p *producer) close() { close(p.q.full) }

// consumer is the writer's end of a queue.
type consumer struct {
	q    *queue
	cur  *block
	i    int
	used []*block // blocks whose items are all taken, to give back on release
}

// next returns the next item. With wait it blocks until one comes (or ctx
// ends); without, ok is false when none is ready. closed is true once the
// reader stopped and everything it sent was taken.
//
// A wait also ends, with nothing (ok false), when wake or moved is closed.
func (c *consumer) next(ctx context.Context, wait bool, wake, moved <-chan struct{}) (it item, ok, closed bool) {
	for c.cur == nil || c.i >= len(c.cur.items) {
		if c.cur != nil {
			c.used = append(c.used, c.cur)
			c.cur = nil
		}
		var b *block
		var open bool
		if wait {
			select {
			case b, open = <-c.q.full:
			case <-ctx.Done():
				return item{}, false, true
			case <-wake:
				return item{}, false, false
			case <-moved:
				return item{}, false, false
			}
		} else {
			select {
			case b, open = <-c.q.full:
			default:
				return item{}, false, false
			}
		}
		if !open {
			return item{}, false, true
		}
		c.cur, c.i = b, 0
	}
	it = c.cur.items[c.i]
	c.i++
	return it, true, false
}

// release gives back the blocks whose items were all taken. The raw bytes
// of those items must no longer be needed (they are encoded in the batch).
func (c *consumer) release() {
	for _, b := range c.used {
		clear(b.items)
		b.items = b.items[:0]
		if cap(b.arena) > 4*blockBytes {
			b.arena = make([]byte, 0, blockBytes) // let one huge item's memory go
		} else {
			b.arena = b.arena[:0]
		}
		c.q.free <- b // never blocks: there are only queueBlocks blocks
	}
	clear(c.used)
	c.used = c.used[:0]
}
