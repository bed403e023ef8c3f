package cdc

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/evodb/sink/codec"
)

// debeziumDecoder decodes Debezium JSON envelopes, with or without the
// Kafka Connect {"schema":…,"payload":…} wrapper.
//
// Row: the after-image for c/u/r, the before-image for d (when the source
// sends no before-image, the record key's columns stand in for it). A
// record key that is not a JSON object with named columns is kept as one
// OpaqueKey field and is never a decode error. A null record
// value or null payload is ErrTombstone. Other ops (t, m) are decode
// errors.
//
// Table: source.table (source.collection for MongoDB), else the last
// dot-separated part of the topic. DB and Schema come from source.db and
// source.schema.
//
// LSN: the ordering key, in this order of preference:
//   - source.lsn (Postgres), a number or decimal string;
//   - MySQL source.file and source.pos: binlog file number<<32 | pos (a
//     binlog file is far smaller than 4 GiB, so pos fits 32 bits);
//   - source.scn (Oracle), a decimal string;
//   - otherwise ts_ms<<20 | (Kafka offset & 0xFFFFF), which orders changes
//     by source time and, within a millisecond, by offset (exact while a
//     partition carries fewer than about a million records per ms).
//
// Ties (several rows of one MySQL event) keep their Kafka order.
//
// Types: without a schema, kinds are inferred as for evodb. With one, the
// declared types are used (and Change.Declared is set):
//   - int8/16/32 → integer, int64 → long, float32/64 → double, boolean,
//     string, bytes (base64) → binary;
//   - io.debezium.time.Date, org.apache.kafka.connect.data.Date → date;
//   - io.debezium.time.Timestamp, MicroTimestamp, NanoTimestamp,
//     ZonedTimestamp, org.apache.kafka.connect.data.Timestamp → timestamp
//     in milliseconds UTC (finer units are truncated toward -∞);
//   - io.debezium.time.Time, MicroTime, NanoTime,
//     org.apache.kafka.connect.data.Time → long, microseconds of the day;
//   - org.apache.kafka.connect.data.Decimal (base64 unscaled bytes or a
//     JSON number, "scale" parameter, precision from
//     "connect.decimal.precision", default 38) → decimal(p,s); a precision
//     above 38 is stored as a string;
//   - io.debezium.data.VariableScaleDecimal → string holding the exact
//     decimal text, because the scale differs from row to row;
//   - io.debezium.data.Json → JSON text; Uuid, Enum, Xml and other named
//     string types → string;
//   - struct, array, map (and geometry structs) → JSON text.
//
// The parsed schema of each distinct schema text is cached, so the
// schema part of a record costs one hash lookup.
type debeziumDecoder struct {
	mu    sync.RWMutex
	rows  map[string]*rowSchema // envelope schema text → before/after schema
	keys  map[string]*rowSchema // key schema text → key schema
	limit int
	// textImages reads every envelope as text, never decoding the after
	// image during the envelope scan (specRow): the reference the
	// speculative decode is checked against.
	textImages bool
}

// schemaCacheLimit bounds each schema cache; when full it is cleared, so a
// topic with endlessly changing schemas costs parse time, not memory.
const schemaCacheLimit = 256

func newDebeziumDecoder() *debeziumDecoder {
	return &debeziumDecoder{rows: map[string]*rowSchema{}, keys: map[string]*rowSchema{}, limit: schemaCacheLimit}
}

// conv says how a declared field's JSON value becomes a Value.
type conv uint8

const (
	convInfer conv = iota
	convInt32
	convInt64
	convFloat
	convBool
	convString
	convBytes
	convDate
	convTimestampMs
	convTimestampUs
	convTimestampNs
	convZoned
	convTimeMs
	convTimeUs
	convTimeNs
	convDecimal
	convDecimalText
	convVarDecimal
	convJSONText
	convNested
)

type fieldSchema struct {
	name  string
	conv  conv
	scale int32
}

// rowSchema is the parsed schema of a before/after (or key) struct.
type rowSchema struct {
	fields []fieldSchema
	index  map[string]int
	cols   []codec.Column
}

