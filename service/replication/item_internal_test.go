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
