package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// settle waits until the machine is quiet: two windows of 100 ms in a row
// with less than a fifth of its CPU busy (or until limit). A run that starts
// while the previous one's processes still wind down (a deleted database's
// redis-server shutting down, a fresh replica's AOF rewrite after its full
// sync) is charged for them; both sides of a row wait the same way. It
// reports whether the machine settled.
func settle(ctx context.Context, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	quiet := 0
	prevBusy, prevTotal, err := cpuTimes()
	if err != nil {
		return false
	}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
		busy, total, err := cpuTimes()
		if err != nil {
			return false
		}
		if total > prevTotal && float64(busy-prevBusy)/float64(total-prevTotal) < 0.2 {
			quiet++
		} else {
			quiet = 0
		}
		if quiet == 2 {
			return true
		}
		prevBusy, prevTotal = busy, total
	}
	return false
}

// cpuTimes reads the machine's busy and total CPU time (in ticks) from
// /proc/stat: busy is everything but idle and iowait.
func cpuTimes() (busy, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseCPULine(string(b))
}

func parseCPULine(stat string) (busy, total uint64, err error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("unexpected /proc/stat: %q", line)
	}
	for i, s := range f[1:] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("unexpected /proc/stat: %q", line)
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total, nil
}
