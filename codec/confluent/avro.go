package confluent

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unsafe"

	"github.com/hamba/avro/v2"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
)

// Why hamba/avro and a decoder of our own: hamba/avro parses and validates
// writer schemas completely (named and recursive types, logical types,
// the properties Kafka Connect adds), and it is maintained. Its own
// decoding produces Go values (map[string]any) that would then be
// converted into codec values, two allocations per field; instead each
// schema is compiled once into a tree of nodes that reads the Avro binary
// encoding straight into codec fields.

// kind is an Avro type as the decoder reads it.
type kind uint8

const (
	kNull kind = iota
	kBool
	kInt
	kLong
	kFloat
	kDouble
	kBytes
	kString
	kFixed
	kEnum
	kUnion
	kRecord
	kArray
	kMap
)

// logical says how a node's value becomes a codec value; lNone keeps the
// Avro type's natural value.
type logical uint8

const (
	lNone logical = iota
	lDate
	lTimestampMs
	lTimestampUs
	lTimestampNs
	lTimeMs
	lTimeUs
	lTimeNs
	lZoned
	lDecimal
	lDecimalText
	lVarDecimal
	lJSONText
)

// node is one compiled Avro schema.
type node struct {
	kind     kind
	logical  logical
	scale    int32
	prec     int32
	size     int      // fixed
	symbols  []string // enum
	branches []*node  // union
	fields   []field  // record
	items    *node    // array items, map values
	name     string   // record full name
	connect  string   // Kafka Connect type name (connect.name)
}

type field struct {
	name string
	node *node
}

// avroSchema is a compiled writer schema.
type avroSchema struct {
	root *node
	// env is set when root is a Debezium envelope.
	env *envelope
	// cols are the declared columns of the row (root for plain records,
	// the before/after record for envelopes), nil when the row is not a
	// record.
	cols []codec.Column
}

// envelope is the layout of a Debezium envelope record: the index of
// each field in root.fields, -1 when absent.
type envelope struct {
	before, after, source, op, tsMs int
	row                             *node
}

// compileAvro compiles a writer schema. refs are the schemas its
// references name, in dependency order: each is parsed into one cache,
// which the schema's own parse then finds its named types in, so a type
// registered under another subject reads as if it were written inline.
func compileAvro(text string, refs []reference) (*avroSchema, error) {
	cache := &avro.SchemaCache{}
	for _, ref := range refs {
		if _, err := avro.ParseWithCache(ref.schema, "", cache); err != nil {
			return nil, fmt.Errorf("parse Avro reference %s: %w", ref.name, err)
		}
	}
	s, err := avro.ParseWithCache(text, "", cache)
	if err != nil {
		return nil, fmt.Errorf("parse Avro schema: %w", err)
	}
	c := compiler{named: map[string]*node{}}
	root, err := c.compile(s)
	if err != nil {
		return nil, err
	}
	a := &avroSchema{root: root}
	row := root
	if env := envelopeOf(root); env != nil {
		a.env, row = env, env.row
	}
	if row != nil && row.kind == kRecord {
		a.cols = make([]codec.Column, 0, len(row.fields))
		for _, f := range row.fields {
			a.cols = append(a.cols, codec.Column{Name: f.name, Type: colType(f.node), Nullable: true})
		}
	}
	return a, nil
}

