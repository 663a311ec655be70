package replication

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDBArgOutOfRange(t *testing.T) {
	for cmd, want := range map[string]int{
		"MOVE k 3": -1, "MOVE k 16": 16, "move k 20": 20,
		"SWAPDB 0 15": -1, "SWAPDB 16 0": 16, "SWAPDB 0 31": 31,
		"COPY a b": -1, "COPY a b DB 2 REPLACE": -1, "COPY a b REPLACE DB 16": 16,
		"SET MOVE 16": -1,
	} {
		var args [][]byte
		for _, f := range strings.Fields(cmd) {
			args = append(args, []byte(f))
		}
		db, bad := dbArgOutOfRange(args)
		if want < 0 {
			assert.False(t, bad, cmd)
			continue
		}
		assert.True(t, bad, cmd)
		assert.Equal(t, want, db, cmd)
	}
}

func TestReservedDBCommand(t *testing.T) {
	split := func(s string) [][]byte {
		var out [][]byte
		for _, f := range strings.Fields(s) {
			out = append(out, []byte(f))
		}
		return out
	}
	out, drop := reservedDBCommand(split("MOVE k 16"))
	assert.False(t, drop)
	assert.Equal(t, split("DEL k"), out)
	_, drop = reservedDBCommand(split("COPY a b DB 16 REPLACE"))
	assert.True(t, drop)
	for _, c := range []string{"MOVE k 3", "COPY a b DB 2", "MOVE k 17", "SET k 16", "COPY a b"} {
		out, drop := reservedDBCommand(split(c))
		assert.Nil(t, out, c)
		assert.False(t, drop, c)
	}
}
