package confluent

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/evodb/sink/codec"
)

// ProtoEncoder writes changes as plain Protobuf records in the Confluent
// wire format, the layout Decoder reads with DefaultPlainFields: a
// message Change with op, lsn, ts and table (fields 1 to 4), then one
// field per column with presence (proto3 optional, or a well-known
// message), so a null column is an absent field. Timestamps are
// google.protobuf.Timestamp, dates google.type.Date, decimals
// confluent.type.Decimal with precision and scale in confluent.field_meta,
// JSON columns strings. It registers one schema per table and column
// layout under the subject "<topic>-<table>-value", and types null
// columns, as Encoder does; it is safe for concurrent use.
type ProtoEncoder struct{ layouts }

// NewProtoEncoder returns an encoder registering its schemas in reg.
func NewProtoEncoder(reg *Registry, topic string) *ProtoEncoder {
	e := &ProtoEncoder{}
	e.init(reg, topic, sr.TypeProtobuf)
	return e
}

// protoType is the field type of a column value kind, and the import it
// needs.
func protoType(k codec.Kind) (typ, imp string) {
	switch k {
	case codec.KindBool:
		return "optional bool", ""
	case codec.KindInt:
		return "optional int64", ""
	case codec.KindFloat:
		return "optional double", ""
	case codec.KindBinary:
		return "optional bytes", ""
	case codec.KindDecimal:
		return "confluent.type.Decimal", "confluent/type/decimal.proto"
	case codec.KindDate:
		return "google.type.Date", "google/type/date.proto"
	case codec.KindTimestamp:
		return "google.protobuf.Timestamp", "google/protobuf/timestamp.proto"
	}
	return "optional string", ""
}

// ProtoSchema returns the .proto text of ch's layout, its null columns
// typed as strings.
func ProtoSchema(ch *codec.Change) (string, error) {
	cols := make([]layoutCol, len(ch.Row))
	for i, f := range ch.Row {
		cols[i] = layoutCol{name: f.Name, kind: f.Value.Kind(), scale: f.Value.Scale(), value: f.Value}
	}
	return protoText(cols)
}

func protoText(cols []layoutCol) (string, error) {
	var body strings.Builder
	imports := map[string]bool{}
	body.WriteString("message Change {\n  string op = 1;\n  int64 lsn = 2;\n  int64 ts = 3;\n  string table = 4;\n")
	for i, c := range cols {
		if !isProtoIdent(c.name) {
			return "", fmt.Errorf("column %q is not a Protobuf field name", c.name)
		}
		typ, imp := protoType(c.kind)
		if imp != "" {
			imports[imp] = true
		}
		fmt.Fprintf(&body, "  %s %s = %d", typ, c.name, i+5)
		if c.kind == codec.KindDecimal {
			imports["confluent/meta.proto"] = true
			fmt.Fprintf(&body, ` [(confluent.field_meta) = { params: [ { key: "precision", value: "%d" }, { key: "scale", value: "%d" } ] }]`, codec.MaxDecimalPrecision, c.scale)
		}
		body.WriteString(";\n")
	}
	body.WriteString("}\n")
	var b strings.Builder
	b.WriteString("syntax = \"proto3\";\npackage evodb;\n")
	for _, imp := range []string{"confluent/meta.proto", "confluent/type/decimal.proto", "google/protobuf/timestamp.proto", "google/type/date.proto"} {
		if imports[imp] {
			fmt.Fprintf(&b, "import %q;\n", imp)
		}
	}
	b.WriteString(body.String())
	return b.String(), nil
}

func isProtoIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}

// Append appends ch as a wire-format Protobuf record to dst.
func (e *ProtoEncoder) Append(ctx context.Context, dst []byte, ch *codec.Change) ([]byte, error) {
	cols := e.kinds.layout(nil, ch)
	id, err := e.schemaID(ctx, ch, cols, protoText)
	if err != nil {
		return dst, err
	}
	var h sr.ConfluentHeader
	dst, _ = h.AppendEncode(dst, id, []int{0})
	return appendProtoChange(dst, ch, cols), nil
}

