package confluent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
)

// Why protocompile and a decoder of our own: the registry holds .proto
// source, and bufbuild/protocompile is the maintained pure-Go compiler
// of it (the one buf uses), producing google.golang.org/protobuf
// descriptors. dynamicpb could then decode records into messages, but
// every field would become a protoreflect.Value and then a codec value;
// instead each schema is compiled once into a plan that reads the wire
// format with protowire straight into codec fields.
//
// Type mapping (column types in parentheses):
//   - int32, sint32, sfixed32, uint32, int64, sint64, sfixed64 (long);
//     uint64 and fixed64 (long), a value above 2^63-1 is a record error:
//     a decimal(20,0) column would change every uint64 column's type for
//     values that identifiers and counters do not reach;
//   - float, double (double); bool (boolean); string (string, invalid
//     UTF-8 is a record error); bytes (binary); enum (string: the value's
//     name, or its number for a value the schema does not name);
//   - google.protobuf.Timestamp (timestamp, milliseconds, rounded down);
//     google.type.Date (date; a partial date is a record error);
//     the wrappers (google.protobuf.Int64Value …) (the wrapped scalar,
//     null when absent); confluent.type.Decimal (decimal(p,s) when the
//     field's confluent.field_meta names precision and scale, else its
//     exact text); google.type.Decimal (its exact text: the type has no
//     fixed scale);
//   - other messages, repeated fields and maps (JSON text, as nested Avro
//     values: proto field names, every field present, absent scalars at
//     their defaults, absent messages null).
//
// Presence: an absent field without presence (a proto3 scalar) is its
// default value; an absent field with presence (proto3 optional, a oneof
// member, a message, a wrapper, any proto2 singular field) is null.

// builtinProtos are imports the Confluent registry knows without a
// reference (besides google/protobuf/*, which protocompile knows): a
// schema written by Confluent's serializer imports them bare. A
// reference of the same name wins.
var builtinProtos = map[string]string{
	"google/type/date.proto": `syntax = "proto3";
package google.type;
message Date { int32 year = 1; int32 month = 2; int32 day = 3; }
`,
	"google/type/decimal.proto": `syntax = "proto3";
package google.type;
message Decimal { string value = 1; }
`,
	"confluent/type/decimal.proto": `syntax = "proto3";
package confluent.type;
message Decimal { bytes value = 1; uint32 precision = 2; int32 scale = 3; }
`,
	"confluent/meta.proto": `syntax = "proto3";
package confluent;
import "google/protobuf/descriptor.proto";
message Meta { string doc = 1; map<string, string> params = 2; repeated string tags = 3; }
extend google.protobuf.FileOptions { Meta file_meta = 1088; }
extend google.protobuf.MessageOptions { Meta message_meta = 1088; }
extend google.protobuf.FieldOptions { Meta field_meta = 1088; }
extend google.protobuf.EnumOptions { Meta enum_meta = 1088; }
extend google.protobuf.EnumValueOptions { Meta enum_value_meta = 1088; }
`,
}

// confluentMetaField is the field number of the confluent.field_meta
// option extension.
const confluentMetaField = 1088

// protoSchema is a compiled Protobuf schema: its top-level messages, each
// with its nested messages, in declaration order, which is what the
// message-index array of the wire format walks.
type protoSchema struct {
	top []*pmsg
}

// wkt is a well-known message type the decoder maps to a scalar.
type wkt uint8

const (
	wktNone wkt = iota
	wktTimestamp
	wktDate
	wktWrapper
	wktDecimalText      // google.type.Decimal
	wktConfluentDecimal // confluent.type.Decimal
)

func wktOf(name protoreflect.FullName) wkt {
	switch name {
	case "google.protobuf.Timestamp":
		return wktTimestamp
	case "google.type.Date":
		return wktDate
	case "google.type.Decimal":
		return wktDecimalText
	case "confluent.type.Decimal":
		return wktConfluentDecimal
	case "google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value",
		"google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.UInt32Value",
		"google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue":
		return wktWrapper
	}
	return wktNone
}

