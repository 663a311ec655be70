package bench

import (
	"fmt"
	"math/rand/v2"
	"strconv"
)

// pool is random printable bytes; values are slices of it.
var pool = func() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	return b
}()

func randBytes(r *rand.Rand, n int) []byte {
	off := r.IntN(len(pool) - n)
	return pool[off : off+n]
}

// size draws a length: mostly small, sometimes medium, rarely large.
func size(r *rand.Rand, small, medium, large [2]int) int {
	p := r.IntN(100)
	switch {
	case p < 70:
		return small[0] + r.IntN(small[1]-small[0])
	case p < 95:
		return medium[0] + r.IntN(medium[1]-medium[0])
	}
	return large[0] + r.IntN(large[1]-large[0])
}

// elems draws a collection size: 99% small (a listpack or intset in Redis),
// 1% big enough to be a real hash table, skiplist or quicklist.
func elems(r *rand.Rand, small, big [2]int) int {
	if r.IntN(100) == 0 {
		return big[0] + r.IntN(big[1]-big[0])
	}
	return small[0] + r.IntN(small[1]-small[0])
}

// mixedGen writes keys [from, to) of the mixed dataset: 40% strings (10%
// of them with an expiry, 20% integers), 15% hashes, 15% lists, 10% sets
// (half of integers), 15% sorted sets, 5% streams (20% with a consumer
// group). The content of key i depends only on i.
func mixedGen(from, to int) gen {
	i := from
	var args [][]byte
	var num []byte
	return func(dst []byte) ([]byte, int) {
		if i >= to {
			return dst, 0
		}
		r := rand.New(rand.NewPCG(uint64(i), 7))
		id := strconv.Itoa(i)
		i++
		n := 0
		num = num[:0]
		numArg := func(v int64) []byte {
			s := len(num)
			num = strconv.AppendInt(num, v, 10)
			return num[s:len(num):len(num)]
		}
		p := r.IntN(100)
		switch {
		case p < 40:
			key := []byte("str:" + id)
			var v []byte
			if r.IntN(5) == 0 {
				v = numArg(r.Int64N(1 << 40))
			} else {
				v = randBytes(r, size(r, [2]int{8, 100}, [2]int{100, 1000}, [2]int{1000, 8000}))
			}
			args = append(args[:0], []byte("SET"), key, v)
			if r.IntN(10) == 0 {
				args = append(args, []byte("PX"), numArg(86_400_000+r.Int64N(86_400_000)))
			}
			dst = appendCmd(dst, args...)
			n++
		case p < 55:
			args = append(args[:0], []byte("HSET"), []byte("hash:"+id))
			for j := range elems(r, [2]int{2, 30}, [2]int{200, 1000}) {
				args = append(args, numArg(int64(j)), randBytes(r, 8+r.IntN(56)))
			}
			dst = appendCmd(dst, args...)
			n++
		case p < 70:
			args = append(args[:0], []byte("RPUSH"), []byte("list:"+id))
			for range elems(r, [2]int{2, 50}, [2]int{500, 2000}) {
				args = append(args, randBytes(r, 8+r.IntN(56)))
			}
			dst = appendCmd(dst, args...)
			n++
		case p < 80:
			args = append(args[:0], []byte("SADD"), []byte("set:"+id))
			ints := r.IntN(2) == 0
			for range elems(r, [2]int{2, 30}, [2]int{200, 1000}) {
				if ints {
					args = append(args, numArg(r.Int64N(1<<40)))
				} else {
					args = append(args, randBytes(r, 8+r.IntN(24)))
				}
			}
			dst = appendCmd(dst, args...)
			n++
		case p < 95:
			args = append(args[:0], []byte("ZADD"), []byte("zset:"+id))
			for range elems(r, [2]int{2, 50}, [2]int{200, 1000}) {
				s := len(num)
				num = strconv.AppendFloat(num, r.Float64()*1000, 'g', -1, 64)
				args = append(args, num[s:len(num):len(num)], randBytes(r, 8+r.IntN(24)))
			}
			dst = appendCmd(dst, args...)
			n++
		default:
			key := []byte("stream:" + id)
			for range 2 + r.IntN(18) {
				dst = appendCmd(dst, []byte("XADD"), key, []byte("*"), []byte("user"), randBytes(r, 8), []byte("event"), randBytes(r, 16+r.IntN(48)))
				n++
			}
			if r.IntN(5) == 0 {
				dst = appendCmd(dst, []byte("XGROUP"), []byte("CREATE"), key, []byte("readers"), []byte("0"))
				n++
			}
		}
		return dst, n
	}
}

// zsetGen writes one sorted set of members members, 500 per ZADD.
func zsetGen(key string, members int) gen {
	i := 0
	r := rand.New(rand.NewPCG(3, 4))
	var args [][]byte
	var num []byte
	return func(dst []byte) ([]byte, int) {
		if i >= members {
			return dst, 0
		}
		args = append(args[:0], []byte("ZADD"), []byte(key))
		num = num[:0]
		for j := 0; j < 500 && i < members; j++ {
			s := len(num)
			num = strconv.AppendFloat(num, r.Float64()*1e6, 'g', -1, 64)
			score := num[s:len(num):len(num)]
			s = len(num)
			num = append(num, "member:"...)
			num = strconv.AppendInt(num, int64(i), 10)
			args = append(args, score, num[s:len(num):len(num)])
			i++
		}
		return appendCmd(dst, args...), 1
	}
}

