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
	"github.com/evodb/sink/codec/cdc"
)

// Encoder writes changes as plain Avro records in the Confluent wire
// format, the layout Decoder reads with DefaultPlainFields: op, lsn, ts and
// table fields, then one nullable field per column. It registers one
// schema per table and column layout under the subject
// "<topic>-<table>-value", so tables of one topic evolve independently.
// It is for producers of test and benchmark workloads; it is safe for
// concurrent use.
type Encoder struct {
	reg   *Registry
	topic string

	mu struct {
		sync.Mutex
		ids map[string]int // layout signature → schema ID
	}
}

// NewEncoder returns an encoder registering its schemas in reg.
func NewEncoder(reg *Registry, topic string) *Encoder {
	e := &Encoder{reg: reg, topic: topic}
	e.mu.ids = map[string]int{}
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

// schemaID returns the ID of the schema for ch's layout, registering it on
// first use.
func (e *Encoder) schemaID(ctx context.Context, ch *codec.Change) (int, error) {
	var sig strings.Builder
	sig.WriteString(ch.Table)
	for _, f := range ch.Row {
		fmt.Fprintf(&sig, "\x00%s\x00%d\x00%d", f.Name, f.Value.Kind(), f.Value.Scale())
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
	for _, f := range ch.Row {
		fmt.Fprintf(&b, `,{"name":%s,"type":["null",%s],"default":null}`, cdc.AppendJSONString(nil, f.Name), avroType(f.Value.Kind(), f.Value.Scale()))
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
	id, err := e.schemaID(ctx, ch)
	if err != nil {
		return dst, err
	}
	var h sr.ConfluentHeader
	dst, _ = h.AppendEncode(dst, id, nil)
	return AppendAvroChange(dst, ch), nil
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