// pmsg is one compiled message.
type pmsg struct {
	name   string
	wkt    wkt
	fields []pfield // declaration order
	// byNum maps a field number below len(byNum) to its index + 1 (0:
	// unknown); larger numbers are looked up in bigNum.
	byNum  []int16
	bigNum map[protowire.Number]int
	nested []*pmsg
	// defaults is the row of a message with no field on the wire.
	defaults []codec.Field
	cols     []codec.Column
	env      *penvelope // set when the message is a Debezium envelope
	// mapEntry marks a map's synthetic entry message.
	mapEntry bool
}

// pfield is one compiled field.
type pfield struct {
	name     string
	num      protowire.Number
	kind     protoreflect.Kind
	list     bool
	isMap    bool
	presence bool
	// json marks a field rendered as JSON text: lists, maps and messages
	// other than the well-known scalars.
	json  bool
	msg   *pmsg
	enum  map[int32]string
	prec  int32 // confluent.type.Decimal with precision and scale options
	scale int32
	dflt  codec.Value
}

func (m *pmsg) lookup(num protowire.Number) int {
	if int(num) < len(m.byNum) {
		return int(m.byNum[num]) - 1
	}
	if i, ok := m.bigNum[num]; ok {
		return i
	}
	return -1
}

// compileProto compiles the .proto text of schema id with the sources of
// its references.
func compileProto(ctx context.Context, id int, text string, refs map[string]string) (*protoSchema, error) {
	root := fmt.Sprintf("schema-%d.proto", id)
	for refs[root] != "" {
		root = "_" + root
	}
	access := func(path string) (io.ReadCloser, error) {
		if path == root {
			return io.NopCloser(strings.NewReader(text)), nil
		}
		if src, ok := refs[path]; ok {
			return io.NopCloser(strings.NewReader(src)), nil
		}
		if src, ok := builtinProtos[path]; ok {
			return io.NopCloser(strings.NewReader(src)), nil
		}
		return nil, os.ErrNotExist
	}
	c := protocompile.Compiler{
		Resolver:       protocompile.WithStandardImports(&protocompile.SourceResolver{Accessor: access}),
		MaxParallelism: 1,
	}
	files, err := c.Compile(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("compile Protobuf schema: %w", err)
	}
	fd := files[0]
	pc := protoCompiler{plans: map[protoreflect.FullName]*pmsg{}}
	s := &protoSchema{}
	msgs := fd.Messages()
	for i := range msgs.Len() {
		m, err := pc.message(msgs.Get(i))
		if err != nil {
			return nil, err
		}
		s.top = append(s.top, m)
	}
	if len(s.top) == 0 {
		return nil, errors.New("compile Protobuf schema: no message")
	}
	return s, nil
}

type protoCompiler struct {
	plans map[protoreflect.FullName]*pmsg
}

func (c *protoCompiler) message(md protoreflect.MessageDescriptor) (*pmsg, error) {
	if m, ok := c.plans[md.FullName()]; ok {
		return m, nil
	}
	m := &pmsg{name: string(md.FullName()), wkt: wktOf(md.FullName()), mapEntry: md.IsMapEntry()}
	c.plans[md.FullName()] = m
	fields := md.Fields()
	maxSmall := 0
	for i := range fields.Len() {
		fd := fields.Get(i)
		f, err := c.field(fd)
		if err != nil {
			return nil, fmt.Errorf("message %s field %s: %w", md.FullName(), fd.Name(), err)
		}
		m.fields = append(m.fields, f)
		if n := int(f.num); n < 1024 && n > maxSmall {
			maxSmall = n
		}
	}
	m.byNum = make([]int16, maxSmall+1)
	for i, f := range m.fields {
		if int(f.num) <= maxSmall {
			m.byNum[f.num] = int16(i + 1)
			continue
		}
		if m.bigNum == nil {
			m.bigNum = map[protowire.Number]int{}
		}
		m.bigNum[f.num] = i
	}
	nested := md.Messages()
	for i := range nested.Len() {
		n, err := c.message(nested.Get(i))
		if err != nil {
			return nil, err
		}
		m.nested = append(m.nested, n)
	}
	m.defaults = make([]codec.Field, len(m.fields))
	m.cols = make([]codec.Column, len(m.fields))
	for i := range m.fields {
		f := &m.fields[i]
		m.defaults[i] = codec.Field{Name: f.name, Value: f.dflt}
		m.cols[i] = codec.Column{Name: f.name, Type: f.colType(), Nullable: true}
	}
	m.env = protoEnvelopeOf(m)
	return m, nil
}