// envelopeOf returns the envelope layout when n is a Debezium envelope: a
// record with a string op, a source record, and a before or after field.
func envelopeOf(n *node) *envelope {
	if n.kind != kRecord {
		return nil
	}
	e := &envelope{before: -1, after: -1, source: -1, op: -1, tsMs: -1}
	for i, f := range n.fields {
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
	if e.op < 0 || nonNull(n.fields[e.op].node).kind != kString || (e.before < 0 && e.after < 0) {
		return nil
	}
	if e.source >= 0 && nonNull(n.fields[e.source].node).kind != kRecord {
		return nil
	}
	img := e.after
	if img < 0 {
		img = e.before
	}
	e.row = nonNull(n.fields[img].node)
	if e.row.kind != kRecord {
		return nil
	}
	return e
}

// nonNull is the non-null branch of a nullable union (["null", T]), or n.
func nonNull(n *node) *node {
	if n.kind == kUnion && len(n.branches) == 2 {
		if n.branches[0].kind == kNull {
			return n.branches[1]
		}
		if n.branches[1].kind == kNull {
			return n.branches[0]
		}
	}
	return n
}

type compiler struct {
	named map[string]*node
}

func (c *compiler) compile(s avro.Schema) (*node, error) {
	switch s := s.(type) {
	case *avro.RefSchema:
		if n, ok := c.named[s.Schema().FullName()]; ok {
			return n, nil
		}
		return c.compile(s.Schema())
	case *avro.NullSchema:
		return &node{kind: kNull}, nil
	case *avro.PrimitiveSchema:
		return c.primitive(s)
	case *avro.RecordSchema:
		n := &node{kind: kRecord, name: s.FullName(), connect: propString(s.Prop("connect.name"))}
		c.named[s.FullName()] = n
		if n.connect == "io.debezium.data.VariableScaleDecimal" {
			n.logical = lVarDecimal
		}
		for _, f := range s.Fields() {
			fn, err := c.compile(f.Type())
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", f.Name(), err)
			}
			n.fields = append(n.fields, field{name: f.Name(), node: fn})
		}
		if n.logical == lVarDecimal && !isVarDecimal(n) {
			n.logical = lNone
		}
		return n, nil
	case *avro.EnumSchema:
		n := &node{kind: kEnum, symbols: s.Symbols(), name: s.FullName()}
		c.named[s.FullName()] = n
		return n, nil
	case *avro.FixedSchema:
		n := &node{kind: kFixed, size: s.Size(), name: s.FullName()}
		c.named[s.FullName()] = n
		if d, ok := s.Logical().(*avro.DecimalLogicalSchema); ok {
			setDecimal(n, int32(d.Precision()), int32(d.Scale()))
		}
		return n, nil
	case *avro.UnionSchema:
		n := &node{kind: kUnion}
		for _, b := range s.Types() {
			bn, err := c.compile(b)
			if err != nil {
				return nil, err
			}
			n.branches = append(n.branches, bn)
		}
		return n, nil
	case *avro.ArraySchema:
		items, err := c.compile(s.Items())
		if err != nil {
			return nil, err
		}
		return &node{kind: kArray, items: items}, nil
	case *avro.MapSchema:
		vals, err := c.compile(s.Values())
		if err != nil {
			return nil, err
		}
		return &node{kind: kMap, items: vals}, nil
	}
	return nil, fmt.Errorf("unsupported Avro schema %s", s.Type())
}

func isVarDecimal(n *node) bool {
	if len(n.fields) != 2 {
		return false
	}
	return n.fields[0].name == "scale" && n.fields[0].node.kind == kInt &&
		n.fields[1].name == "value" && n.fields[1].node.kind == kBytes
}

func propString(v any) string {
	s, _ := v.(string)
	return s
}

// connectParam reads a Kafka Connect parameter (connect.parameters), which
// the AvroConverter writes as strings.
func connectParam(s *avro.PrimitiveSchema, key string) (int64, bool) {
	m, ok := s.Prop("connect.parameters").(map[string]any)
	if !ok {
		return 0, false
	}
	str, ok := m[key].(string)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(str, 10, 32)
	return v, err == nil
}

func setDecimal(n *node, prec, scale int32) {
	n.logical, n.prec, n.scale = lDecimal, prec, scale
	if prec > codec.MaxDecimalPrecision || prec <= 0 || scale < 0 || scale > prec {
		// Beyond what Delta's decimal holds: kept exact as text, as the
		// Debezium JSON decoder does.
		n.logical = lDecimalText
	}
}

func (c *compiler) primitive(s *avro.PrimitiveSchema) (*node, error) {
	n := &node{connect: propString(s.Prop("connect.name"))}
	switch s.Type() {
	case avro.Boolean:
		n.kind = kBool
	case avro.Int:
		n.kind = kInt
	case avro.Long:
		n.kind = kLong
	case avro.Float:
		n.kind = kFloat
	case avro.Double:
		n.kind = kDouble
	case avro.Bytes:
		n.kind = kBytes
	case avro.String:
		n.kind = kString
	default:
		return nil, fmt.Errorf("unsupported Avro type %s", s.Type())
	}
	// Kafka Connect's names first: the AvroConverter writes both a
	// connect.name and, for some, an Avro logical type that says less
	// (io.debezium.time.MicroTimestamp is a plain long to Avro).
	switch n.connect {
	case "io.debezium.time.Date", "org.apache.kafka.connect.data.Date":
		n.logical = lDate
	case "io.debezium.time.Timestamp", "org.apache.kafka.connect.data.Timestamp":
		n.logical = lTimestampMs
	case "io.debezium.time.MicroTimestamp":
		n.logical = lTimestampUs
	case "io.debezium.time.NanoTimestamp":
		n.logical = lTimestampNs
	case "io.debezium.time.ZonedTimestamp":
		n.logical = lZoned
	case "io.debezium.time.Time", "org.apache.kafka.connect.data.Time":
		n.logical = lTimeMs
	case "io.debezium.time.MicroTime":
		n.logical = lTimeUs
	case "io.debezium.time.NanoTime":
		n.logical = lTimeNs
	case "io.debezium.data.Json":
		n.logical = lJSONText
	case "org.apache.kafka.connect.data.Decimal":
		scale, _ := connectParam(s, "scale")
		prec, ok := connectParam(s, "connect.decimal.precision")
		if !ok {
			prec = codec.MaxDecimalPrecision
		}
		setDecimal(n, int32(prec), int32(scale))
	}
	if n.logical != lNone {
		return n, nil
	}
	switch l := s.Logical().(type) {
	case *avro.DecimalLogicalSchema:
		setDecimal(n, int32(l.Precision()), int32(l.Scale()))
	case *avro.PrimitiveLogicalSchema:
		switch l.Type() {
		case avro.Date:
			n.logical = lDate
		case avro.TimestampMillis, avro.LocalTimestampMillis:
			n.logical = lTimestampMs
		case avro.TimestampMicros, avro.LocalTimestampMicros:
			n.logical = lTimestampUs
		case avro.TimeMillis:
			n.logical = lTimeMs
		case avro.TimeMicros:
			n.logical = lTimeUs
		}
	}
	return n, nil
}

