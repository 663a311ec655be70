package rdb

import (
	"strings"
	"testing"
)

func TestCommandWriterOptions(t *testing.T) {
	payload := newBuilder(10).aux("lua", "return 2").selectDB(0).
		key(rdbTypeString, "a").str("1").
		key(rdbTypeSetIntset, "b").blob(intset(2, 5)).
		selectDB(4).expireMs(1900000000000).key(rdbTypeList, "c").length(1).str("x").
		key(rdbTypeSetListpack, "empty").blob(listpack()).
		end()
	var got []string
	w := NewCommandWriter(func(cmd [][]byte) error {
		parts := make([]string, len(cmd))
		for i, a := range cmd {
			parts[i] = string(a)
		}
		got = append(got, strings.Join(parts, " "))
		return nil
	}, WithReplaceKeys(), WithLuaScripts(false))
	if err := NewDecoder(strings.NewReader(string(payload))).Decode(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	// An empty collection (Redis skips those on load) writes nothing but
	// its DEL.
	wantCmds(t, got,
		"SELECT 0", "DEL a", "SET a 1",
		"DEL b", "SADD b 5",
		"SELECT 4", "DEL c", "RPUSH c x", "PEXPIREAT c 1900000000000",
		"DEL empty",
	)
}

func TestBigElementMakesItsOwnChunk(t *testing.T) {
	big := strings.Repeat("B", 5000)
	payload := newBuilder(10).key(rdbTypeList, "l").length(4).str("a").str(big).str("b").str("c").end()
	r := record(t, payload, WithChunkLimits(100, 1000))
	if got := strings.Join(r.keys[0].elems, ","); got != "a,"+big+",b,c" {
		t.Fatalf("elements %q", got)
	}
	if r.chunks != 2 || r.maxChunk != 2 {
		t.Fatalf("%d chunks, max %d elements; want [a big] [b c]", r.chunks, r.maxChunk)
	}
	if err := NewDecoder(strings.NewReader(string(payload))).Decode(t.Context(), nil); err == nil {
		t.Fatal("nil handler accepted")
	}
}
