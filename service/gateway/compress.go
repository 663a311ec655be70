package gateway

// compression is what a session was asked: level 0 is none.
type compression struct {
	level int
	codec string // replcompress.Zstd or replcompress.Deflate
}