// colType is the column type a node's values have.
func colType(n *node) codec.Type {
	n = nonNull(n)
	switch n.logical {
	case lDate:
		return codec.Type{Kind: codec.TypeDate}
	case lTimestampMs, lTimestampUs, lTimestampNs, lZoned:
		return codec.Type{Kind: codec.TypeTimestamp}
	case lTimeMs, lTimeUs, lTimeNs:
		return codec.Type{Kind: codec.TypeLong}
	case lDecimal:
		return codec.Type{Kind: codec.TypeDecimal, Precision: n.prec, Scale: n.scale}
	case lDecimalText, lVarDecimal:
		return codec.Type{Kind: codec.TypeString}
	case lJSONText:
		return codec.Type{Kind: codec.TypeJSON}
	}
	switch n.kind {
	case kBool:
		return codec.Type{Kind: codec.TypeBoolean}
	case kInt:
		return codec.Type{Kind: codec.TypeInteger}
	case kLong:
		return codec.Type{Kind: codec.TypeLong}
	case kFloat, kDouble:
		return codec.Type{Kind: codec.TypeDouble}
	case kBytes, kFixed:
		return codec.Type{Kind: codec.TypeBinary}
	case kString, kEnum:
		return codec.Type{Kind: codec.TypeString}
	}
	return codec.Type{Kind: codec.TypeJSON}
}

// reader reads the Avro binary encoding. Errors mean the bytes do not
// match the writer schema.
type reader struct {
	b      []byte
	i      int
	borrow bool
	buf    []byte // scratch for JSON text
}

var (
	errShort    = errors.New("truncated: the value ends inside a field")
	errVarint   = errors.New("malformed variable-length integer")
	errNegative = errors.New("negative length")
)

func (r *reader) long() (int64, error) {
	u, n := binary.Uvarint(r.b[r.i:])
	if n <= 0 {
		if n == 0 {
			return 0, errShort
		}
		return 0, errVarint
	}
	r.i += n
	return int64(u>>1) ^ -int64(u&1), nil
}

func (r *reader) int() (int32, error) {
	v, err := r.long()
	if err != nil {
		return 0, err
	}
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, errors.New("int out of range")
	}
	return int32(v), nil
}

func (r *reader) take(n int) ([]byte, error) {
	if n < 0 {
		return nil, errNegative
	}
	if n > len(r.b)-r.i {
		return nil, errShort
	}
	b := r.b[r.i : r.i+n : r.i+n]
	r.i += n
	return b, nil
}

func (r *reader) bytes() ([]byte, error) {
	n, err := r.long()
	if err != nil {
		return nil, err
	}
	if n > int64(len(r.b)) {
		return nil, errShort
	}
	return r.take(int(n))
}

// str reads a string; it shares the record's memory when borrowing.
func (r *reader) str() (string, error) {
	b, err := r.bytes()
	if err != nil || len(b) == 0 {
		return "", err
	}
	if r.borrow {
		return unsafe.String(&b[0], len(b)), nil
	}
	return string(b), nil
}

func (r *reader) branch(n *node) (*node, error) {
	i, err := r.long()
	if err != nil {
		return nil, err
	}
	if i < 0 || i >= int64(len(n.branches)) {
		return nil, fmt.Errorf("union branch %d out of range", i)
	}
	return n.branches[i], nil
}