func (r *rowSchema) lookup(name string, hint int) *fieldSchema {
	if hint < len(r.fields) && r.fields[hint].name == name {
		return &r.fields[hint]
	}
	if i, ok := r.index[name]; ok {
		return &r.fields[i]
	}
	return nil
}

// connectSchema is the Kafka Connect JSON schema, parsed with
// encoding/json: it is cached per distinct text, so this is a cold path.
type connectSchema struct {
	Type       string          `json:"type"`
	Name       string          `json:"name"`
	Field      string          `json:"field"`
	Optional   bool            `json:"optional"`
	Fields     []connectSchema `json:"fields"`
	Parameters map[string]any  `json:"parameters"`
}

type envelope struct {
	schema, payload, before, after, source string
	hasPayload                             bool
	op                                     string
	tsMs                                   int64
	hasTs                                  bool
	// inner is the payload's envelope, read in place; innerField and
	// innerErr are why it could not be (the payload is then read again
	// from its text, which reports that error as before).
	inner      *envelope
	innerField string
	innerErr   error
	// spec is the after image, decoded while the envelope was read.
	spec specRow
}

// specRow is a row image decoded where the envelope scan met it, before
// op and schema were known for certain: the common case (op c, u or r,
// schema before payload) then scans the image once instead of skipping
// it and decoding it again. Invariant: it is used only for the after
// image, only when it was typed by the schema text the change ends up
// with, and only when the decode succeeded; it read the same bytes with
// the same row schema as decodeRow would, and counted nesting from the
// envelope (scanner.depth 1) as the skip it replaces did, so it is what
// decodeRow returns and that skip would have accepted. Any failure falls
// back to skipping the image, and decodeRow reports the error as before.
// TestDebeziumSpeculativeAfter breaks each condition on purpose.
type specRow struct {
	ok     bool
	schema string
	row    []codec.Field
}

var errNotObject = errors.New("not an object")

// envReader reads an envelope, decoding the after image as it goes.
type envReader struct {
	d *debeziumDecoder
	// scratch is the borrowed row array the image may be decoded into.
	scratch []codec.Field
	// plain reads as the envelope was always read: the payload and the
	// images as text, nothing decoded (a record key, or a payload read
	// again from its text).
	plain bool
}

// readEnvelope reads the top-level keys of an envelope or wrapper.
func (r *envReader) readEnvelope(p *scanner, env *envelope) (field string, err error) {
	if field, err = r.readObject(p, env, true, ""); err != nil {
		return field, err
	}
	if !p.atEnd() {
		return "", errSyntax
	}
	return "", nil
}

// readObject reads an envelope object at p: the outermost one (top), or a
// payload inside it whose images are typed by the outer schema, as read
// when the payload began.
func (r *envReader) readObject(p *scanner, env *envelope, top bool, outerSchema string) (field string, err error) {
	err = p.object(func(key string) error {
		field = key
		var err error
		switch key {
		case "schema":
			env.schema, err = p.skip()
		case "payload":
			env.hasPayload = true
			env.inner, env.innerErr = nil, nil
			start := p.i
			if !r.plain && top && p.peek() == '{' {
				// The payload's values are one level deeper than the
				// envelope's, as the skip of the whole payload counted.
				inner := &envelope{}
				p.depth++
				f, ierr := r.readObject(p, inner, false, env.schema)
				p.depth--
				if ierr == nil {
					env.inner, env.payload = inner, p.s[start:p.i]
					return nil
				}
				env.innerField, env.innerErr = f, ierr
				p.i = start
			}
			env.payload, err = p.skip()
		case "before":
			env.before, err = p.skip()
		case "after":
			env.spec = specRow{}
			start := p.i
			schema := outerSchema
			if top {
				schema = env.schema
			}
			if !r.plain && p.peek() == '{' && r.speculate(p, env, schema) {
				env.after = p.s[start:p.i]
				return nil
			}
			p.i = start
			env.after, err = p.skip()
		case "source":
			env.source, err = p.skip()
		case "op":
			if p.literal("null") {
				return nil
			}
			env.op, err = p.str()
		case "ts_ms":
			if p.literal("null") {
				return nil
			}
			var ok bool
			env.tsMs, ok = p.millis()
			env.hasTs = true
			if !ok {
				err = errors.New("not an integer")
			}
		default:
			_, err = p.skip()
		}
		return err
	})
	return field, err
}

