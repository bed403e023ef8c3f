package parquetblock

import (
	"bytes"
	"flag"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func dec(s string, scale int32) codec.Value {
	u, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic("bad decimal literal in test: " + s)
	}
	return codec.DecimalFromBig(u, scale)
}

// roundTripChanges covers every value kind, nulls, evolution (columns
// added between changes, int widened to double), nested values, unicode,
// empty strings and extreme ints.
func roundTripChanges() []codec.Change {
	base := func(op codec.Op, lsn uint64, row ...codec.Field) codec.Change {
		return codec.Change{Topic: "cdc", Partition: 3, Offset: int64(lsn % 1000), DB: "shop", Schema: "public", Table: "users",
			Op: op, LSN: lsn, TS: 1700000000000 + int64(lsn%1000), Row: row}
	}
	return []codec.Change{
		base(codec.OpInsert, 1,
			codec.Field{Name: "id", Value: codec.Int(1)}, codec.Field{Name: "name", Value: codec.String("ada")}, codec.Field{Name: "score", Value: codec.Int(7)},
			codec.Field{Name: "ok", Value: codec.Bool(true)}, codec.Field{Name: "blob", Value: codec.Binary([]byte{0, 1, 0xff})},
			codec.Field{Name: "price", Value: dec("12345", 2)}, codec.Field{Name: "big", Value: dec("-123456789012345678901234567890", 4)},
			codec.Field{Name: "small", Value: dec("-99", 1)}, codec.Field{Name: "born", Value: codec.Date(-1)}, codec.Field{Name: "seen", Value: codec.Timestamp(-1)},
			codec.Field{Name: "doc", Value: codec.JSON(`{"a":[1,2,{"b":null}]}`)}, codec.Field{Name: "note", Value: codec.Null()}),
		base(codec.OpUpdate, 2,
			codec.Field{Name: "id", Value: codec.Int(math.MaxInt64)}, codec.Field{Name: "name", Value: codec.String("")}, codec.Field{Name: "score", Value: codec.Float(2.5)},
			codec.Field{Name: "ok", Value: codec.Bool(false)}, codec.Field{Name: "doc", Value: codec.JSON(`[]`)}, codec.Field{Name: "extra", Value: codec.String("héllo 世界 🚀")}),
		base(codec.OpDelete, 3, codec.Field{Name: "id", Value: codec.Int(math.MinInt64)}, codec.Field{Name: "name", Value: codec.Int(42)}, codec.Field{Name: "note", Value: codec.String("now set")}),
		base(codec.OpSnapshot, math.MaxInt64, codec.Field{Name: "id", Value: codec.Int(0)}, codec.Field{Name: "score", Value: codec.Float(math.Inf(-1))},
			codec.Field{Name: "price", Value: codec.Int(3)}, codec.Field{Name: "small", Value: dec("99", 1)}),
	}
}

// normalized maps a change's row to column → coerced value, nulls dropped,
// so a decoded change compares with what ReadBlock returns.
func normalized(t *testing.T, s *codec.Schema, ch codec.Change) map[string]codec.Value {
	out := map[string]codec.Value{}
	for _, f := range ch.Row {
		c, ok := s.Column(f.Name)
		if !ok {
			require.True(t, f.Value.IsNull(), f.Name)
			continue
		}
		v, ok := codec.Coerce(f.Value, c.Type)
		require.True(t, ok, f.Name)
		if v.IsNull() {
			delete(out, f.Name)
			continue
		}
		out[f.Name] = v
	}
	return out
}

func encodeAll(t *testing.T, changes []codec.Change, opts EncodeOptions) (*codec.Schema, []byte, codec.BlockStats) {
	t.Helper()
	s := codec.NewSchema()
	s.SetKafkaColumns(opts.KafkaColumns) // as a table's schema matches its blocks
	for i := range changes {
		_, err := s.Accept(&changes[i])
		require.NoError(t, err)
	}
	var buf bytes.Buffer
	st, err := EncodeBlock(&buf, s, changes, opts)
	require.NoError(t, err)
	require.Equal(t, int64(buf.Len()), st.Bytes)
	return s, buf.Bytes(), st
}

