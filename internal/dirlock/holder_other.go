//go:build !linux

package dirlock

import "os"

// holder: no portable way to tell the owner of a flock.
func holder(*os.File) (int, string) { return 0, "" }
