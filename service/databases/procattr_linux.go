package databases

import "syscall"

// childProcAttr makes a child process end with the service (even on kill
// -9), with signal sig: a restarted service then finds the ports free and
// starts the children again itself. Its own process group keeps it from
// the signals of the service's terminal.
func childProcAttr(sig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: sig, Setpgid: true}
}
