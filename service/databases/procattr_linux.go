package databases

import "syscall"

// childProcAttr makes a redis-server end with the service (even on kill
// -9), so a restarted service finds its ports free and starts the children
// again itself. SIGTERM, not SIGKILL: redis-server then writes out its AOF
// buffer, which appendfsync everysec may still hold for acknowledged writes.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
}