// speculate decodes the after image at p into env.spec, typed by the
// outermost envelope's schema as read so far, and reports whether it
// succeeded; p is then past the image.
func (r *envReader) speculate(p *scanner, env *envelope, schema string) bool {
	var rs *rowSchema
	if schema != "" && schema != "null" {
		var err error
		if rs, err = r.d.rowSchema(schema); err != nil {
			return false
		}
	}
	sub := scanner{s: p.s, i: p.i, scratch: r.scratch, depth: p.depth + 1}
	row, err := decodeObject(&sub, rs)
	if err != nil {
		return false
	}
	p.i = sub.i
	env.spec = specRow{ok: true, schema: schema, row: row}
	// The scratch array now holds this row; another image (a payload's
	// and the wrapper's, or a repeated key) gets its own.
	r.scratch = nil
	return true
}

func (d *debeziumDecoder) Decode(rec codec.Record, dst *codec.Change) error {
	return withLooksLike(d.decode(rec, dst, false), &rec, FormatDebezium)
}

func (d *debeziumDecoder) DecodeBorrowed(rec codec.Record, dst *codec.Change) error {
	return withLooksLike(d.decode(rec, dst, true), &rec, FormatDebezium)
}

func (d *debeziumDecoder) decode(rec codec.Record, dst *codec.Change, borrow bool) error {
	var scratch, keyScratch []codec.Field
	if borrow {
		scratch, keyScratch = dst.Row, dst.Key
	}
	*dst = codec.Change{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, TS: rec.TimestampMs}
	if isNullRecord(rec.Value) {
		return ErrTombstone
	}
	p := scanner{s: recordText(rec.Value, borrow), scratch: scratch}
	if p.peek() != '{' {
		return decodeErr(&rec, "", "", "value is not a JSON object")
	}
	var env envelope
	rd := envReader{d: d, scratch: scratch, plain: d.textImages}
	if field, err := rd.readEnvelope(&p, &env); err != nil {
		return decodeErr(&rec, "", field, err.Error())
	}
	if env.hasPayload {
		schema := env.schema
		if env.payload == "null" {
			return ErrTombstone
		}
		if env.inner != nil {
			env = *env.inner
		} else if env.innerErr != nil {
			return decodeErr(&rec, "", "payload."+env.innerField, env.innerErr.Error())
		} else {
			inner := scanner{s: env.payload}
			if inner.peek() != '{' {
				return decodeErr(&rec, "", "payload", "not an object")
			}
			env = envelope{}
			nested := envReader{plain: true}
			if field, err := nested.readEnvelope(&inner, &env); err != nil {
				return decodeErr(&rec, "", "payload."+field, err.Error())
			}
		}
		env.schema = schema
	}

	var src sourceInfo
	if env.source != "" && env.source != "null" {
		if field, reason := readSource(env.source, dst, &src); reason != "" {
			return decodeErr(&rec, dst.TableName(), "source."+field, reason)
		}
	}
	if dst.Table == "" {
		if i := strings.LastIndexByte(rec.Topic, '.'); i >= 0 && i+1 < len(rec.Topic) {
			dst.Table = rec.Topic[i+1:]
		} else if rec.Topic != "" {
			dst.Table = rec.Topic
		} else {
			return decodeErr(&rec, "", "source.table", "missing")
		}
	}
	// The table's name is only needed for an error: joining its parts
	// for every record allocated a string per record.
	table := dst.TableName

	var image, imageName string
	switch env.op {
	case "c":
		dst.Op, image, imageName = codec.OpInsert, env.after, "after"
	case "u":
		dst.Op, image, imageName = codec.OpUpdate, env.after, "after"
	case "r":
		dst.Op, image, imageName = codec.OpSnapshot, env.after, "after"
	case "d":
		dst.Op, image, imageName = codec.OpDelete, env.before, "before"
	case "":
		return decodeErr(&rec, table(), "op", "missing")
	default:
		return decodeErr(&rec, table(), "op", "unsupported op "+strconv.Quote(env.op))
	}

	var rs *rowSchema
	if env.schema != "" && env.schema != "null" {
		var err error
		if rs, err = d.rowSchema(env.schema); err != nil {
			return decodeErr(&rec, table(), "schema", err.Error())
		}
		dst.Declared = rs.cols
	}
	if imageName == "after" && env.spec.ok && env.spec.schema == env.schema {
		dst.Row = env.spec.row
	} else if image != "" && image != "null" {
		row, err := decodeRow(image, rs, p.scratch)
		if err != nil {
			return decodeErr(&rec, table(), imageName, err.Error())
		}
		dst.Row = row
	} else if dst.Op != codec.OpDelete {
		return decodeErr(&rec, table(), imageName, "missing or null")
	}

	if !isNullRecord(rec.Key) {
		text := recordText(rec.Key, borrow)
		// The value is authoritative: a key the decoder cannot read as
		// named columns (a string converter's text, "users:42", a JSON
		// scalar, broken JSON) is kept as opaque bytes for deduplication
		// and never refuses the change.
		if key, err := d.decodeKey(text, keyScratch); err == nil && len(key) > 0 {
			dst.Key = key
		} else {
			dst.Key = append(keyScratch[:0], codec.Field{Name: codec.OpaqueKey, Value: codec.BinaryString(text)})
		}
	}
	if dst.Op == codec.OpDelete && len(dst.Row) == 0 && !dst.HasOpaqueKey() {
		dst.Row = append([]codec.Field(nil), dst.Key...)
	}

	if !src.hasTS && env.hasTs {
		// The connector's processing time is the next best source time.
		dst.TS = env.tsMs
	}
	if !src.hasLSN {
		ts := dst.TS
		if ts < 0 || ts >= 1<<43 {
			return decodeErr(&rec, table(), "source.ts_ms", "out of range for the fallback ordering key")
		}
		dst.LSN = uint64(ts)<<20 | uint64(rec.Offset)&0xFFFFF
	}
	return nil
}