func (c *protoCompiler) field(fd protoreflect.FieldDescriptor) (pfield, error) {
	f := pfield{
		name:     string(fd.Name()),
		num:      fd.Number(),
		kind:     fd.Kind(),
		list:     fd.IsList(),
		isMap:    fd.IsMap(),
		presence: fd.HasPresence(),
	}
	switch f.kind {
	case protoreflect.GroupKind:
		return f, errors.New("groups are not supported")
	case protoreflect.MessageKind:
		m, err := c.message(fd.Message())
		if err != nil {
			return f, err
		}
		f.msg = m
		if m.wkt == wktConfluentDecimal {
			f.prec, f.scale = decimalMeta(fd)
		}
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		f.enum = make(map[int32]string, vals.Len())
		for i := range vals.Len() {
			v := vals.Get(i)
			if _, dup := f.enum[int32(v.Number())]; !dup {
				f.enum[int32(v.Number())] = string(v.Name())
			}
		}
	}
	f.json = f.list || f.isMap || (f.msg != nil && f.msg.wkt == wktNone)
	switch {
	case f.list:
		f.dflt = codec.JSON("[]")
	case f.isMap:
		f.dflt = codec.JSON("{}")
	case f.presence:
		f.dflt = codec.Null()
	default:
		f.dflt = scalarDefault(fd)
	}
	return f, nil
}

// scalarDefault is the value of an absent field without presence.
func scalarDefault(fd protoreflect.FieldDescriptor) codec.Value {
	d := fd.Default()
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return codec.Bool(d.Bool())
	case protoreflect.EnumKind:
		if ev := fd.DefaultEnumValue(); ev != nil {
			return codec.String(string(ev.Name()))
		}
		return codec.String(strconv.Itoa(int(d.Enum())))
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return codec.Int(d.Int())
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		u := d.Uint()
		if u > math.MaxInt64 {
			u = math.MaxInt64
		}
		return codec.Int(int64(u))
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return codec.Float(d.Float())
	case protoreflect.StringKind:
		return codec.String(d.String())
	case protoreflect.BytesKind:
		return codec.Binary(d.Bytes())
	}
	return codec.Null()
}

// decimalMeta reads precision and scale from a field's
// confluent.field_meta option. The option is an extension this program
// does not link, which the compiler keeps either as a dynamic extension
// or as unknown bytes; marshaling the options reads both the same way.
// Zero precision means none was given.
func decimalMeta(fd protoreflect.FieldDescriptor) (prec, scale int32) {
	b, err := proto.Marshal(fd.Options())
	if err != nil {
		return 0, 0
	}
	params := map[string]string{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, 0
		}
		b = b[n:]
		if num != confluentMetaField || typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return 0, 0
			}
			b = b[n:]
			continue
		}
		meta, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return 0, 0
		}
		b = b[n:]
		readMetaParams(meta, params)
	}
	p, err1 := strconv.ParseInt(params["precision"], 10, 32)
	s, err2 := strconv.ParseInt(params["scale"], 10, 32)
	if err1 != nil || err2 != nil || p <= 0 || p > codec.MaxDecimalPrecision || s < 0 || s > p {
		return 0, 0
	}
	return int32(p), int32(s)
}

// readMetaParams reads the params map (field 2) of a confluent.Meta.
func readMetaParams(b []byte, params map[string]string) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return
		}
		b = b[n:]
		if num != 2 || typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return
			}
			b = b[n:]
			continue
		}
		entry, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return
		}
		b = b[n:]
		var k, v string
		for len(entry) > 0 {
			num, typ, n := protowire.ConsumeTag(entry)
			if n < 0 || typ != protowire.BytesType {
				return
			}
			entry = entry[n:]
			s, n := protowire.ConsumeBytes(entry)
			if n < 0 {
				return
			}
			entry = entry[n:]
			switch num {
			case 1:
				k = string(s)
			case 2:
				v = string(s)
			}
		}
		params[k] = v
	}
}

