// Package codectest builds the CDC records and decoded changes that the
// benchmarks of codec, codec/cdc and codec/parquetblock share, so the
// decoder, the schema, Rows and the block encoder are measured on the same
// input.
package codectest

import (
	"fmt"
	"testing"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
)

// Row is a realistic row of 12 columns; with the envelope a record is
// about 330 bytes (evodb) to 420 bytes (Debezium, unwrapped).
func Row(i int) string {
	return fmt.Sprintf(`{"id":%d,"account_id":%d,"email":"user%d@example.com","name":"User Number %d","status":"active",`+
		`"balance":%d.25,"score":%d,"verified":true,"country":"DE","created_at":1700000000%03d,`+
		`"tags":["a","b"],"note":null}`, i, i*7, i, i, i%1000, i%100, i%1000)
}

// Records returns n records of Rows in an evodb or Debezium envelope.
func Records(n int, format codec.Format) []codec.Record {
	recs := make([]codec.Record, n)
	for i := range recs {
		var v string
		if format == cdc.FormatEvoDB {
			v = fmt.Sprintf(`{"op":"UPDATE","table":"users","data":%s,"lsn":%d,"ts":1700000000000}`, Row(i), 1e15+i)
		} else {
			v = fmt.Sprintf(`{"before":null,"after":%s,"source":{"version":"2.5.0","connector":"postgresql","db":"shop","schema":"public","table":"users","lsn":%d,"ts_ms":1700000000000},"op":"u","ts_ms":1700000000001}`, Row(i), 1e15+i)
		}
		recs[i] = codec.Record{Topic: "shop.public.users", Partition: 1, Offset: int64(i), Value: []byte(v), Key: []byte(fmt.Sprintf(`{"id":%d}`, i))}
	}
	return recs
}

// AcceptedChanges decodes n evodb records and fits them to a new schema;
// raw is their input bytes.
func AcceptedChanges(tb testing.TB, n int) (changes []codec.Change, s *codec.Schema, raw int64) {
	tb.Helper()
	d, err := cdc.NewDecoder(cdc.FormatEvoDB)
	if err != nil {
		tb.Fatal(err)
	}
	recs := Records(n, cdc.FormatEvoDB)
	changes = make([]codec.Change, len(recs))
	s = codec.NewSchema()
	for i, r := range recs {
		if err := d.Decode(r, &changes[i]); err != nil {
			tb.Fatal(err)
		}
		if _, err := s.Accept(&changes[i]); err != nil {
			tb.Fatal(err)
		}
		raw += int64(len(r.Value))
	}
	return changes, s, raw
}
