package confluent

import (
	"context"
	"fmt"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/internal/codectest"
)

// evodbRecords are n records of codectest.Row, the JSON benchmark row: 12
// columns, about 330 bytes in the evodb envelope.
func evodbRecords(n int) []codec.Record {
	recs := make([]codec.Record, n)
	for i := range recs {
		v := fmt.Sprintf(`{"op":"UPDATE","table":"users","data":%s,"lsn":%d,"ts":1700000000000}`, codectest.Row(i), 1e15+i)
		recs[i] = codec.Record{Topic: "shop.users", Partition: 1, Offset: int64(i), Value: []byte(v)}
	}
	return recs
}

// transcode returns recs as Avro records of the same changes, through the
// Encoder and a registry.
func transcode(tb testing.TB, f *fixture, recs []codec.Record) []codec.Record {
	tb.Helper()
	jd, err := cdc.NewDecoder(cdc.FormatEvoDB)
	require.NoError(tb, err)
	enc := NewEncoder(f.reg, "shop.users")
	out := make([]codec.Record, len(recs))
	for i, r := range recs {
		var ch codec.Change
		require.NoError(tb, jd.Decode(r, &ch))
		v, err := enc.Append(context.Background(), nil, &ch)
		require.NoError(tb, err)
		out[i] = r
		out[i].Value = v
	}
	return out
}

// Changes written by the Encoder decode to the same changes.
func TestEncoderRoundTrip(t *testing.T) {
	f := newFixture(t)
	recs := evodbRecords(20)
	avroRecs := transcode(t, f, recs)
	jd, err := cdc.NewDecoder(cdc.FormatEvoDB)
	require.NoError(t, err)
	d := f.decoder(DecoderOptions{Value: FormatAvro})
	for i := range recs {
		var want, got codec.Change
		require.NoError(t, jd.Decode(recs[i], &want))
		require.NoError(t, d.Decode(avroRecs[i], &got))
		requireSameChange(t, &want, &got)
	}

	// Every value kind, nulls and negative decimals included.
	ch := codec.Change{Topic: "t", Table: "k", Op: codec.OpDelete, LSN: 5, TS: 6, Row: []codec.Field{
		{Name: "b", Value: codec.Bool(false)}, {Name: "i", Value: codec.Int(-3)}, {Name: "f", Value: codec.Float(1.5)},
		{Name: "s", Value: codec.String("x")}, {Name: "y", Value: codec.Binary([]byte{9})},
		{Name: "d", Value: codec.DecimalFromBig(big.NewInt(-25600), 2)}, {Name: "e", Value: codec.DecimalFromBig(big.NewInt(255), 1)},
		{Name: "day", Value: codec.Date(-1)}, {Name: "at", Value: codec.Timestamp(-5)}, {Name: "j", Value: codec.JSON(`{"a":1}`)},
		{Name: "n", Value: codec.Null()},
	}}
	v, err := NewEncoder(f.reg, "t").Append(context.Background(), nil, &ch)
	require.NoError(t, err)
	var got codec.Change
	require.NoError(t, d.Decode(codec.Record{Topic: "t", Value: v}, &got))
	for _, fl := range ch.Row {
		require.True(t, fl.Value.Equal(got.Get(fl.Name)), "%s: %#v != %#v", fl.Name, fl.Value, got.Get(fl.Name))
	}
	require.Equal(t, codec.OpDelete, got.Op)
}

// A null is declared with the type of its column's latest value; a column
// null so far is left out. Declared as a string, a null would make the
// table's column a string that the column's numbers then conflict with.
func TestEncoderNullTypes(t *testing.T) {
	f := newFixture(t)
	enc := NewEncoder(f.reg, "t")
	d := f.decoder(DecoderOptions{Value: FormatAvro})
	declared := func(ch codec.Change) map[string]codec.TypeKind {
		t.Helper()
		v, err := enc.Append(context.Background(), nil, &ch)
		require.NoError(t, err)
		var got codec.Change
		require.NoError(t, d.Decode(codec.Record{Topic: "t", Value: v}, &got))
		kinds := map[string]codec.TypeKind{}
		for _, c := range got.Declared {
			kinds[c.Name] = c.Type.Kind
		}
		return kinds
	}
	change := func(lsn uint64, n codec.Value) codec.Change {
		return codec.Change{Topic: "t", Table: "k", Op: codec.OpInsert, LSN: lsn, Row: []codec.Field{{Name: "id", Value: codec.Int(1)}, {Name: "n", Value: n}}}
	}
	first := declared(change(1, codec.Null()))
	require.NotContains(t, first, "n", "a column null so far must be left out")
	require.Equal(t, codec.TypeLong, declared(change(2, codec.Int(7)))["n"])
	require.Equal(t, codec.TypeLong, declared(change(3, codec.Null()))["n"], "a null must keep its column's type")
	// Another table's column of the same name has a type of its own.
	other := change(4, codec.Null())
	other.Table = "other"
	require.NotContains(t, declared(other), "n")
}