func TestRoundTrip(t *testing.T) {
	for _, opts := range []EncodeOptions{
		{},
		{Compression: "snappy", KafkaColumns: true, RowGroupBytes: 1},
		{Compression: "none"},
	} {
		t.Run(opts.Compression, func(t *testing.T) {
			changes := roundTripChanges()
			s, data, st := encodeAll(t, changes, opts)
			require.Equal(t, int64(len(changes)), st.Rows)

			got, back, err := ReadBlock(bytes.NewReader(data), int64(len(data)))
			require.NoError(t, err)
			require.True(t, s.Equal(got), "schema %v != %v", got.Columns(), s.Columns())
			require.Len(t, back, len(changes))
			for i := range changes {
				want := changes[i]
				require.Equal(t, want.Op, back[i].Op)
				require.Equal(t, want.LSN, back[i].LSN)
				require.Equal(t, want.TS, back[i].TS)
				require.Equal(t, want.TableName(), back[i].TableName())
				if opts.KafkaColumns {
					require.Equal(t, want.Topic, back[i].Topic)
					require.Equal(t, want.Partition, back[i].Partition)
					require.Equal(t, want.Offset, back[i].Offset)
				}
				require.Equal(t, normalized(t, s, want), normalized(t, got, back[i]), "change %d", i)
			}
		})
	}
}

func TestEncodeBlockLogicalTypes(t *testing.T) {
	_, data, _ := encodeAll(t, roundTripChanges(), EncodeOptions{KafkaColumns: true})
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	want := map[string]string{
		"_ts":    "TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS)",
		"name":   "STRING",
		"born":   "DATE",
		"price":  "DECIMAL(38,2)",
		"small":  "DECIMAL(38,1)",
		"_op":    "STRING",
		"_topic": "STRING",
	}
	for name, lt := range want {
		leaf, ok := f.Schema().Lookup(name)
		require.True(t, ok, name)
		require.Equal(t, lt, leaf.Node.Type().LogicalType().String(), name)
	}
	leaf, _ := f.Schema().Lookup("price")
	require.Equal(t, parquet.FixedLenByteArray, leaf.Node.Type().Kind())
	require.NotEmpty(t, f.ColumnIndexes(), "page index written")
	require.NotEmpty(t, f.OffsetIndexes(), "page index written")
	for _, cc := range f.Metadata().RowGroups[0].Columns {
		require.Equal(t, "ZSTD", cc.MetaData.Codec.String())
	}
}

func TestEncodeBlockDecimalPhysicalTypes(t *testing.T) {
	s := codec.NewSchema()
	require.NoError(t, s.AddColumn(codec.Column{Name: "d9", Type: codec.Type{Kind: codec.TypeDecimal, Precision: 9, Scale: 2}, Nullable: true}))
	require.NoError(t, s.AddColumn(codec.Column{Name: "d18", Type: codec.Type{Kind: codec.TypeDecimal, Precision: 18, Scale: 0}, Nullable: true}))
	changes := []codec.Change{{Table: "t", Op: codec.OpInsert, LSN: 1, Row: []codec.Field{{Name: "d9", Value: dec("-999999999", 2)}, {Name: "d18", Value: dec("999999999999999999", 0)}}}}
	_, err := s.Accept(&changes[0])
	require.NoError(t, err)
	var buf bytes.Buffer
	_, err = EncodeBlock(&buf, s, changes, EncodeOptions{})
	require.NoError(t, err)
	f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.NoError(t, err)
	l9, _ := f.Schema().Lookup("d9")
	l18, _ := f.Schema().Lookup("d18")
	require.Equal(t, parquet.Int32, l9.Node.Type().Kind())
	require.Equal(t, parquet.Int64, l18.Node.Type().Kind())
	_, back, err := ReadBlock(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.NoError(t, err)
	require.Equal(t, "-9999999.99", back[0].Get("d9").Text())
	require.Equal(t, "999999999999999999", back[0].Get("d18").Text())
}

func TestEncodeBlockErrors(t *testing.T) {
	s := codec.NewSchema()
	ch := codec.Change{Table: "t", Op: codec.OpInsert, LSN: 1, Row: []codec.Field{{Name: "a", Value: codec.Int(1)}}}
	_, err := s.Accept(&ch)
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		changes []codec.Change
		opts    EncodeOptions
	}{
		"compression":   {[]codec.Change{ch}, EncodeOptions{Compression: "lzma"}},
		"two tables":    {[]codec.Change{ch, {Table: "u", Op: codec.OpInsert, LSN: 2}}, EncodeOptions{}},
		"unknown col":   {[]codec.Change{{Table: "t", Op: codec.OpInsert, Row: []codec.Field{{Name: "b", Value: codec.Int(1)}}}}, EncodeOptions{}},
		"uncoercible":   {[]codec.Change{{Table: "t", Op: codec.OpInsert, Row: []codec.Field{{Name: "a", Value: codec.String("x")}}}}, EncodeOptions{}},
		"lsn above int": {[]codec.Change{{Table: "t", Op: codec.OpInsert, LSN: math.MaxUint64}}, EncodeOptions{}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := EncodeBlock(&bytes.Buffer{}, s, tc.changes, tc.opts)
			require.Error(t, err)
		})
	}
}

