package servicetest

import (
	"bytes"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// logTail keeps the last lines an instance logged, so that a test failing
// in CI (where the logs are quiet) still says what the service did.
type logTail struct {
	mu    sync.Mutex
	lines []string
	total int // lines written ever: lines holds the last ones of them
}

const logTailLines = 150

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(bytes.TrimRight(p, "\n")))
	l.total++
	if n := len(l.lines) - logTailLines; n > 0 {
		l.lines = append(l.lines[:0:0], l.lines[n:]...)
	}
	return len(p), nil
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// reportFailure prints, for a failed test, the instance's last log lines
// (when quiet) and the service's goroutines that have been blocked for a
// minute or more: a hung API call is then explained by the stacks that hold
// it, not guessed at.
func (i *Instance) reportFailure(t testing.TB) {
	if tail := i.recent.String(); tail != "" && os.Getenv("REDIS_REPLICAD_TEST_QUIET") != "" {
		t.Logf("last log lines of the instance at %s:\n%s", i.URL, tail)
	}
	if stuck := stuckGoroutines(); stuck != "" {
		t.Logf("goroutines of the service blocked for a minute or more:\n%s", stuck)
	}
}

// blockedFor matches a goroutine header that says how long it has waited:
// "goroutine 42 [sync.Mutex.Lock, 3 minutes]:".
var blockedFor = regexp.MustCompile(`^goroutine \d+ \[[^\]]*, (\d+) minutes?[^\]]*\]:`)

// stuckGoroutines is the stacks of the goroutines blocked for a minute or
// more that run the service's code.
func stuckGoroutines() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		m := blockedFor.FindStringSubmatch(g)
		if m == nil {
			continue
		}
		if mins, _ := strconv.Atoi(m[1]); mins < 1 {
			continue
		}
		if !strings.Contains(g, "terraform-provider-redis/service/") {
			continue
		}
		out = append(out, g)
	}
	return strings.Join(out, "\n\n")
}

// RecentLogs is the instance's last log lines (at most 150): what a test
// waits for when only the service knows where it is. Do not count lines in
// it to see whether something happened again: once it holds 150 lines, a
// new one pushes an old one out, and the count may stay the same; use
// LogMark and LogsSince.
func (i *Instance) RecentLogs() string { return i.recent.String() }

// LogMark is how many lines the instance has logged so far: LogsSince(mark)
// is what it logged after.
func (i *Instance) LogMark() int {
	i.recent.mu.Lock()
	defer i.recent.mu.Unlock()
	return i.recent.total
}

// LogsSince is what the instance logged after mark (LogMark), of its last
// 150 lines.
func (i *Instance) LogsSince(mark int) string {
	l := i.recent
	l.mu.Lock()
	defer l.mu.Unlock()
	n := min(max(l.total-mark, 0), len(l.lines))
	return strings.Join(l.lines[len(l.lines)-n:], "\n")
}
