package rdb

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dumpOf builds a DUMP payload: type, value, version, CRC64.
func dumpOf(typ byte, value []byte, version int) []byte {
	p := append([]byte{typ}, value...)
	p = binary.LittleEndian.AppendUint16(p, uint16(version))
	return binary.LittleEndian.AppendUint64(p, crc64Update(0, p))
}

func TestDecodeDumpOfANewerVersion(t *testing.T) {
	// A string and an intset, as Redis 7.2 (RDB 11) dumps them.
	str := dumpOf(0, append([]byte{5}, "hello"...), 11)
	intset := []byte{2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 2, 0, 3, 0} // encoding 2, 3 elements
	set := dumpOf(11, append([]byte{byte(len(intset))}, intset...), 11)
	v, ok := DumpVersion(str)
	require.True(t, ok)
	assert.Equal(t, 11, v)

	for _, c := range []struct {
		payload []byte
		want    string
	}{
		{str, "DEL k|SET k hello"},
		{set, "DEL k|SADD k 1 2 3"},
	} {
		var got []string
		emit := recordCommands(&got)
		require.NoError(t, DecodeDump(context.Background(), []byte("k"), c.payload, NewCommandWriter(emit, WithReplaceKeys())))
		assert.Equal(t, c.want, strings.Join(got, "|"))
	}
	err := DecodeDump(context.Background(), []byte("k"), []byte{1, 2}, NewCommandWriter(func([][]byte) error { return nil }))
	assert.Error(t, err, "a payload too short to have a footer")
}

func TestStagingBuildsUnderATemporaryName(t *testing.T) {
	var got []string
	emit := recordCommands(&got)
	w := NewCommandWriter(emit, WithReplaceKeys(), WithStaging([]byte("tmp:")))
	require.NoError(t, DecodeDump(context.Background(), []byte("k"), dumpOf(0, append([]byte{5}, "hello"...), 11), w))
	assert.Equal(t, "DEL tmp:k|SET tmp:k hello|RENAME tmp:k k", strings.Join(got, "|"))
}

// A staged key is renamed before it is given its expiry: a destination that
// expires keys by itself (a sharded one) deletes a key whose TTL passed
// during the load at its PEXPIREAT, and a RENAME after it would fail.
func TestStagedKeyIsRenamedBeforeItsExpiry(t *testing.T) {
	var got []string
	emit := recordCommands(&got)
	w := NewCommandWriter(emit, WithReplaceKeys(), WithStaging([]byte("tmp:")))
	k := &KeyMeta{Key: []byte("k"), ExpireAtMs: 1700000000000, Type: TypeList, IdleSec: -1, Freq: -1}
	require.NoError(t, w.BeginKey(k))
	require.NoError(t, w.ListChunk(k, [][]byte{[]byte("a"), []byte("b")}))
	require.NoError(t, w.EndKey(k))
	assert.Equal(t, "DEL tmp:k|RPUSH tmp:k a b|RENAME tmp:k k|PEXPIREAT k 1700000000000", strings.Join(got, "|"))
}

// recordCommands is an emit function that appends each command but SELECT
// to got, its words joined by spaces.
func recordCommands(got *[]string) func([][]byte) error {
	return func(cmd [][]byte) error {
		var s []string
		for _, a := range cmd {
			s = append(s, string(a))
		}
		if s[0] != "SELECT" {
			*got = append(*got, strings.Join(s, " "))
		}
		return nil
	}
}
