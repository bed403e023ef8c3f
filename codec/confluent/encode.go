package confluent

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
)

// Encoder writes changes as plain Avro records in the Confluent wire
// format, the layout Decoder reads with DefaultPlainFields: op, lsn, ts and
// table fields, then one nullable field per column. It registers one
// schema per table and column layout under the subject
// "<topic>-<table>-value", so tables of one topic evolve independently.
// It is for producers of test and benchmark workloads; it is safe for
// concurrent use.
//
// A null column is typed as the column's last non-null value was, so a
// null does not register a layout that contradicts the table's type; a
// null column never seen with a value is left out of the record.
type Encoder struct{ layouts }

// NewEncoder returns an encoder registering its schemas in reg.
func NewEncoder(reg *Registry, topic string) *Encoder {
	e := &Encoder{}
	e.init(reg, topic, sr.TypeAvro)
	return e
}

// layouts is what the Avro and Protobuf encoders share: the column types
// they remember and the schema IDs of the layouts they registered.
type layouts struct {
	reg   *Registry
	topic string
	typ   sr.SchemaType
	kinds kindMemory

	mu struct {
		sync.Mutex
		ids map[string]int // layout signature → schema ID
	}
}

func (l *layouts) init(reg *Registry, topic string, typ sr.SchemaType) {
	l.reg, l.topic, l.typ = reg, topic, typ
	l.mu.ids = map[string]int{}
	l.kinds.init()
}

// schemaID returns the ID of the schema render gives ch's layout,
// registering it under "<topic>-<table>-value" on first use.
func (l *layouts) schemaID(ctx context.Context, ch *codec.Change, cols []layoutCol, render func([]layoutCol) (string, error)) (int, error) {
	key := signature(ch.Table, cols)
	l.mu.Lock()
	id, ok := l.mu.ids[key]
	l.mu.Unlock()
	if ok {
		return id, nil
	}
	text, err := render(cols)
	if err != nil {
		return 0, fmt.Errorf("schema of table %s: %w", ch.TableName(), err)
	}
	subject := l.topic + "-" + ch.TableName() + "-value"
	ss, err := l.reg.Client().CreateSchema(ctx, subject, sr.Schema{Schema: text, Type: l.typ})
	if err != nil {
		return 0, fmt.Errorf("register schema of table %s under %s at %s: %w", ch.TableName(), subject, l.reg.URL(), err)
	}
	l.mu.Lock()
	l.mu.ids[key] = ss.ID
	l.mu.Unlock()
	return ss.ID, nil
}

// layoutCol is one column of a record's layout: its type, from its value
// or, for a null, from the column's last value.
type layoutCol struct {
	name  string
	kind  codec.Kind
	scale int32
	value codec.Value
}

// kindMemory remembers each table column's last value kind.
type kindMemory struct {
	mu struct {
		sync.Mutex
		kinds map[string]layoutCol // table \x00 column → kind and scale
	}
}

func (k *kindMemory) init() { k.mu.kinds = map[string]layoutCol{} }

// layout returns ch's columns with their types, appended to dst.
func (k *kindMemory) layout(dst []layoutCol, ch *codec.Change) []layoutCol {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, f := range ch.Row {
		key := ch.TableName() + "\x00" + f.Name
		c := layoutCol{name: f.Name, kind: f.Value.Kind(), scale: f.Value.Scale(), value: f.Value}
		if f.Value.IsNull() {
			known, ok := k.mu.kinds[key]
			if !ok {
				continue
			}
			c.kind, c.scale = known.kind, known.scale
		} else {
			k.mu.kinds[key] = c
		}
		dst = append(dst, c)
	}
	return dst
}

// signature identifies a table's layout.
func signature(table string, cols []layoutCol) string {
	var sig strings.Builder
	sig.WriteString(table)
	for _, c := range cols {
		fmt.Fprintf(&sig, "\x00%s\x00%d\x00%d", c.name, c.kind, c.scale)
	}
	return sig.String()
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

// avroText is the Avro schema of a layout.
func avroText(cols []layoutCol) (string, error) {
	var b strings.Builder
	b.WriteString(`{"type":"record","name":"Change","namespace":"evodb","fields":[{"name":"op","type":"string"},{"name":"lsn","type":"long"},{"name":"ts","type":"long"},{"name":"table","type":"string"}`)
	for _, c := range cols {
		fmt.Fprintf(&b, `,{"name":%s,"type":["null",%s],"default":null}`, cdc.AppendJSONString(nil, c.name), avroType(c.kind, c.scale))
	}
	b.WriteString(`]}`)
	return b.String(), nil
}

// Append appends ch as a wire-format Avro record to dst.
func (e *Encoder) Append(ctx context.Context, dst []byte, ch *codec.Change) ([]byte, error) {
	cols := e.kinds.layout(nil, ch)
	id, err := e.schemaID(ctx, ch, cols, avroText)
	if err != nil {
		return dst, err
	}
	var h sr.ConfluentHeader
	dst, _ = h.AppendEncode(dst, id, nil)
	return appendAvroChange(dst, ch, cols), nil
}

// appendAvroChange appends the Avro body (no header) of ch in the layout
// Encoder registers.
func appendAvroChange(dst []byte, ch *codec.Change, cols []layoutCol) []byte {
	dst = appendAvroString(dst, ch.Op.String())
	dst = appendAvroLong(dst, int64(ch.LSN))
	dst = appendAvroLong(dst, ch.TS)
	dst = appendAvroString(dst, ch.TableName())
	for _, c := range cols {
		v := c.value
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
			// Two's complement, big-endian, as Avro's decimal wants.
			b := twosComplement(v.Unscaled())
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