// BenchmarkDecodeAvro and BenchmarkDecodeJSON decode the same changes: the
// rows of cdc's BenchmarkDecodeEvoDB, as Avro and as evodb JSON.
func BenchmarkDecodeAvro(b *testing.B)         { benchDecode(b, true, false) }
func BenchmarkDecodeBorrowedAvro(b *testing.B) { benchDecode(b, true, true) }
func BenchmarkDecodeJSON(b *testing.B)         { benchDecode(b, false, false) }
func BenchmarkDecodeBorrowedJSON(b *testing.B) { benchDecode(b, false, true) }

func benchDecode(b *testing.B, avro, borrow bool) {
	f := newFixture(b)
	recs := evodbRecords(1024)
	var d cdc.Decoder
	if avro {
		recs = transcode(b, f, recs)
		d = f.decoder(DecoderOptions{Value: FormatAvro})
	} else {
		var err error
		if d, err = cdc.NewDecoder(cdc.FormatEvoDB); err != nil {
			b.Fatal(err)
		}
	}
	total := 0
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

// requireSameChange checks that got, decoded from an encoder's record,
// is want: a column that is null in want may be absent from got (a null
// never seen with a value is left out).
func requireSameChange(t *testing.T, want, got *codec.Change) {
	t.Helper()
	require.Equal(t, want.Op, got.Op)
	require.Equal(t, want.LSN, got.LSN)
	require.Equal(t, want.TS, got.TS)
	require.Equal(t, want.TableName(), got.TableName())
	for _, f := range want.Row {
		require.True(t, f.Value.Equal(got.Get(f.Name)) || f.Value.Text() == got.Get(f.Name).Text(), "%s: %#v != %#v", f.Name, f.Value, got.Get(f.Name))
	}
	for _, f := range got.Row {
		require.False(t, want.Get(f.Name).IsNull() && !f.Value.IsNull(), "%s: not in the change", f.Name)
	}
}

// A null column is typed as the column last was, so a null does not
// register a layout that contradicts the table; a column null since the
// first change is left out. This breaks the encoders' layout invariant
// on purpose: without the memory, the second change would declare a
// string column.
func TestEncodersTypeNullColumns(t *testing.T) {
	for _, format := range []codec.Format{FormatAvro, FormatProtobuf} {
		t.Run(string(format), func(t *testing.T) {
			f := newFixture(t)
			enc, err := NewChangeEncoder(f.reg, "t", format)
			require.NoError(t, err)
			d := f.decoder(DecoderOptions{Value: format})
			first := codec.Change{Table: "k", Op: codec.OpInsert, LSN: 1, Row: []codec.Field{{Name: "a", Value: codec.Float(1.5)}, {Name: "b", Value: codec.Null()}}}
			second := codec.Change{Table: "k", Op: codec.OpInsert, LSN: 2, Row: []codec.Field{{Name: "a", Value: codec.Null()}, {Name: "b", Value: codec.Null()}}}
			s := codec.NewSchema()
			for _, ch := range []*codec.Change{&first, &second} {
				v, err := enc.Append(context.Background(), nil, ch)
				require.NoError(t, err)
				var got codec.Change
				require.NoError(t, d.Decode(codec.Record{Topic: "t", Value: v}, &got))
				require.Len(t, got.Declared, 1, "b was never typed")
				require.Equal(t, "a", got.Declared[0].Name)
				require.Equal(t, "double", got.Declared[0].Type.String())
				_, err = s.Accept(&got)
				require.NoError(t, err)
			}
			_, err = ProtoSchema(&codec.Change{Row: []codec.Field{{Name: "a-b", Value: codec.Int(1)}}})
			require.ErrorContains(t, err, `column "a-b" is not a Protobuf field name`)
		})
	}
}