// sourceInfo says which ordering fields the source block carried.
type sourceInfo struct{ hasLSN, hasTS bool }

// readSource reads source.* into dst, returning the failing field and a
// reason.
func readSource(text string, dst *codec.Change, src *sourceInfo) (string, string) {
	p := scanner{s: text}
	var (
		field, reason string
		file          string
		pos           int64
		hasPos        bool
		scn           string
		lsnSet        bool
	)
	err := p.object(func(key string) error {
		field = key
		if p.literal("null") {
			return nil
		}
		var err error
		switch key {
		case "db":
			dst.DB, err = p.str()
		case "schema":
			dst.Schema, err = p.str()
		case "table", "collection":
			dst.Table, err = p.str()
		case "lsn":
			lsn, r := p.lsn()
			if r != "" {
				reason = r
				return errSyntax
			}
			dst.LSN, lsnSet = lsn, true
		case "ts_ms":
			ts, ok := p.millis()
			if !ok {
				reason = "not an integer"
				return errSyntax
			}
			dst.TS, src.hasTS = ts, true
		case "file":
			file, err = p.str()
		case "pos":
			var ok bool
			pos, ok = p.millis()
			if !ok || pos < 0 || pos >= 1<<32 {
				reason = "not a binlog position"
				return errSyntax
			}
			hasPos = true
		case "scn":
			if p.peek() == '"' {
				scn, err = p.str()
			} else {
				tok, _, e := p.number()
				scn, err = tok, e
			}
		default:
			_, err = p.skip()
		}
		return err
	})
	if err != nil {
		if reason == "" {
			reason = err.Error()
		}
		return field, reason
	}
	switch {
	case lsnSet:
	case file != "" && hasPos:
		i := strings.LastIndexByte(file, '.')
		n, err := strconv.ParseUint(file[i+1:], 10, 31)
		if err != nil {
			return "file", "binlog file name without a number: " + strconv.Quote(file)
		}
		dst.LSN = n<<32 | uint64(pos)
	case scn != "":
		v, err := strconv.ParseUint(scn, 10, 63)
		if err != nil {
			return "scn", "not an unsigned integer below 2^63: " + strconv.Quote(scn)
		}
		dst.LSN = v
	default:
		return "", ""
	}
	src.hasLSN = true
	return "", ""
}

