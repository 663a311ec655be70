package rdb

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestCRC64Jones(t *testing.T) {
	// Check value of CRC-64/Jones as used by Redis (crc64.c's self test).
	if got := crc64Update(0, []byte("123456789")); got != 0xe9c6d914c4b8d9ca {
		t.Fatalf("crc64 = %016x", got)
	}
	// The slicing-by-8 path must agree with byte-at-a-time for any split.
	data := []byte(strings.Repeat("The quick brown fox jumps over the lazy dog. ", 7))
	var slow uint64
	for _, b := range data {
		slow = crcTables[0][byte(slow)^b] ^ slow>>8
	}
	for split := range len(data) {
		if got := crc64Update(crc64Update(0, data[:split]), data[split:]); got != slow {
			t.Fatalf("split %d: %016x != %016x", split, got, slow)
		}
	}
}

func TestLZF(t *testing.T) {
	inputs := []string{
		"a",
		strings.Repeat("a", 1000),
		strings.Repeat("abcdefgh", 300),
		"hello hello hello world world world, hello world!",
		strings.Repeat("0123456789", 2000) + strings.Repeat("x", 9000) + "tail",
	}
	for _, in := range inputs {
		c := testLZFCompress([]byte(in))
		out, err := lzfDecompress([]byte("prefix"), c, len(in))
		if err != nil {
			t.Fatalf("decompress %d bytes: %v", len(in), err)
		}
		if string(out) != "prefix"+in {
			t.Fatalf("round trip of %d bytes differs", len(in))
		}
		// Wrong announced sizes and every truncation are errors.
		if _, err := lzfDecompress(nil, c, len(in)+1); err == nil {
			t.Fatal("longer outLen accepted")
		}
		if _, err := lzfDecompress(nil, c, len(in)-1); err == nil {
			t.Fatal("shorter outLen accepted")
		}
		for i := range len(c) {
			if _, err := lzfDecompress(nil, c[:i], len(in)); err == nil {
				t.Fatalf("truncated at %d accepted", i)
			}
		}
	}
	// A back reference before the start of the output.
	if _, err := lzfDecompress(nil, []byte{0x20, 0x05}, 3); err == nil {
		t.Fatal("reference before start accepted")
	}
}

func TestStringEncodings(t *testing.T) {
	b := newBuilder(10).selectDB(0)
	b.key(rdbTypeString, "raw").str("hello")
	b.key(rdbTypeString, "i8").intStr(-5)
	b.key(rdbTypeString, "i16").intStr(-30000)
	b.key(rdbTypeString, "i32").intStr(2000000000)
	b.key(rdbTypeString, "lzf").lzfStr(strings.Repeat("redis ", 50))
	b.raw(rdbTypeString).intStr(1234).str("int-encoded key")
	b.key(rdbTypeString, "empty").str("")
	// 32-bit and 64-bit length encodings of small values are valid.
	b.raw(rdbTypeString).len32(2).raw('k', '3').len32(3).raw('a', 'b', 'c')
	b.raw(rdbTypeString).len64(2).raw('k', '6').len64(1).raw('z')
	b.raw(rdbTypeString).str("k14").length(300).raw(bytes.Repeat([]byte{'q'}, 300)...)
	got := decodeCmds(t, b.end())
	wantCmds(t, got,
		"SELECT 0",
		"SET raw hello",
		"SET i8 -5",
		"SET i16 -30000",
		"SET i32 2000000000",
		"SET lzf "+strings.Repeat("redis ", 50),
		"SET 1234 int-encoded key",
		"SET empty ",
		"SET k3 abc",
		"SET k6 z",
		"SET k14 "+strings.Repeat("q", 300),
	)
}

func TestBigStringInParts(t *testing.T) {
	val := strings.Repeat("0123456789abcdef", 3<<16) // 3 MiB
	b := newBuilder(11).selectDB(0)
	b.key(rdbTypeString, "big").str(val)
	b.key(rdbTypeString, "bigz").lzfStr(val)
	r := record(t, b.end(), WithChunkLimits(0, 1<<20))
	if r.maxPart > 1<<20 || r.maxPart < 1<<19 {
		t.Fatalf("part of %d bytes", r.maxPart)
	}
	for _, k := range r.keys {
		if string(k.str) != val {
			t.Fatalf("%s: reassembled value differs (%d bytes)", k.meta.Key, len(k.str))
		}
	}
	got := decodeCmds(t, newBuilder(11).key(rdbTypeString, "s").str(strings.Repeat("x", 25)).end(), WithChunkLimits(0, 10))
	wantCmds(t, got, "SELECT 0", "SET s xxxxxxxxxx", "APPEND s xxxxxxxxxx", "APPEND s xxxxx")
}

