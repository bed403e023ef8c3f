package cdc

import (
	"errors"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/evodb/sink/codec"
)

// scanner is a minimal, strict JSON tokenizer over one record. The record
// is converted to a string once; strings without escapes are returned as
// substrings of it, so decoding a row costs one copy of the record instead
// of one allocation per value. It validates the syntax of everything it
// reads, including skipped nested values, so JSON text kept in a column is
// always valid JSON.
//
// Invalid UTF-8 is refused wherever the decoder keeps text: a string value
// or name (str), and nested JSON stored as text (keep). A string column
// must hold valid UTF-8 (strict Parquet readers refuse other bytes), and
// rewriting the bytes would store something the source never sent, so the
// record is an error at any depth instead. Parts of a record the decoder
// skips without keeping (an envelope field it does not use) are not
// checked.
type scanner struct {
	s string
	i int
	// scratch, when not nil, is the backing array the next decoded row
	// reuses (a borrowing decode); it is used once.
	scratch []codec.Field
	// depth is the nesting depth of the value the scanner reads, for
	// maxDepth: 0 for a value read on its own, 1 for the fields of a
	// row image read inside its envelope (debezium's speculative decode).
	depth int
	// badUTF8 is set by skipValue when a string it skips is not valid
	// UTF-8 (for keep).
	badUTF8 bool
}

// newRow returns an empty row to append a decoded object's fields to.
func (p *scanner) newRow(n int) []codec.Field {
	if p.scratch != nil {
		row := p.scratch[:0]
		p.scratch = nil
		return row
	}
	return make([]codec.Field, 0, n)
}

// recordText returns the record as the scanner's text: a copy, or with
// borrow the record's own memory.
func recordText(b []byte, borrow bool) string {
	if borrow {
		return unsafe.String(unsafe.SliceData(b), len(b))
	}
	return string(b)
}

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 512

var (
	errSyntax = errors.New("invalid JSON")
	errUTF8   = errors.New("string is not valid UTF-8 (JSON text must be UTF-8): fix the producer's character encoding, or send such data as base64 bytes")
	errDepth  = errors.New("JSON nested too deeply")
)

func (p *scanner) ws() {
	// Compact JSON has no whitespace between tokens: one compare settles
	// the common case before the loop.
	if p.i < len(p.s) && p.s[p.i] > ' ' {
		return
	}
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (p *scanner) peek() byte {
	p.ws()
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *scanner) consume(c byte) bool {
	if p.peek() == c {
		p.i++
		return true
	}
	return false
}

// atEnd reports whether only whitespace remains.
func (p *scanner) atEnd() bool {
	p.ws()
	return p.i == len(p.s)
}

// object iterates over the keys of an object, calling fn with the scanner
// positioned at each value; fn must consume the value.
func (p *scanner) object(fn func(key string) error) error {
	if !p.consume('{') {
		return errSyntax
	}
	if p.consume('}') {
		return nil
	}
	for {
		if p.peek() != '"' {
			return errSyntax
		}
		key, err := p.str()
		if err != nil {
			return err
		}
		if !p.consume(':') {
			return errSyntax
		}
		p.ws()
		if err := fn(key); err != nil {
			return err
		}
		if p.consume(',') {
			continue
		}
		if p.consume('}') {
			return nil
		}
		return errSyntax
	}
}

// str reads a string token; a string that is not valid UTF-8 is errUTF8.
func (p *scanner) str() (string, error) {
	s, valid, err := p.rawStr()
	if err == nil && !valid {
		return "", errUTF8
	}
	return s, err
}

// rawStr reads a string token and reports whether it is valid UTF-8.
func (p *scanner) rawStr() (string, bool, error) {
	p.ws()
	if p.i >= len(p.s) || p.s[p.i] != '"' {
		return "", false, errSyntax
	}
	start := p.i + 1
	ascii := true
	j := start
	// Eight bytes at a time while none of them ends the fast path (a
	// quote, a backslash, a control byte) or is non-ASCII; the byte loop
	// below then classifies the byte that stopped it.
	for j+8 <= len(p.s) {
		if m := stopMask(le64(p.s, j)); m != 0 {
			j += bits.TrailingZeros64(m) >> 3
			break
		}
		j += 8
	}
	for ; j < len(p.s); j++ {
		c := p.s[j]
		switch {
		case c == '"':
			p.i = j + 1
			out := p.s[start:j]
			return out, ascii || utf8.ValidString(out), nil
		case c == '\\':
			return p.strEscaped(start)
		case c < 0x20:
			return "", false, errSyntax
		case c >= 0x80:
			ascii = false
		}
	}
	return "", false, errSyntax
}

// strEscaped is the slow path of rawStr for strings with escapes. A \u
// escape of a lone surrogate is valid JSON and becomes U+FFFD, as in
// encoding/json; only raw bytes can make the result invalid UTF-8.
func (p *scanner) strEscaped(start int) (string, bool, error) {
	// The unescaped text is never longer than the raw text, so the
	// builder is sized once, to the raw length up to the closing quote
	// (a hint: the loop below decides), and plain bytes are copied a run
	// at a time: JSON held as an escaped string, as Debezium sends
	// io.debezium.data.Json, grew the builder a byte at a time.
	end := start
	for end < len(p.s) && p.s[end] != '"' {
		if p.s[end] == '\\' {
			end++
		}
		end++
	}
	var b strings.Builder
	b.Grow(min(end, len(p.s)) - start)
	j, run := start, start // run is the first byte not yet copied
	for j < len(p.s) {
		c := p.s[j]
		switch {
		case c == '"':
			b.WriteString(p.s[run:j])
			p.i = j + 1
			out := b.String()
			return out, utf8.ValidString(out), nil
		case c < 0x20:
			return "", false, errSyntax
		case c != '\\':
			j++
			continue
		}
		b.WriteString(p.s[run:j])
		if j+1 >= len(p.s) {
			return "", false, errSyntax
		}
		e := p.s[j+1]
		j += 2
		switch e {
		case '"', '\\', '/':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, ok := hex4(p.s, j)
			if !ok {
				return "", false, errSyntax
			}
			j += 4
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4(p.s, j+2); ok && j+1 < len(p.s) && p.s[j] == '\\' && p.s[j+1] == 'u' {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						j += 6
						b.WriteRune(d)
						run = j
						continue
					}
				}
				r = utf8.RuneError
			}
			b.WriteRune(r)
		default:
			return "", false, errSyntax
		}
		run = j
	}
	return "", false, errSyntax
}