// rowSchema returns the cached before/after schema of an envelope schema.
func (d *debeziumDecoder) rowSchema(text string) (*rowSchema, error) {
	return d.cached(d.rows, text, func(cs *connectSchema) (*rowSchema, error) {
		// Debezium declares before and after with the same Value schema;
		// prefer after, which a schema change reaches first.
		for _, name := range []string{"after", "before"} {
			for i := range cs.Fields {
				if f := &cs.Fields[i]; f.Field == name && f.Type == "struct" {
					return buildRowSchema(f)
				}
			}
		}
		return nil, errors.New("no before/after struct in schema")
	})
}

func (d *debeziumDecoder) cached(cache map[string]*rowSchema, text string, build func(*connectSchema) (*rowSchema, error)) (*rowSchema, error) {
	d.mu.RLock()
	rs, ok := cache[text]
	d.mu.RUnlock()
	if ok {
		return rs, nil
	}
	var cs connectSchema
	if err := json.Unmarshal([]byte(text), &cs); err != nil {
		return nil, fmt.Errorf("parse schema: %w", err)
	}
	rs, err := build(&cs)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if len(cache) >= d.limit {
		clear(cache)
	}
	cache[strings.Clone(text)] = rs
	d.mu.Unlock()
	return rs, nil
}

func buildRowSchema(st *connectSchema) (*rowSchema, error) {
	rs := &rowSchema{index: make(map[string]int, len(st.Fields))}
	for i := range st.Fields {
		f := &st.Fields[i]
		if f.Field == "" {
			return nil, errors.New("schema field without a name")
		}
		fs, t, err := fieldConv(f)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", f.Field, err)
		}
		fs.name = f.Field
		if _, dup := rs.index[f.Field]; dup {
			return nil, fmt.Errorf("field %q declared twice", f.Field)
		}
		rs.index[f.Field] = len(rs.fields)
		rs.fields = append(rs.fields, fs)
		if !codec.IsReserved(f.Field) {
			rs.cols = append(rs.cols, codec.Column{Name: f.Field, Type: t, Nullable: true})
		}
	}
	return rs, nil
}

func paramInt(p map[string]any, key string) (int64, bool) {
	switch v := p[key].(type) {
	case string:
		n, err := strconv.ParseInt(v, 10, 32)
		return n, err == nil
	case float64:
		return int64(v), v == math.Trunc(v) && math.Abs(v) < 1<<31
	}
	return 0, false
}