func TestExpiryAndKeyMeta(t *testing.T) {
	b := newBuilder(10).aux("redis-ver", "7.0.15").selectDB(0).resizeDB(3, 2)
	b.expireMs(1893456000123).key(rdbTypeString, "ms").str("v")
	b.expireSec(1893456000).key(rdbTypeString, "sec").str("v")
	b.raw(opIdle).length(42).raw(opFreq, 7).key(rdbTypeString, "lru").str("v")
	b.selectDB(3).raw(opSlotInfo).length(5).length(10).length(1)
	b.key(rdbTypeList, "db3").length(1).str("x")
	payload := b.end()
	got := decodeCmds(t, payload)
	wantCmds(t, got,
		"SELECT 0",
		"SET ms v", "PEXPIREAT ms 1893456000123",
		"SET sec v", "PEXPIREAT sec 1893456000000",
		"SET lru v",
		"SELECT 3",
		"RPUSH db3 x",
	)
	r := record(t, payload)
	if r.aux["redis-ver"] != "7.0.15" || len(r.resize) != 1 || r.resize[0] != [2]uint64{3, 2} {
		t.Fatalf("aux %v resize %v", r.aux, r.resize)
	}
	if len(r.slotInfo) != 1 || r.slotInfo[0] != [3]uint64{5, 10, 1} {
		t.Fatalf("slot info %v", r.slotInfo)
	}
	lru := r.keys[2].meta
	if lru.IdleSec != 42 || lru.Freq != 7 || lru.ExpireAtMs != 0 {
		t.Fatalf("lru meta %+v", lru)
	}
	if m := r.keys[0].meta; m.IdleSec != -1 || m.Freq != -1 || m.ExpireAtMs != 1893456000123 {
		t.Fatalf("ms meta %+v", m)
	}
	if m := r.keys[3].meta; m.DB != 3 || m.Type != TypeList || m.Encoding != rdbTypeList {
		t.Fatalf("db3 meta %+v", m)
	}
}

func TestListEncodings(t *testing.T) {
	ints := []any{0, 12, 13, -1, 127, -128, 200, -30000, 1 << 20, -(1 << 22), 1 << 30, int64(-1) << 40, int64(math.MaxInt64)}
	strs := []any{"a", strings.Repeat("m", 100), strings.Repeat("L", 17000)}
	all := append(append([]any{}, ints...), strs...)
	want := "RPUSH l 0 12 13 -1 127 -128 200 -30000 1048576 -4194304 1073741824 -1099511627776 9223372036854775807 a " +
		strings.Repeat("m", 100) + " " + strings.Repeat("L", 17000)

	cases := map[string][]byte{
		"ziplist":   newBuilder(9).key(rdbTypeListZiplist, "l").blob(ziplist(all...)).end(),
		"quicklist": newBuilder(9).key(rdbTypeListQuicklist, "l").length(2).blob(ziplist(ints...)).blob(ziplist(strs...)).end(),
		"quicklist2": newBuilder(10).key(rdbTypeListQuicklist2, "l").length(3).
			length(qlContainerPacked).blob(listpack(ints...)).
			length(qlContainerPacked).blob(listpack(strs[:2]...)).
			length(qlContainerPlain).str(strs[2].(string)).end(),
		"plain": newBuilder(9).key(rdbTypeList, "l").length(uint64(len(all))).do(func(b *rdbBuilder) {
			for _, e := range all {
				switch v := e.(type) {
				case string:
					b.str(v)
				case int:
					b.intStr(int64(v))
				case int64:
					b.str(itoa(v))
				}
			}
		}).end(),
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			got := decodeCmds(t, payload)
			wantCmds(t, got, "SELECT 0", want)
		})
	}
}

