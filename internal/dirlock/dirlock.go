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

// HeldError says which process holds the directory, when that can be told
// (Linux): the user's next question.
type HeldError struct {
	Dir     string
	PID     int    // 0 when unknown
	Command string // its command name, without arguments (which may hold secrets)
}

// Holder describes the holder: "process 4242 (redis-replicad)", or
// "another process" when it cannot be told.
func (e *HeldError) Holder() string {
	switch {
	case e.PID == 0:
		return "another process"
	case e.Command == "":
		return fmt.Sprintf("process %d", e.PID)
	default:
		return fmt.Sprintf("process %d (%s)", e.PID, e.Command)
	}
}

func (e *HeldError) Error() string { return fmt.Sprintf("lock %s: held by %s", e.Dir, e.Holder()) }

// Is makes a HeldError an ErrHeld.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// Lock is a held directory lock; Close releases it.
type Lock struct {
	f *os.File
	// unsupported says why the directory could not be locked on a
	// filesystem that locks no directory (nil: it is locked).
	unsupported error
}

// Unsupported says why dir is not locked, on a filesystem that cannot lock
// a directory (NFS, where a lock needs a file open for writing, and some
// FUSE filesystems); nil when it is locked. The caller's own lock of a
// file in it (the state file's) is then the only one, as before there was
// a directory lock.
func (l *Lock) Unsupported() error { return l.unsupported }

// Acquire locks dir, waiting up to wait for a process that holds it (one
// that is still shutting down) to let it go.
func Acquire(ctx context.Context, dir string, wait time.Duration) (*Lock, error) {
	return acquire(ctx, dir, wait, tryLock)
}

func acquire(ctx context.Context, dir string, wait time.Duration, tryLock func(*os.File) (bool, error)) (*Lock, error) {
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
		if err != nil && cannotLockDirectories(err) {
			// Refusing to start would make the directory lock a
			// reason not to run on NFS, where the state file's lock
			// worked.
			f.Close()
			return &Lock{unsupported: fmt.Errorf("lock %s: %w", dir, err)}, nil
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", dir, err)
		}
		if time.Now().After(deadline) {
			pid, command := holder(f)
			f.Close()
			return nil, &HeldError{Dir: dir, PID: pid, Command: command}
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