// fieldConv maps a Connect field schema to a conversion and column type.
func fieldConv(f *connectSchema) (fieldSchema, codec.Type, error) {
	long := codec.Type{Kind: codec.TypeLong}
	switch f.Name {
	case "io.debezium.time.Date", "org.apache.kafka.connect.data.Date":
		return fieldSchema{conv: convDate}, codec.Type{Kind: codec.TypeDate}, nil
	case "io.debezium.time.Timestamp", "org.apache.kafka.connect.data.Timestamp":
		return fieldSchema{conv: convTimestampMs}, codec.Type{Kind: codec.TypeTimestamp}, nil
	case "io.debezium.time.MicroTimestamp":
		return fieldSchema{conv: convTimestampUs}, codec.Type{Kind: codec.TypeTimestamp}, nil
	case "io.debezium.time.NanoTimestamp":
		return fieldSchema{conv: convTimestampNs}, codec.Type{Kind: codec.TypeTimestamp}, nil
	case "io.debezium.time.ZonedTimestamp":
		return fieldSchema{conv: convZoned}, codec.Type{Kind: codec.TypeTimestamp}, nil
	case "io.debezium.time.Time", "org.apache.kafka.connect.data.Time":
		return fieldSchema{conv: convTimeMs}, long, nil
	case "io.debezium.time.MicroTime":
		return fieldSchema{conv: convTimeUs}, long, nil
	case "io.debezium.time.NanoTime":
		return fieldSchema{conv: convTimeNs}, long, nil
	case "org.apache.kafka.connect.data.Decimal":
		scale, ok := paramInt(f.Parameters, "scale")
		if !ok || scale < 0 || scale > codec.MaxDecimalPrecision {
			return fieldSchema{}, codec.Type{}, errors.New("decimal without a valid scale parameter")
		}
		prec, ok := paramInt(f.Parameters, "connect.decimal.precision")
		if !ok {
			prec = codec.MaxDecimalPrecision
		}
		if prec > codec.MaxDecimalPrecision || prec < scale || prec < 1 {
			return fieldSchema{conv: convDecimalText, scale: int32(scale)}, codec.Type{Kind: codec.TypeString}, nil
		}
		return fieldSchema{conv: convDecimal, scale: int32(scale)}, codec.Type{Kind: codec.TypeDecimal, Precision: int32(prec), Scale: int32(scale)}, nil
	case "io.debezium.data.VariableScaleDecimal":
		return fieldSchema{conv: convVarDecimal}, codec.Type{Kind: codec.TypeString}, nil
	case "io.debezium.data.Json":
		return fieldSchema{conv: convJSONText}, codec.Type{Kind: codec.TypeJSON}, nil
	}
	switch f.Type {
	case "int8", "int16", "int32":
		return fieldSchema{conv: convInt32}, codec.Type{Kind: codec.TypeInteger}, nil
	case "int64":
		return fieldSchema{conv: convInt64}, long, nil
	case "float", "float32", "float64", "double":
		return fieldSchema{conv: convFloat}, codec.Type{Kind: codec.TypeDouble}, nil
	case "boolean":
		return fieldSchema{conv: convBool}, codec.Type{Kind: codec.TypeBoolean}, nil
	case "string":
		return fieldSchema{conv: convString}, codec.Type{Kind: codec.TypeString}, nil
	case "bytes":
		return fieldSchema{conv: convBytes}, codec.Type{Kind: codec.TypeBinary}, nil
	case "struct", "array", "map":
		return fieldSchema{conv: convNested}, codec.Type{Kind: codec.TypeJSON}, nil
	}
	return fieldSchema{}, codec.Type{}, fmt.Errorf("unsupported type %q", f.Type)
}

// decodeRow decodes a before/after object, typed by rs when not nil, into
// scratch's backing array when not nil (a borrowing decode).
func decodeRow(text string, rs *rowSchema, scratch []codec.Field) ([]codec.Field, error) {
	p := scanner{s: text, scratch: scratch}
	if p.peek() != '{' {
		return nil, errNotObject
	}
	row, err := decodeObject(&p, rs)
	if err == nil && !p.atEnd() {
		err = errSyntax
	}
	return row, err
}

// decodeObject decodes the row object at p, leaving p after it.
func decodeObject(p *scanner, rs *rowSchema) ([]codec.Field, error) {
	n := rowCap
	if rs != nil {
		n = len(rs.fields)
	}
	row := p.newRow(n)
	err := p.object(func(key string) error {
		var v codec.Value
		var err error
		var fs *fieldSchema
		if rs != nil {
			fs = rs.lookup(key, len(row))
		}
		if fs == nil || fs.conv == convInfer {
			v, err = p.inferValue()
		} else {
			v, err = p.typedValue(fs)
		}
		if err != nil {
			if err == errSyntax || err == errDepth {
				return err
			}
			return &fieldErr{key, err.Error()}
		}
		row = append(row, codec.Field{Name: key, Value: v})
		return nil
	})
	return row, err
}

