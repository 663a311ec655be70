package databases

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replicad/terraform-provider-redis/internal/redistest"
	"github.com/replicad/terraform-provider-redis/service/store"
)

func TestRewritePolicy(t *testing.T) {
	const mib = 1 << 20
	st := parseAOFState("# Persistence\r\naof_enabled:1\r\naof_rewrite_in_progress:0\r\nrdb_bgsave_in_progress:0\r\n" +
		"aof_current_size:300000000\r\naof_base_size:100000000\r\naof_rewrites:2\r\naof_last_bgrewrite_status:ok\r\n")
	if !st.enabled || st.forking || st.current != 300_000_000 || st.base != 100_000_000 || st.rewrites != 2 {
		t.Fatalf("parsed %+v", st)
	}
	if parseAOFState("aof_rewrite_in_progress:1\r\n").forking != true || parseAOFState("rdb_bgsave_in_progress:1\r\n").forking != true {
		t.Fatal("a running fork is not seen")
	}
	for _, tc := range []struct {
		name            string
		current, base   int64
		memory          int64
		enabled, wanted bool
	}{
		{"small database: 64 MiB of growth", 70 * mib, 1 * mib, 100 * mib, true, true},
		{"small database below 64 MiB", 60 * mib, 1 * mib, 100 * mib, true, false},
		{"big memory_size: half of it", 600 * mib, 10 * mib, 2048 * mib, true, false},
		{"big memory_size past half", 1100 * mib, 10 * mib, 2048 * mib, true, true},
		{"big dataset: its own size", 2500 * mib, 1500 * mib, 2048 * mib, true, false},
		{"big dataset doubled", 3100 * mib, 1500 * mib, 2048 * mib, true, true},
		{"AOF off while loading", 3100 * mib, 0, 2048 * mib, false, false},
	} {
		st := aofState{enabled: tc.enabled, current: tc.current, base: tc.base}
		if got := overdue(st, tc.memory, minRewriteGrowth) >= 1; got != tc.wanted {
			t.Errorf("%s: due = %v, want %v", tc.name, got, tc.wanted)
		}
	}
}

// A fork child (here a shell's sleep) ends up at nice 19.
func TestLowerChildPriority(t *testing.T) {
	parent := exec.Command("sh", "-c", "sleep 30 & wait")
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { parent.Process.Kill(); parent.Wait() })
	var child int
	redistest.Eventually(t, 10*time.Second, "the shell has a child", func() error {
		kids, err := childPIDs(parent.Process.Pid)
		if err != nil || len(kids) == 0 {
			return fmt.Errorf("children: %v %v", kids, err)
		}
		child = kids[0]
		return nil
	})
	t.Cleanup(func() { p, _ := os.FindProcess(child); p.Kill() })
	m := &Manager{cfg: Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	if n := m.lowerChildPriority(parent.Process.Pid); n != 1 {
		t.Fatalf("found %d children, want 1", n)
	}
	if nice := niceOf(t, child); nice != rewriteNice {
		t.Fatalf("child at nice %d, want %d", nice, rewriteNice)
	}
	if nice, own := niceOf(t, parent.Process.Pid), niceOf(t, os.Getpid()); nice != own {
		t.Fatalf("the parent was changed too: nice %d", nice)
	}
}

func niceOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	n, _ := strconv.Atoi(fields[16]) // field 19 of stat, counted after the name
	return n
}

// The service rewrites a database's AOF once it has grown past the
// threshold, and redis-server does not do it by itself.
func TestServiceRewritesAOF(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs redis-server, not run with -short")
	}
	bin, err := FindRedisServer("")
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(Config{RedisServer: bin, DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		RewriteCheck: 50 * time.Millisecond, MinRewriteGrowth: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	ctx := redistest.Ctx(t)
	d := store.Database{UID: 1, Port: redistest.FreePort(t), MemorySize: 2 << 20, RedisPassword: "app", AdminPassword: "admin", InternalPassword: "internal"}
	if err := m.Ensure(ctx, d); err != nil {
		t.Fatal(err)
	}
	c := m.Client(1)
	if got := c.ConfigGet(ctx, "auto-aof-rewrite-percentage").Val()["auto-aof-rewrite-percentage"]; got != "0" {
		t.Fatalf("auto-aof-rewrite-percentage = %q: redis-server would rewrite by itself", got)
	}
	// Overwrite the same 100 keys: the AOF grows, the dataset does not.
	value := strings.Repeat("x", 1000)
	for i := range 3000 {
		if err := c.Set(ctx, "k"+strconv.Itoa(i%100), value, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	redistest.Eventually(t, 30*time.Second, "the AOF is rewritten", func() error {
		st, err := m.aofState(ctx, 1)
		if err != nil {
			return err
		}
		// 3 MB were written: rewritten, the AOF holds less, and it is not
		// past its threshold any more (1 MiB, or its base size when that
		// is bigger: a rewrite slowed by a busy machine takes in what was
		// written meanwhile).
		if st.rewrites < 1 || st.forking || st.current > 9*(3<<20)/10 || overdue(st, d.MemorySize, m.cfg.MinRewriteGrowth) >= 1 {
			return fmt.Errorf("%d rewrites, fork running %v, AOF of %d bytes (base %d)", st.rewrites, st.forking, st.current, st.base)
		}
		return nil
	})
	if n := c.DBSize(ctx).Val(); n != 100 {
		t.Fatalf("%d keys after the rewrite, want 100", n)
	}
}
