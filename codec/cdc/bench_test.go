package cdc_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/internal/codectest"
)

func benchDecode(b *testing.B, format codec.Format, borrow bool) {
	d, err := cdc.NewDecoder(format)
	if err != nil {
		b.Fatal(err)
	}
	recs := codectest.Records(1024, format)
	var total int
	for _, r := range recs {
		total += len(r.Value)
	}
	b.SetBytes(int64(total / len(recs)))
	b.ReportAllocs()
	decode := d.Decode
	if borrow {
		decode = d.(cdc.BorrowingDecoder).DecodeBorrowed
	}
	var ch codec.Change
	i := 0
	for b.Loop() {
		if err := decode(recs[i%len(recs)], &ch); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkDecodeEvoDB(b *testing.B)    { benchDecode(b, cdc.FormatEvoDB, false) }
func BenchmarkDecodeDebezium(b *testing.B) { benchDecode(b, cdc.FormatDebezium, false) }

// The sink's poll loop decodes borrowing the record's memory and reusing
// the last row's array.
func BenchmarkDecodeBorrowedEvoDB(b *testing.B)    { benchDecode(b, cdc.FormatEvoDB, true) }
func BenchmarkDecodeBorrowedDebezium(b *testing.B) { benchDecode(b, cdc.FormatDebezium, true) }

// BenchmarkDecodeMap is the baseline the tokenizer is measured against:
// encoding/json into map[string]any (with UseNumber so LSNs stay exact),
// then the data map converted to fields.
func BenchmarkDecodeMap(b *testing.B) {
	recs := codectest.Records(1024, cdc.FormatEvoDB)
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
		row := make([]codec.Field, 0, len(data))
		for k, v := range data {
			var val codec.Value
			switch x := v.(type) {
			case string:
				val = codec.String(x)
			case json.Number:
				if n, err := x.Int64(); err == nil {
					val = codec.Int(n)
				} else {
					f, _ := x.Float64()
					val = codec.Float(f)
				}
			case bool:
				val = codec.Bool(x)
			case nil:
			default:
				raw, _ := json.Marshal(x)
				val = codec.JSON(string(raw))
			}
			row = append(row, codec.Field{Name: k, Value: val})
		}
		_ = row
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