// typedValue reads one value and converts it per its declared type.
func (p *scanner) typedValue(fs *fieldSchema) (codec.Value, error) {
	if p.literal("null") {
		return codec.Null(), nil
	}
	switch fs.conv {
	case convInt32, convInt64, convDate, convTimestampMs, convTimestampUs, convTimestampNs, convTimeMs, convTimeUs, convTimeNs:
		tok, integer, err := p.number()
		if err != nil {
			return codec.Value{}, fmt.Errorf("want an integer")
		}
		if !integer {
			return codec.Value{}, fmt.Errorf("want an integer, got %s", tok)
		}
		i, err := parseInt(tok)
		if err != nil {
			return codec.Value{}, fmt.Errorf("integer out of range: %s", tok)
		}
		switch fs.conv {
		case convInt32:
			if i < math.MinInt32 || i > math.MaxInt32 {
				return codec.Value{}, fmt.Errorf("integer out of int32 range: %s", tok)
			}
			return codec.Int(i), nil
		case convDate:
			if i < math.MinInt32 || i > math.MaxInt32 {
				return codec.Value{}, fmt.Errorf("date out of range: %s", tok)
			}
			return codec.Date(int32(i)), nil
		case convTimestampMs:
			return codec.Timestamp(i), nil
		case convTimestampUs:
			return codec.Timestamp(floorDiv(i, 1000)), nil
		case convTimestampNs:
			return codec.Timestamp(floorDiv(i, 1_000_000)), nil
		case convTimeMs:
			if i > math.MaxInt64/1000 || i < math.MinInt64/1000 {
				return codec.Value{}, fmt.Errorf("time out of range: %s", tok)
			}
			return codec.Int(i * 1000), nil
		case convTimeNs:
			return codec.Int(floorDiv(i, 1000)), nil
		}
		return codec.Int(i), nil
	case convFloat:
		if p.peek() == '"' {
			// Connect writes non-finite doubles as strings.
			s, err := p.str()
			if err != nil {
				return codec.Value{}, err
			}
			switch s {
			case "NaN":
				return codec.Float(math.NaN()), nil
			case "Infinity":
				return codec.Float(math.Inf(1)), nil
			case "-Infinity":
				return codec.Float(math.Inf(-1)), nil
			}
			return codec.Value{}, fmt.Errorf("want a number, got %q", s)
		}
		tok, _, err := p.number()
		if err != nil {
			return codec.Value{}, errors.New("want a number")
		}
		f, err := parseFloat(tok)
		if err != nil {
			return codec.Value{}, fmt.Errorf("number out of range: %s", tok)
		}
		return codec.Float(f), nil
	case convBool:
		if p.literal("true") {
			return codec.Bool(true), nil
		}
		if p.literal("false") {
			return codec.Bool(false), nil
		}
		return codec.Value{}, errors.New("want a boolean")
	case convString:
		s, err := p.str()
		if err == errUTF8 {
			return codec.Value{}, err
		}
		if err != nil {
			return codec.Value{}, errors.New("want a string")
		}
		return codec.String(s), nil
	case convBytes:
		b, err := p.base64()
		if err != nil {
			return codec.Value{}, err
		}
		return codec.Binary(b), nil
	case convZoned:
		s, err := p.str()
		if err != nil {
			return codec.Value{}, errors.New("want an ISO-8601 string")
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return codec.Value{}, fmt.Errorf("want an ISO-8601 timestamp, got %q", s)
		}
		return codec.Timestamp(t.UnixMilli()), nil
	case convDecimal, convDecimalText:
		var v codec.Value
		if p.peek() == '"' {
			b, err := p.base64()
			if err != nil {
				return codec.Value{}, err
			}
			if len(b) == 0 {
				return codec.Value{}, errors.New("empty decimal bytes")
			}
			v = codec.Decimal(b, fs.scale)
		} else {
			tok, _, err := p.number()
			if err != nil {
				return codec.Value{}, errors.New("want base64 decimal bytes or a number")
			}
			if v, err = parseDecimalText(tok, fs.scale); err != nil {
				return codec.Value{}, err
			}
		}
		if fs.conv == convDecimalText {
			return codec.String(v.Text()), nil
		}
		return v, nil
	case convVarDecimal:
		return p.varDecimal()
	case convJSONText:
		s, err := p.str()
		if err == errUTF8 {
			return codec.Value{}, err
		}
		if err != nil {
			return codec.Value{}, errors.New("want a string of JSON text")
		}
		check := scanner{s: s}
		if _, err := check.skip(); err != nil || !check.atEnd() {
			return codec.String(s), nil
		}
		return codec.JSON(s), nil
	case convNested:
		raw, err := p.keep()
		return codec.JSON(raw), err
	}
	return p.inferValue()
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func (p *scanner) base64() ([]byte, error) {
	s, err := p.str()
	if err != nil {
		return nil, errors.New("want a base64 string")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("invalid base64: %w", err)
	}
	return b, nil
}

// varDecimal reads {"scale":n,"value":"<base64>"} into exact decimal text.
func (p *scanner) varDecimal() (codec.Value, error) {
	var scale int64
	var unscaled []byte
	var hasScale, hasValue bool
	err := p.object(func(key string) error {
		switch key {
		case "scale":
			tok, integer, err := p.number()
			if err != nil || !integer {
				return errors.New("scale: want an integer")
			}
			scale, err = strconv.ParseInt(tok, 10, 32)
			if err != nil || scale < -1000 || scale > 1000 {
				return errors.New("scale: out of range")
			}
			hasScale = true
		case "value":
			b, err := p.base64()
			if err != nil {
				return err
			}
			unscaled, hasValue = b, true
		default:
			_, err := p.skip()
			return err
		}
		return nil
	})
	if err != nil {
		return codec.Value{}, err
	}
	if !hasScale || !hasValue || len(unscaled) == 0 {
		return codec.Value{}, errors.New("variable scale decimal needs scale and value")
	}
	return codec.String(codec.Decimal(unscaled, int32(scale)).Text()), nil
}

// parseDecimalText parses a JSON number exactly into a decimal of the
// given scale; digits beyond the scale are an error, never rounded.
func parseDecimalText(tok string, scale int32) (codec.Value, error) {
	r, ok := new(big.Rat).SetString(tok)
	if !ok || len(tok) > 200 {
		return codec.Value{}, fmt.Errorf("invalid decimal %s", tok)
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)))
	if !r.IsInt() {
		return codec.Value{}, fmt.Errorf("decimal %s has more than %d fraction digits", tok, scale)
	}
	return codec.DecimalFromBig(r.Num(), scale), nil
}

