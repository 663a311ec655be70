package servicetest

import (
	"strings"
	"testing"
)

// Once the tail is full, counting a line in it does not tell that it was
// logged again (each round pushes as many lines out as it adds); LogsSince
// does.
func TestLogsSinceSeesANewLineInAFullTail(t *testing.T) {
	i := &Instance{recent: &logTail{}}
	round := func() {
		for _, l := range []string{"round failed\n", "other\n", "other\n"} {
			i.recent.Write([]byte(l))
		}
	}
	for range 100 {
		round()
	}
	before := strings.Count(i.RecentLogs(), "round failed")
	mark := i.LogMark()
	round()
	if after := strings.Count(i.RecentLogs(), "round failed"); after != before {
		t.Fatalf("the count moved (%d to %d): this test's premise is wrong", before, after)
	}
	if !strings.Contains(i.LogsSince(mark), "round failed") {
		t.Fatalf("LogsSince(%d) misses the new line: %q", mark, i.LogsSince(mark))
	}
	if got := i.LogsSince(i.LogMark()); got != "" {
		t.Fatalf("nothing logged since the mark, got %q", got)
	}
}