// colType is the column type of a field's values.
func (f *pfield) colType() codec.Type {
	if f.json {
		return codec.Type{Kind: codec.TypeJSON}
	}
	if f.msg != nil {
		switch f.msg.wkt {
		case wktTimestamp:
			return codec.Type{Kind: codec.TypeTimestamp}
		case wktDate:
			return codec.Type{Kind: codec.TypeDate}
		case wktDecimalText:
			return codec.Type{Kind: codec.TypeString}
		case wktConfluentDecimal:
			if f.prec > 0 {
				return codec.Type{Kind: codec.TypeDecimal, Precision: f.prec, Scale: f.scale}
			}
			return codec.Type{Kind: codec.TypeString}
		case wktWrapper:
			return f.msg.fields[0].colType()
		}
	}
	switch f.kind {
	case protoreflect.BoolKind:
		return codec.Type{Kind: codec.TypeBoolean}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return codec.Type{Kind: codec.TypeDouble}
	case protoreflect.StringKind, protoreflect.EnumKind:
		return codec.Type{Kind: codec.TypeString}
	case protoreflect.BytesKind:
		return codec.Type{Kind: codec.TypeBinary}
	}
	return codec.Type{Kind: codec.TypeLong}
}

// protoEnvelopeOf returns the envelope layout when m is a Debezium
// envelope: a string op, a before or an after message of one type, and a
// source message if any, as for Avro.
func protoEnvelopeOf(m *pmsg) *penvelope {
	e := &penvelope{before: -1, after: -1, source: -1, op: -1, tsMs: -1}
	for i, f := range m.fields {
		switch f.name {
		case "before":
			e.before = i
		case "after":
			e.after = i
		case "source":
			e.source = i
		case "op":
			e.op = i
		case "ts_ms":
			e.tsMs = i
		}
	}
	if e.op < 0 || m.fields[e.op].kind != protoreflect.StringKind || m.fields[e.op].list || (e.before < 0 && e.after < 0) {
		return nil
	}
	isMsg := func(i int) bool {
		f := m.fields[i]
		return f.msg != nil && f.msg.wkt == wktNone && !f.list && !f.isMap
	}
	var row *pmsg
	for _, i := range []int{e.before, e.after} {
		if i < 0 {
			continue
		}
		if !isMsg(i) || (row != nil && row != m.fields[i].msg) {
			return nil
		}
		row = m.fields[i].msg
	}
	if e.source >= 0 && !isMsg(e.source) {
		return nil
	}
	if e.tsMs >= 0 && (m.fields[e.tsMs].json || m.fields[e.tsMs].msg != nil) {
		e.tsMs = -1
	}
	e.row = row
	return e
}

// penvelope is the layout of a Debezium envelope message: the index of
// each field in fields, -1 when absent, and the row message.
type penvelope struct {
	before, after, source, op, tsMs int
	row                             *pmsg
}

// message reads the message-index array at the start of b (zig-zag
// varints: a count, then one index per nesting level; a single 0 means
// the first top-level message) and returns the message it names and the
// bytes after it.
func (s *protoSchema) message(b []byte) (*pmsg, []byte, error) {
	n, k := binary.Varint(b)
	if k <= 0 {
		return nil, nil, errors.New("truncated message index")
	}
	b = b[k:]
	if n == 0 {
		return s.top[0], b, nil
	}
	if n < 0 || n > int64(len(b)) {
		return nil, nil, fmt.Errorf("message index count %d out of range", n)
	}
	list := s.top
	var m *pmsg
	for range n {
		i, k := binary.Varint(b)
		if k <= 0 {
			return nil, nil, errors.New("truncated message index")
		}
		b = b[k:]
		if i < 0 || i >= int64(len(list)) {
			return nil, nil, fmt.Errorf("message index %d out of range (%d messages at that level)", i, len(list))
		}
		m = list[i]
		list = m.nested
	}
	if m.mapEntry {
		return nil, nil, fmt.Errorf("message index names map entry %s", m.name)
	}
	return m, b, nil
}

