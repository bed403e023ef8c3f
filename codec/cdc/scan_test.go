package cdc

import (
	"encoding/json"
	"math"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
)

// stopsString is the byte-wise definition plainWord answers for eight
// bytes at once.
func stopsString(c byte) bool { return c == '"' || c == '\\' || c < 0x20 || c >= 0x80 }

// firstStop is the byte-wise definition of stopMask's lowest flag: the
// index of the first byte a string scan stops at, 8 if none.
func firstStop(b [8]byte) int {
	for i, c := range b {
		if stopsString(c) {
			return i
		}
	}
	return 8
}

// TestStopMask checks stopMask's lowest flag against the byte-wise
// definition for every byte value in every position of a word of plain
// bytes, and with every byte value below it, where the SWAR test's borrow
// flags bytes that are not stops (which must never come first).
func TestStopMask(t *testing.T) {
	first := func(b [8]byte) int {
		m := stopMask(le64(string(b[:]), 0))
		if m == 0 {
			return 8
		}
		return bits.TrailingZeros64(m) >> 3
	}
	for pos := range 8 {
		for c := range 256 {
			b := [8]byte{'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'}
			b[pos] = byte(c)
			require.Equal(t, firstStop(b), first(b), "byte %#x at %d", c, pos)
			for low := range pos {
				for d := range 256 {
					b2 := b
					b2[low] = byte(d)
					require.Equal(t, firstStop(b2), first(b2), "byte %#x at %d above %#x at %d", c, pos, d, low)
				}
			}
		}
	}
}

// TestStringScanWords decodes strings long enough for the word loop, with
// each kind of stop byte at every offset: the word loop must hand every
// one of them to the byte loop.
func TestStringScanWords(t *testing.T) {
	for n := range 24 {
		for _, stop := range []string{`\"`, `\\`, `\n`, "é", "\x01", "\xff"} {
			body := strings.Repeat("x", n) + stop + strings.Repeat("y", 9)
			p := scanner{s: `"` + body + `"`}
			got, valid, err := p.rawStr()
			switch stop {
			case "\x01":
				require.ErrorIs(t, err, errSyntax, "control byte at %d", n)
				continue
			case "\xff":
				require.NoError(t, err)
				require.False(t, valid, "invalid UTF-8 at %d", n)
				continue
			}
			require.NoError(t, err)
			require.True(t, valid)
			want, err := strconv.Unquote(`"` + body + `"`)
			require.NoError(t, err)
			require.Equal(t, want, got, "stop %q at %d", stop, n)
			require.Equal(t, len(p.s), p.i)
		}
	}
}

// TestSmallInt compares smallInt with strconv.ParseInt on tokens number
// accepts, at the int64 boundaries and the 19-digit limit its uint64
// accumulator needs (a 20-digit token could wrap it), and shows that a
// token it refuses falls back to a double in numberValue.
func TestSmallInt(t *testing.T) {
	for _, tok := range []string{"0", "-0", "7", "-7", "999999999999999999", "-999999999999999999", "100000000000000000", "12345",
		"9223372036854775807", "-9223372036854775808", "-9223372036854775807", "1000000000000000000", "-1000000000000000000"} {
		got, ok := smallInt(tok)
		require.True(t, ok, tok)
		want, err := strconv.ParseInt(tok, 10, 64)
		require.NoError(t, err)
		require.Equal(t, want, got, tok)
	}
	// Outside int64 at 19 digits, and 20 digits, which a uint64 would wrap.
	for _, tok := range []string{"9223372036854775808", "-9223372036854775809", "9999999999999999999", "-9999999999999999999",
		"18446744073709551616", "10000000000000000000", ""} {
		_, ok := smallInt(tok)
		require.False(t, ok, tok)
		_, err := strconv.ParseInt(tok, 10, 64)
		require.Error(t, err, tok)
	}
	// The 19-digit value a digit loop without the limit would wrap.
	v, err := numberValue("9999999999999999999", true)
	require.NoError(t, err)
	require.Equal(t, 1e19, v.Float())
	v, err = numberValue("-9223372036854775808", true)
	require.NoError(t, err)
	require.Equal(t, int64(-9223372036854775808), v.Int())
}

