package replproto

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replicad/terraform-provider-redis/internal/resp"
)

func readLineage(t *testing.T, b []byte) []string {
	t.Helper()
	v, err := resp.NewReader(bufio.NewReader(bytes.NewReader(b))).ReadValue()
	require.NoError(t, err)
	return ParseLineage(v)
}

func TestLineageRoundTrip(t *testing.T) {
	in := []string{"inst-a/1", "inst-b/7"}
	assert.Equal(t, in, readLineage(t, AppendLineage(nil, in)))
	assert.Equal(t, []string{}, readLineage(t, AppendLineage(nil, nil)), "an empty lineage is not an unknown one")
}

func TestLineageIsBounded(t *testing.T) {
	var many []string
	for range MaxLineage + 10 {
		many = append(many, "x/1")
	}
	assert.Len(t, readLineage(t, AppendLineage(nil, many)), MaxLineage)
	long := strings.Repeat("y", MaxLineageEntry+1)
	assert.Equal(t, []string{"a/1"}, readLineage(t, AppendLineage(nil, []string{long, "a/1"})), "an entry too long is skipped")
}

func TestLineageOfAnotherReplyIsUnknown(t *testing.T) {
	for _, reply := range []string{"-ERR unknown command 'REPLICAD.LINEAGE'\r\n", "-NOPERM no\r\n", "+OK\r\n", ":1\r\n", "*-1\r\n"} {
		assert.Nil(t, readLineage(t, []byte(reply)), "%q", reply)
	}
}

// Whatever a source answers, the lineage kept is bounded, and an answer
// too big is refused rather than read.
func FuzzLineageReply(f *testing.F) {
	f.Add(AppendLineage(nil, []string{"a/1", "b/2"}))
	f.Add([]byte("-ERR unknown command\r\n"))
	f.Add([]byte("*99999999\r\n"))
	f.Add([]byte("*1\r\n$99999999\r\n"))
	f.Add([]byte("*2\r\n*1\r\n$1\r\na\r\n$3\r\nb/1\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := readLineageReply(resp.NewReader(bufio.NewReader(bytes.NewReader(in))))
		if err != nil {
			return
		}
		l := ParseLineage(v)
		if len(l) > MaxLineage {
			t.Fatalf("%d names kept", len(l))
		}
		for _, id := range l {
			if id == "" || len(id) > MaxLineageEntry {
				t.Fatalf("name %q kept", id)
			}
		}
	})
}

func TestAnAnswerTooBigIsRefused(t *testing.T) {
	_, err := readLineageReply(resp.NewReader(bufio.NewReader(strings.NewReader("*2000\r\n"))))
	assert.Error(t, err)
	_, err = readLineageReply(resp.NewReader(bufio.NewReader(strings.NewReader("*1\r\n$100000\r\n"))))
	assert.Error(t, err)
	_, err = readLineageReply(resp.NewReader(bufio.NewReader(strings.NewReader("*1\r\n*1\r\n$3\r\na/1\r\n"))))
	assert.Error(t, err, "nested arrays")
	v, err := readLineageReply(resp.NewReader(bufio.NewReader(strings.NewReader(string(AppendLineage(nil, []string{"a/1"}))))))
	require.NoError(t, err, "a flat answer is read")
	assert.Equal(t, []string{"a/1"}, ParseLineage(v))
}
