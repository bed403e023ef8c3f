package delta

import (
	"encoding/json"
	"math"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
)

func TestSchemaRoundTrip(t *testing.T) {
	s := codec.NewSchema()
	for _, c := range []codec.Column{
		{Name: "l", Type: codec.Type{Kind: codec.TypeLong}, Nullable: true},
		{Name: "i", Type: codec.Type{Kind: codec.TypeInteger}, Nullable: true},
		{Name: "d", Type: codec.Type{Kind: codec.TypeDouble}, Nullable: true},
		{Name: "b", Type: codec.Type{Kind: codec.TypeBoolean}, Nullable: true},
		{Name: "s", Type: codec.Type{Kind: codec.TypeString}, Nullable: true},
		{Name: "bin", Type: codec.Type{Kind: codec.TypeBinary}, Nullable: true},
		{Name: "dt", Type: codec.Type{Kind: codec.TypeDate}, Nullable: true},
		{Name: "ts", Type: codec.Type{Kind: codec.TypeTimestamp}, Nullable: true},
		{Name: "dec", Type: codec.Type{Kind: codec.TypeDecimal, Precision: 12, Scale: 3}, Nullable: true},
		{Name: "j", Type: codec.Type{Kind: codec.TypeJSON}, Nullable: true},
	} {
		require.NoError(t, s.AddColumn(c))
	}
	s.SetKafkaColumns(true)
	js, err := SchemaJSON(s)
	require.NoError(t, err)
	require.Contains(t, js, `{"name":"_ts","type":"timestamp","nullable":false,"metadata":{}}`)
	require.Contains(t, js, `{"name":"dec","type":"decimal(12,3)","nullable":true,"metadata":{}}`)
	require.Contains(t, js, `{"name":"j","type":"string","nullable":true,"metadata":{"evodb.type":"json"}}`)
	back, err := ParseSchema(js)
	require.NoError(t, err)
	require.True(t, s.Equal(back))
	require.True(t, back.KafkaColumns())

	for _, bad := range []string{`x`, `{"type":"array"}`, `{"type":"struct","fields":[{"name":"a","type":{"type":"struct"}}]}`,
		`{"type":"struct","fields":[{"name":"a","type":"interval"}]}`, `{"type":"struct","fields":[{"name":"a","type":"decimal(50,2)"}]}`} {
		_, err := ParseSchema(bad)
		require.Error(t, err, bad)
	}
}

func TestStatsJSON(t *testing.T) {
	long := "abcdefghijklmnopqrstuvwxyz0123456789"
	price := func(unscaled int64) codec.Value { return codec.DecimalFromBig(big.NewInt(unscaled), 2) }
	st := &codec.BlockStats{Rows: 4, Columns: map[string]codec.ColumnStats{
		"_lsn":  {Type: codec.Type{Kind: codec.TypeLong}, Min: codec.Int(1), Max: codec.Int(math.MaxInt64)},
		"_ts":   {Type: codec.Type{Kind: codec.TypeTimestamp}, Min: codec.Timestamp(1700000000001), Max: codec.Timestamp(1700000000002)},
		"seen":  {Type: codec.Type{Kind: codec.TypeTimestamp}, Min: codec.Timestamp(-1), Max: codec.Timestamp(-1)},
		"born":  {Type: codec.Type{Kind: codec.TypeDate}, Min: codec.Date(-1), Max: codec.Date(-1)},
		"score": {Type: codec.Type{Kind: codec.TypeDouble}, Min: codec.Float(math.Inf(-1)), Max: codec.Float(7), NullCount: 1},
		"price": {Type: codec.Type{Kind: codec.TypeDecimal, Precision: 10, Scale: 2}, Min: price(300), Max: price(12345)},
		"doc":   {Type: codec.Type{Kind: codec.TypeJSON}, NullCount: 2},
		"note":  {Type: codec.Type{Kind: codec.TypeString}, NullCount: 3},
		"s":     {Type: codec.Type{Kind: codec.TypeString}, Min: codec.String(long), Max: codec.String(long)},
	}}
	js, err := StatsJSON(st)
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(js), &got))
	require.Equal(t, float64(4), got["numRecords"])
	minV, maxV := got["minValues"].(map[string]any), got["maxValues"].(map[string]any)
	require.Equal(t, "1969-12-31T23:59:59.999Z", minV["seen"])
	require.Equal(t, "1969-12-31", minV["born"])
	require.Equal(t, "2023-11-14T22:13:20.001Z", minV["_ts"])
	require.NotContains(t, minV, "score", "-Inf has no JSON form")
	require.NotContains(t, minV, "doc", "no min/max for JSON")
	require.Equal(t, 7.0, maxV["score"])
	require.Contains(t, js, `"price":123.45`)
	require.Contains(t, js, `"_lsn":9223372036854775807`)
	require.Equal(t, float64(3), got["nullCount"].(map[string]any)["note"])
	// A long string keeps a 32-character prefix as its minimum and has no
	// maximum: a truncated maximum would be wrong.
	require.Equal(t, long[:32], minV["s"])
	require.NotContains(t, maxV, "s")

	// The row count reads back; the rest stays in the text.
	require.Equal(t, int64(4), readStats(js).Rows)
	require.Equal(t, int64(9), readStats(`{"minValues":{},"numRecords":9}`).Rows)
	require.Nil(t, readStats(""))
	require.Nil(t, readStats(`{"numRecords":`))
}
