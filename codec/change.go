package codec

import "fmt"

// Format names an input format: the decoder packages declare their own
// (codec/cdc the JSON envelopes, codec/confluent the schema-registry
// formats).
type Format string

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

// Record is one Kafka record as a decoder sees it. codec does not import
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
// envelope". The names are codec/cdc's formats, which DecodeError.LooksLike
// holds; codec does not import the decoders.
func (f Format) Envelope() string {
	switch f {
	case "debezium":
		return "a Debezium envelope"
	case "evodb":
		return "an evodb envelope"
	}
	return "a " + string(f) + " envelope"
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