// le64 loads s[i:i+8] as a little-endian word; the caller checks bounds.
func le64(s string, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

// stopMask flags, in the top bit of each byte of w (eight bytes of a
// string, little-endian), the bytes a string scan must stop at: a quote,
// a backslash, a control byte (below 0x20) or a non-ASCII byte (0x80 and
// up). The lowest flagged byte is always the first such byte, so the
// scan jumps straight to it: the SWAR "has zero byte" tests below have no
// false negatives, and their false positives only occur above a byte
// that is itself a match (the borrow runs upwards from a true zero).
// TestStopMask checks every byte value in every position, alone and above
// other bytes, against the byte-wise definition.
func stopMask(w uint64) uint64 {
	const (
		lo = 0x0101010101010101
		hi = 0x8080808080808080
	)
	// A byte b is flagged when b < 0x20 (b - 0x20 borrows), b == '"' or
	// b == '\\' (b xor the char is zero, and zero - 1 borrows), or when b
	// itself has its top bit set.
	ctl := w - 0x20*lo
	quote := (w ^ '"'*lo) - lo
	quote &^= w ^ '"'*lo
	bslash := (w ^ '\\'*lo) - lo
	bslash &^= w ^ '\\'*lo
	return (ctl&^w | quote | bslash | w) & hi
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number reads a number token and reports whether it is an integer
// literal (no fraction, no exponent).
func (p *scanner) number() (tok string, integer bool, err error) {
	p.ws()
	start := p.i
	j := p.i
	if j < len(p.s) && p.s[j] == '-' {
		j++
	}
	if j >= len(p.s) {
		return "", false, errSyntax
	}
	if p.s[j] == '0' {
		j++
	} else if p.s[j] >= '1' && p.s[j] <= '9' {
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
	} else {
		return "", false, errSyntax
	}
	integer = true
	if j < len(p.s) && p.s[j] == '.' {
		integer = false
		j++
		d := j
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		if j == d {
			return "", false, errSyntax
		}
	}
	if j < len(p.s) && (p.s[j] == 'e' || p.s[j] == 'E') {
		integer = false
		j++
		if j < len(p.s) && (p.s[j] == '+' || p.s[j] == '-') {
			j++
		}
		d := j
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		if j == d {
			return "", false, errSyntax
		}
	}
	p.i = j
	return p.s[start:j], integer, nil
}

// literal consumes true, false or null.
func (p *scanner) literal(word string) bool {
	p.ws()
	if strings.HasPrefix(p.s[p.i:], word) {
		p.i += len(word)
		return true
	}
	return false
}

// keep consumes any value and returns its raw text to be stored: skip, and
// errUTF8 when the text is not valid UTF-8.
//
// skipValue notes a string that is not valid UTF-8 in p.badUTF8 as it
// scans it (rawStr already knows), so valid text is not read a second
// time. Invariant: text skipValue accepts is valid UTF-8 exactly when
// each of its strings is, since everything outside strings that it
// accepts is ASCII; FuzzKeep compares keep with utf8.ValidString.
func (p *scanner) keep() (string, error) {
	p.badUTF8 = false
	raw, err := p.skip()
	if err == nil && p.badUTF8 {
		return "", errUTF8
	}
	return raw, err
}

// skip consumes any value and returns its raw text, checking its syntax
// but not its encoding.
func (p *scanner) skip() (string, error) {
	p.ws()
	start := p.i
	if err := p.skipValue(p.depth); err != nil {
		return "", err
	}
	return p.s[start:p.i], nil
}

func (p *scanner) skipValue(depth int) error {
	if depth > maxDepth {
		return errDepth
	}
	switch p.peek() {
	case '{':
		return p.object(func(string) error { return p.skipValue(depth + 1) })
	case '[':
		p.i++
		if p.consume(']') {
			return nil
		}
		for {
			if err := p.skipValue(depth + 1); err != nil {
				return err
			}
			if p.consume(',') {
				continue
			}
			if p.consume(']') {
				return nil
			}
			return errSyntax
		}
	case '"':
		_, valid, err := p.rawStr()
		if !valid {
			p.badUTF8 = true
		}
		return err
	case 't':
		if p.literal("true") {
			return nil
		}
	case 'f':
		if p.literal("false") {
			return nil
		}
	case 'n':
		if p.literal("null") {
			return nil
		}
	default:
		_, _, err := p.number()
		return err
	}
	return errSyntax
}

// inferValue reads any value and infers its kind: integers that fit int64
// are ints, other numbers doubles, objects and arrays JSON text.
func (p *scanner) inferValue() (codec.Value, error) {
	switch p.peek() {
	case '"':
		s, err := p.str()
		return codec.String(s), err
	case 't':
		if p.literal("true") {
			return codec.Bool(true), nil
		}
	case 'f':
		if p.literal("false") {
			return codec.Bool(false), nil
		}
	case 'n':
		if p.literal("null") {
			return codec.Null(), nil
		}
	case '{', '[':
		raw, err := p.keep()
		return codec.JSON(raw), err
	default:
		return p.inferNumber()
	}
	return codec.Value{}, errSyntax
}

// exactDigits is the most digits a decimal may have for exactDecimal: a
// mantissa below 10^15 < 2^53 is exact in a float64, and so is 10^k for
// the at most 15 fraction digits.
const exactDigits = 15

// pow10 holds the powers of ten exactDecimal divides by.
var pow10 = [exactDigits + 1]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15}

// exactDecimal is the double nearest to ±m / 10^frac, for a decimal of at
// most exactDigits digits (m its digits as an integer, frac how many of
// them follow the point): one IEEE division of two exact operands is
// correctly rounded, the value strconv.ParseFloat returns (Clinger's fast
// path). TestInferNumberDecimals fails when exactDigits is raised to 17.
func exactDecimal(m uint64, frac int, neg bool) float64 {
	f := float64(m) / pow10[frac]
	if neg {
		f = -f
	}
	return f
}

// inferNumber reads a number as inferValue types it, converting the
// digits as it scans them: numberValue after number, without a second
// pass over the token or strconv for the common shapes.
//
// Invariant: the same value and error as numberValue(number()) for every
// input; FuzzInferNumber compares them. It relies on two exact cases:
//   - an integer of up to 19 digits accumulates in a uint64 without
//     wrapping (10^19 < 2^64), and is refused as smallInt refuses it
//     outside int64;
//   - a decimal fraction without exponent whose digits (leading zeros
//     counted) number at most exactDigits is exactDecimal's.
//
// Anything else (exponents, longer mantissas) goes through number and
// numberValue.
func (p *scanner) inferNumber() (codec.Value, error) {
	s, j := p.s, p.i
	neg := j < len(s) && s[j] == '-'
	if neg {
		j++
	}
	var (
		m      uint64
		digits int
	)
	switch {
	case j >= len(s):
		return codec.Value{}, errSyntax
	case s[j] == '0':
		j++
		digits = 1
	case s[j] >= '1' && s[j] <= '9':
		for ; j < len(s) && s[j] >= '0' && s[j] <= '9'; j++ {
			m = m*10 + uint64(s[j]-'0')
			digits++
		}
	default:
		return codec.Value{}, errSyntax
	}
	if j < len(s) && s[j] == '.' {
		j++
		d := j
		for ; j < len(s) && s[j] >= '0' && s[j] <= '9'; j++ {
			m = m*10 + uint64(s[j]-'0')
			digits++
		}
		if j == d || digits > exactDigits || (j < len(s) && (s[j] == 'e' || s[j] == 'E')) {
			return p.slowNumber()
		}
		p.i = j
		return codec.Float(exactDecimal(m, j-d, neg)), nil
	}
	if digits > 19 || (j < len(s) && (s[j] == 'e' || s[j] == 'E')) {
		return p.slowNumber()
	}
	switch {
	case !neg && m <= math.MaxInt64:
		p.i = j
		return codec.Int(int64(m)), nil
	case neg && m <= 1<<63:
		p.i = j
		return codec.Int(-int64(m)), nil // 2^63 wraps to -2^63, the minimum
	}
	return p.slowNumber()
}

// parseFloat is strconv.ParseFloat(tok, 64) with inferNumber's fast path:
// a decimal of at most exactDigits digits without exponent is
// exactDecimal's. Invariant: the same result as ParseFloat for any text
// (anything but digits and one point goes to ParseFloat);
// FuzzParseFloat compares them.
func parseFloat(tok string) (float64, error) {
	s, neg := tok, false
	if len(s) > 0 && s[0] == '-' {
		s, neg = s[1:], true
	}
	var m uint64
	digits, frac := 0, -1
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			m = m*10 + uint64(c-'0')
			digits++
			if frac >= 0 {
				frac++
			}
		case c == '.' && frac < 0:
			frac = 0
		default:
			return strconv.ParseFloat(tok, 64)
		}
	}
	if digits == 0 || digits > exactDigits {
		return strconv.ParseFloat(tok, 64)
	}
	return exactDecimal(m, max(frac, 0), neg), nil
}

