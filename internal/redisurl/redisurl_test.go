package redisurl

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in       string
		want     Source
		redacted string
	}{
		{"redis://127.0.0.1:6379", Source{Host: "127.0.0.1", Port: 6379}, "redis://127.0.0.1:6379"},
		{"redis://:s3cr%40t@db.example:12000", Source{Host: "db.example", Port: 12000, Password: "s3cr@t"}, "redis://:xxxxx@db.example:12000"},
		{"redis://admin:p%2Fw@[::1]:7000", Source{Host: "::1", Port: 7000, Username: "admin", Password: "p/w"}, "redis://admin:xxxxx@[::1]:7000"},
		{"redis://onlypass@h:1", Source{Host: "h", Port: 1, Password: "onlypass"}, "redis://xxxxx@h:1"},
		{"rediss://u:p@h:2", Source{Host: "h", Port: 2, Username: "u", Password: "p", TLS: true}, "rediss://u:xxxxx@h:2"},
	}
	for _, c := range cases {
		got, err := Parse(c.in)
		if err != nil {
			t.Fatalf("Parse(%s): %v", c.in, err)
		}
		if got != c.want {
			t.Errorf("Parse(%s) = %+v, want %+v", c.in, got, c.want)
		}
		if r := Redact(c.in); r != c.redacted {
			t.Errorf("Redact(%s) = %s, want %s", c.in, r, c.redacted)
		}
		if strings.Contains(got.String(), got.Password) && got.Password != "" {
			t.Errorf("String() of %s shows the password", c.in)
		}
		back, err := Parse(got.URL())
		if err != nil || back != got {
			t.Errorf("round trip of %s via %s = %+v, %v", c.in, Redact(got.URL()), back, err)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, in := range []string{
		"", " redis://h:1", "http://h:1", "redis://h", "redis://:pw@h", "redis://h:0", "redis://h:70000",
		"redis://h:1/0", "redis://h:1?db=2", "redis://:topsecret@h:1#x", "redis:///", "not a url at all",
		"redis://u:pa%0Ass@h:1", "redis://" + strings.Repeat("h", 254) + ":1",
		// Hosts no resolver looks up, whose bytes would reach labels and logs.
		"redis://a%FF:1", "redis://h%C3%A9:1", `redis://<b>"x':1`, "redis://a$b:1", "redis://:topsecret@a%FF:1",
	} {
		_, err := Parse(in)
		if err == nil {
			t.Errorf("Parse(%q) accepted", in)
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) error %v does not wrap ErrInvalid", in, err)
		}
		if strings.Contains(err.Error(), "topsecret") || strings.Contains(err.Error(), "pa\nss") {
			t.Errorf("Parse(%q) error shows the password: %v", in, err)
		}
	}
}

func TestRedactMalformed(t *testing.T) {
	for in, want := range map[string]string{
		"redis://user:top%zzsecret@host:1": "redis://xxxxx@host:1",
		"user:topsecret@host":              "xxxxx@host",
		// An unencoded '#', '?' or '/' after digits: Go reads ":42" as
		// the host and port, and the rest as a fragment, query or path.
		"redis://:42#TOPSECRET@127.0.0.1:23811": "redis://xxxxx@127.0.0.1:23811",
		"redis://:42?TOPSECRET@127.0.0.1:23811": "redis://xxxxx@127.0.0.1:23811",
		"redis://:42/TOPSECRET@127.0.0.1:23811": "redis://xxxxx@127.0.0.1:23811",
		"redis://h:1?password=TOPSECRET":        "redis://h:1/xxxxx",
		"redis://h:1#TOPSECRET":                 "redis://h:1/xxxxx",
		"TOPSECRET://h:1":                       "xxxxx://h:1",
		// Not a URL: perhaps a password given by mistake.
		"TOPSECRET":      "xxxxx",
		"plain text":     "xxxxx",
		"localhost:6379": "localhost:6379",
		// No host: what follows the scheme is the user and password.
		"redis://:mypassword":      "redis://xxxxx",
		"redis://default:secret":   "redis://xxxxx",
		"redis://default:12345678": "redis://xxxxx",
		"redis://user:pass%zz":     "redis://xxxxx",
		"redis://h:6379":           "redis://h:6379",
		"redis://pw:@host:1":       "redis://xxxxx@host:1",
		"":                         "",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"redis://:pw@h:1", "redis://u:p%40@[::1]:2", "rediss://x@y:3", "redis://%zz@h:1", "redis://h:1/x?y#z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		s, err := Parse(raw)
		r := Redact(raw)
		if err != nil {
			return
		}
		if len(s.Password) >= 4 && strings.Contains(r, s.Password) && !strings.Contains(s.Host, s.Password) && !strings.Contains(s.Username, s.Password) {
			t.Fatalf("Redact(%q) = %q shows the password", raw, r)
		}
		back, err := Parse(s.URL())
		if err != nil {
			t.Fatalf("Parse(URL()) of %q: %v", raw, err)
		}
		if back != s {
			t.Fatalf("round trip of %q: %+v != %+v", raw, back, s)
		}
	})
}

// A refused host says what would be accepted: an IPv6 address with a zone
// is an IP address (the error said it was not one), and a name in letters
// beyond ASCII has an xn-- form that is.
func TestParseSaysWhyAHostIsRefused(t *testing.T) {
	for in, want := range map[string]string{
		"redis://[fe80::1%25eth0]:6379":         "an IPv6 address with a zone (%eth0) is not supported",
		"redis://:topsecret@[fe80::1%252]:6379": "an IPv6 address with a zone (%2) is not supported",
		"redis://b%C3%BCcher.example:6379":      "its xn-- form",
	} {
		_, err := Parse(in)
		require.ErrorIs(t, err, ErrInvalid, in)
		assert.Contains(t, err.Error(), want, in)
		assert.NotContains(t, err.Error(), "topsecret", in)
	}
	_, err := Parse("redis://a%FF:1")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "xn--", "bytes that are no letters have no xn-- form")
}
