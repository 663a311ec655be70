package rdb

import (
	"crypto/sha256"
	"fmt"
	"io"
	"sync"
	"time"
)

// Merger writes one RDB stream from several decoded ones (the shards of a
// clustered source, or several sources of one destination), for a reader
// that loads it as it arrives: each input is a FileWriter (Input) that a
// Decoder of its own feeds, at the same time as the others. The output
// takes the inputs' keys in whatever order they come, each key whole: an
// input writes a key in its turn, which it holds from the key's header to
// its end (a big value in pieces holds it for as long as it takes to
// arrive). Function libraries are written once each.
//
// When an input fails (its decoder returns an error), the caller must call
// Fail: the output is then cut in the middle of a key, and the inputs
// waiting for their turn are told. Once every input is done, Close ends
// the stream.
type Merger struct {
	out        sink
	version    int
	spoolLimit int
	turn       chan struct{} // holds a token while an input writes
	failed     chan struct{} // closed by Fail
	failOnce   sync.Once
	err        error
	closing    chan struct{} // closed by Close: stops keepAlive
	closeOnce  sync.Once

	mu        sync.Mutex
	functions map[[32]byte]bool
}

// NewStreamMerger starts an RDB of the given version written to out, as
// NewStreamWriter does, for several inputs.
func NewStreamMerger(out io.Writer, version, spoolLimit int) (*Merger, error) {
	m := &Merger{
		out:     *newStreamSink(out),
		version: version, spoolLimit: spoolLimit,
		turn: make(chan struct{}, 1), failed: make(chan struct{}), closing: make(chan struct{}),
		functions: map[[32]byte]bool{},
	}
	if err := m.out.write(fmt.Appendf(nil, "REDIS%04d", version)); err != nil {
		return nil, err
	}
	go m.keepAlive()
	return m, nil
}

// keepaliveEvery: a Merger whose output has been idle this long (every
// input waiting for its source, one that saves its RDB to disk before it
// sends it, say) writes an AUX field, which a reader skips, so that a
// replica loading it does not give up on its master after its
// repl-timeout.
const keepaliveEvery = time.Second

// keepaliveAux is the AUX field of keepalives.
var keepaliveAux = []byte("replicad-keepalive")

// keepAlive writes keepalives between keys until the Merger ends.
func (m *Merger) keepAlive() {
	t := time.NewTicker(keepaliveEvery)
	defer t.Stop()
	for {
		select {
		case <-m.closing:
			return
		case <-m.failed:
			return
		case <-t.C:
		}
		select {
		case m.turn <- struct{}{}:
		default:
			continue // an input is writing
		}
		var err error
		if time.Since(m.out.flushed) >= keepaliveEvery {
			err = m.writeKeepalive()
		}
		<-m.turn
		if err != nil {
			return // the inputs meet the same error on their next write
		}
	}
}

// writeKeepalive writes and flushes one keepalive, with the turn held.
func (m *Merger) writeKeepalive() error {
	w := m.Input()
	if err := w.byte1(opAux); err != nil {
		return err
	}
	if err := w.str(keepaliveAux); err != nil {
		return err
	}
	if err := w.str(nil); err != nil {
		return err
	}
	m.out.flushed = time.Now()
	if err := m.out.bw.Flush(); err != nil {
		return fmt.Errorf("write rdb stream: %w", err)
	}
	return nil
}

// Input is a writer for one decoded RDB. Its Close must not be called:
// the Merger's Close ends the output.
func (m *Merger) Input() *FileWriter {
	return &FileWriter{out: &m.out, merge: m, version: m.version, spoolLimit: m.spoolLimit}
}

// Fail stops the merge: inputs waiting for their turn, and those that
// take one later, get err.
func (m *Merger) Fail(err error) {
	m.failOnce.Do(func() {
		m.err = fmt.Errorf("merged rdb stopped: %w", err)
		close(m.failed)
	})
}

func (m *Merger) take() error {
	select {
	case <-m.failed:
		return m.err
	default:
	}
	select {
	case m.turn <- struct{}{}:
		return nil
	case <-m.failed:
		return m.err
	}
}

func (m *Merger) give() { <-m.turn }

// firstFunction reports whether code is a library not written yet.
func (m *Merger) firstFunction(code []byte) bool {
	sum := sha256.Sum256(code)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.functions[sum] {
		return false
	}
	m.functions[sum] = true
	return true
}

// Close writes the extra keys, the end of the stream and its checksum,
// once every input is done.
func (m *Merger) Close(extra ...Extra) error {
	m.closeOnce.Do(func() { close(m.closing) })
	w := m.Input()
	if err := w.take(); err != nil {
		return err
	}
	return w.Close(extra...)
}