func (b *rdbBuilder) do(f func(*rdbBuilder)) *rdbBuilder { f(b); return b }

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func TestSetEncodings(t *testing.T) {
	got := decodeCmds(t, newBuilder(9).
		key(rdbTypeSetIntset, "i16").blob(intset(2, -3, 7, 30000)).
		key(rdbTypeSetIntset, "i32").blob(intset(4, -70000, 1, 2000000000)).
		key(rdbTypeSetIntset, "i64").blob(intset(8, math.MinInt64, 0, 1<<40)).
		key(rdbTypeSetListpack, "lp").blob(listpack("x", 5, "yy", -4000)).
		key(rdbTypeSet, "ht").length(2).str("a").intStr(9).
		end())
	wantCmds(t, got, "SELECT 0",
		"SADD i16 -3 7 30000",
		"SADD i32 -70000 1 2000000000",
		"SADD i64 -9223372036854775808 0 1099511627776",
		"SADD lp x 5 yy -4000",
		"SADD ht a 9")
	if _, err := tryDecodeCmds(newBuilder(9).key(rdbTypeSetIntset, "bad").blob(intset(3, 1)).end()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad intset width: %v", err)
	}
}

func TestZSetEncodings(t *testing.T) {
	b := newBuilder(9)
	b.key(rdbTypeZSetZiplist, "zl").blob(ziplist("a", 1, "b", "2.5", "c", "inf", "d", "-inf", "e", int64(-7000000000)))
	b.key(rdbTypeZSetListpack, "lp").blob(listpack("a", "0.1", "b", 3, "c", "1e+300"))
	b.key(rdbTypeZSet2, "z2").length(3).str("m1").raw(binaryDouble(0.1)...).str("m2").raw(binaryDouble(math.Inf(-1))...).
		str("m3").raw(binaryDouble(-0.0000123)...)
	b.key(rdbTypeZSet, "z1").length(3).str("x").raw(3, '1', '.', '5').str("y").raw(254).str("z").raw(255)
	got := decodeCmds(t, b.end())
	wantCmds(t, got, "SELECT 0",
		"ZADD zl 1 a 2.5 b inf c -inf d -7e+09 e",
		"ZADD lp 0.1 a 3 b 1e+300 c",
		"ZADD z2 0.1 m1 -inf m2 -1.23e-05 m3",
		"ZADD z1 1.5 x inf y -inf z",
	)
	// NaN scores decode but cannot be written.
	nan := newBuilder(9).key(rdbTypeZSet, "n").length(1).str("x").raw(253).end()
	r := record(t, nan)
	if !math.IsNaN(r.keys[0].zset[0].Score) {
		t.Fatal("NaN score not decoded")
	}
	if _, err := tryDecodeCmds(nan); err == nil || !strings.Contains(err.Error(), "NaN") {
		t.Fatalf("NaN score written: %v", err)
	}
}

func binaryDouble(f float64) []byte {
	u := math.Float64bits(f)
	return []byte{byte(u), byte(u >> 8), byte(u >> 16), byte(u >> 24), byte(u >> 32), byte(u >> 40), byte(u >> 48), byte(u >> 56)}
}

func TestScoresRoundTrip(t *testing.T) {
	for _, f := range []float64{0.1, 1.0 / 3, -2.5e-300, math.MaxFloat64, math.SmallestNonzeroFloat64, 123456789012345678, -0.0} {
		s := string(appendScore(nil, f))
		back, err := parseScore([]byte(s))
		if err != nil || math.Float64bits(back) != math.Float64bits(f) {
			t.Fatalf("%v formatted %q parsed back %v (%v)", f, s, back, err)
		}
	}
}

func TestHashEncodings(t *testing.T) {
	b := newBuilder(9)
	b.key(rdbTypeHashZipmap, "zm").blob(zipmap(2, "f1", "v1", "f2", strings.Repeat("V", 300)))
	b.key(rdbTypeHashZiplist, "zl").blob(ziplist("a", "1", "b", 2, "c", int64(1)<<50))
	b.key(rdbTypeHashListpack, "lp").blob(listpack("a", "x", "n", -1))
	b.key(rdbTypeHash, "ht").length(2).str("f").str("v").intStr(7).lzfStr(strings.Repeat("ab", 40))
	got := decodeCmds(t, b.end())
	wantCmds(t, got, "SELECT 0",
		"HSET zm f1 v1 f2 "+strings.Repeat("V", 300),
		"HSET zl a 1 b 2 c 1125899906842624",
		"HSET lp a x n -1",
		"HSET ht f v 7 "+strings.Repeat("ab", 40),
	)
}

