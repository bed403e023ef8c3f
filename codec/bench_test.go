package codec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"testing"

	"github.com/parquet-go/parquet-go/compress/zstd"
)

// benchRow is a realistic row of 12 columns; with the envelope a record is
// about 330 bytes (evodb) to 420 bytes (Debezium, unwrapped).
func benchRow(i int) string {
	return fmt.Sprintf(`{"id":%d,"account_id":%d,"email":"user%d@example.com","name":"User Number %d","status":"active",`+
		`"balance":%d.25,"score":%d,"verified":true,"country":"DE","created_at":1700000000%03d,`+
		`"tags":["a","b"],"note":null}`, i, i*7, i, i, i%1000, i%100, i%1000)
}

func benchRecords(n int, format Format) []Record {
	recs := make([]Record, n)
	for i := range recs {
		var v string
		if format == FormatEvoDB {
			v = fmt.Sprintf(`{"op":"UPDATE","table":"users","data":%s,"lsn":%d,"ts":1700000000000}`, benchRow(i), 1e15+i)
		} else {
			v = fmt.Sprintf(`{"before":null,"after":%s,"source":{"version":"2.5.0","connector":"postgresql","db":"shop","schema":"public","table":"users","lsn":%d,"ts_ms":1700000000000},"op":"u","ts_ms":1700000000001}`, benchRow(i), 1e15+i)
		}
		recs[i] = Record{Topic: "shop.public.users", Partition: 1, Offset: int64(i), Value: []byte(v), Key: []byte(fmt.Sprintf(`{"id":%d}`, i))}
	}
	return recs
}

func benchDecode(b *testing.B, format Format, borrow bool) {
	d, err := NewDecoder(format)
	if err != nil {
		b.Fatal(err)
	}
	recs := benchRecords(1024, format)
	var total int
	for _, r := range recs {
		total += len(r.Value)
	}
	b.SetBytes(int64(total / len(recs)))
	b.ReportAllocs()
	decode := d.Decode
	if borrow {
		decode = d.(BorrowingDecoder).DecodeBorrowed
	}
	var ch Change
	i := 0
	for b.Loop() {
		if err := decode(recs[i%len(recs)], &ch); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkDecodeEvoDB(b *testing.B)    { benchDecode(b, FormatEvoDB, false) }
func BenchmarkDecodeDebezium(b *testing.B) { benchDecode(b, FormatDebezium, false) }

// The sink's poll loop decodes borrowing the record's memory and reusing
// the last row's array.
func BenchmarkDecodeBorrowedEvoDB(b *testing.B)    { benchDecode(b, FormatEvoDB, true) }
func BenchmarkDecodeBorrowedDebezium(b *testing.B) { benchDecode(b, FormatDebezium, true) }

// BenchmarkDecodeMap is the baseline the tokenizer is measured against:
// encoding/json into map[string]any (with UseNumber so LSNs stay exact),
// then the data map converted to fields.
func BenchmarkDecodeMap(b *testing.B) {
	recs := benchRecords(1024, FormatEvoDB)
	b.SetBytes(int64(len(recs[0].Value)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		dec := json.NewDecoder(bytes.NewReader(recs[i%len(recs)].Value))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			b.Fatal(err)
		}
		data, _ := m["data"].(map[string]any)
		row := make([]Field, 0, len(data))
		for k, v := range data {
			var val Value
			switch x := v.(type) {
			case string:
				val = String(x)
			case json.Number:
				if n, err := x.Int64(); err == nil {
					val = Int(n)
				} else {
					f, _ := x.Float64()
					val = Float(f)
				}
			case bool:
				val = Bool(x)
			case nil:
			default:
				raw, _ := json.Marshal(x)
				val = JSON(string(raw))
			}
			row = append(row, Field{Name: k, Value: val})
		}
		_ = row
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// acceptedChanges decodes n benchmark records and fits them to a new
// schema; raw is their input bytes.
func acceptedChanges(b *testing.B, n int) (changes []Change, s *Schema, raw int64) {
	b.Helper()
	d, _ := NewDecoder(FormatEvoDB)
	recs := benchRecords(n, FormatEvoDB)
	changes = make([]Change, len(recs))
	s = NewSchema()
	for i, r := range recs {
		if err := d.Decode(r, &changes[i]); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Accept(&changes[i]); err != nil {
			b.Fatal(err)
		}
		raw += int64(len(r.Value))
	}
	return changes, s, raw
}

// BenchmarkEncodeBlock encodes a 10,000-row block from Rows, as a flush
// does.
func BenchmarkEncodeBlock(b *testing.B) {
	changes, s, raw := acceptedChanges(b, 10000)
	rows, err := RowsOf(changes)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(raw)
	b.ReportAllocs()
	var out int64
	for b.Loop() {
		st, err := EncodeRows(io.Discard, s, rows, EncodeOptions{RowGroupBytes: 4 << 20})
		if err != nil {
			b.Fatal(err)
		}
		out = st.Bytes
	}
	b.ReportMetric(float64(b.N*len(changes))/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(out), "block-bytes")
}

// BenchmarkEncodeSmallBlock encodes blocks of 500 rows: the per-block cost
// (writer, page buffers, compressor set-up) that many lightly used tables
// pay on every flush.
func BenchmarkEncodeSmallBlock(b *testing.B) {
	changes, s, _ := acceptedChanges(b, 500)
	rows, err := RowsOf(changes)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeRows(io.Discard, s, rows, EncodeOptions{RowGroupBytes: 4 << 20}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(changes))/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkSchemaAccept fits decoded changes to a table schema that already
// holds their columns: the per-record check on the sink's hot path.
func BenchmarkSchemaAccept(b *testing.B) {
	changes, s, _ := acceptedChanges(b, 1024)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Accept(&changes[i%len(changes)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkRowsAppend copies decoded changes into Rows: what buffering a
// record costs the poll loop.
func BenchmarkRowsAppend(b *testing.B) {
	changes, _, _ := acceptedChanges(b, 10000)
	full, err := RowsOf(changes)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var rows *Rows
	for i := 0; b.Loop(); i++ {
		k := i % len(changes)
		if k == 0 {
			// Buffers are sized from the previous batch.
			rows = NewRows(full.Hint())
		}
		if _, err := rows.Append(&changes[k]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkEncodeLevels encodes the 10,000-row block with each zstd level
// and with snappy, reporting the block's bytes: the measurement behind the
// choice of zstd's fastest level.
func BenchmarkEncodeLevels(b *testing.B) {
	changes, s, _ := acceptedChanges(b, 10000)
	rows, err := RowsOf(changes)
	if err != nil {
		b.Fatal(err)
	}
	shared := zstdCodec
	defer func() { zstdCodec = shared }()
	for _, tc := range []struct {
		name  string
		codec *pageZstd
		comp  string
	}{
		{"zstd-fastest", newPageZstd(zstd.SpeedFastest), "zstd"},
		{"zstd-default", newPageZstd(zstd.SpeedDefault), "zstd"},
		{"zstd-better", newPageZstd(zstd.SpeedBetterCompression), "zstd"},
		{"snappy", shared, "snappy"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			zstdCodec = tc.codec
			var out int64
			for b.Loop() {
				st, err := EncodeRows(io.Discard, s, rows, EncodeOptions{RowGroupBytes: 4 << 20, Compression: tc.comp})
				if err != nil {
					b.Fatal(err)
				}
				out = st.Bytes
			}
			b.ReportMetric(float64(out), "block-bytes")
		})
	}
}
