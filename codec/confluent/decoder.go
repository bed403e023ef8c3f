package confluent

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
)

// Schema-registry formats, beside codec/cdc's JSON formats.
const (
	FormatAvro       codec.Format = "avro"
	FormatProtobuf   codec.Format = "protobuf"
	FormatJSONSchema codec.Format = "json-schema"
)

// IsFormat reports whether f is a schema-registry format.
func IsFormat(f codec.Format) bool {
	return f == FormatAvro || f == FormatProtobuf || f == FormatJSONSchema
}

// PlainFields name the fields of a plain (not Debezium) record that carry
// the change's metadata rather than a column. A field that the schema
// lacks is simply absent: no op means INSERT, no LSN means the fallback
// ordering key (source time << 20 | Kafka offset, as for Debezium without
// a source LSN), no table field means the table is the topic's last
// dot-separated part.
type PlainFields struct {
	Op, LSN, TS, Table string
}

// DefaultPlainFields are the evodb envelope's names.
var DefaultPlainFields = PlainFields{Op: "op", LSN: "lsn", TS: "ts", Table: "table"}

// DecoderOptions configure a Decoder.
type DecoderOptions struct {
	// Value is the value format: FormatAvro, FormatProtobuf or
	// FormatJSONSchema.
	Value codec.Format
	// Key is the key format: FormatAvro, FormatProtobuf,
	// FormatJSONSchema, or empty for keys read as the JSON decoders read
	// them (JSON Schema values) or kept as opaque bytes (Avro and
	// Protobuf values).
	Key codec.Format
	// Envelope is the JSON envelope behind a JSON Schema header:
	// cdc.FormatEvoDB (default) or cdc.FormatDebezium.
	Envelope codec.Format
	// Fields are the metadata fields of plain Avro and Protobuf records;
	// zero means DefaultPlainFields.
	Fields PlainFields
}

// Decoder decodes records in the Confluent wire format. It implements
// cdc.BorrowingDecoder.
//
// Avro values are either a Debezium envelope (a record with op, source
// and before/after, as the AvroConverter writes it: one change per
// record, the Debezium JSON decoder's rules for table, op, LSN and
// timestamps) or a plain record: one change whose columns are the
// record's fields except the PlainFields. Protobuf values (the message
// the header's message index names) are read the same way: an envelope
// when the message has a string op, before/after messages and a source
// message, else a plain record.
//
// Errors: a value without the magic byte, a schema ID the registry does
// not know, or bytes that do not match the schema are *codec.DecodeError
// naming the record and the registry. A registry that cannot be reached
// is an error wrapping ErrUnavailable, never a *codec.DecodeError.
type Decoder struct {
	reg    *Registry
	opts   DecoderOptions
	header sr.ConfluentHeader
	json   cdc.Decoder // the envelope behind a JSON Schema header

	// plans caches the plain-record layout per schema ID, and pplans per
	// Protobuf message (they depend on opts.Fields, so they live here,
	// not in the registry's cache).
	mu struct {
		sync.RWMutex
		plans  map[int]*plainPlan
		pplans map[*pmsg]*plainPlan
	}
}

var _ cdc.BorrowingDecoder = (*Decoder)(nil)

// NewDecoder returns a decoder reading schemas from reg.
func NewDecoder(reg *Registry, o DecoderOptions) (*Decoder, error) {
	switch o.Value {
	case FormatAvro, FormatProtobuf, FormatJSONSchema:
	default:
		return nil, fmt.Errorf("unknown schema-registry format %q (want %q, %q or %q)", o.Value, FormatAvro, FormatProtobuf, FormatJSONSchema)
	}
	switch o.Key {
	case "", FormatAvro, FormatProtobuf, FormatJSONSchema:
	default:
		return nil, fmt.Errorf("unknown key format %q (want %q, %q, %q or none)", o.Key, FormatAvro, FormatProtobuf, FormatJSONSchema)
	}
	if o.Fields == (PlainFields{}) {
		o.Fields = DefaultPlainFields
	}
	d := &Decoder{reg: reg, opts: o}
	if o.Value == FormatJSONSchema {
		env := o.Envelope
		if env == "" {
			env = cdc.FormatEvoDB
		}
		inner, err := cdc.NewDecoder(env)
		if err != nil {
			return nil, err
		}
		d.json = inner
	}
	d.mu.plans = map[int]*plainPlan{}
	d.mu.pplans = map[*pmsg]*plainPlan{}
	return d, nil
}

