package rdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
)

// DumpVersion returns the RDB version of a DUMP payload (what RESTORE
// takes): its 10-byte footer is the version (2 bytes, little endian) and a
// CRC64.
func DumpVersion(payload []byte) (int, bool) {
	if len(payload) < 11 {
		return 0, false
	}
	return int(binary.LittleEndian.Uint16(payload[len(payload)-10:])), true
}

// DecodeDump decodes the DUMP payload of key as the value of one key of an
// RDB of the payload's version, and hands it to h (with database 0 and no
// expiry: RESTORE's own arguments say those). It lets a server that cannot
// read a newer version's payload receive it as commands.
func DecodeDump(ctx context.Context, key, payload []byte, h Handler) error {
	version, ok := DumpVersion(payload)
	if !ok {
		return corruptf("DUMP payload of %d bytes is too short", len(payload))
	}
	if version < 1 || version > 9999 {
		return corruptf("DUMP payload version %d", version)
	}
	// An RDB holding the one key: header, type, key, value, EOF, and a zero
	// checksum (not verified). The payload's own CRC is not checked either:
	// the source verified it when it ran RESTORE.
	var b bytes.Buffer
	b.Grow(len(payload) + len(key) + 32)
	b.WriteString("REDIS")
	b.WriteString(fmt.Sprintf("%04d", version))
	b.WriteByte(payload[0]) // the type
	b.Write(appendLen(nil, uint64(len(key))))
	b.Write(key)
	b.Write(payload[1 : len(payload)-10])
	b.WriteByte(0xff) // EOF
	b.Write(make([]byte, 8))
	return NewDecoder(&b).Decode(ctx, h)
}

// appendLen appends n in RDB length encoding.
func appendLen(p []byte, n uint64) []byte {
	switch {
	case n < 1<<6:
		return append(p, byte(n))
	case n < 1<<14:
		return append(p, 0x40|byte(n>>8), byte(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(p, 0x80), uint32(n))
	default:
		return binary.BigEndian.AppendUint64(append(p, 0x81), n)
	}
}