// TestEncodeBlockTypeMismatch sends each column type a value it cannot
// hold: the error names the change and the column, whatever the column's
// encoding path.
func TestEncodeBlockTypeMismatch(t *testing.T) {
	for _, tc := range []struct {
		typ codec.Type
		bad codec.Value
	}{
		{codec.Type{Kind: codec.TypeLong}, codec.String("x")},
		{codec.Type{Kind: codec.TypeInteger}, codec.Int(math.MaxInt32 + 1)},
		{codec.Type{Kind: codec.TypeTimestamp}, codec.Int(1)},
		{codec.Type{Kind: codec.TypeDate}, codec.Float(1.5)},
		{codec.Type{Kind: codec.TypeDouble}, codec.Bool(true)},
		{codec.Type{Kind: codec.TypeBoolean}, codec.Int(1)},
		{codec.Type{Kind: codec.TypeBinary}, codec.String("x")},
		{codec.Type{Kind: codec.TypeDecimal, Precision: 5, Scale: 2}, dec("12345678", 3)},
	} {
		t.Run(tc.typ.String(), func(t *testing.T) {
			s := codec.NewSchema()
			require.NoError(t, s.AddColumn(codec.Column{Name: "c", Type: tc.typ, Nullable: true}))
			changes := []codec.Change{
				{Table: "t", Op: codec.OpInsert, LSN: 1, Topic: "tp", Partition: 3, Offset: 7, Row: []codec.Field{{Name: "c", Value: codec.Null()}}},
				{Table: "t", Op: codec.OpInsert, LSN: 2, Topic: "tp", Partition: 3, Offset: 8, Row: []codec.Field{{Name: "c", Value: tc.bad}}},
			}
			_, err := EncodeBlock(&bytes.Buffer{}, s, changes, EncodeOptions{})
			require.ErrorContains(t, err, `change at tp/3@8: column "c": expected`)
		})
	}
}

func TestBlockStats(t *testing.T) {
	changes := roundTripChanges()
	_, _, st := encodeAll(t, changes, EncodeOptions{})
	require.Equal(t, int64(4), st.Rows)
	require.Equal(t, uint64(1), st.MinLSN)
	require.Equal(t, uint64(math.MaxInt64), st.MaxLSN)
	require.Equal(t, int64(1700000000001), st.MinTS)

	id := st.Columns["id"]
	require.Equal(t, codec.Int(math.MinInt64), id.Min)
	require.Equal(t, codec.Int(math.MaxInt64), id.Max)
	require.Equal(t, int64(0), id.NullCount)
	// score widened to double: 7 → 7.0; -Inf is the minimum.
	require.Equal(t, codec.Float(math.Inf(-1)), st.Columns["score"].Min)
	require.Equal(t, codec.Float(7), st.Columns["score"].Max)
	require.Equal(t, int64(1), st.Columns["score"].NullCount)
	// name: "ada", "", "42" (int into string column), null.
	require.Equal(t, codec.String(""), st.Columns["name"].Min)
	require.Equal(t, codec.String("ada"), st.Columns["name"].Max)
	require.Equal(t, int64(1), st.Columns["name"].NullCount)
	require.Equal(t, int64(3), st.Columns["note"].NullCount)
	require.Equal(t, int64(3), st.Columns["extra"].NullCount)
	require.True(t, st.Columns["doc"].Min.IsNull(), "no min/max for JSON")
	require.Equal(t, "3.00", st.Columns["price"].Min.Text())
	require.Equal(t, "123.45", st.Columns["price"].Max.Text())

}

// TestBlockStatsMetaColumns checks the statistics of the metadata columns,
// which the encoder builds from the rows' metadata without codec values
// (metaColumn): each column's minimum and maximum of its own kind, and no
// nulls.
func TestBlockStatsMetaColumns(t *testing.T) {
	changes := roundTripChanges()
	changes[1].Topic, changes[1].Partition, changes[1].Offset = "alpha", 9, -1
	changes[2].Topic, changes[2].Partition = "zulu", 0
	_, _, st := encodeAll(t, changes, EncodeOptions{KafkaColumns: true})
	want := map[string][2]codec.Value{
		codec.ColOp:        {codec.String("DELETE"), codec.String("UPDATE")},
		codec.ColLSN:       {codec.Int(1), codec.Int(math.MaxInt64)},
		codec.ColTS:        {codec.Timestamp(1700000000001), codec.Timestamp(1700000000807)},
		codec.ColTopic:     {codec.String("alpha"), codec.String("zulu")},
		codec.ColPartition: {codec.Int(0), codec.Int(9)},
		codec.ColOffset:    {codec.Int(-1), codec.Int(807)},
	}
	for name, mm := range want {
		cs := st.Columns[name]
		require.Equal(t, mm[0], cs.Min, name)
		require.Equal(t, mm[1], cs.Max, name)
		require.Equal(t, int64(0), cs.NullCount, name)
	}
}

