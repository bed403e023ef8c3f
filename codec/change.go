// Package codec decodes CDC envelopes (evodb JSON and Debezium JSON) into
// normalized changes, infers and evolves per-table schemas, and encodes
// changes into Parquet blocks with the statistics the table log records.
//
// Nested objects and arrays are stored as JSON text in string columns (the
// Delta field metadata {"evodb.type":"json"} marks them), so every reader
// can read them without nested-type support.
//
// LSNs are unsigned 64-bit in the sources but the _lsn column is a Parquet
// int64 (Delta has no unsigned type), so an LSN ≥ 2^63 is a decode error.
//
// Every block has the metadata columns _op (string), _lsn (int64) and _ts
// (TIMESTAMP in milliseconds, UTC), and optionally _topic, _partition and
// _offset. Column types map to Delta types: long, integer, double, boolean,
// string, binary, date, timestamp and decimal(p,s).
package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Format names an input format.
type Format string

// Input formats.
const (
	FormatEvoDB    Format = "evodb"
	FormatDebezium Format = "debezium"
)

// Op is the kind of change.
type Op uint8

// Change kinds. OpSnapshot is Debezium's "r" (a row read by the initial
// snapshot); readers treat it like an insert.
const (
	OpInsert Op = iota + 1
	OpUpdate
	OpDelete
	OpSnapshot
)

