package redistest

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Snapshot is a readable form of one key: its type, value and TTL.
type Snapshot struct {
	Type  string
	Value string
	PTTL  int64 // expiry as a Unix time in milliseconds; -1 without expiry
}

// Read returns the snapshot of key.
func Read(ctx context.Context, c *redis.Client, key string) (Snapshot, error) {
	typ, err := c.Type(ctx, key).Result()
	if err != nil {
		return Snapshot{}, err
	}
	s := Snapshot{Type: typ}
	switch typ {
	case "string":
		s.Value, err = c.Get(ctx, key).Result()
	case "list":
		var v []string
		v, err = c.LRange(ctx, key, 0, -1).Result()
		s.Value = strings.Join(v, "\x00")
	case "set":
		var v []string
		v, err = c.SMembers(ctx, key).Result()
		slices.Sort(v)
		s.Value = strings.Join(v, "\x00")
	case "zset":
		var v []redis.Z
		v, err = c.ZRangeWithScores(ctx, key, 0, -1).Result()
		s.Value = fmt.Sprint(v)
	case "hash":
		var v map[string]string
		v, err = c.HGetAll(ctx, key).Result()
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k+"="+v[k])
		}
		slices.Sort(keys)
		s.Value = strings.Join(keys, "\x00")
	case "stream":
		var v []redis.XMessage
		v, err = c.XRange(ctx, key, "-", "+").Result()
		if err == nil {
			var groups []redis.XInfoGroup
			groups, err = c.XInfoGroups(ctx, key).Result()
			var pend []string
			for i, g := range groups {
				p, _ := c.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: key, Group: g.Name, Start: "-", End: "+", Count: 1 << 20}).Result()
				for _, e := range p {
					pend = append(pend, g.Name+"/"+e.Consumer+"/"+e.ID)
				}
				// Counters that Redis 7.0 does not replicate exactly, not
				// even to its own replicas.
				groups[i].EntriesRead, groups[i].Lag = 0, 0
			}
			s.Value = fmt.Sprint(v, groups, pend)
		}
	case "none":
	default:
		err = fmt.Errorf("type %s not compared", typ)
	}
	if err != nil {
		return s, fmt.Errorf("read %s %q: %w", typ, key, err)
	}
	// The absolute expiry time (Redis 7+), so that the time taken to read
	// a big value between the two servers does not count.
	ms, err := c.Do(ctx, "PEXPIRETIME", key).Int64()
	if err != nil {
		return s, fmt.Errorf("pexpiretime %q: %w", key, err)
	}
	s.PTTL = max(ms, -1)
	return s, nil
}

// Keys returns every key of the client's database.
func Keys(ctx context.Context, c *redis.Client) ([]string, error) {
	var out []string
	iter := c.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		out = append(out, iter.Val())
	}
	return out, iter.Err()
}

// Diff compares the destination dst with the union of the sources, key by
// key: type, value and expiry time (within a second). It returns a description of
// the first differences, or nil when they agree.
func Diff(ctx context.Context, dst *redis.Client, sources ...*redis.Client) error {
	want, err := snapshots(ctx, sources...)
	if err != nil {
		return err
	}
	var problems []string
	for k, w := range want {
		g, err := Read(ctx, dst, k)
		if err != nil {
			return err
		}
		switch {
		case g.Type != w.Type:
			problems = append(problems, fmt.Sprintf("%q: type %s, want %s", k, g.Type, w.Type))
		case g.Value != w.Value:
			problems = append(problems, fmt.Sprintf("%q (%s): value differs: %.200q vs %.200q", k, w.Type, g.Value, w.Value))
		case (w.PTTL < 0) != (g.PTTL < 0) || abs(w.PTTL-g.PTTL) > 1000:
			problems = append(problems, fmt.Sprintf("%q: expires at %d ms, want %d ms", k, g.PTTL, w.PTTL))
		}
		if len(problems) >= 10 {
			break
		}
	}
	n, err := dst.DBSize(ctx).Result()
	if err != nil {
		return err
	}
	if int(n) != len(want) {
		problems = append(problems, fmt.Sprintf("destination has %d keys, sources %d", n, len(want)))
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return fmt.Errorf("destination differs: %s", strings.Join(problems, "; "))
	}
	return nil
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// DiffMasters is Diff for a destination that is a Redis Cluster: its keys
// are those of every master (each read from the master that holds it),
// except the keys whose name starts with ignore (a service's own
// bookkeeping, "" for none).
func DiffMasters(ctx context.Context, masters []*redis.Client, ignore string, sources ...*redis.Client) error {
	want, err := snapshots(ctx, sources...)
	if err != nil {
		return err
	}
	var problems []string
	got := 0
	for _, m := range masters {
		keys, err := Keys(ctx, m)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if ignore != "" && strings.HasPrefix(k, ignore) {
				continue
			}
			got++
			w, ok := want[k]
			if !ok {
				if len(problems) < 10 {
					problems = append(problems, fmt.Sprintf("%q: not at the sources", k))
				}
				continue
			}
			g, err := Read(ctx, m, k)
			if err != nil {
				return err
			}
			if len(problems) >= 10 {
				continue
			}
			switch {
			case g.Type != w.Type:
				problems = append(problems, fmt.Sprintf("%q: type %s, want %s", k, g.Type, w.Type))
			case g.Value != w.Value:
				problems = append(problems, fmt.Sprintf("%q (%s): value differs: %.200q vs %.200q", k, w.Type, g.Value, w.Value))
			case (w.PTTL < 0) != (g.PTTL < 0) || abs(w.PTTL-g.PTTL) > 1000:
				problems = append(problems, fmt.Sprintf("%q: expires at %d ms, want %d ms", k, g.PTTL, w.PTTL))
			}
		}
	}
	if got != len(want) {
		problems = append(problems, fmt.Sprintf("destination masters hold %d keys, sources %d", got, len(want)))
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return fmt.Errorf("destination differs: %s", strings.Join(problems, "; "))
	}
	return nil
}

// snapshots reads every key of the sources (the union; a later source's
// key replaces an earlier one's).
func snapshots(ctx context.Context, sources ...*redis.Client) (map[string]Snapshot, error) {
	want := map[string]Snapshot{}
	for _, src := range sources {
		keys, err := Keys(ctx, src)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			s, err := Read(ctx, src, k)
			if err != nil {
				return nil, err
			}
			if s.Type != "none" {
				want[k] = s
			}
		}
	}
	return want, nil
}