// preader reads the Protobuf wire format. Errors mean the bytes do not
// match the writer schema.
type preader struct {
	borrow bool
	depth  int     // nesting of appendMsgJSON
	spans  []pspan // the current row's JSON fields, as found on the wire
	buf    []byte  // scratch for JSON text
}

// pspan is one occurrence of a field on the wire: its field index, wire
// type and value bytes.
type pspan struct {
	field int
	typ   protowire.Type
	b     []byte
}

func wireErr(n int) error {
	return fmt.Errorf("malformed wire format: %w", protowire.ParseError(n))
}

// row reads message m as a row: every field of the message, absent
// fields at their defaults, appended to scratch.
func (r *preader) row(m *pmsg, b []byte, scratch []codec.Field) ([]codec.Field, error) {
	row := append(scratch[:0], m.defaults...)
	r.spans = r.spans[:0]
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, wireErr(n)
		}
		b = b[n:]
		fi := m.lookup(num)
		if fi < 0 || m.fields[fi].json {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				if fi >= 0 {
					return nil, &fieldError{name: m.fields[fi].name, err: wireErr(n)}
				}
				return nil, wireErr(n)
			}
			if fi >= 0 {
				r.spans = append(r.spans, pspan{field: fi, typ: typ, b: b[:n]})
			}
			b = b[n:]
			continue
		}
		f := &m.fields[fi]
		v, n, err := r.scalar(f, typ, b)
		if err != nil {
			return nil, &fieldError{name: f.name, err: err}
		}
		row[fi].Value = v
		b = b[n:]
	}
	if len(r.spans) == 0 {
		return row, nil
	}
	for fi := range m.fields {
		if !m.fields[fi].json {
			continue
		}
		var err error
		found := false
		for _, s := range r.spans {
			if s.field == fi {
				found = true
				break
			}
		}
		if !found {
			continue
		}
		if r.buf, err = r.appendFieldJSON(r.buf[:0], &m.fields[fi], fi, r.spans); err != nil {
			return nil, &fieldError{name: m.fields[fi].name, err: err}
		}
		row[fi].Value = codec.JSON(string(r.buf))
	}
	return row, nil
}

// scalar reads one value of a field that maps to a scalar (not JSON),
// returning it and the bytes it took.
func (r *preader) scalar(f *pfield, typ protowire.Type, b []byte) (codec.Value, int, error) {
	switch f.kind {
	case protoreflect.BoolKind, protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Int64Kind,
		protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind:
		if typ != protowire.VarintType {
			return codec.Value{}, 0, wireTypeErr(typ, protowire.VarintType)
		}
		u, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return codec.Value{}, 0, wireErr(n)
		}
		v, err := f.varint(u)
		return v, n, err
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		if typ != protowire.Fixed32Type {
			return codec.Value{}, 0, wireTypeErr(typ, protowire.Fixed32Type)
		}
		u, n := protowire.ConsumeFixed32(b)
		if n < 0 {
			return codec.Value{}, 0, wireErr(n)
		}
		switch f.kind {
		case protoreflect.Fixed32Kind:
			return codec.Int(int64(u)), n, nil
		case protoreflect.Sfixed32Kind:
			return codec.Int(int64(int32(u))), n, nil
		}
		return codec.Float(float64(math.Float32frombits(u))), n, nil
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		if typ != protowire.Fixed64Type {
			return codec.Value{}, 0, wireTypeErr(typ, protowire.Fixed64Type)
		}
		u, n := protowire.ConsumeFixed64(b)
		if n < 0 {
			return codec.Value{}, 0, wireErr(n)
		}
		switch f.kind {
		case protoreflect.Fixed64Kind:
			if u > math.MaxInt64 {
				return codec.Value{}, 0, fmt.Errorf("fixed64 value %d does not fit a long", u)
			}
			return codec.Int(int64(u)), n, nil
		case protoreflect.Sfixed64Kind:
			return codec.Int(int64(u)), n, nil
		}
		return codec.Float(math.Float64frombits(u)), n, nil
	}
	if typ != protowire.BytesType {
		return codec.Value{}, 0, wireTypeErr(typ, protowire.BytesType)
	}
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return codec.Value{}, 0, wireErr(n)
	}
	switch f.kind {
	case protoreflect.StringKind:
		if !utf8.Valid(v) {
			return codec.Value{}, 0, errors.New("string is not valid UTF-8")
		}
		if len(v) == 0 {
			return codec.String(""), n, nil
		}
		if r.borrow {
			return codec.String(unsafe.String(&v[0], len(v))), n, nil
		}
		return codec.String(string(v)), n, nil
	case protoreflect.BytesKind:
		return codec.Binary(v), n, nil
	case protoreflect.MessageKind:
		val, err := r.wellKnown(f, v)
		return val, n, err
	}
	return codec.Value{}, 0, fmt.Errorf("unsupported field kind %s", f.kind)
}

