package rdb

// Redis checksums RDB files with CRC-64/Jones: polynomial 0xad93d23594c935a9,
// reflected input and output, initial value 0, no final xor. Go's hash/crc64
// only ships the ISO and ECMA polynomials, so the table is built here.
//
// The update uses slicing-by-8 (eight 256-entry tables) because the checksum
// runs over every byte of the payload and byte-at-a-time was the decoder's
// largest cost on big strings.

// crcJonesReflected is 0xad93d23594c935a9 with its bits reversed.
const crcJonesReflected = 0x95ac9329ac4bc9b5

var crcTables = buildCRCTables()

func buildCRCTables() *[8][256]uint64 {
	t := new([8][256]uint64)
	for i := range 256 {
		crc := uint64(i)
		for range 8 {
			if crc&1 == 1 {
				crc = crc>>1 ^ crcJonesReflected
			} else {
				crc >>= 1
			}
		}
		t[0][i] = crc
	}
	for i := range 256 {
		crc := t[0][i]
		for k := 1; k < 8; k++ {
			crc = t[0][crc&0xff] ^ crc>>8
			t[k][i] = crc
		}
	}
	return t
}

// crc64Update extends crc (as Redis's crc64(crc, p, len)) with p.
func crc64Update(crc uint64, p []byte) uint64 {
	t := crcTables
	for len(p) >= 8 {
		crc ^= uint64(p[0]) | uint64(p[1])<<8 | uint64(p[2])<<16 | uint64(p[3])<<24 |
			uint64(p[4])<<32 | uint64(p[5])<<40 | uint64(p[6])<<48 | uint64(p[7])<<56
		crc = t[7][crc&0xff] ^ t[6][crc>>8&0xff] ^ t[5][crc>>16&0xff] ^ t[4][crc>>24&0xff] ^
			t[3][crc>>32&0xff] ^ t[2][crc>>40&0xff] ^ t[1][crc>>48&0xff] ^ t[0][crc>>56]
		p = p[8:]
	}
	for _, b := range p {
		crc = t[0][byte(crc)^b] ^ crc>>8
	}
	return crc
}