// parseInt is strconv.ParseInt(tok, 10, 64) for a token number accepted
// as an integer, through smallInt first (TestSmallInt).
func parseInt(tok string) (int64, error) {
	if i, ok := smallInt(tok); ok {
		return i, nil
	}
	return strconv.ParseInt(tok, 10, 64)
}

// slowNumber is inferNumber's general path.
func (p *scanner) slowNumber() (codec.Value, error) {
	tok, integer, err := p.number()
	if err != nil {
		return codec.Value{}, err
	}
	return numberValue(tok, integer)
}

var errRange = errors.New("number out of range")

func numberValue(tok string, integer bool) (codec.Value, error) {
	if integer {
		if i, ok := smallInt(tok); ok {
			return codec.Int(i), nil
		}
		if i, err := strconv.ParseInt(tok, 10, 64); err == nil {
			return codec.Int(i), nil
		}
	}
	f, err := parseFloat(tok)
	if err != nil {
		return codec.Value{}, errRange
	}
	return codec.Float(f), nil
}

// smallInt converts an integer token that number accepted (an optional
// minus and digits) without strconv's general checks. Up to 19 digits the
// digits accumulate in a uint64 without wrapping (10^19 < 2^64), and the
// result is refused only when it is outside int64; longer tokens report
// false and go through strconv.ParseInt, which refuses them too.
// TestSmallInt compares it with ParseInt at the 18/19/20 digit and int64
// boundaries and on signs and zeros.
func smallInt(tok string) (int64, bool) {
	digits := tok
	neg := len(digits) > 0 && digits[0] == '-'
	if neg {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 19 {
		return 0, false
	}
	var x uint64
	for i := 0; i < len(digits); i++ {
		x = x*10 + uint64(digits[i]-'0')
	}
	if neg {
		if x > 1<<63 {
			return 0, false
		}
		return -int64(x), true // 2^63 wraps to -2^63, the minimum
	}
	if x > math.MaxInt64 {
		return 0, false
	}
	return int64(x), true
}