// Redis 7.4 (RDB 12) hashes with field expiration.
func TestHashFieldExpiry(t *testing.T) {
	const t1, t2 = 1900000000000, 1900000005000
	b := newBuilder(12)
	// GA listpack-ex: min expiry first, then triples (absolute ms, 0 = none).
	b.key(rdbTypeHashListpackEx, "lpx").millis(t1).blob(listpack("a", "1", int64(t1), "b", "2", int64(t1), "c", "3", int64(t2), "d", "4", 0))
	// Pre-GA listpack-ex: no min expiry.
	b.key(rdbTypeHashListpackExPreG, "lpx0").blob(listpack("a", "1", int64(t2)))
	// GA metadata: min expiry, then per field ttl relative to it (+1), 0 = none.
	b.key(rdbTypeHashMetadata, "md").millis(t1).length(3).
		length(1).str("a").str("1").
		length(t2 - t1 + 1).str("b").str("2").
		length(0).str("c").str("3")
	// Pre-GA metadata: absolute ttl.
	b.key(rdbTypeHashMetadataPreGA, "md0").length(2).length(t2).str("a").str("1").length(0).str("b").str("2")
	b.expireMs(1950000000000).key(rdbTypeHashMetadata, "mdx").millis(t1).length(1).length(1).str("a").str("1")
	got := decodeCmds(t, b.end())
	wantCmds(t, got, "SELECT 0",
		"HSET lpx a 1 b 2 c 3 d 4",
		"HPEXPIREAT lpx 1900000000000 FIELDS 2 a b",
		"HPEXPIREAT lpx 1900000005000 FIELDS 1 c",
		"HSET lpx0 a 1",
		"HPEXPIREAT lpx0 1900000005000 FIELDS 1 a",
		"HSET md a 1 b 2 c 3",
		"HPEXPIREAT md 1900000000000 FIELDS 1 a",
		"HPEXPIREAT md 1900000005000 FIELDS 1 b",
		"HSET md0 a 1 b 2",
		"HPEXPIREAT md0 1900000005000 FIELDS 1 a",
		"HSET mdx a 1",
		"HPEXPIREAT mdx 1900000000000 FIELDS 1 a",
		"PEXPIREAT mdx 1950000000000",
	)
	bad := newBuilder(12).key(rdbTypeHashListpackEx, "x").millis(t1).blob(listpack("a", "1", "notanumber")).end()
	if _, err := tryDecodeCmds(bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad ttl: %v", err)
	}
}

func TestFunctionsAndScripts(t *testing.T) {
	code := "#!lua name=lib\nredis.register_function('f', function() return 1 end)"
	got := decodeCmds(t, newBuilder(10).aux("lua", "return 1").raw(opFunction2).str(code).end())
	wantCmds(t, got, "SCRIPT LOAD return 1", "FUNCTION LOAD REPLACE "+code)
	_, err := tryDecodeCmds(newBuilder(10).raw(opFunctionPreGA).str("x").end())
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("pre-GA function: %v", err)
	}
}

func TestModuleTypesAreErrors(t *testing.T) {
	// Module ID: 9-char name in the top 54 bits, encoding version in the low 10.
	id := moduleID("ReJSON-RL", 3)
	_, err := tryDecodeCmds(newBuilder(10).selectDB(2).key(rdbTypeModule2, "doc").length(id).raw(5, 0).end())
	var ute *UnsupportedTypeError
	if !errors.As(err, &ute) || ute.Module != "ReJSON-RL" || string(ute.Key) != "doc" || ute.DB != 2 || !errors.Is(err, ErrUnsupported) {
		t.Fatalf("module value: %v", err)
	}
	if !strings.Contains(err.Error(), `"doc"`) || !strings.Contains(err.Error(), "ReJSON-RL") {
		t.Fatalf("error does not name key and module: %v", err)
	}
	if _, err := tryDecodeCmds(newBuilder(10).key(rdbTypeModulePreGA, "old").end()); !errors.As(err, &ute) || ute.RDBType != 6 {
		t.Fatalf("pre-GA module value: %v", err)
	}
	// Module AUX data with content needs the module; an empty one is fine.
	withData := newBuilder(10).raw(opModuleAux).length(id).length(moduleOpcodeUint).length(2).length(moduleOpcodeUint).length(1).length(0).end()
	if _, err := tryDecodeCmds(withData); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "ReJSON-RL") {
		t.Fatalf("module aux: %v", err)
	}
	empty := newBuilder(10).raw(opModuleAux).length(id).length(moduleOpcodeUint).length(2).length(moduleOpcodeEOF).key(0, "k").str("v").end()
	wantCmds(t, decodeCmds(t, empty), "SELECT 0", "SET k v")
}

