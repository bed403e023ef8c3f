package confluent

import (
	"testing"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
)

// FuzzDecodeAvro feeds arbitrary bytes behind the headers of a plain and
// a Debezium schema: the decoder returns a change or an error, never
// panics, and an error is always a record error (the registry is up).
func FuzzDecodeAvro(f *testing.F) {
	fx := newFixture(f)
	pid := fx.register("p-value", plainSchema)
	did := fx.register("d-value", debeziumSchema)
	f.Add(fx.encode(pid, plainSchema, plainValue())[5:], false)
	source := map[string]any{"version": "3.6", "ts_ms": int64(1), "db": "db", "schema": "public", "table": "items", "lsn": int64(9)}
	f.Add(fx.encode(did, debeziumSchema, map[string]any{"before": nil, "after": debeziumRow(1), "source": source, "op": "c", "ts_ms": nil})[5:], true)
	d := fx.decoder(DecoderOptions{Value: FormatAvro})
	f.Fuzz(func(t *testing.T, body []byte, envelope bool) {
		id := pid
		if envelope {
			id = did
		}
		v := append([]byte{0, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}, body...)
		var ch codec.Change
		err := d.DecodeBorrowed(codec.Record{Topic: "t", Value: v, TimestampMs: 1}, &ch)
		if err != nil && err != cdc.ErrTombstone {
			if _, ok := err.(*codec.DecodeError); !ok {
				t.Fatalf("not a record error: %v", err)
			}
		}
	})
}
