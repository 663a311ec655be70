// Package dirlock makes a directory the property of one process at a time.
//
// The lock is taken on the directory itself, not on a file in it: a file
// (the state file, a lock file) can be deleted under a running process,
// after which a second process creates a new one and locks that, and two
// processes then serve one directory. A directory cannot be removed while
// it holds files, and a new one of the same name is another directory.
package dirlock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// ErrHeld is returned when another process holds the directory.
var ErrHeld = errors.New("held by another process")

// Lock is a held directory lock; Close releases it.
type Lock struct{ f *os.File }

// Acquire locks dir, waiting up to wait for a process that holds it (one
// that is still shutting down) to let it go.
func Acquire(ctx context.Context, dir string, wait time.Duration) (*Lock, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("open %s to lock it: %w", dir, err)
	}
	deadline := time.Now().Add(wait)
	for {
		held, err := tryLock(f)
		if err == nil && !held {
			return &Lock{f: f}, nil
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", dir, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", dir, ErrHeld)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", dir, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close releases the lock.
func (l *Lock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor releases its flock
	l.f = nil
	return err
}
