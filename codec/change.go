// Package codec decodes CDC envelopes (evodb JSON and Debezium JSON) into
// normalized changes, infers and evolves per-table schemas, and encodes
// changes into Parquet blocks with the statistics the table log records.
package codec

import (
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
}

func (e *DecodeError) Error() string {
	msg := fmt.Sprintf("record %s/%d@%d", e.Topic, e.Partition, e.Offset)
	if e.Table != "" {
		msg += " table " + e.Table
	}
	if e.Field != "" {
		msg += " field " + e.Field
	}
	return msg + ": " + e.Reason
}