func moduleID(name string, ver uint64) uint64 {
	const charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var id uint64
	for _, c := range []byte(name) {
		id = id<<6 | uint64(strings.IndexByte(charset, c))
	}
	return id<<10 | ver
}

func TestUnknownTypeIsError(t *testing.T) {
	for _, typ := range []byte{8, 26, 100, 243} {
		_, err := tryDecodeCmds(newBuilder(12).selectDB(1).key(typ, "mystery").str("x").end())
		var ute *UnsupportedTypeError
		if !errors.As(err, &ute) || ute.RDBType != typ || string(ute.Key) != "mystery" {
			t.Fatalf("type %d: %v", typ, err)
		}
		if !strings.Contains(err.Error(), "mystery") || !strings.Contains(err.Error(), itoa(int64(typ))) {
			t.Fatalf("type %d: error does not name key and type: %v", typ, err)
		}
	}
}

func TestHeaderAndChecksum(t *testing.T) {
	valid := newBuilder(10).key(rdbTypeString, "k").str("v").end()
	if _, err := tryDecodeCmds(valid); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(valid)
	bad[len(bad)-1] ^= 1
	if _, err := tryDecodeCmds(bad); !errors.Is(err, ErrChecksum) {
		t.Fatalf("bad checksum: %v", err)
	}
	if _, err := tryDecodeCmds(bad, WithChecksum(false)); err != nil {
		t.Fatalf("unverified checksum: %v", err)
	}
	// A flipped payload byte is caught by the checksum too.
	flipped := bytes.Clone(valid)
	flipped[len(flipped)-10] = 'w' // the value "v"
	if _, err := tryDecodeCmds(flipped); !errors.Is(err, ErrChecksum) {
		t.Fatalf("flipped byte: %v", err)
	}
	// A zero checksum means "not computed".
	if _, err := tryDecodeCmds(newBuilder(10).key(rdbTypeString, "k").str("v").endNoChecksum()); err != nil {
		t.Fatalf("zero checksum: %v", err)
	}
	for _, p := range []string{"REDIS0013", "RODIS0010", "REDISxxxx", "REDIS0000"} {
		if _, err := tryDecodeCmds([]byte(p + "\xff" + strings.Repeat("\x00", 8))); err == nil {
			t.Fatalf("header %q accepted", p)
		}
	}
	if _, err := tryDecodeCmds(nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("empty input: %v", err)
	}
}

func TestDoesNotReadPastEnd(t *testing.T) {
	payload := newBuilder(10).key(rdbTypeString, "k").str("v").end()
	for _, size := range []int{16, 4096} {
		br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(payload), strings.NewReader("+CONTINUE\r\n")), size)
		d := NewDecoder(br)
		if err := d.Decode(context.Background(), newRecorder()); err != nil {
			t.Fatal(err)
		}
		if d.Offset() != int64(len(payload)) || d.Version() != 10 {
			t.Fatalf("offset %d of %d, version %d", d.Offset(), len(payload), d.Version())
		}
		rest, _ := io.ReadAll(br)
		if string(rest) != "+CONTINUE\r\n" {
			t.Fatalf("bytes after the payload: %q", rest)
		}
	}
}

func TestHugeLengthsDoNotAllocate(t *testing.T) {
	cases := map[string][]byte{
		"string 1GiB":   newBuilder(10).key(rdbTypeString, "k").length(1 << 30).raw('x').end(),
		"string 2^60":   newBuilder(10).key(rdbTypeString, "k").len64(1 << 60).raw('x').end(),
		"element 400M":  newBuilder(10).key(rdbTypeList, "k").length(1).length(400 << 20).raw('x').end(),
		"lzf 400M":      newBuilder(10).key(rdbTypeString, "k").raw(0xc3).length(4).length(400<<20).raw(0, 'a', 0xe0, 0xff).end(),
		"list count":    newBuilder(10).key(rdbTypeList, "k").len64(1 << 62).str("x").end(),
		"pel count":     newBuilder(10).key(rdbTypeStreamListpacks2, "k").length(0).do(func(b *rdbBuilder) { b.raw(make([]byte, 8)...) }).length(0).length(1).str("g").length(0).length(0).length(0).len64(1 << 50).end(),
		"quicklist len": newBuilder(10).key(rdbTypeListQuicklist2, "k").len64(1 << 62).end(),
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			var err error
			mem := measureAlloc(func() { _, err = tryDecodeCmds(payload) })
			if err == nil {
				t.Fatal("accepted")
			}
			if mem > 8<<20 {
				t.Fatalf("allocated %d bytes for a tiny payload (err %v)", mem, err)
			}
		})
	}
}