// String returns the value stored in the _op column.
func (o Op) String() string {
	switch o {
	case OpInsert:
		return "INSERT"
	case OpUpdate:
		return "UPDATE"
	case OpDelete:
		return "DELETE"
	case OpSnapshot:
		return "SNAPSHOT"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Record is one Kafka record as the decoder sees it. codec does not import
// the Kafka client; the sink copies these fields from kgo.Record.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	// TimestampMs is the Kafka record timestamp, used when the envelope
	// carries no source timestamp.
	TimestampMs int64
}

// ErrTombstone is returned by decoders for a record with a null value (a
// Debezium tombstone). It is not a decode error: callers skip and count it.
var ErrTombstone = errors.New("tombstone record")

// DecodeError is a record that cannot be decoded or does not fit its table's
// schema. It names the record and the field so an operator can find it.
type DecodeError struct {
	Topic     string
	Partition int32
	Offset    int64
	Table     string // empty when the table could not be determined
	Field     string // JSON field or column name, empty if not applicable
	Reason    string
	// LooksLike is the other built-in format whose envelope the record
	// has, when it has one: the topic's format is then misconfigured, and
	// every record of the topic will fail the same way.
	LooksLike Format
}

func (e *DecodeError) Error() string {
	msg := fmt.Sprintf("record %s/%d@%d", e.Topic, e.Partition, e.Offset)
	if e.Table != "" {
		msg += " table " + e.Table
	}
	if e.Field != "" {
		msg += " field " + e.Field
	}
	msg += ": " + e.Reason
	if e.LooksLike != "" {
		msg += " (this looks like " + e.LooksLike.Envelope() + ")"
	}
	return msg
}

// Envelope names the format's envelope for a message: "a Debezium
// envelope".
func (f Format) Envelope() string {
	switch f {
	case FormatDebezium:
		return "a Debezium envelope"
	case FormatEvoDB:
		return "an evodb envelope"
	}
	return "a " + string(f) + " envelope"
}

// withLooksLike sets LooksLike on a decode error of a record in format own
// that has the envelope of another built-in format. It runs only on the
// error path, so it may be slow.
func withLooksLike(err error, rec *Record, own Format) error {
	if err == nil {
		return nil
	}
	var de *DecodeError
	if !errors.As(err, &de) {
		return err
	}
	if f := sniffEnvelope(rec.Value); f != "" && f != own {
		de.LooksLike = f
	}
	return err
}

// sniffEnvelope returns the built-in format whose envelope value has, or ""
// when it has neither: a Debezium envelope (inside a payload wrapper or
// not) has op c, u, d or r beside before, after or source; an evodb entry
// has op INSERT, UPDATE or DELETE beside table and lsn.
func sniffEnvelope(value []byte) Format {
	var top map[string]json.RawMessage
	if json.Unmarshal(value, &top) != nil {
		return ""
	}
	if p, ok := top["payload"]; ok {
		var inner map[string]json.RawMessage
		if json.Unmarshal(p, &inner) == nil && inner != nil {
			top = inner
		}
	}
	var op string
	if json.Unmarshal(top["op"], &op) != nil {
		return ""
	}
	has := func(k string) bool { _, ok := top[k]; return ok }
	switch {
	case (op == "c" || op == "u" || op == "d" || op == "r") && (has("after") || has("before") || has("source")):
		return FormatDebezium
	case has("table") && has("lsn"):
		if _, ok := parseEvoOp(op); ok {
			return FormatEvoDB
		}
	}
	return ""
}

// Change is one normalized change, whatever the input format.
type Change struct {
	// Kafka coordinates of the record the change came from.
	Topic     string
	Partition int32
	Offset    int64

	// Source namespace. Table is always set; DB and Schema may be empty.
	DB, Schema, Table string

	Op Op
	// LSN orders changes within a table. Values ≥ 2^63 are rejected by the
	// decoders because the _lsn column is a Parquet int64.
	LSN uint64
	// TS is the source timestamp in milliseconds since the epoch (the Kafka
	// record timestamp when the envelope carries none).
	TS int64

	// Row is the after-image, or the before-image for deletes. A name may
	// repeat when the input repeats a key; the last occurrence wins.
	Row []Field
	// Key holds the primary key columns (the Debezium record key); it may
	// be empty. A record key without column names (not JSON, or JSON that
	// is not an object) is one field named OpaqueKey holding the key's
	// bytes as a binary value: it still tells changes with the same LSN
	// apart, but names no column.
	Key []Field
	// Declared is the column schema the envelope declared (Debezium with
	// the schema wrapper), nil when types are inferred from the values. It
	// is shared between changes and must not be modified.
	Declared []Column
}

// OpaqueKey is the name of the single Key field that holds a record key
// without column names. No column can have it (column names are not
// empty).
const OpaqueKey = ""

// HasOpaqueKey reports whether the change's key is opaque bytes rather
// than named primary key columns.
func (c *Change) HasOpaqueKey() bool {
	return len(c.Key) == 1 && c.Key[0].Name == OpaqueKey
}

// Field is one named column value.
type Field struct {
	Name  string
	Value Value
}

// Size is the memory the change takes once buffered in Rows: its entry,
// one cell per field and its string bytes. Field names are kept once per
// Rows, not per change, so they do not count.
func (c *Change) Size() int {
	n := rowMetaBytes + (len(c.Row)+len(c.Key))*cellBytes
	for i := range c.Row {
		n += len(c.Row[i].Value.str)
	}
	for i := range c.Key {
		n += len(c.Key[i].Value.str)
	}
	return n
}

// TableName is the stable routing key of the change's table: the non-empty
// parts of DB, Schema and Table joined by dots ("inventory.public.users",
// or "users" for evodb records).
func (c *Change) TableName() string {
	switch {
	case c.DB == "" && c.Schema == "":
		return c.Table
	case c.DB == "":
		return c.Schema + "." + c.Table
	case c.Schema == "":
		return c.DB + "." + c.Table
	}
	return c.DB + "." + c.Schema + "." + c.Table
}

// Get returns the value of the named column in Row (the last occurrence),
// or null.
func (c *Change) Get(name string) Value {
	for i := len(c.Row) - 1; i >= 0; i-- {
		if c.Row[i].Name == name {
			return c.Row[i].Value
		}
	}
	return Value{}
}

// Decoder turns a Kafka record into a Change. Implementations are safe for
// concurrent use. Decode overwrites dst entirely and never reuses its
// slices, so a Change copied into a buffer stays valid. It returns
// ErrTombstone for a record with a null value, and a *DecodeError for any
// record it cannot decode.
type Decoder interface {
	Decode(rec Record, dst *Change) error
}

// BorrowingDecoder is a Decoder that can also decode without copying.
// DecodeBorrowed is Decode except that the change's strings share
// rec.Value's memory and its Row may reuse dst.Row's backing array. The
// caller copies what it keeps (Rows.Append does) before decoding into dst
// again, and leaves rec.Value unmodified while the change is in use. Both
// built-in decoders implement it.
type BorrowingDecoder interface {
	Decoder
	DecodeBorrowed(rec Record, dst *Change) error
}

// NewDecoder returns the decoder for an input format.
func NewDecoder(f Format) (Decoder, error) {
	switch f {
	case FormatEvoDB:
		return evodbDecoder{}, nil
	case FormatDebezium:
		return newDebeziumDecoder(), nil
	}
	return nil, fmt.Errorf("unknown input format %q (want %q or %q)", f, FormatEvoDB, FormatDebezium)
}

// decodeErr builds a *DecodeError for rec.
func decodeErr(rec *Record, table, field, reason string) *DecodeError {
	return &DecodeError{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Table: table, Field: field, Reason: reason}
}

// isNullRecord reports whether a record value is a Kafka null or JSON null.
func isNullRecord(v []byte) bool {
	t := bytes.TrimSpace(v)
	return len(t) == 0 || string(t) == "null"
}
