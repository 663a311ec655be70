//go:build !linux

package databases

import "syscall"

// childProcAttr: only Linux can end a child with its parent (Pdeathsig).
// Elsewhere (darwin), a redis-server outlives a service killed with -9, and
// the restarted service waits for its port until the old one is stopped.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
