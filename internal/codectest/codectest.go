// Package codectest builds the CDC records and decoded changes that the
// benchmarks of codec, codec/cdc and codec/parquetblock share, so the
// decoder, the schema, Rows and the block encoder are measured on the same
// input, and the changes of every type that the block writer's tests and
// the end-to-end readers' check share.
package codectest

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
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

// ManyTypesChanges returns n changes with a column of every type, each
// null now and then, values random: wide and narrow decimals of both
// signs, NaN and signed zeros among the doubles, strings longer than the
// column index keeps.
func ManyTypesChanges(n int, seed uint64) []codec.Change {
	r := rand.New(rand.NewPCG(seed, 7))
	changes := make([]codec.Change, n)
	for i := range changes {
		f := func(name string, v codec.Value) codec.Field {
			if r.IntN(7) == 0 {
				v = codec.Null()
			}
			return codec.Field{Name: name, Value: v}
		}
		doubles := []float64{math.NaN(), math.Copysign(0, -1), 0, r.NormFloat64() * 1e6}
		long := strings.Repeat(string(rune('a'+r.IntN(26))), 10+r.IntN(30))
		changes[i] = codec.Change{Topic: fmt.Sprintf("t%d", r.IntN(3)), Partition: int32(r.IntN(4)), Offset: int64(i),
			DB: "db", Schema: "s", Table: "many", Op: codec.Op(1 + r.IntN(4)), LSN: uint64(1000 + i), TS: 1_700_000_000_000 + int64(r.IntN(1e6)),
			Row: []codec.Field{
				f("id", codec.Int(r.Int64()-math.MaxInt64/2)),
				f("small", codec.Int(int64(r.Int32N(1000))-500)),
				f("price", codec.DecimalFromInt64(r.Int64N(2_000_000)-1_000_000, 2)),
				f("wide", wideDecimal(r)),
				f("x", codec.Float(doubles[r.IntN(len(doubles))])),
				f("ok", codec.Bool(r.IntN(2) == 0)),
				f("name", codec.String(long)),
				f("blob", codec.Binary([]byte{byte(r.IntN(256)), 0xff, byte(r.IntN(256))})),
				f("doc", codec.JSON(fmt.Sprintf(`{"k":%d}`, r.IntN(100)))),
				f("born", codec.Date(int32(r.IntN(40000)-20000))),
				f("seen", codec.Timestamp(r.Int64N(1e13))),
			}}
	}
	return changes
}

// wideDecimal is a random decimal(38,3) beyond int64, of either sign.
func wideDecimal(r *rand.Rand) codec.Value {
	u := new(big.Int).Mul(big.NewInt(r.Int64N(1e9)-5e8), new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil))
	return codec.DecimalFromBig(u.Add(u, big.NewInt(r.Int64N(1e18))), 3)
}