// Decoding must fail cleanly, not panic or hang, wherever the input stops.
func TestTruncationEverywhere(t *testing.T) {
	payload := richPayload()
	if _, err := tryDecodeCmds(payload); err != nil {
		t.Fatalf("full payload: %v", err)
	}
	for i := range len(payload) {
		_, err := tryDecodeCmds(payload[:i], WithChunkLimits(3, 64))
		if err == nil {
			t.Fatalf("truncated at %d of %d: no error", i, len(payload))
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated at %d: unexpected error kind: %v", i, err)
		}
	}
}

func TestContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	w := NewCommandWriter(func(cmd [][]byte) error {
		if n++; n == 3 {
			cancel()
		}
		return nil
	})
	err := NewDecoder(bytes.NewReader(bigZSetPayload(5000)), WithChunkLimits(100, 0)).Decode(ctx, w)
	if !errors.Is(err, context.Canceled) || n > 4 {
		t.Fatalf("after cancel: %v, %d commands", err, n)
	}
	// A handler error stops decoding and is returned wrapped.
	boom := errors.New("boom")
	err = NewDecoder(bytes.NewReader(richPayload())).Decode(context.Background(), NewCommandWriter(func([][]byte) error { return boom }))
	if !errors.Is(err, boom) {
		t.Fatalf("handler error: %v", err)
	}
	if err := NewDecoder(bytes.NewReader(richPayload())).Decode(context.Background(), newRecorder()); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeTwice(t *testing.T) {
	d := NewDecoder(bytes.NewReader(richPayload()))
	if err := d.Decode(context.Background(), newRecorder()); err != nil {
		t.Fatal(err)
	}
	if err := d.Decode(context.Background(), newRecorder()); err == nil {
		t.Fatal("second Decode accepted")
	}
}

func TestCorruptBlobs(t *testing.T) {
	lp := listpack("a", "b", 5)
	zl := ziplist("a", "b", 5)
	mut := func(p []byte, i int, v byte) []byte { p = bytes.Clone(p); p[i] = v; return p }
	cases := map[string][]byte{
		"lp total":       newBuilder(10).key(rdbTypeSetListpack, "k").blob(mut(lp, 0, 99)).end(),
		"lp terminator":  newBuilder(10).key(rdbTypeSetListpack, "k").blob(mut(lp, len(lp)-1, 0)).end(),
		"lp count":       newBuilder(10).key(rdbTypeSetListpack, "k").blob(mut(lp, 4, 7)).end(),
		"lp backlen":     newBuilder(10).key(rdbTypeSetListpack, "k").blob(mut(lp, 8, 9)).end(),
		"lp encoding":    newBuilder(10).key(rdbTypeSetListpack, "k").blob(mut(lp, 6, 0xf7)).end(),
		"zl prevlen":     newBuilder(9).key(rdbTypeListZiplist, "k").blob(mut(zl, 13, 9)).end(),
		"zl encoding":    newBuilder(9).key(rdbTypeListZiplist, "k").blob(mut(zl, 11, 0xc5)).end(),
		"zl tail":        newBuilder(9).key(rdbTypeListZiplist, "k").blob(mut(zl, 4, 12)).end(),
		"odd hash":       newBuilder(10).key(rdbTypeHashListpack, "k").blob(listpack("a", "b", "c")).end(),
		"odd zset":       newBuilder(10).key(rdbTypeZSetListpack, "k").blob(listpack("a")).end(),
		"bad score":      newBuilder(10).key(rdbTypeZSetListpack, "k").blob(listpack("a", "x1")).end(),
		"ql container":   newBuilder(10).key(rdbTypeListQuicklist2, "k").length(1).length(3).blob(lp).end(),
		"ql empty plain": newBuilder(10).key(rdbTypeListQuicklist2, "k").length(1).length(1).str("").end(),
		"length byte":    newBuilder(10).key(rdbTypeString, "k").raw(0x85).end(),
		"zipmap":         newBuilder(9).key(rdbTypeHashZipmap, "k").blob([]byte{1, 3, 'a'}).end(),
	}
	for name, p := range cases {
		if _, err := tryDecodeCmds(p); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		} else if !strings.Contains(err.Error(), `"k"`) && name != "length byte" {
			t.Errorf("%s: error does not name the key: %v", name, err)
		}
	}
}

