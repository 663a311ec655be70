//go:build unix

package dirlock

import (
	"errors"
	"syscall"
)

// cannotLockDirectories says whether err is a filesystem's refusal to
// flock a directory, not a lock held or a failure of the system: NFS
// emulates flock with byte-range locks, and an exclusive one needs a file
// open for writing (EBADF); some FUSE filesystems lock nothing.
func cannotLockDirectories(err error) bool {
	return errors.Is(err, syscall.EBADF) || errors.Is(err, syscall.EINVAL) ||
		errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.ENOLCK)
}