func wireTypeErr(got, want protowire.Type) error {
	return fmt.Errorf("wire type %d, want %d", got, want)
}

// varint is the value of a varint-encoded field.
func (f *pfield) varint(u uint64) (codec.Value, error) {
	switch f.kind {
	case protoreflect.BoolKind:
		return codec.Bool(u != 0), nil
	case protoreflect.EnumKind:
		n := int32(u)
		if name, ok := f.enum[n]; ok {
			return codec.String(name), nil
		}
		return codec.String(strconv.Itoa(int(n))), nil
	case protoreflect.Int32Kind:
		return codec.Int(int64(int32(u))), nil
	case protoreflect.Uint32Kind:
		return codec.Int(int64(uint32(u))), nil
	case protoreflect.Sint32Kind:
		return codec.Int(int64(int32(protowire.DecodeZigZag(u & math.MaxUint32)))), nil
	case protoreflect.Sint64Kind:
		return codec.Int(protowire.DecodeZigZag(u)), nil
	case protoreflect.Uint64Kind:
		if u > math.MaxInt64 {
			return codec.Value{}, fmt.Errorf("uint64 value %d does not fit a long", u)
		}
	}
	return codec.Int(int64(u)), nil
}

// Timestamp and Date bounds: what google.protobuf.Timestamp allows
// (0001-01-01 to 9999-12-31).
const (
	minTimestampSeconds = -62135596800
	maxTimestampSeconds = 253402300799
)

// wellKnown reads a well-known message that maps to a scalar.
func (r *preader) wellKnown(f *pfield, b []byte) (codec.Value, error) {
	m := f.msg
	// Every well-known scalar message has at most three fields.
	var vals [3]codec.Value
	for i := range m.fields {
		vals[i] = m.fields[i].dflt
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return codec.Value{}, wireErr(n)
		}
		b = b[n:]
		fi := m.lookup(num)
		if fi < 0 || fi >= len(vals) {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return codec.Value{}, wireErr(n)
			}
			b = b[n:]
			continue
		}
		v, n, err := r.scalar(&m.fields[fi], typ, b)
		if err != nil {
			return codec.Value{}, fmt.Errorf("%s.%s: %w", m.name, m.fields[fi].name, err)
		}
		vals[fi] = v
		b = b[n:]
	}
	switch m.wkt {
	case wktWrapper:
		return vals[0], nil
	case wktTimestamp:
		sec, nanos := vals[0].Int(), vals[1].Int()
		if sec < minTimestampSeconds || sec > maxTimestampSeconds || nanos < 0 || nanos > 999999999 {
			return codec.Value{}, fmt.Errorf("timestamp %ds %dns out of range", sec, nanos)
		}
		return codec.Timestamp(sec*1000 + nanos/1000000), nil
	case wktDate:
		y, mo, d := vals[0].Int(), vals[1].Int(), vals[2].Int()
		if y < 1 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 {
			return codec.Value{}, fmt.Errorf("date %04d-%02d-%02d is not a full calendar date", y, mo, d)
		}
		t := time.Date(int(y), time.Month(mo), int(d), 0, 0, 0, 0, time.UTC)
		if t.Day() != int(d) {
			return codec.Value{}, fmt.Errorf("date %04d-%02d-%02d does not exist", y, mo, d)
		}
		return codec.Date(int32(floorDiv(t.Unix(), 86400))), nil
	case wktDecimalText:
		s := vals[0].Str()
		if !isDecimalText(s) {
			return codec.Value{}, fmt.Errorf("google.type.Decimal %q is not a decimal number", s)
		}
		return codec.String(s), nil
	case wktConfluentDecimal:
		unscaled := []byte(vals[0].Str())
		scale := int32(vals[2].Int())
		if f.prec == 0 {
			return codec.String(codec.Decimal(unscaled, scale).Text()), nil
		}
		if scale != f.scale {
			return codec.Value{}, fmt.Errorf("decimal of scale %d in a field of scale %d", scale, f.scale)
		}
		return codec.Decimal(unscaled, scale), nil
	}
	return codec.Value{}, fmt.Errorf("unsupported well-known type %s", m.name)
}