// decodeKey decodes a record key: an object, optionally wrapped with a
// schema. Keys that are not objects carry no column names and yield no
// fields; the caller keeps them as an opaque key.
func (d *debeziumDecoder) decodeKey(key string, scratch []codec.Field) ([]codec.Field, error) {
	p := scanner{s: key}
	if p.peek() != '{' {
		if _, err := p.skip(); err != nil || !p.atEnd() {
			return nil, errSyntax
		}
		return nil, nil
	}
	var env envelope
	rd := envReader{plain: true}
	if _, err := rd.readEnvelope(&p, &env); err != nil {
		return nil, err
	}
	if !env.hasPayload || env.schema == "" {
		return decodeRow(p.s, nil, scratch)
	}
	if env.payload == "null" || !strings.HasPrefix(env.payload, "{") {
		return nil, nil
	}
	var rs *rowSchema
	if env.schema != "null" {
		var err error
		rs, err = d.cached(d.keys, env.schema, func(cs *connectSchema) (*rowSchema, error) {
			if cs.Type != "struct" {
				return &rowSchema{}, nil
			}
			return buildRowSchema(cs)
		})
		if err != nil {
			return nil, err
		}
		if rs.index == nil {
			return nil, nil
		}
	}
	return decodeRow(env.payload, rs, scratch)
}