// Decode implements cdc.Decoder.
func (d *Decoder) Decode(rec codec.Record, dst *codec.Change) error {
	return d.decode(rec, dst, false)
}

// DecodeBorrowed implements cdc.BorrowingDecoder.
func (d *Decoder) DecodeBorrowed(rec codec.Record, dst *codec.Change) error {
	return d.decode(rec, dst, true)
}

func (d *Decoder) recErr(rec *codec.Record, table, field, reason string) *codec.DecodeError {
	return &codec.DecodeError{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Table: table, Field: field, Reason: reason}
}

// header reads the wire-format header of b, returning the schema and the
// payload.
func (d *Decoder) schemaOf(rec *codec.Record, b []byte, what string) (*compiled, []byte, error) {
	id, payload, err := d.header.DecodeID(b)
	if err != nil {
		reason := fmt.Sprintf("%s is not in the Confluent wire format (schema registry %s): ", what, d.reg.URL())
		if len(b) == 0 {
			reason += "empty"
		} else if b[0] != 0 {
			reason += fmt.Sprintf("magic byte %#x, want 0", b[0])
		} else {
			reason += fmt.Sprintf("%d bytes, shorter than the 5-byte header", len(b))
		}
		return nil, nil, d.recErr(rec, "", "", reason)
	}
	sch, err := d.reg.schema(id)
	switch {
	case errors.Is(err, ErrUnavailable):
		return nil, nil, fmt.Errorf("record %s/%d@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
	case errors.Is(err, errNotFound):
		return nil, nil, d.recErr(rec, "", "", fmt.Sprintf("%s names schema ID %d, which the schema registry %s does not have", what, id, d.reg.URL()))
	case err != nil:
		return nil, nil, d.recErr(rec, "", "", fmt.Sprintf("%s: %v", what, err))
	}
	return sch, payload, nil
}

func (d *Decoder) decode(rec codec.Record, dst *codec.Change, borrow bool) error {
	var scratch, keyScratch []codec.Field
	if borrow {
		scratch, keyScratch = dst.Row, dst.Key
	}
	*dst = codec.Change{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, TS: rec.TimestampMs}
	if len(rec.Value) == 0 {
		return cdc.ErrTombstone
	}
	sch, payload, err := d.schemaOf(&rec, rec.Value, "value")
	if err != nil {
		return err
	}
	switch d.opts.Value {
	case FormatJSONSchema:
		return d.decodeJSON(rec, dst, sch, payload, borrow)
	case FormatProtobuf:
		if err := d.decodeProto(&rec, dst, sch, payload, borrow, scratch); err != nil {
			return err
		}
	default:
		if err := d.decodeAvro(&rec, dst, sch, payload, borrow, scratch); err != nil {
			return err
		}
	}
	if err := d.decodeKey(&rec, dst, keyScratch, borrow); err != nil {
		return err
	}
	if dst.Op == codec.OpDelete && len(dst.Row) == 0 && !dst.HasOpaqueKey() {
		dst.Row = append([]codec.Field(nil), dst.Key...)
	}
	if dst.Op == codec.OpDelete && len(dst.Row) == 0 {
		return d.recErr(&rec, dst.TableName(), "before", "a delete without a before-image or a key with named columns")
	}
	return nil
}

func (d *Decoder) decodeAvro(rec *codec.Record, dst *codec.Change, sch *compiled, payload []byte, borrow bool, scratch []codec.Field) error {
	if sch.avro == nil {
		return d.recErr(rec, "", "", fmt.Sprintf("value schema ID %d is a %s schema, not Avro (schema registry %s)", sch.id, sch.typ, d.reg.URL()))
	}
	r := reader{b: payload, borrow: borrow}
	var err error
	if sch.avro.env != nil {
		err = d.decodeEnvelope(rec, dst, sch, &r, scratch)
	} else {
		err = d.decodePlain(rec, dst, sch, &r, scratch)
	}
	if err != nil {
		return err
	}
	if r.i != len(r.b) {
		return d.recErr(rec, dst.TableName(), "", fmt.Sprintf("value does not match its schema ID %d (schema registry %s): %d bytes left after the record", sch.id, d.reg.URL(), len(r.b)-r.i))
	}
	return nil
}

// mismatch is a record whose bytes do not match its schema.
func (d *Decoder) mismatch(rec *codec.Record, table string, sch *compiled, err error) *codec.DecodeError {
	field := ""
	var fe *fieldError
	if errors.As(err, &fe) {
		field = fe.name
		err = fe.err
	}
	return d.recErr(rec, table, field, fmt.Sprintf("value does not match its schema ID %d (schema registry %s): %v", sch.id, d.reg.URL(), err))
}

// location is where an envelope's before or after image starts.
type location struct {
	pos  int
	node *node // nil when the image is null
}

// locate reads past a before/after field, remembering where its record
// starts, so only the image the op needs is decoded.
func (r *reader) locate(n *node) (location, error) {
	for n.kind == kUnion {
		var err error
		if n, err = r.branch(n); err != nil {
			return location{}, err
		}
	}
	if n.kind == kNull {
		return location{}, nil
	}
	loc := location{pos: r.i, node: n}
	return loc, r.skip(n)
}

func (d *Decoder) decodeEnvelope(rec *codec.Record, dst *codec.Change, sch *compiled, r *reader, scratch []codec.Field) error {
	a := sch.avro
	env := a.env
	var (
		before, after location
		op            string
		tsMs          int64
		hasTs         bool
		src           sourceInfo
	)
	for i, f := range a.root.fields {
		var err error
		switch i {
		case env.before:
			before, err = r.locate(f.node)
		case env.after:
			after, err = r.locate(f.node)
		case env.source:
			err = r.source(f.node, dst, &src)
		case env.op:
			var v codec.Value
			if v, err = r.value(f.node); err == nil {
				op = v.Str()
			}
		case env.tsMs:
			var v codec.Value
			if v, err = r.value(f.node); err == nil && v.Kind() == codec.KindInt {
				tsMs, hasTs = v.Int(), true
			}
		default:
			err = r.skip(f.node)
		}
		if err != nil {
			var se *sourceError
			if errors.As(err, &se) {
				return d.recErr(rec, dst.TableName(), "source."+se.field, se.reason)
			}
			return d.mismatch(rec, dst.TableName(), sch, &fieldError{name: f.name, err: err})
		}
	}
	if dst.Table == "" {
		dst.Table = topicTable(rec.Topic)
	}
	table := dst.TableName()
	var image location
	var imageName string
	switch op {
	case "c":
		dst.Op, image, imageName = codec.OpInsert, after, "after"
	case "u":
		dst.Op, image, imageName = codec.OpUpdate, after, "after"
	case "r":
		dst.Op, image, imageName = codec.OpSnapshot, after, "after"
	case "d":
		dst.Op, image, imageName = codec.OpDelete, before, "before"
	case "":
		return d.recErr(rec, table, "op", "missing")
	default:
		return d.recErr(rec, table, "op", "unsupported op "+strconv.Quote(op))
	}
	dst.Declared = a.cols
	if image.node != nil {
		end := r.i
		r.i = image.pos
		row, err := r.row(image.node, scratch)
		if err != nil {
			return d.mismatch(rec, table, sch, err)
		}
		dst.Row = row
		r.i = end
	} else if dst.Op != codec.OpDelete {
		return d.recErr(rec, table, imageName, "missing or null")
	}
	if !src.hasTS && hasTs {
		dst.TS = tsMs
	}
	if !src.hasLSN {
		return fallbackLSN(d, rec, dst)
	}
	return nil
}

// fallbackLSN sets the ordering key of a change without a source LSN:
// source time << 20 | (Kafka offset & 0xFFFFF), as the Debezium JSON
// decoder does.
func fallbackLSN(d *Decoder, rec *codec.Record, dst *codec.Change) error {
	ts := dst.TS
	if ts < 0 || ts >= 1<<43 {
		return d.recErr(rec, dst.TableName(), "ts", "out of range for the fallback ordering key")
	}
	dst.LSN = uint64(ts)<<20 | uint64(rec.Offset)&0xFFFFF
	return nil
}

// topicTable is the table of a record that names none: the topic's last
// dot-separated part.
func topicTable(topic string) string {
	if i := strings.LastIndexByte(topic, '.'); i >= 0 && i+1 < len(topic) {
		return topic[i+1:]
	}
	return topic
}

type sourceInfo struct{ hasLSN, hasTS bool }

// sourceError is a source field with a value the decoder cannot use.
type sourceError struct{ field, reason string }

func (e *sourceError) Error() string { return e.field + ": " + e.reason }

// source reads a Debezium source block into dst: namespace, LSN (source.lsn,
// MySQL file and pos, or Oracle scn) and source time.
func (r *reader) source(n *node, dst *codec.Change, src *sourceInfo) error {
	for n.kind == kUnion {
		var err error
		if n, err = r.branch(n); err != nil {
			return err
		}
	}
	if n.kind != kRecord {
		return r.skip(n)
	}
	var st sourceState
	for _, f := range n.fields {
		if !sourceField(f.name) {
			if err := r.skip(f.node); err != nil {
				return err
			}
			continue
		}
		v, err := r.value(f.node)
		if err != nil {
			return err
		}
		if err := st.field(f.name, v, dst, src); err != nil {
			return err
		}
	}
	return st.finish(dst, src)
}

// sourceField reports whether a field of a Debezium source block is one
// the decoder reads.
func sourceField(name string) bool {
	switch name {
	case "db", "schema", "table", "collection", "lsn", "ts_ms", "file", "pos", "scn":
		return true
	}
	return false
}

// sourceState collects the fields of a Debezium source block, whatever
// its serialization.
type sourceState struct {
	file, scn string
	pos       int64
	hasPos    bool
}

// field applies one source field's value to dst.
func (st *sourceState) field(name string, v codec.Value, dst *codec.Change, src *sourceInfo) error {
	if v.IsNull() {
		return nil
	}
	switch name {
	case "db":
		dst.DB = v.Text()
	case "schema":
		dst.Schema = v.Text()
	case "table", "collection":
		dst.Table = v.Text()
	case "lsn":
		if v.Kind() != codec.KindInt || v.Int() < 0 {
			return &sourceError{"lsn", "not a non-negative integer"}
		}
		dst.LSN, src.hasLSN = uint64(v.Int()), true
	case "ts_ms":
		if v.Kind() == codec.KindInt {
			dst.TS, src.hasTS = v.Int(), true
		}
	case "file":
		st.file = v.Text()
	case "pos":
		if v.Kind() != codec.KindInt || v.Int() < 0 || v.Int() >= 1<<32 {
			return &sourceError{"pos", "not a binlog position"}
		}
		st.pos, st.hasPos = v.Int(), true
	case "scn":
		st.scn = v.Text()
	}
	return nil
}

// finish derives the LSN from a MySQL binlog position or an Oracle SCN
// when the block had no lsn.
func (st *sourceState) finish(dst *codec.Change, src *sourceInfo) error {
	switch {
	case src.hasLSN:
	case st.file != "" && st.hasPos:
		i := strings.LastIndexByte(st.file, '.')
		num, err := strconv.ParseUint(st.file[i+1:], 10, 31)
		if err != nil {
			return &sourceError{"file", "binlog file name without a number: " + strconv.Quote(st.file)}
		}
		dst.LSN, src.hasLSN = num<<32|uint64(st.pos), true
	case st.scn != "":
		v, err := strconv.ParseUint(st.scn, 10, 63)
		if err != nil {
			return &sourceError{"scn", "not an unsigned integer below 2^63: " + strconv.Quote(st.scn)}
		}
		dst.LSN, src.hasLSN = v, true
	}
	return nil
}

// plainPlan is a plain record's layout under the decoder's PlainFields.
type plainPlan struct {
	// role of each root field: 0 column, else one of the roles below.
	role []uint8
	cols []codec.Column
}

const (
	roleColumn uint8 = iota
	roleOp
	roleLSN
	roleTS
	roleTable
)

func (d *Decoder) plan(sch *compiled) *plainPlan {
	d.mu.RLock()
	p, ok := d.mu.plans[sch.id]
	d.mu.RUnlock()
	if ok {
		return p
	}
	root := sch.avro.root
	p = &plainPlan{role: make([]uint8, len(root.fields))}
	for i, f := range root.fields {
		switch f.name {
		case d.opts.Fields.Op:
			p.role[i] = roleOp
		case d.opts.Fields.LSN:
			p.role[i] = roleLSN
		case d.opts.Fields.TS:
			p.role[i] = roleTS
		case d.opts.Fields.Table:
			p.role[i] = roleTable
		default:
			p.cols = append(p.cols, sch.avro.cols[i])
		}
	}
	d.mu.Lock()
	if len(d.mu.plans) >= d.reg.limit {
		d.mu.plans = map[int]*plainPlan{}
	}
	d.mu.plans[sch.id] = p
	d.mu.Unlock()
	return p
}

func (d *Decoder) decodePlain(rec *codec.Record, dst *codec.Change, sch *compiled, r *reader, scratch []codec.Field) error {
	root := sch.avro.root
	if root.kind != kRecord {
		return d.recErr(rec, "", "", fmt.Sprintf("value schema ID %d is not an Avro record (schema registry %s)", sch.id, d.reg.URL()))
	}
	p := d.plan(sch)
	dst.Op = codec.OpInsert
	row := scratch[:0]
	if cap(row) < len(p.cols) {
		row = make([]codec.Field, 0, len(p.cols))
	}
	hasLSN := false
	for i, f := range root.fields {
		v, err := r.value(f.node)
		if err != nil {
			return d.mismatch(rec, dst.Table, sch, &fieldError{name: f.name, err: err})
		}
		if p.role[i] == roleColumn {
			row = append(row, codec.Field{Name: f.name, Value: v})
			continue
		}
		if err := d.applyMeta(rec, dst, p.role[i], f.name, v, false, &hasLSN); err != nil {
			return err
		}
	}
	return d.finishPlain(rec, dst, row, p.cols, hasLSN)
}

// applyMeta applies a plain record's metadata field (a role other than
// roleColumn) to dst, for Avro and Protobuf alike. A null op is kept as
// the default insert when nullOp says the format has no other way to leave
// it out (a proto3 field without presence), and is an error otherwise.
func (d *Decoder) applyMeta(rec *codec.Record, dst *codec.Change, role uint8, name string, v codec.Value, nullOp bool, hasLSN *bool) error {
	switch role {
	case roleOp:
		if v.IsNull() && nullOp {
			return nil
		}
		op, ok := parseOp(v.Text())
		if !ok {
			return d.recErr(rec, dst.Table, name, "unknown op "+strconv.Quote(v.Text()))
		}
		dst.Op = op
	case roleLSN:
		if v.IsNull() {
			return nil
		}
		if v.Kind() != codec.KindInt || v.Int() < 0 {
			return d.recErr(rec, dst.Table, name, "not a non-negative integer")
		}
		dst.LSN, *hasLSN = uint64(v.Int()), true
	case roleTS:
		switch v.Kind() {
		case codec.KindInt, codec.KindTimestamp:
			dst.TS = v.Millis()
		}
	case roleTable:
		if !v.IsNull() {
			if dst.Table = v.Text(); dst.Table == "" {
				return d.recErr(rec, "", name, "empty")
			}
		}
	}
	return nil
}

// finishPlain completes a plain record's change: its table from the topic
// when no field named it, its columns, and an LSN when none was given.
func (d *Decoder) finishPlain(rec *codec.Record, dst *codec.Change, row []codec.Field, declared []codec.Column, hasLSN bool) error {
	if dst.Table == "" {
		dst.Table = topicTable(rec.Topic)
	}
	dst.Row = row
	dst.Declared = declared
	if !hasLSN {
		return fallbackLSN(d, rec, dst)
	}
	return nil
}

// parseOp reads the op of a plain record: the evodb names in either case,
// or Debezium's letters.
func parseOp(s string) (codec.Op, bool) {
	switch strings.ToUpper(s) {
	case "INSERT", "C":
		return codec.OpInsert, true
	case "UPDATE", "U":
		return codec.OpUpdate, true
	case "DELETE", "D":
		return codec.OpDelete, true
	case "SNAPSHOT", "R":
		return codec.OpSnapshot, true
	}
	return 0, false
}

// decodeKey sets dst.Key from the record key. The value is authoritative:
// a key that cannot be read as named columns (no wire-format header, an
// unknown schema, bytes that do not match, a schema that is not a record)
// is kept as opaque bytes and never refuses the change. Only a registry
// outage is an error, because skipping the fetch could decide a key
// differently than a later retry would.
func (d *Decoder) decodeKey(rec *codec.Record, dst *codec.Change, scratch []codec.Field, borrow bool) error {
	if len(rec.Key) == 0 {
		return nil
	}
	opaque := func() error {
		dst.Key = append(scratch[:0], codec.Field{Name: codec.OpaqueKey, Value: codec.Binary(rec.Key)})
		return nil
	}
	if (d.opts.Key != FormatAvro && d.opts.Key != FormatProtobuf) || rec.Key[0] != 0 {
		return opaque()
	}
	sch, payload, err := d.schemaOf(rec, rec.Key, "key")
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			return err
		}
		return opaque()
	}
	if d.opts.Key == FormatProtobuf {
		return d.decodeProtoKey(dst, sch, payload, scratch, borrow, opaque)
	}
	if sch.avro == nil || sch.avro.root.kind != kRecord {
		return opaque()
	}
	r := reader{b: payload, borrow: borrow}
	key, err := r.row(sch.avro.root, scratch)
	if err != nil || r.i != len(r.b) || len(key) == 0 {
		return opaque()
	}
	dst.Key = key
	return nil
}

