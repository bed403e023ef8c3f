package codec

import (
	"encoding/base64"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// Kind is the kind of a decoded value.
type Kind uint8

// Value kinds.
const (
	KindNull Kind = iota
	KindBool
	KindInt
	KindFloat
	KindString
	KindBinary
	KindDecimal
	KindDate
	KindTimestamp
	KindJSON
)

var kindNames = [...]string{"null", "bool", "int", "float", "string", "binary", "decimal", "date", "timestamp", "json"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is one column value. It is a small tagged union (32 bytes) rather
// than an interface so a decoded row is one flat slice with no per-value
// allocation: numbers live in num, text and bytes in str (often a substring
// of the record, which the decoder copies once).
type Value struct {
	kind  Kind
	scale int32  // decimal scale
	num   uint64 // bool (0/1), int64, float64 bits, days, ms
	str   string // string, binary bytes, JSON text, decimal unscaled big-endian two's complement
}

// Null is the null value.
func Null() Value { return Value{} }

// Bool returns a boolean value.
func Bool(b bool) Value {
	v := Value{kind: KindBool}
	if b {
		v.num = 1
	}
	return v
}

// Int returns an integer value.
func Int(i int64) Value { return Value{kind: KindInt, num: uint64(i)} }

// Float returns a double value.
func Float(f float64) Value { return Value{kind: KindFloat, num: math.Float64bits(f)} }

// String returns a text value.
func String(s string) Value { return Value{kind: KindString, str: s} }

// Binary returns a byte string value; b is copied.
func Binary(b []byte) Value { return Value{kind: KindBinary, str: string(b)} }

// BinaryString returns a byte string value holding s's bytes. s is not
// copied: a decoder that borrows the record's memory passes a substring of
// it without allocating.
func BinaryString(s string) Value { return Value{kind: KindBinary, str: s} }

// JSON returns a value holding JSON text (a nested object or array).
func JSON(text string) Value { return Value{kind: KindJSON, str: text} }

// Date returns a date value, in days since 1970-01-01.
func Date(days int32) Value { return Value{kind: KindDate, num: uint64(int64(days))} }

// Timestamp returns a timestamp value in milliseconds since the epoch, UTC.
func Timestamp(ms int64) Value { return Value{kind: KindTimestamp, num: uint64(ms)} }

// Decimal returns an exact decimal unscaled×10^-scale. unscaled is the
// big-endian two's complement encoding (Kafka Connect's Decimal bytes); it
// is copied.
func Decimal(unscaled []byte, scale int32) Value {
	return Value{kind: KindDecimal, scale: scale, str: string(trimTwos(unscaled))}
}

// DecimalFromInt64 returns an exact decimal unscaled×10^-scale without
// allocating beyond the value's few bytes.
func DecimalFromInt64(unscaled int64, scale int32) Value {
	return Value{kind: KindDecimal, scale: scale, str: int64Twos(unscaled)}
}

// DecimalFromBig returns an exact decimal unscaled×10^-scale.
func DecimalFromBig(unscaled *big.Int, scale int32) Value {
	return Value{kind: KindDecimal, scale: scale, str: string(bigToTwos(unscaled))}
}

// Kind returns the value's kind.
func (v Value) Kind() Kind { return v.kind }

// IsNull reports whether v is null.
func (v Value) IsNull() bool { return v.kind == KindNull }

// Bool returns the boolean of a KindBool value.
func (v Value) Bool() bool { return v.num != 0 }

// Int returns the integer of a KindInt value. Dates and timestamps are
// integers too: Int returns their days or milliseconds, as Days and Millis
// do, so a column of any integer kind is read without a switch.
func (v Value) Int() int64 { return int64(v.num) }

// Float returns the double of a KindFloat value.
func (v Value) Float() float64 { return math.Float64frombits(v.num) }

// Str returns the text of a KindString or KindJSON value, or the bytes of
// a KindBinary value as a string.
func (v Value) Str() string { return v.str }

// Days returns the days since the epoch of a KindDate value.
func (v Value) Days() int32 { return int32(int64(v.num)) }

// Millis returns the milliseconds since the epoch of a KindTimestamp value.
func (v Value) Millis() int64 { return int64(v.num) }

// Scale returns the scale of a KindDecimal value.
func (v Value) Scale() int32 { return v.scale }

// Unscaled returns the unscaled integer of a KindDecimal value.
func (v Value) Unscaled() *big.Int { return twosToBig([]byte(v.str)) }

// UnscaledInt64 returns the unscaled integer of a KindDecimal value when it
// fits an int64 (always for a precision up to 18), without allocating.
func (v Value) UnscaledInt64() (int64, bool) { return twosInt64(v.str) }

// PutUnscaled writes the unscaled integer of a KindDecimal value into b as
// big-endian two's complement, sign-extended to fill b: Parquet's
// FIXED_LEN_BYTE_ARRAY decimal. b must be long enough for the value, as
// it is for the decimal's precision when the value fits that precision
// (see Coerce).
func (v Value) PutUnscaled(b []byte) {
	fill := byte(0)
	if len(v.str) > 0 && v.str[0]&0x80 != 0 {
		fill = 0xff
	}
	n := len(b) - len(v.str)
	for i := range b[:n] {
		b[i] = fill
	}
	copy(b[n:], v.str)
}

// Equal reports whether two values are identical (same kind, same content;
// decimals compare by kind, scale and unscaled value, floats bitwise).
func (v Value) Equal(o Value) bool {
	return v.kind == o.kind && v.num == o.num && v.str == o.str && v.scale == o.scale
}

// Text returns the value as text: what a string column stores when a value
// of another kind is written into it.
func (v Value) Text() string {
	switch v.kind {
	case KindNull:
		return ""
	case KindBool:
		return strconv.FormatBool(v.Bool())
	case KindInt:
		return strconv.FormatInt(v.Int(), 10)
	case KindFloat:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case KindString, KindJSON:
		return v.str
	case KindBinary:
		return base64.StdEncoding.EncodeToString([]byte(v.str))
	case KindDecimal:
		return formatDecimal(v.Unscaled(), v.scale)
	case KindDate:
		return time.Unix(int64(v.Days())*86400, 0).UTC().Format("2006-01-02")
	case KindTimestamp:
		return time.UnixMilli(v.Millis()).UTC().Format("2006-01-02T15:04:05.000Z")
	}
	return ""
}

// GoString makes test failures readable.
func (v Value) GoString() string {
	if v.kind == KindNull {
		return "null"
	}
	return v.kind.String() + "(" + strconv.Quote(v.Text()) + ")"
}

// formatDecimal renders unscaled×10^-scale in plain decimal notation.
func formatDecimal(u *big.Int, scale int32) string {
	if scale <= 0 {
		if scale < 0 {
			u = new(big.Int).Mul(u, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(-scale)), nil))
		}
		return u.String()
	}
	neg := u.Sign() < 0
	digits := new(big.Int).Abs(u).String()
	for len(digits) <= int(scale) {
		digits = "0" + digits
	}
	out := digits[:len(digits)-int(scale)] + "." + digits[len(digits)-int(scale):]
	if neg {
		out = "-" + out
	}
	return out
}