// blockCount reads an array or map block header; a negative count is
// followed by the block's size in bytes, which the decoder does not need.
// A count is bounded by the bytes left when every item takes at least one
// byte (items of a map always do: their key's length), so a corrupt count
// fails at once instead of looping.
func (r *reader) blockCount(n *node) (int64, error) {
	c, err := r.long()
	if err != nil {
		return 0, err
	}
	if c < 0 {
		if _, err := r.long(); err != nil {
			return 0, err
		}
		if c == math.MinInt64 {
			return 0, errors.New("block count out of range")
		}
		c = -c
	}
	limit := int64(len(r.b) - r.i)
	if n.kind == kArray && n.items.empty() {
		limit = 1 << 16
	}
	if c > limit {
		return 0, fmt.Errorf("block of %d items is longer than the value", c)
	}
	return c, nil
}

// empty reports whether a value of n can take no bytes (null, or a record
// of such fields).
func (n *node) empty() bool {
	switch n.kind {
	case kNull:
		return true
	case kRecord:
		for _, f := range n.fields {
			if f.node != n && !f.node.empty() {
				return false
			}
		}
		return true
	}
	return false
}

// value reads n as one codec value: scalars natively, nested records,
// arrays and maps as JSON text.
func (r *reader) value(n *node) (codec.Value, error) {
	for n.kind == kUnion {
		var err error
		if n, err = r.branch(n); err != nil {
			return codec.Value{}, err
		}
	}
	switch n.kind {
	case kNull:
		return codec.Null(), nil
	case kBool:
		b, err := r.take(1)
		if err != nil {
			return codec.Value{}, err
		}
		if b[0] > 1 {
			return codec.Value{}, errors.New("boolean byte not 0 or 1")
		}
		return codec.Bool(b[0] == 1), nil
	case kInt:
		v, err := r.int()
		if err != nil {
			return codec.Value{}, err
		}
		switch n.logical {
		case lDate:
			return codec.Date(v), nil
		case lTimeMs:
			return codec.Int(int64(v) * 1000), nil
		}
		return codec.Int(int64(v)), nil
	case kLong:
		v, err := r.long()
		if err != nil {
			return codec.Value{}, err
		}
		switch n.logical {
		case lTimestampMs:
			return codec.Timestamp(v), nil
		case lTimestampUs:
			return codec.Timestamp(floorDiv(v, 1000)), nil
		case lTimestampNs:
			return codec.Timestamp(floorDiv(v, 1000000)), nil
		case lTimeMs:
			return codec.Int(v * 1000), nil
		case lTimeNs:
			return codec.Int(floorDiv(v, 1000)), nil
		case lDate:
			return codec.Date(int32(v)), nil
		}
		return codec.Int(v), nil
	case kFloat:
		b, err := r.take(4)
		if err != nil {
			return codec.Value{}, err
		}
		return codec.Float(float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))), nil
	case kDouble:
		b, err := r.take(8)
		if err != nil {
			return codec.Value{}, err
		}
		return codec.Float(math.Float64frombits(binary.LittleEndian.Uint64(b))), nil
	case kString:
		s, err := r.str()
		if err != nil {
			return codec.Value{}, err
		}
		switch n.logical {
		case lJSONText:
			return codec.JSON(s), nil
		case lZoned:
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return codec.Value{}, fmt.Errorf("zoned timestamp %q: %w", s, err)
			}
			return codec.Timestamp(floorDiv(t.UnixNano(), 1000000)), nil
		}
		return codec.String(s), nil
	case kBytes, kFixed:
		var b []byte
		var err error
		if n.kind == kFixed {
			b, err = r.take(n.size)
		} else {
			b, err = r.bytes()
		}
		if err != nil {
			return codec.Value{}, err
		}
		switch n.logical {
		case lDecimal:
			return codec.Decimal(b, n.scale), nil
		case lDecimalText:
			return codec.String(codec.Decimal(b, n.scale).Text()), nil
		}
		return codec.Binary(b), nil
	case kEnum:
		i, err := r.long()
		if err != nil {
			return codec.Value{}, err
		}
		if i < 0 || i >= int64(len(n.symbols)) {
			return codec.Value{}, fmt.Errorf("enum index %d out of range", i)
		}
		return codec.String(n.symbols[i]), nil
	case kRecord:
		if n.logical == lVarDecimal {
			scale, err := r.int()
			if err != nil {
				return codec.Value{}, err
			}
			b, err := r.bytes()
			if err != nil {
				return codec.Value{}, err
			}
			return codec.String(codec.Decimal(b, scale).Text()), nil
		}
	}
	r.buf = r.buf[:0]
	var err error
	if r.buf, err = r.appendJSON(r.buf, n); err != nil {
		return codec.Value{}, err
	}
	return codec.JSON(string(r.buf)), nil
}

