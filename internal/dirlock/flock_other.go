//go:build !unix

package dirlock

import "os"

// tryLock: no directory lock here; the state file's own lock remains.
func tryLock(*os.File) (bool, error) { return false, nil }
