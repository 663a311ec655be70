// Package sysmon keeps the Go runtime's monitor thread (sysmon) out of its
// deep sleep, by re-executing the program with a GODEBUG setting.
package sysmon

import (
	"os"
	"strings"
	"syscall"
)

// Setting keeps sysmon out of its deep sleep.
//
// When every P of a process is idle, sysmon sleeps until woken, and the
// next system call of any goroutine wakes it with a futex. A syncer under
// a steady, moderate load goes idle and wakes up thousands of times a
// second, and paid that each time: a third of the service's CPU per
// replicated command at half load (bench/RESULTS.md, "What limits the
// figures"). sysmon never deep-sleeps while schedtrace is set; it then
// wakes every 10 ms when there is nothing to do. The period is the
// longest the runtime accepts (about 24.8 days of the host's monotonic
// clock), so the trace itself is one line starting with "SCHED" on
// standard error when the host's uptime passes a multiple of it.
const Setting = "schedtrace=2147483647"

// WithAwake returns env with Setting added to GODEBUG, and false when there
// is nothing to add: GODEBUG already sets schedtrace (the operator's
// choice, schedtrace=0 to opt out; or this process was re-executed).
func WithAwake(env []string) ([]string, bool) {
	out := make([]string, 0, len(env)+1)
	godebug := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			godebug = v
			continue
		}
		out = append(out, kv)
	}
	for _, s := range strings.Split(godebug, ",") {
		if strings.HasPrefix(strings.TrimSpace(s), "schedtrace=") {
			return env, false
		}
	}
	if godebug != "" {
		godebug += ","
	}
	return append(out, "GODEBUG="+godebug+Setting), true
}

// KeepAwake re-executes the program, as the same process, with Setting in
// its environment (the runtime reads GODEBUG's schedtrace only at start).
// Call it first thing, before the program has done anything it would do
// twice. If the exec fails, the program goes on as it is: it only costs
// CPU.
func KeepAwake() {
	env, changed := WithAwake(os.Environ())
	if !changed {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	_ = syscall.Exec(exe, os.Args, env) // returns only on failure
}