// TestGoldenBlock guards the block format: the committed file must still
// decode to the same schema, metadata and rows, and a fresh encoding must
// produce the same Parquet schema. Run with -update to rewrite it.
func TestGoldenBlock(t *testing.T) {
	path := filepath.Join("testdata", "golden.parquet")
	_, data, _ := encodeAll(t, roundTripChanges(), EncodeOptions{KafkaColumns: true})
	if *update {
		require.NoError(t, os.WriteFile(path, data, 0o644))
	}
	golden, err := os.ReadFile(path)
	require.NoError(t, err)

	gs, gchanges, err := ReadBlock(bytes.NewReader(golden), int64(len(golden)))
	require.NoError(t, err)
	fs, fchanges, err := ReadBlock(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	require.True(t, gs.Equal(fs))
	require.Equal(t, fchanges, gchanges)

	gf, err := parquet.OpenFile(bytes.NewReader(golden), int64(len(golden)))
	require.NoError(t, err)
	ff, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	require.Equal(t, gf.Schema().String(), ff.Schema().String())
	for _, k := range []string{metaColumnList, metaDB, metaNS, metaTable} {
		g, _ := gf.Lookup(k)
		f, _ := ff.Lookup(k)
		require.Equal(t, g, f, k)
	}

	// Blocks written before evodb.columns carry the whole Delta schema
	// instead; they still read the same.
	v1, err := os.ReadFile(filepath.Join("testdata", "golden-v1.parquet"))
	require.NoError(t, err)
	vs, vchanges, err := ReadBlock(bytes.NewReader(v1), int64(len(v1)))
	require.NoError(t, err)
	// That golden file was written from a schema without the Kafka
	// columns, so its Delta schema left them out although the file has
	// them; the column list cannot disagree with the file that way.
	vs.SetKafkaColumns(true)
	require.True(t, gs.Equal(vs))
	require.Equal(t, gchanges, vchanges)
}

// TestColumnListMetadata: the column list restores order and JSON columns
// and is refused when it does not describe the file.
func TestColumnListMetadata(t *testing.T) {
	s := codec.NewSchema()
	require.NoError(t, s.AddColumn(codec.Column{Name: "z", Type: codec.Type{Kind: codec.TypeJSON}, Nullable: true}))
	require.NoError(t, s.AddColumn(codec.Column{Name: "a", Type: codec.Type{Kind: codec.TypeDecimal, Precision: 12, Scale: 3}, Nullable: true}))
	text, err := columnsJSON(s)
	require.NoError(t, err)
	require.Equal(t, `[["z","json"],["a","decimal(12,3)"]]`, text)
	back, err := parseColumnsJSON(text)
	require.NoError(t, err)
	require.True(t, s.Equal(back))
	for _, bad := range []string{`{}`, `[["a","uuid"]]`, `[["_lsn","long"]]`, `[["a","long"],["a","long"]]`} {
		_, err := parseColumnsJSON(bad)
		require.Error(t, err, bad)
	}
}

// EncodeRows writes rows in the Rows' order, and reading the block back
// gives the same changes EncodeBlock of the sorted slice gives.
func TestEncodeRowsOrder(t *testing.T) {
	changes := []codec.Change{
		{Topic: "a", Partition: 1, Offset: 10, Table: "t", Op: codec.OpInsert, LSN: 30, TS: 1,
			Row: []codec.Field{{Name: "id", Value: codec.Int(1)}, {Name: "name", Value: codec.String("x")}}, Key: []codec.Field{{Name: "id", Value: codec.Int(1)}}},
		{Topic: "b", Partition: 0, Offset: 5, Table: "t", Op: codec.OpUpdate, LSN: 10, TS: 2,
			Row: []codec.Field{{Name: "id", Value: codec.Int(2)}, {Name: "name", Value: codec.String("")}, {Name: "price", Value: codec.Float(2.5)}}},
		{Topic: "a", Partition: 1, Offset: 11, Table: "t", Op: codec.OpDelete, LSN: 10, TS: 3,
			Row: []codec.Field{{Name: "id", Value: codec.Int(3)}, {Name: "blob", Value: codec.Binary([]byte{0, 1})}, {Name: "d", Value: codec.Decimal([]byte{0x04, 0xd2}, 2)}}},
	}
	s := codec.NewSchema()
	s.SetKafkaColumns(true)
	for i := range changes {
		_, err := s.Accept(&changes[i])
		require.NoError(t, err)
	}
	r, err := codec.RowsOf(changes)
	require.NoError(t, err)
	r.Sort()
	var buf bytes.Buffer
	stats, err := EncodeRows(&buf, s, r, EncodeOptions{KafkaColumns: true})
	require.NoError(t, err)
	require.Equal(t, int64(3), stats.Rows)
	_, got, err := ReadBlock(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.NoError(t, err)
	require.Len(t, got, 3)
	for k := range got {
		require.Equal(t, r.Meta(k).Offset, got[k].Offset)
		require.Equal(t, r.Meta(k).LSN, got[k].LSN)
	}
	require.Equal(t, "x", got[2].Get("name").Str())
}

// TestIntegerColumnsDeltaEncoded writes integer, date and timestamp data
// columns delta-encoded (a random 20-bit column is a third of its plain
// size before compression, which zstd then need not scan) and reads back
// pages of values that jump between the int64 extremes, where every delta
// overflows and must wrap, with nulls between them.
func TestIntegerColumnsDeltaEncoded(t *testing.T) {
	extremes := []int64{math.MaxInt64, math.MinInt64, 0, -1, 1, math.MinInt64, math.MaxInt64, 42}
	var changes []codec.Change
	for i := range 3000 {
		row := []codec.Field{
			{Name: "id", Value: codec.Int(int64(i))},
			{Name: "x", Value: codec.Int(extremes[i%len(extremes)] ^ int64(i*7919))},
			{Name: "n", Value: codec.Int(int64(int32(i * 104729)))},
			{Name: "d", Value: codec.Date(int32(i - 1500))},
			{Name: "ts", Value: codec.Timestamp(int64(i) * 1e9)},
		}
		if i%5 == 0 {
			row[1].Value = codec.Null()
		}
		changes = append(changes, codec.Change{Table: "t", Op: codec.OpInsert, LSN: uint64(i + 1), Row: row})
	}
	s, data, _ := encodeAll(t, changes, EncodeOptions{})
	got, back, err := ReadBlock(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	require.Len(t, back, len(changes))
	for i := range changes {
		require.Equal(t, normalized(t, s, changes[i]), normalized(t, got, back[i]), "change %d", i)
	}
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	for _, c := range f.Metadata().RowGroups[0].Columns {
		if name := c.MetaData.PathInSchema[0]; name == "id" || name == "x" || name == "d" || name == "ts" {
			require.Contains(t, c.MetaData.Encoding, format.DeltaBinaryPacked, name)
		}
	}
}

// TestEncodeFieldIDs checks that EncodeOptions.FieldIDs lands in the
// file's schema elements, that the block still reads back, and that a
// column without an ID fails the encode instead of writing a file whose
// other IDs would hide it from readers that resolve columns by ID.
func TestEncodeFieldIDs(t *testing.T) {
	changes := roundTripChanges()
	s := codec.NewSchema()
	s.SetKafkaColumns(true)
	for i := range changes {
		_, err := s.Accept(&changes[i])
		require.NoError(t, err)
	}
	ids := map[string]int{}
	for i, c := range codec.MetaColumns(true) {
		ids[c.Name] = 100 + i
	}
	for i, c := range s.Columns() {
		ids[c.Name] = 200 + i
	}
	var buf bytes.Buffer
	_, err := EncodeBlock(&buf, s, changes, EncodeOptions{KafkaColumns: true, FieldIDs: ids})
	require.NoError(t, err)
	data := buf.Bytes()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	got := map[string]int{}
	for _, el := range f.Metadata().Schema[1:] {
		got[el.Name] = int(el.FieldID)
	}
	require.Equal(t, ids, got)
	back, rows, err := ReadBlock(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	require.True(t, s.Equal(back))
	require.Len(t, rows, len(changes))

	delete(ids, s.Columns()[0].Name)
	_, err = EncodeBlock(&bytes.Buffer{}, s, changes, EncodeOptions{KafkaColumns: true, FieldIDs: ids})
	require.ErrorContains(t, err, "has no field ID")
}
