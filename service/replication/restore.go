package replication

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/replicad/terraform-provider-redis/internal/resp"
	"github.com/replicad/terraform-provider-redis/service/databases"
)

// rawValueLimit: during a full load, a key whose RDB encoding takes at most
// this many bytes is written whole with RESTORE, which the destination loads
// as it loads an RDB (several times cheaper than replaying the value as
// commands); bigger keys are written in chunks of commands, so memory stays
// bounded whatever the biggest key.
const rawValueLimit = 256 << 10

// rdbVersion returns the newest RDB version the destination reads: the one
// it writes in the footer of DUMP, asked of the generation key that every
// loaded destination holds in the checkpoint database. 0 (RESTORE unused)
// when it cannot tell.
func (w *destWriter) rdbVersion(ctx context.Context) (int, error) {
	w.buf = resp.AppendCommandStrings(w.buf[:0], "SELECT", strconv.Itoa(databases.CheckpointDB))
	w.buf = resp.AppendCommandStrings(w.buf, "DUMP", generationKey)
	w.buf = resp.AppendCommandStrings(w.buf, "SELECT", "0")
	defer func() { w.buf = w.buf[:0] }()
	w.deadline(ctx)
	if _, err := w.bw.Write(w.buf); err != nil {
		return 0, fmt.Errorf("write to destination: %w", err)
	}
	if err := w.bw.Flush(); err != nil {
		return 0, fmt.Errorf("write to destination: %w", err)
	}
	version := 0
	for i := range 3 {
		v, err := w.rd.ReadValue()
		if err != nil {
			return 0, fmt.Errorf("read reply from destination: %w", err)
		}
		if v.IsError() {
			return 0, fmt.Errorf("destination refused DUMP: %s", v.Str)
		}
		// The payload ends with the 2-byte version and the 8-byte CRC64.
		if i == 1 && !v.Null && len(v.Str) >= 11 {
			version = int(binary.LittleEndian.Uint16(v.Str[len(v.Str)-10:]))
		}
	}
	return version, nil
}
