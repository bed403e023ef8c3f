// Package codec is the row model every stage of the data path shares:
// values (Value, Kind), column types and schemas (Type, Column, Schema:
// inference, evolution, merge, Rebase, Check and Accept), normalized
// changes (Change, Field, Op), the Kafka record a decoder reads (Record)
// with the error that names it (DecodeError), the compact buffer of a
// table's changes (Rows), and the statistics a block records (BlockStats).
//
// codec knows no input format and no file or table format: the CDC
// decoders live in codec/cdc and codec/confluent, Parquet block I/O in
// codec/parquetblock, and the table formats under committer/. The imports
// enforce this (TestRowModelImports).
//
// Nested objects and arrays are JSON values (Type JSON), stored as JSON
// text in string columns, so every reader can read them without
// nested-type support.
//
// LSNs are unsigned 64-bit in the sources but the _lsn column is a Parquet
// int64 (Delta has no unsigned type), so an LSN ≥ 2^63 is a decode error.
//
// Every block has the metadata columns _op (string), _lsn (int64) and _ts
// (TIMESTAMP in milliseconds, UTC), and optionally _topic, _partition and
// _offset (MetaColumns). Column types map to Delta types: long, integer,
// double, boolean, string, binary, date, timestamp and decimal(p,s).
package codec
