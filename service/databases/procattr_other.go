//go:build !linux

package databases

import "syscall"

// childProcAttr: only Linux can end a child with its parent (Pdeathsig), so
// sig is not used. Elsewhere (darwin), a child outlives a service killed
// with -9, and the restarted service waits for its port until the old one
// is stopped.
func childProcAttr(_ syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
