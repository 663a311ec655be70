package api

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Limits of a database that the service enforces, and that the provider
// checks at plan time with the same rules.
const (
	// MinMemorySize and MaxMemorySize bound memory_size (bytes), also per
	// shard for the minimum. An empty redis-server of the service uses
	// about 1 MiB, a cluster node with a replica more: below 4 MiB a
	// database refused writes while empty, or soon after.
	MinMemorySize = 4 << 20
	MaxMemorySize = 1 << 40
	// MinPort is the lowest port a database may ask for: the privileged
	// ports belong to the system, and the service often runs as root.
	MinPort = 1024
	// MaxShards bounds shards_count: each shard is a redis-server (two
	// with replication) and four ports of the range.
	MaxShards = 64
	// MinPasswordLength and MaxPasswordLength bound a database's
	// application password, in characters.
	MinPasswordLength = 8
	MaxPasswordLength = 128
)

// CheckPassword says what the service refuses in a database's application
// password: 8 to 128 characters, valid UTF-8, printable (spaces included).
// Redis takes any string, and the service stores only its hash in the
// database's files; control characters are refused because no client types
// them and a terminal that echoes them misleads. The error never shows the
// password, nor its length.
func CheckPassword(pw string) error {
	if n := utf8.RuneCountInString(pw); n < MinPasswordLength || n > MaxPasswordLength {
		return fmt.Errorf("must be %d to %d characters long", MinPasswordLength, MaxPasswordLength)
	}
	if !utf8.ValidString(pw) {
		return errors.New("must be valid UTF-8")
	}
	for _, r := range pw {
		if r != ' ' && !unicode.IsPrint(r) {
			return errors.New("may not contain control characters")
		}
	}
	return nil
}
