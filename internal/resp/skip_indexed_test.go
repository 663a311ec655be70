package resp

import (
	"bufio"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSkipValueIndexed(t *testing.T) {
	// What EXEC answers: +OK, an integer, an error, a nested array with an
	// error, an integer.
	in := "*5\r\n+OK\r\n:0\r\n-WRONGTYPE no\r\n*2\r\n:7\r\n-ERR deep\r\n:1\r\n"
	r := NewReader(bufio.NewReader(strings.NewReader(in)))
	var errs []string
	ints := map[int]int64{}
	msg, err := r.SkipValueIndexed(&Nested{
		Error: func(i int, m []byte) { errs = append(errs, string(rune('0'+i))+":"+string(m)) },
		Int:   func(i int, v int64) { ints[i] = v },
	})
	require.NoError(t, err)
	assert.Nil(t, msg)
	assert.Equal(t, []string{"2:WRONGTYPE no", "3:ERR deep"}, errs)
	assert.Equal(t, map[int]int64{1: 0, 4: 1}, ints, "integers that are elements themselves, not nested deeper")
}