func TestChunkLimits(t *testing.T) {
	const n = 200000
	r := record(t, bigZSetPayload(n), WithChunkLimits(1000, 0))
	if r.maxChunk > 1000 || len(r.keys[0].zset) != n || r.chunks < n/1000 {
		t.Fatalf("max chunk %d, %d chunks, %d members", r.maxChunk, r.chunks, len(r.keys[0].zset))
	}
	for i, m := range r.keys[0].zset {
		if m.Score != float64(i)/4 || string(m.Member) != "member:"+itoa(int64(i)) {
			t.Fatalf("member %d = %q %v", i, m.Member, m.Score)
		}
	}
	// The byte limit closes chunks too.
	b := newBuilder(10).key(rdbTypeList, "l").length(100)
	for range 100 {
		b.str(strings.Repeat("x", 1000))
	}
	r = record(t, b.end(), WithChunkLimits(1000, 10000))
	if r.maxChunk > 10 || len(r.keys[0].elems) != 100 {
		t.Fatalf("byte-limited chunks: max %d elements, %d total", r.maxChunk, len(r.keys[0].elems))
	}
}

func bigZSetPayload(n int) []byte {
	b := newBuilder(10).selectDB(0).key(rdbTypeZSet2, "big").length(uint64(n))
	for i := range n {
		b.str("member:" + itoa(int64(i))).raw(binaryDouble(float64(i) / 4)...)
	}
	return b.end()
}

// richPayload has one key of every encoding (used by the truncation test,
// the fuzz seeds and the benchmark).
func richPayload() []byte {
	b := newBuilder(12).aux("redis-ver", "7.4.0").aux("redis-bits", "64").raw(opFunction2).str("#!lua name=l\nreturn 1")
	b.selectDB(0).resizeDB(20, 1)
	b.expireMs(1900000000000).key(rdbTypeString, "s").str("value")
	b.key(rdbTypeString, "lzf").lzfStr(strings.Repeat("abc", 30))
	b.key(rdbTypeString, "int").intStr(-1234567)
	b.key(rdbTypeList, "list").length(2).str("a").intStr(3)
	b.key(rdbTypeListZiplist, "zl").blob(ziplist("a", 1, 300, "bbb"))
	b.key(rdbTypeListQuicklist, "ql").length(1).blob(ziplist("x", 5))
	b.key(rdbTypeListQuicklist2, "ql2").length(2).length(2).blob(listpack("p", 7)).length(1).str("plain")
	b.key(rdbTypeSet, "set").length(2).str("a").str("b")
	b.key(rdbTypeSetIntset, "is").blob(intset(2, 1, 2, 3))
	b.key(rdbTypeSetListpack, "slp").blob(listpack("a", 1))
	b.key(rdbTypeZSet, "z1").length(1).str("m").raw(1, '2')
	b.key(rdbTypeZSet2, "z2").length(1).str("m").raw(binaryDouble(2.5)...)
	b.key(rdbTypeZSetZiplist, "zzl").blob(ziplist("m", "1.5"))
	b.key(rdbTypeZSetListpack, "zlp").blob(listpack("m", 3))
	b.key(rdbTypeHash, "h").length(1).str("f").str("v")
	b.key(rdbTypeHashZipmap, "hzm").blob(zipmap(1, "f", "v"))
	b.key(rdbTypeHashZiplist, "hzl").blob(ziplist("f", "v"))
	b.key(rdbTypeHashListpack, "hlp").blob(listpack("f", "v"))
	b.selectDB(1)
	b.key(rdbTypeHashListpackEx, "hlpx").millis(1900000000000).blob(listpack("f", "v", int64(1900000000000), "g", "w", 0))
	b.key(rdbTypeHashMetadata, "hmd").millis(1900000000000).length(2).length(1).str("f").str("v").length(0).str("g").str("w")
	writeTestStream(b, rdbTypeStreamListpacks3, "st")
	return b.end()
}