// decodeJSON decodes a JSON Schema value: the header's schema must be a
// JSON schema; the JSON behind it is read by the envelope's decoder, with
// the key's header stripped too when the key is JSON Schema.
func (d *Decoder) decodeJSON(rec codec.Record, dst *codec.Change, sch *compiled, payload []byte, borrow bool) error {
	if !sch.jsonSchema {
		return d.recErr(&rec, "", "", fmt.Sprintf("value schema ID %d is a %s schema, not JSON Schema (schema registry %s)", sch.id, sch.typ, d.reg.URL()))
	}
	inner := rec
	inner.Value = payload
	if d.opts.Key == FormatJSONSchema && len(rec.Key) >= 5 && rec.Key[0] == 0 {
		if _, err := d.reg.schema(int(uint32(rec.Key[1])<<24 | uint32(rec.Key[2])<<16 | uint32(rec.Key[3])<<8 | uint32(rec.Key[4]))); errors.Is(err, ErrUnavailable) {
			return fmt.Errorf("record %s/%d@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
		}
		inner.Key = rec.Key[5:]
	}
	if bd, ok := d.json.(cdc.BorrowingDecoder); ok && borrow {
		return bd.DecodeBorrowed(inner, dst)
	}
	return d.json.Decode(inner, dst)
}