// isDecimalText reports whether s is a decimal number as google.type.Decimal
// writes it: an optional sign, digits with an optional point, an optional
// exponent.
func isDecimalText(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '+' || s[0] == '-' {
		s = s[1:]
	}
	digits := 0
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i, digits = i+1, digits+1
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i, digits = i+1, digits+1
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(s)
}

// appendFieldJSON appends the JSON of field fi of a message from its
// occurrences in spans: a list as an array (packed or not), a map as an
// object, a message as an object (occurrences merged, as the format
// says: their bytes concatenated).
func (r *preader) appendFieldJSON(dst []byte, f *pfield, fi int, spans []pspan) ([]byte, error) {
	var err error
	switch {
	case f.list:
		dst = append(dst, '[')
		first := true
		for _, s := range spans {
			if s.field != fi {
				continue
			}
			if s.typ == protowire.BytesType && f.msg == nil && f.kind != protoreflect.StringKind && f.kind != protoreflect.BytesKind {
				// A packed run of scalars.
				b, n := protowire.ConsumeBytes(s.b)
				if n < 0 {
					return dst, wireErr(n)
				}
				typ := packedType(f.kind)
				for len(b) > 0 {
					v, n, err := r.scalar(f, typ, b)
					if err != nil {
						return dst, err
					}
					b = b[n:]
					if !first {
						dst = append(dst, ',')
					}
					first = false
					dst = appendScalarJSON(dst, v)
				}
				continue
			}
			if !first {
				dst = append(dst, ',')
			}
			first = false
			if dst, err = r.appendElemJSON(dst, f, s.typ, s.b); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case f.isMap:
		dst = append(dst, '{')
		first := true
		for _, s := range spans {
			if s.field != fi {
				continue
			}
			if s.typ != protowire.BytesType {
				return dst, wireTypeErr(s.typ, protowire.BytesType)
			}
			b, n := protowire.ConsumeBytes(s.b)
			if n < 0 {
				return dst, wireErr(n)
			}
			if !first {
				dst = append(dst, ',')
			}
			first = false
			if dst, err = r.appendEntryJSON(dst, f.msg, b); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	}
	var body []byte
	count := 0
	for _, s := range spans {
		if s.field != fi {
			continue
		}
		if s.typ != protowire.BytesType {
			return dst, wireTypeErr(s.typ, protowire.BytesType)
		}
		b, n := protowire.ConsumeBytes(s.b)
		if n < 0 {
			return dst, wireErr(n)
		}
		if count == 0 {
			body = b
		} else {
			body = append(append([]byte(nil), body...), b...)
		}
		count++
	}
	return r.appendMsgJSON(dst, f.msg, body)
}

// packedType is the wire type of the elements of a packed list.
func packedType(k protoreflect.Kind) protowire.Type {
	switch k {
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return protowire.Fixed64Type
	}
	return protowire.VarintType
}

// appendElemJSON appends one value of f (an element of a list or a map's
// value) given its wire type and bytes (a length-prefixed value for
// messages).
func (r *preader) appendElemJSON(dst []byte, f *pfield, typ protowire.Type, b []byte) ([]byte, error) {
	if f.msg != nil && f.msg.wkt == wktNone {
		if typ != protowire.BytesType {
			return dst, wireTypeErr(typ, protowire.BytesType)
		}
		body, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return dst, wireErr(n)
		}
		return r.appendMsgJSON(dst, f.msg, body)
	}
	save := r.borrow
	r.borrow = true // the text is copied into dst at once
	v, _, err := r.scalar(f, typ, b)
	r.borrow = save
	if err != nil {
		return dst, err
	}
	return appendScalarJSON(dst, v), nil
}

// appendEntryJSON appends one map entry (key field 1, value field 2) as
// "key":value.
func (r *preader) appendEntryJSON(dst []byte, entry *pmsg, b []byte) ([]byte, error) {
	kf, vf := entry.lookup(1), entry.lookup(2)
	if kf < 0 || vf < 0 {
		return dst, fmt.Errorf("map entry %s without key or value", entry.name)
	}
	key := entry.fields[kf].dflt
	var val []byte
	var valTyp protowire.Type
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return dst, wireErr(n)
		}
		b = b[n:]
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return dst, wireErr(n)
		}
		switch num {
		case 1:
			v, _, err := r.scalar(&entry.fields[kf], typ, b[:n])
			if err != nil {
				return dst, err
			}
			key = v
		case 2:
			val, valTyp = b[:n], typ
		}
		b = b[n:]
	}
	dst = cdc.AppendJSONString(dst, key.Text())
	dst = append(dst, ':')
	if val == nil {
		return r.appendDefaultJSON(dst, &entry.fields[vf])
	}
	return r.appendElemJSON(dst, &entry.fields[vf], valTyp, val)
}

