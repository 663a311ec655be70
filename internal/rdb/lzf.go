package rdb

import "errors"

// errLZF reports compressed data that does not decode to the announced size.
var errLZF = errors.New("corrupt LZF data")

// lzfDecompress appends the LZF decompression of in to dst and returns it.
// The result must be exactly outLen bytes long. The output grows as data is
// produced (rather than being preallocated to outLen) so a forged outLen
// cannot make us allocate memory the input does not justify.
//
// LZF (liblzf, as used by Redis) is a sequence of control bytes:
//
//	000LLLLL                  a literal run of L+1 bytes follows
//	LLLooooo oooooooo         back reference, length L+2 (L in 1..6)
//	111ooooo LLLLLLLL oooooooo back reference, length L+9
//
// where the offset o+1 counts backwards from the current output end.
func lzfDecompress(dst, in []byte, outLen int) ([]byte, error) {
	base := len(dst)
	limit := base + outLen
	if outLen < 0 || limit < base {
		return dst, errLZF
	}
	// Most Redis payloads compress 2-5x: reserve that much up front.
	if want := min(outLen, 4*len(in)+16); cap(dst)-len(dst) < want {
		n := make([]byte, len(dst), len(dst)+want)
		copy(n, dst)
		dst = n
	}
	ip := 0
	for ip < len(in) {
		ctrl := int(in[ip])
		ip++
		if ctrl < 1<<5 {
			run := ctrl + 1
			if ip+run > len(in) || len(dst)+run > limit {
				return dst, errLZF
			}
			dst = append(dst, in[ip:ip+run]...)
			ip += run
			continue
		}
		length := ctrl >> 5
		if length == 7 {
			if ip >= len(in) {
				return dst, errLZF
			}
			length += int(in[ip])
			ip++
		}
		if ip >= len(in) {
			return dst, errLZF
		}
		ref := len(dst) - (ctrl&0x1f)<<8 - int(in[ip]) - 1
		ip++
		length += 2
		if ref < base || len(dst)+length > limit {
			return dst, errLZF
		}
		// The reference may overlap the bytes being written (run-length
		// style), so copy forward one byte at a time when it does.
		if ref+length <= len(dst) {
			dst = append(dst, dst[ref:ref+length]...)
		} else {
			for i := range length {
				dst = append(dst, dst[ref+i])
			}
		}
	}
	if len(dst) != limit {
		return dst, errLZF
	}
	return dst, nil
}