// trimTwos removes redundant sign bytes from a two's complement encoding.
func trimTwos(b []byte) []byte {
	for len(b) > 1 && ((b[0] == 0 && b[1]&0x80 == 0) || (b[0] == 0xff && b[1]&0x80 != 0)) {
		b = b[1:]
	}
	return b
}

func twosToBig(b []byte) *big.Int {
	u := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		u.Sub(u, new(big.Int).Lsh(big.NewInt(1), uint(len(b))*8))
	}
	return u
}

func bigToTwos(u *big.Int) []byte {
	if u.Sign() >= 0 {
		b := u.Bytes()
		if len(b) == 0 || b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		return b
	}
	// For negative n, two's complement is 2^(8k) + n with k large enough.
	n := (u.BitLen() + 8) / 8
	m := new(big.Int).Lsh(big.NewInt(1), uint(n)*8)
	m.Add(m, u)
	b := m.Bytes()
	for len(b) < n {
		b = append([]byte{0}, b...)
	}
	return trimTwos(b)
}

// twosInt64 returns the decimal's unscaled value as int64 when it fits.
func twosInt64(s string) (int64, bool) {
	if len(s) > 8 {
		return 0, false
	}
	var x int64
	if len(s) > 0 && s[0]&0x80 != 0 {
		x = -1
	}
	for i := 0; i < len(s); i++ {
		x = x<<8 | int64(s[i])
	}
	return x, true
}

// int64Twos returns the minimal two's complement encoding of x.
func int64Twos(x int64) string {
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = byte(x)
		x >>= 8
	}
	return string(trimTwos(b[:]))
}

// Compare orders two non-null values of the same kind, as a column of
// their type orders them (see Coerce): numbers, dates and timestamps by
// value, decimals of one scale by unscaled value, strings and bytes
// bytewise.
func (v Value) Compare(o Value) int {
	switch v.kind {
	case KindInt, KindDate, KindTimestamp:
		x, y := int64(v.num), int64(o.num)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case KindFloat:
		x, y := v.Float(), o.Float()
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case KindDecimal:
		x, okx := twosInt64(v.str)
		y, oky := twosInt64(o.str)
		if okx && oky {
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		}
		return v.Unscaled().Cmp(o.Unscaled())
	}
	return strings.Compare(v.str, o.str)
}