// appendDefaultJSON appends the JSON of an absent field.
func (r *preader) appendDefaultJSON(dst []byte, f *pfield) ([]byte, error) {
	if f.msg != nil && f.msg.wkt == wktNone && !f.list && !f.isMap && !f.presence {
		// A map's message value: an empty message.
		return r.appendMsgJSON(dst, f.msg, nil)
	}
	if f.dflt.Kind() == codec.KindJSON {
		return append(dst, f.dflt.Str()...), nil
	}
	return appendScalarJSON(dst, f.dflt), nil
}

// maxNesting bounds how deep nested messages go in one value, so a
// recursive schema cannot make a small record cost a deep stack.
const maxNesting = 100

// appendMsgJSON appends message m, read from b, as a JSON object with
// every field.
func (r *preader) appendMsgJSON(dst []byte, m *pmsg, b []byte) ([]byte, error) {
	if r.depth >= maxNesting {
		return dst, fmt.Errorf("messages nested deeper than %d", maxNesting)
	}
	r.depth++
	defer func() { r.depth-- }()
	var spans []pspan
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return dst, wireErr(n)
		}
		b = b[n:]
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return dst, wireErr(n)
		}
		if fi := m.lookup(num); fi >= 0 {
			spans = append(spans, pspan{field: fi, typ: typ, b: b[:n]})
		}
		b = b[n:]
	}
	dst = append(dst, '{')
	for fi := range m.fields {
		f := &m.fields[fi]
		if fi > 0 {
			dst = append(dst, ',')
		}
		dst = cdc.AppendJSONString(dst, f.name)
		dst = append(dst, ':')
		last := -1
		for i, s := range spans {
			if s.field == fi {
				last = i
			}
		}
		var err error
		switch {
		case last < 0:
			if f.json && !f.list && !f.isMap {
				dst = append(dst, "null"...)
				continue
			}
			dst, err = r.appendDefaultJSON(dst, f)
		case f.json:
			dst, err = r.appendFieldJSON(dst, f, fi, spans)
		default:
			dst, err = r.appendElemJSON(dst, f, spans[last].typ, spans[last].b)
		}
		if err != nil {
			return dst, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return append(dst, '}'), nil
}
