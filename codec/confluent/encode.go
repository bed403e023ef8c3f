package confluent

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/evodb/sink/codec"
)

// Encoder writes changes as plain Avro records in the Confluent wire
// format, the layout Decoder reads with DefaultPlainFields: op, lsn, ts and
// table fields, then one nullable field per column. It registers one
// schema per table and column layout under the subject
// "<topic>-<table>-value", so tables of one topic evolve independently.
// It is for producers of test and benchmark workloads; it is safe for
// concurrent use.
//
// A null value carries no type, yet its field needs one: the Encoder
// declares it with the type of the column's latest non-null value, and
// leaves out a column that has been null in every change of its table so
// far (it reads as null all the same). Declaring such nulls as strings
// instead would make the table's column a string and then refuse the
// column's first number.
type Encoder struct {
	reg   *Registry
	topic string

	mu struct {
		sync.Mutex
		ids   map[string]int          // layout signature → schema ID
		types map[[2]string]valueType // table, column → type of its latest non-null value
	}
}

// valueType is what the Avro type of a column depends on.
type valueType struct {
	kind  codec.Kind
	scale int32
}

// NewEncoder returns an encoder registering its schemas in reg.
func NewEncoder(reg *Registry, topic string) *Encoder {
	e := &Encoder{reg: reg, topic: topic}
	e.mu.ids = map[string]int{}
	e.mu.types = map[[2]string]valueType{}
	return e
}

// avroType is the Avro type of a column value kind; a null column whose
// type is unknown is a string.
func avroType(k codec.Kind, scale int32) string {
	switch k {
	case codec.KindBool:
		return `"boolean"`
	case codec.KindInt:
		return `"long"`
	case codec.KindFloat:
		return `"double"`
	case codec.KindBinary:
		return `"bytes"`
	case codec.KindDecimal:
		return fmt.Sprintf(`{"type":"bytes","logicalType":"decimal","precision":%d,"scale":%d}`, codec.MaxDecimalPrecision, scale)
	case codec.KindDate:
		return `{"type":"int","logicalType":"date"}`
	case codec.KindTimestamp:
		return `{"type":"long","logicalType":"timestamp-millis"}`
	case codec.KindJSON:
		return `{"type":"string","connect.name":"io.debezium.data.Json"}`
	}
	return `"string"`
}

// layout returns the columns of ch that the record carries, without those
// null in every change of the table so far, and the type each is declared
// with; it remembers the types of ch's non-null values.
func (e *Encoder) layout(ch *codec.Change) ([]codec.Field, []valueType) {
	row := make([]codec.Field, 0, len(ch.Row))
	types := make([]valueType, 0, len(ch.Row))
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, f := range ch.Row {
		key := [2]string{ch.TableName(), f.Name}
		t := valueType{kind: f.Value.Kind(), scale: f.Value.Scale()}
		if f.Value.IsNull() {
			var ok bool
			if t, ok = e.mu.types[key]; !ok {
				continue
			}
		} else {
			e.mu.types[key] = t
		}
		row = append(row, f)
		types = append(types, t)
	}
	return row, types
}

// schemaID returns the ID of the schema for ch's layout, registering it on
// first use. row and types are ch's columns as layout returns them.
func (e *Encoder) schemaID(ctx context.Context, ch *codec.Change, row []codec.Field, types []valueType) (int, error) {
	var sig strings.Builder
	sig.WriteString(ch.Table)
	for i, f := range row {
		fmt.Fprintf(&sig, "\x00%s\x00%d\x00%d", f.Name, types[i].kind, types[i].scale)
	}
	key := sig.String()
	e.mu.Lock()
	id, ok := e.mu.ids[key]
	e.mu.Unlock()
	if ok {
		return id, nil
	}
	var b strings.Builder
	b.WriteString(`{"type":"record","name":"Change","namespace":"evodb","fields":[{"name":"op","type":"string"},{"name":"lsn","type":"long"},{"name":"ts","type":"long"},{"name":"table","type":"string"}`)
	for i, f := range row {
		fmt.Fprintf(&b, `,{"name":%s,"type":["null",%s],"default":null}`, codec.AppendJSONString(nil, f.Name), avroType(types[i].kind, types[i].scale))
	}
	b.WriteString(`]}`)
	subject := e.topic + "-" + ch.TableName() + "-value"
	ss, err := e.reg.Client().CreateSchema(ctx, subject, sr.Schema{Schema: b.String(), Type: sr.TypeAvro})
	if err != nil {
		return 0, fmt.Errorf("register schema of table %s under %s at %s: %w", ch.TableName(), subject, e.reg.URL(), err)
	}
	e.mu.Lock()
	e.mu.ids[key] = ss.ID
	e.mu.Unlock()
	return ss.ID, nil
}

// Append appends ch as a wire-format Avro record to dst.
func (e *Encoder) Append(ctx context.Context, dst []byte, ch *codec.Change) ([]byte, error) {
	row, types := e.layout(ch)
	id, err := e.schemaID(ctx, ch, row, types)
	if err != nil {
		return dst, err
	}
	var h sr.ConfluentHeader
	dst, _ = h.AppendEncode(dst, id, nil)
	c := *ch
	c.Row = row
	return AppendAvroChange(dst, &c), nil
}

// AppendAvroChange appends the Avro body (no header) of ch in the layout
// Encoder registers.
func AppendAvroChange(dst []byte, ch *codec.Change) []byte {
	dst = appendAvroString(dst, ch.Op.String())
	dst = appendAvroLong(dst, int64(ch.LSN))
	dst = appendAvroLong(dst, ch.TS)
	dst = appendAvroString(dst, ch.TableName())
	for _, f := range ch.Row {
		v := f.Value
		if v.IsNull() {
			dst = appendAvroLong(dst, 0)
			continue
		}
		dst = appendAvroLong(dst, 1)
		switch v.Kind() {
		case codec.KindBool:
			if v.Bool() {
				dst = append(dst, 1)
			} else {
				dst = append(dst, 0)
			}
		case codec.KindInt:
			dst = appendAvroLong(dst, v.Int())
		case codec.KindTimestamp:
			dst = appendAvroLong(dst, v.Millis())
		case codec.KindDate:
			dst = appendAvroLong(dst, int64(v.Days()))
		case codec.KindFloat:
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v.Float()))
		case codec.KindDecimal:
			u := v.Unscaled()
			// Two's complement, big-endian, as Avro's decimal wants.
			var b []byte
			if u.Sign() >= 0 {
				b = append([]byte{0}, u.Bytes()...)
			} else {
				// -u - 1 in ones' complement is the two's complement of u.
				m := new(big.Int).Neg(u)
				m.Sub(m, big.NewInt(1))
				b = append([]byte{0}, m.Bytes()...)
				for i := range b {
					b[i] = ^b[i]
				}
			}
			dst = appendAvroLong(dst, int64(len(b)))
			dst = append(dst, b...)
		default:
			dst = appendAvroString(dst, v.Str())
		}
	}
	return dst
}

func appendAvroLong(dst []byte, v int64) []byte {
	return binary.AppendUvarint(dst, uint64(v<<1)^uint64(v>>63))
}

func appendAvroString(dst []byte, s string) []byte {
	dst = appendAvroLong(dst, int64(len(s)))
	return append(dst, s...)
}
