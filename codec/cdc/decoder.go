// Package cdc decodes the JSON CDC envelopes, evodb and Debezium (with or
// without the schema wrapper), into codec's normalized changes. The
// decoders read a record with a hand-written JSON scanner that does not
// build maps or allocate per value: decoding is the sink's per-record hot
// path (BenchmarkDecodeEvoDB, BenchmarkDecodeDebezium).
//
// cdc knows no file or table format: it imports codec and nothing of
// codec/parquetblock or committer/ (codec's TestRowModelImports).
package cdc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/evodb/sink/codec"
)

// Input formats.
const (
	FormatEvoDB    codec.Format = "evodb"
	FormatDebezium codec.Format = "debezium"
)

// ErrTombstone is returned by decoders for a record with a null value (a
// Debezium tombstone). It is not a decode error: callers skip and count it.
var ErrTombstone = errors.New("tombstone record")

// withLooksLike sets LooksLike on a decode error of a record in format own
// that has the envelope of another built-in format. It runs only on the
// error path, so it may be slow.
func withLooksLike(err error, rec *codec.Record, own codec.Format) error {
	if err == nil {
		return nil
	}
	var de *codec.DecodeError
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
func sniffEnvelope(value []byte) codec.Format {
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

// Decoder turns a Kafka record into a Change. Implementations are safe for
// concurrent use. Decode overwrites dst entirely and never reuses its
// slices, so a Change copied into a buffer stays valid. It returns
// ErrTombstone for a record with a null value, and a *DecodeError for any
// record it cannot decode.
type Decoder interface {
	Decode(rec codec.Record, dst *codec.Change) error
}

// BorrowingDecoder is a Decoder that can also decode without copying.
// DecodeBorrowed is Decode except that the change's strings share
// rec.Value's memory and its Row may reuse dst.Row's backing array. The
// caller copies what it keeps (Rows.Append does) before decoding into dst
// again, and leaves rec.Value unmodified while the change is in use. Both
// built-in decoders implement it.
type BorrowingDecoder interface {
	Decoder
	DecodeBorrowed(rec codec.Record, dst *codec.Change) error
}

// NewDecoder returns the decoder for an input format.
func NewDecoder(f codec.Format) (Decoder, error) {
	switch f {
	case FormatEvoDB:
		return evodbDecoder{}, nil
	case FormatDebezium:
		return newDebeziumDecoder(), nil
	}
	return nil, fmt.Errorf("unknown input format %q (want %q or %q)", f, FormatEvoDB, FormatDebezium)
}

// decodeErr builds a *DecodeError for rec.
func decodeErr(rec *codec.Record, table, field, reason string) *codec.DecodeError {
	return &codec.DecodeError{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Table: table, Field: field, Reason: reason}
}

// isNullRecord reports whether a record value is a Kafka null or JSON null.
func isNullRecord(v []byte) bool {
	// Nearly every record is an object: its first byte settles it.
	if len(v) > 0 && v[0] == '{' {
		return false
	}
	t := bytes.TrimSpace(v)
	return len(t) == 0 || string(t) == "null"
}
