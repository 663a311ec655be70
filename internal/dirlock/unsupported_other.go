//go:build !unix

package dirlock

func cannotLockDirectories(error) bool { return false }