// streamGen is the saturating (or paced) write load: over a bounded key
// space, 50% SET of 16-64 bytes, 20% HSET of one of 10 fields, 10% INCR,
// 10% SADD of one of 100 members, 10% ZADD of one of 100 members, so the
// dataset stays bounded however long it runs.
func streamGen(seed uint64, keys int) gen {
	r := rand.New(rand.NewPCG(seed, 9))
	var num []byte
	var k []byte
	return func(dst []byte) ([]byte, int) {
		num = num[:0]
		k = k[:0]
		p := r.IntN(10)
		id := r.IntN(keys)
		switch {
		case p < 5:
			k = strconv.AppendInt(append(k, "s:"...), int64(id), 10)
			dst = appendCmd(dst, []byte("SET"), k, randBytes(r, 16+r.IntN(48)))
		case p < 7:
			k = strconv.AppendInt(append(k, "h:"...), int64(id), 10)
			num = strconv.AppendInt(append(num, 'f'), int64(r.IntN(10)), 10)
			dst = appendCmd(dst, []byte("HSET"), k, num, randBytes(r, 16))
		case p < 8:
			k = strconv.AppendInt(append(k, "c:"...), int64(id), 10)
			dst = appendCmd(dst, []byte("INCR"), k)
		case p < 9:
			k = strconv.AppendInt(append(k, "t:"...), int64(id), 10)
			num = strconv.AppendInt(append(num, 'm'), int64(r.IntN(100)), 10)
			dst = appendCmd(dst, []byte("SADD"), k, num)
		default:
			k = strconv.AppendInt(append(k, "z:"...), int64(id), 10)
			num = strconv.AppendInt(num, int64(r.IntN(1000)), 10)
			s := len(num)
			num = strconv.AppendInt(append(num, 'm'), int64(r.IntN(100)), 10)
			dst = appendCmd(dst, []byte("ZADD"), k, num[:s], num[s:])
		}
		return dst, 1
	}
}

// words of the JSON-like documents: the vocabulary of a typical
// application's records, so that the text compresses as such data does.
var words = []string{"active", "pending", "shipped", "delivered", "cancelled", "returned", "standard", "express",
	"premium", "basic", "gold", "silver", "north", "south", "east", "west", "warehouse", "store", "online",
	"mobile", "desktop", "tablet", "credit", "debit", "paypal", "voucher", "red", "blue", "green", "black",
	"white", "small", "medium", "large", "cotton", "leather", "steel", "wood", "organic", "refurbished",
	"the", "customer", "asked", "for", "a", "delivery", "before", "noon", "please", "leave", "parcel", "at",
	"door", "gift", "wrap", "with", "card", "call", "on", "arrival", "fragile", "handle", "care"}

var cities = []string{"Paris", "Berlin", "Madrid", "Rome", "Lisbon", "Dublin", "Vienna", "Prague", "Warsaw",
	"Amsterdam", "Brussels", "Stockholm", "Oslo", "Helsinki", "Copenhagen", "Athens", "Budapest", "Zurich"}

// jsonGen writes keys [from, to) of the JSON-like dataset: one string per
// key, an order record of 300 B to 2 KB (field names repeated in every
// record, values from a small vocabulary, numbers, dates and ids), the
// kind of value that compression is meant for. The content of key i depends
// only on i.
func jsonGen(from, to int) gen {
	i := from
	var v []byte
	return func(dst []byte) ([]byte, int) {
		if i >= to {
			return dst, 0
		}
		r := rand.New(rand.NewPCG(uint64(i), 11))
		id := i
		i++
		pick := func(l []string) string { return l[r.IntN(len(l))] }
		v = append(v[:0], `{"id":`...)
		v = strconv.AppendInt(v, int64(id), 10)
		v = append(v, `,"customer":{"id":"cus_`...)
		v = strconv.AppendInt(v, int64(r.IntN(1_000_000)), 36)
		v = append(v, `","email":"user`...)
		v = strconv.AppendInt(v, int64(r.IntN(1_000_000)), 10)
		v = append(v, `@example.com","city":"`...)
		v = append(v, pick(cities)...)
		v = append(v, `","tier":"`...)
		v = append(v, pick(words[8:12])...)
		v = append(v, `"},"status":"`...)
		v = append(v, pick(words[:6])...)
		v = append(v, `","created_at":"2025-`...)
		v = fmt.Appendf(v, "%02d-%02dT%02d:%02d:%02dZ", 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60))
		v = append(v, `","channel":"`...)
		v = append(v, pick(words[16:22])...)
		v = append(v, `","payment":{"method":"`...)
		v = append(v, pick(words[22:26])...)
		v = append(v, `","currency":"EUR"},"items":[`...)
		for j := range 1 + r.IntN(12) {
			if j > 0 {
				v = append(v, ',')
			}
			v = append(v, `{"sku":"SKU-`...)
			v = strconv.AppendInt(v, int64(10000+r.IntN(90000)), 10)
			v = append(v, `","name":"`...)
			v = append(v, pick(words[26:32])...)
			v = append(v, ' ')
			v = append(v, pick(words[32:40])...)
			v = append(v, `","quantity":`...)
			v = strconv.AppendInt(v, int64(1+r.IntN(5)), 10)
			v = append(v, `,"unit_price":`...)
			v = strconv.AppendFloat(v, float64(r.IntN(100_000))/100, 'f', 2, 64)
			v = append(v, '}')
		}
		v = append(v, `],"note":"`...)
		for j := range r.IntN(20) {
			if j > 0 {
				v = append(v, ' ')
			}
			v = append(v, pick(words[40:])...)
		}
		v = append(v, `"}`...)
		return appendCmd(dst, []byte("SET"), []byte("order:"+strconv.Itoa(id)), v), 1
	}
}