// FuzzStrEscaped compares the scanner's strings with encoding/json's on any
// quoted text both accept: the escaped path copies plain bytes a run at a
// time into a builder sized from a pre-scan, which must not change a byte.
func FuzzStrEscaped(f *testing.F) {
	for _, s := range []string{
		`"a\"b"`, `"\\"`, `"x\/y"`, `"\b\f\n\r\t"`, `"\u00e9t\u00C9"`, `"\ud83d\ude80 rocket"`,
		`"lone \ud800 surrogate"`, `"\ud800\u0041"`, `"{\"k\":12,\"t\":[\"a\"]}"`, `"` + strings.Repeat(`ab\"`, 40) + `"`,
		`"tail\\`, `"\u12"`, `"é\"ü"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, quoted string) {
		p := scanner{s: quoted}
		got, valid, err := p.rawStr()
		var want string
		jerr := json.Unmarshal([]byte(quoted), &want)
		if err != nil || !valid || !utf8.ValidString(quoted) {
			return // refused, or raw invalid UTF-8, which encoding/json rewrites
		}
		rest := strings.TrimLeft(quoted[p.i:], " \t\n\r")
		if jerr != nil {
			if rest == "" {
				t.Fatalf("scanner accepted %q, encoding/json: %v", quoted, jerr)
			}
			return // bytes after the string, which the scanner leaves
		}
		if rest != "" {
			t.Fatalf("scanner stopped at %d of %q", p.i, quoted)
		}
		require.Equal(t, want, got, "%q", quoted)
	})
}

// numberCases are the shapes inferNumber converts itself and the edges
// where it must hand over to the general path.
var numberCases = []string{
	"0", "-0", "0.0", "-0.0", "7", "-7", "12.25", "-12.25", "0.05", "1.5e3", "1E-2", "-2.5e+10",
	"123456789012345", "1234567890.12345", "12345678901.12345", "0.123456789012345", "0.1234567890123456",
	"999999999999999.9", "9007199254740993.5", "9223372036854775807", "-9223372036854775808",
	"9223372036854775808", "-9223372036854775809", "9999999999999999999", "18446744073709551616",
	"123456789012345678901234567890", "1.7976931348623157e308", "1e400", "-1e400", "4.9e-324",
	"01", "-", "-a", "1.", ".5", "1e", "1e+", "2.5,", "3}", "17 ", "100000000000000.5",
}

// FuzzInferNumber compares inferNumber with the general path it replaces
// (number, then numberValue) on any text after the whitespace inferValue
// skips: the same kind, the same bits, the same error and the same
// position after the token.
func FuzzInferNumber(f *testing.F) {
	for _, s := range numberCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fast := scanner{s: s}
		fast.peek() // as inferValue calls it
		got, gerr := fast.inferNumber()
		slow := scanner{s: s}
		want, werr := slow.slowNumber()
		if gerr != werr {
			t.Fatalf("%q: error %v, general path %v", s, gerr, werr)
		}
		if gerr != nil {
			return
		}
		if got.Kind() != want.Kind() || got.Int() != want.Int() || fast.i != slow.i {
			t.Fatalf("%q: %v (%v, bits %x) at %d, general path %v (%v, bits %x) at %d",
				s, got, got.Kind(), got.Int(), fast.i, want, want.Kind(), want.Int(), slow.i)
		}
	})
}

// TestInferNumberDecimals compares inferNumber's and parseFloat's fast path
// with strconv.ParseFloat on random decimals of every length it takes itself
// (1 to 15 digits, any split between integer and fraction) and one more.
func TestInferNumberDecimals(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for n := range 200_000 {
		digits := 2 + n%15 // 2..16 digits, the integer part at least one
		frac := 1 + rng.IntN(digits-1)
		b := make([]byte, 0, 20)
		if rng.IntN(2) == 0 {
			b = append(b, '-')
		}
		for i := range digits {
			if i == digits-frac {
				b = append(b, '.')
			}
			c := byte('0' + rng.IntN(10))
			if i == 0 && digits-frac > 1 && c == '0' {
				c = '1' // no leading zero before more integer digits
			}
			b = append(b, c)
		}
		tok := string(b)
		p := scanner{s: tok}
		v, err := p.inferNumber()
		require.NoError(t, err, tok)
		want, err := strconv.ParseFloat(tok, 64)
		require.NoError(t, err, tok)
		require.Equal(t, codec.KindFloat, v.Kind(), tok)
		require.Equal(t, math.Float64bits(want), math.Float64bits(v.Float()), tok)
		require.Equal(t, len(tok), p.i, tok)
		pf, err := parseFloat(tok)
		require.NoError(t, err, tok)
		require.Equal(t, math.Float64bits(want), math.Float64bits(pf), tok)
	}
}

// FuzzKeep compares keep, which learns the text's UTF-8 validity from its
// strings as it skips them, with skip followed by utf8.ValidString.
func FuzzKeep(f *testing.F) {
	for _, s := range []string{
		`{"k":12,"t":["a"]}`, `["Zürich","東京"]`, "[\"\xff\"]", "{\"a\":\"\xc3\"}", `{"a":"\u00e9\n"}`,
		"[\"\xc3\\n\"]", "{\"\xff\":1}", `[1,{"b":[true,null,"x"]}]`, `{"a":`, "[\"ok\",\"\xe2\x82\"]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := scanner{s: s}
		got, gerr := p.keep()
		q := scanner{s: s}
		want, werr := q.skip()
		if werr == nil && !utf8.ValidString(want) {
			want, werr = "", errUTF8
		}
		if gerr != werr || got != want || p.i != q.i && werr == nil {
			t.Fatalf("%q: keep %q, %v; skip and check %q, %v", s, got, gerr, want, werr)
		}
	})
}

// FuzzParseFloat compares parseFloat with strconv.ParseFloat on any text:
// the same bits, and an error exactly when ParseFloat has one.
func FuzzParseFloat(f *testing.F) {
	for _, s := range numberCases {
		f.Add(s)
	}
	for _, s := range []string{"", ".", "-.", ".5", "5.", "1.2.3", "+1", "1_0", "0x1p-2", "Inf", "-NaN", "00012.50"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, gerr := parseFloat(s)
		want, werr := strconv.ParseFloat(s, 64)
		if (gerr == nil) != (werr == nil) || math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%q: %v (%x), %v; ParseFloat %v (%x), %v", s, got, math.Float64bits(got), gerr, want, math.Float64bits(want), werr)
		}
	})
}