// appendProtoChange appends the Protobuf body (no header, no message
// index) of ch in the layout ProtoEncoder registers.
func appendProtoChange(dst []byte, ch *codec.Change, cols []layoutCol) []byte {
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	dst = protowire.AppendString(dst, ch.Op.String())
	dst = protowire.AppendTag(dst, 2, protowire.VarintType)
	dst = protowire.AppendVarint(dst, ch.LSN)
	dst = protowire.AppendTag(dst, 3, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(ch.TS))
	dst = protowire.AppendTag(dst, 4, protowire.BytesType)
	dst = protowire.AppendString(dst, ch.TableName())
	var sub []byte
	for i, c := range cols {
		v := c.value
		if v.IsNull() {
			continue
		}
		num := protowire.Number(i + 5)
		switch v.Kind() {
		case codec.KindBool:
			dst = protowire.AppendTag(dst, num, protowire.VarintType)
			dst = protowire.AppendVarint(dst, protowire.EncodeBool(v.Bool()))
		case codec.KindInt:
			dst = protowire.AppendTag(dst, num, protowire.VarintType)
			dst = protowire.AppendVarint(dst, uint64(v.Int()))
		case codec.KindFloat:
			dst = protowire.AppendTag(dst, num, protowire.Fixed64Type)
			dst = protowire.AppendFixed64(dst, math.Float64bits(v.Float()))
		case codec.KindBinary:
			dst = protowire.AppendTag(dst, num, protowire.BytesType)
			dst = protowire.AppendString(dst, v.Str())
		case codec.KindTimestamp:
			ms := v.Millis()
			sec := floorDiv(ms, 1000)
			sub = sub[:0]
			if sec != 0 {
				sub = protowire.AppendTag(sub, 1, protowire.VarintType)
				sub = protowire.AppendVarint(sub, uint64(sec))
			}
			if nanos := (ms - sec*1000) * 1e6; nanos != 0 {
				sub = protowire.AppendTag(sub, 2, protowire.VarintType)
				sub = protowire.AppendVarint(sub, uint64(nanos))
			}
			dst = protowire.AppendTag(dst, num, protowire.BytesType)
			dst = protowire.AppendBytes(dst, sub)
		case codec.KindDate:
			t := time.Unix(int64(v.Days())*86400, 0).UTC()
			sub = sub[:0]
			sub = protowire.AppendTag(sub, 1, protowire.VarintType)
			sub = protowire.AppendVarint(sub, uint64(t.Year()))
			sub = protowire.AppendTag(sub, 2, protowire.VarintType)
			sub = protowire.AppendVarint(sub, uint64(t.Month()))
			sub = protowire.AppendTag(sub, 3, protowire.VarintType)
			sub = protowire.AppendVarint(sub, uint64(t.Day()))
			dst = protowire.AppendTag(dst, num, protowire.BytesType)
			dst = protowire.AppendBytes(dst, sub)
		case codec.KindDecimal:
			sub = sub[:0]
			sub = protowire.AppendTag(sub, 1, protowire.BytesType)
			sub = protowire.AppendBytes(sub, twosComplement(v.Unscaled()))
			sub = protowire.AppendTag(sub, 2, protowire.VarintType)
			sub = protowire.AppendVarint(sub, codec.MaxDecimalPrecision)
			if s := v.Scale(); s != 0 {
				sub = protowire.AppendTag(sub, 3, protowire.VarintType)
				sub = protowire.AppendVarint(sub, uint64(int64(s)))
			}
			dst = protowire.AppendTag(dst, num, protowire.BytesType)
			dst = protowire.AppendBytes(dst, sub)
		default:
			dst = protowire.AppendTag(dst, num, protowire.BytesType)
			dst = protowire.AppendString(dst, v.Str())
		}
	}
	return dst
}

// twosComplement is u as big-endian two's complement, the unscaled value
// of Avro's and Confluent's decimals.
func twosComplement(u *big.Int) []byte {
	if u.Sign() >= 0 {
		return append([]byte{0}, u.Bytes()...)
	}
	// -u - 1 in ones' complement is the two's complement of u.
	m := new(big.Int).Neg(u)
	m.Sub(m, big.NewInt(1))
	b := append([]byte{0}, m.Bytes()...)
	for i := range b {
		b[i] = ^b[i]
	}
	return b
}

// ChangeEncoder writes changes in a schema-registry format; Encoder and
// ProtoEncoder are the two.
type ChangeEncoder interface {
	Append(ctx context.Context, dst []byte, ch *codec.Change) ([]byte, error)
}

var (
	_ ChangeEncoder = (*Encoder)(nil)
	_ ChangeEncoder = (*ProtoEncoder)(nil)
)

// IsEncodable reports whether NewChangeEncoder writes format f.
func IsEncodable(f codec.Format) bool { return f == FormatAvro || f == FormatProtobuf }

// NewChangeEncoder returns the encoder of format f (avro or protobuf) for
// topic, registering its schemas in reg.
func NewChangeEncoder(reg *Registry, topic string, f codec.Format) (ChangeEncoder, error) {
	switch f {
	case FormatAvro:
		return NewEncoder(reg, topic), nil
	case FormatProtobuf:
		return NewProtoEncoder(reg, topic), nil
	}
	return nil, fmt.Errorf("no encoder for format %q (want %q or %q)", f, FormatAvro, FormatProtobuf)
}