// appendJSON appends n's value as JSON: records and maps as objects,
// arrays as arrays, a union as its branch's value, bytes as base64 text
// (as Kafka Connect's JSON converter writes them).
func (r *reader) appendJSON(dst []byte, n *node) ([]byte, error) {
	switch n.kind {
	case kUnion:
		b, err := r.branch(n)
		if err != nil {
			return dst, err
		}
		return r.appendJSON(dst, b)
	case kRecord:
		if n.logical == lVarDecimal {
			break
		}
		dst = append(dst, '{')
		for i, f := range n.fields {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = cdc.AppendJSONString(dst, f.name)
			dst = append(dst, ':')
			var err error
			if dst, err = r.appendJSON(dst, f.node); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case kArray, kMap:
		open, end := byte('['), byte(']')
		if n.kind == kMap {
			open, end = '{', '}'
		}
		dst = append(dst, open)
		first := true
		for {
			c, err := r.blockCount(n)
			if err != nil {
				return dst, err
			}
			if c == 0 {
				break
			}
			for ; c > 0; c-- {
				if !first {
					dst = append(dst, ',')
				}
				first = false
				if n.kind == kMap {
					k, err := r.bytes()
					if err != nil {
						return dst, err
					}
					dst = cdc.AppendJSONString(dst, string(k))
					dst = append(dst, ':')
				}
				if dst, err = r.appendJSON(dst, n.items); err != nil {
					return dst, err
				}
			}
		}
		return append(dst, end), nil
	}
	// A scalar inside a nested value: its codec value's JSON form.
	save := r.borrow
	r.borrow = true // the text is copied into dst at once
	v, err := r.value(n)
	r.borrow = save
	if err != nil {
		return dst, err
	}
	return appendScalarJSON(dst, v), nil
}

func appendScalarJSON(dst []byte, v codec.Value) []byte {
	switch v.Kind() {
	case codec.KindNull:
		return append(dst, "null"...)
	case codec.KindBool, codec.KindInt, codec.KindDecimal:
		return append(dst, v.Text()...)
	case codec.KindFloat:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return cdc.AppendJSONString(dst, v.Text())
		}
		return strconv.AppendFloat(dst, f, 'g', -1, 64)
	case codec.KindJSON:
		return append(dst, v.Str()...)
	case codec.KindBinary:
		return cdc.AppendJSONString(dst, base64.StdEncoding.EncodeToString([]byte(v.Str())))
	}
	return cdc.AppendJSONString(dst, v.Text())
}

// skip reads past n's value.
func (r *reader) skip(n *node) error {
	switch n.kind {
	case kNull:
		return nil
	case kBool:
		_, err := r.take(1)
		return err
	case kInt, kLong, kEnum:
		_, err := r.long()
		return err
	case kFloat:
		_, err := r.take(4)
		return err
	case kDouble:
		_, err := r.take(8)
		return err
	case kBytes, kString:
		_, err := r.bytes()
		return err
	case kFixed:
		_, err := r.take(n.size)
		return err
	case kUnion:
		b, err := r.branch(n)
		if err != nil {
			return err
		}
		return r.skip(b)
	case kRecord:
		for _, f := range n.fields {
			if err := r.skip(f.node); err != nil {
				return err
			}
		}
		return nil
	case kArray, kMap:
		for {
			c, err := r.blockCount(n)
			if err != nil || c == 0 {
				return err
			}
			for ; c > 0; c-- {
				if n.kind == kMap {
					if _, err := r.bytes(); err != nil {
						return err
					}
				}
				if err := r.skip(n.items); err != nil {
					return err
				}
			}
		}
	}
	return fmt.Errorf("unknown node kind %d", n.kind)
}

// row reads a record's fields as a row, appending to scratch.
func (r *reader) row(n *node, scratch []codec.Field) ([]codec.Field, error) {
	row := scratch[:0]
	if cap(row) < len(n.fields) {
		row = make([]codec.Field, 0, len(n.fields))
	}
	for _, f := range n.fields {
		v, err := r.value(f.node)
		if err != nil {
			return nil, &fieldError{name: f.name, err: err}
		}
		row = append(row, codec.Field{Name: f.name, Value: v})
	}
	return row, nil
}

// fieldError names the field whose bytes did not match the schema.
type fieldError struct {
	name string
	err  error
}

func (e *fieldError) Error() string { return e.name + ": " + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
