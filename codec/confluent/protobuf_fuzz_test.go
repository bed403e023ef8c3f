package confluent

import (
	"testing"

	"github.com/evodb/sink/codec"
)

// FuzzDecodeProtobuf feeds arbitrary bytes (message index and message)
// behind the headers of a plain and a Debezium schema: the decoder returns
// a change or an error, never panics, and an error is always a record
// error (the registry is up). The committed corpus under
// testdata/fuzz/FuzzDecodeProtobuf holds valid records of both schemas and
// the record-error cases.
func FuzzDecodeProtobuf(f *testing.F) {
	fx := newFixture(f)
	pid := fx.registerProto("p-value", protoPlainSchema)
	did := fx.registerProto("d-value", protoDebeziumSchema)
	f.Add(fx.encodeProto(pid, nil, protoPlainSchema, nil, "shop.Order", protoPlainValue)[5:], false)
	f.Add(fx.encodeProto(did, []int{2}, protoDebeziumSchema, nil, "db.public.items.Envelope",
		`{"after":{"id":5,"name":"x"},"source":{"ts_ms":"1","table":"items","lsn":"9"},"op":"c"}`)[5:], true)
	d := fx.decoder(DecoderOptions{Value: FormatProtobuf, Key: FormatProtobuf})
	f.Fuzz(func(t *testing.T, body []byte, envelope bool) {
		id := pid
		if envelope {
			id = did
		}
		v := append([]byte{0, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}, body...)
		for _, borrow := range []bool{false, true} {
			var ch codec.Change
			rec := codec.Record{Topic: "t", Value: v, Key: v, TimestampMs: 1}
			var err error
			if borrow {
				err = d.DecodeBorrowed(rec, &ch)
			} else {
				err = d.Decode(rec, &ch)
			}
			if err != nil {
				if _, ok := err.(*codec.DecodeError); !ok {
					t.Fatalf("not a record error: %v", err)
				}
			}
		}
	})
}
