package rdb

import (
	"bytes"
	"context"
	"strconv"
	"testing"
)

// rawCounter is a CommandWriter that counts the keys it got whole.
type rawCounter struct {
	*CommandWriter
	raw, keys int
}

func (c *rawCounter) RawValue(k *KeyMeta, payload []byte) error {
	c.raw++
	return c.CommandWriter.RawValue(k, payload)
}

func (c *rawCounter) BeginKey(k *KeyMeta) error {
	c.keys++
	return c.CommandWriter.BeginKey(k)
}

// TestRealRedisRestore replays a real dump with raw values: small keys go
// whole through RESTORE, the others as commands, and with a tiny limit most
// values are recorded, found too big and decoded a second time from the
// recorded bytes. Every way gives the source's data.
func TestRealRedisRestore(t *testing.T) {
	src := startRedis(t)
	loadDataset(t, src)
	dump := src.save()
	version, err := strconv.Atoi(string(dump[5:9]))
	if err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{64 << 10, 100, 1} {
		t.Run(strconv.Itoa(limit), func(t *testing.T) {
			dst := startRedis(t)
			a := newApplier(t, dst)
			w := &rawCounter{CommandWriter: NewCommandWriter(a.emit, WithReplaceKeys())}
			if err := NewDecoder(bytes.NewReader(dump), WithRawValues(limit, version)).Decode(context.Background(), w); err != nil {
				t.Fatal(err)
			}
			if err := a.flush(); err != nil {
				t.Fatal(err)
			}
			t.Logf("limit %d: %d keys restored whole, %d as commands", limit, w.raw, w.keys)
			if w.raw == 0 && limit > 1 || w.keys == 0 {
				t.Errorf("limit %d: %d keys whole, %d as commands: both ways should be used", limit, w.raw, w.keys)
			}
			if limit == 1 && w.raw != 0 {
				t.Errorf("limit 1: %d keys whole", w.raw)
			}
			compareServers(t, src, dst)
		})
	}

	// A payload newer than the target reads is never handed over whole.
	w := &rawCounter{CommandWriter: NewCommandWriter(func([][]byte) error { return nil })}
	if err := NewDecoder(bytes.NewReader(dump), WithRawValues(64<<10, version-1)).Decode(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	if w.raw != 0 {
		t.Errorf("%d raw values for a target that reads RDB %d only", w.raw, version-1)
	}
}
