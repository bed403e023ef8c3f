package delta

import (
	"bytes"
	"encoding/json"
	"math"
	"math/big"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
)

// statsJSONReference is StatsJSON as encoding/json renders it: the
// reference the hand-written StatsJSON must match byte for byte, so that
// stats in the log are the same whichever of the two wrote them.
func statsJSONReference(b *codec.BlockStats) (string, error) {
	minV, maxV := map[string]any{}, map[string]any{}
	nulls := make(map[string]int64, len(b.Columns))
	for name, cs := range b.Columns {
		nulls[name] = cs.NullCount
		if v, ok := statValue(cs.Min, cs.Type, false); ok {
			minV[name] = v
		}
		if v, ok := statValue(cs.Max, cs.Type, true); ok {
			maxV[name] = v
		}
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	err := enc.Encode(struct {
		NumRecords int64            `json:"numRecords"`
		MinValues  map[string]any   `json:"minValues"`
		MaxValues  map[string]any   `json:"maxValues"`
		NullCount  map[string]int64 `json:"nullCount"`
	}{b.Rows, minV, maxV, nulls})
	return strings.TrimSuffix(out.String(), "\n"), err
}

// statsOf is block statistics with a string, a double, a long, a
// timestamp and a decimal column, the strings and numbers given.
func statsOf(rows int64, name, s1, s2 string, f1, f2 float64, i1, i2 int64) *codec.BlockStats {
	str := codec.Type{Kind: codec.TypeString}
	return &codec.BlockStats{Rows: rows, Columns: map[string]codec.ColumnStats{
		name:       {Type: str, Min: codec.String(s1), Max: codec.String(s2), NullCount: i1 & 0xff},
		name + "2": {Type: str, Min: codec.String(s2), Max: codec.String(s1)},
		"f":        {Type: codec.Type{Kind: codec.TypeDouble}, Min: codec.Float(f1), Max: codec.Float(f2), NullCount: 1},
		"_lsn":     {Type: codec.Type{Kind: codec.TypeLong}, Min: codec.Int(i1), Max: codec.Int(i2)},
		"_ts":      {Type: codec.Type{Kind: codec.TypeTimestamp}, Min: codec.Timestamp(i1 % 1e15), Max: codec.Timestamp(i2 % 1e15)},
		"price":    {Type: codec.Type{Kind: codec.TypeDecimal, Precision: 20, Scale: 3}, Min: codec.DecimalFromBig(big.NewInt(i1), 3), Max: codec.DecimalFromBig(big.NewInt(i2), 3)},
		"on":       {Type: codec.Type{Kind: codec.TypeBoolean}, NullCount: 2},
	}}
}

func TestStatsJSONAsEncodingJSON(t *testing.T) {
	cases := []*codec.BlockStats{
		{Rows: 0},
		{Rows: 1, Columns: map[string]codec.ColumnStats{}},
		statsOf(400, "name", "alice", "zoë", 0.5, 1e21, -7, math.MaxInt64),
		statsOf(3, "é", "<a href=\"x\">&amp;</a>", "tab\there\nnew\rline\b\f\x00\x1f\x7f", 1e-7, -1e-6, math.MinInt64, 0),
		statsOf(3, "\u2028", "line\u2028sep\u2029", "bad \xff utf8 \xc3", math.Copysign(0, -1), 123456789.125, 1, 2),
		statsOf(3, "k\\\"", strings.Repeat("ü", 40), strings.Repeat("x", 33), math.Inf(1), math.NaN(), 5, 5),
		statsOf(3, "n", "", "", 1e20, 5e-324, 0, -1),
	}
	for _, st := range cases {
		want, err := statsJSONReference(st)
		require.NoError(t, err)
		got, err := StatsJSON(st)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
}

func FuzzStatsJSON(f *testing.F) {
	f.Add(int64(400), "name", "alice", "zoë", 0.5, 1e21, int64(-7), int64(math.MaxInt64))
	f.Add(int64(1), "\u2028", "a\u2029\xff<>&", "\x00\"\\", 1e-7, -1e-6, int64(math.MinInt64), int64(0))
	f.Fuzz(func(t *testing.T, rows int64, name, s1, s2 string, f1, f2 float64, i1, i2 int64) {
		st := statsOf(rows, name, s1, s2, f1, f2, i1, i2)
		want, werr := statsJSONReference(st)
		got, gerr := StatsJSON(st)
		require.Equal(t, werr != nil, gerr != nil, "reference: %v, StatsJSON: %v", werr, gerr)
		if werr == nil {
			require.Equal(t, want, got)
		}
	})
}

// BenchmarkStatsJSON renders the stats of a block of ten columns (the
// sink's metadata columns and five data columns), with StatsJSON and with
// encoding/json as it rendered them before.
func BenchmarkStatsJSON(b *testing.B) {
	st := statsOf(400, "email", "alice@example.com", "zoe@example.com", 0.5, 99.25, 1000, 1399)
	st.Columns["_op"] = codec.ColumnStats{Type: codec.Type{Kind: codec.TypeString}, Min: codec.String("INSERT"), Max: codec.String("UPDATE")}
	st.Columns["id"] = codec.ColumnStats{Type: codec.Type{Kind: codec.TypeLong}, Min: codec.Int(1), Max: codec.Int(400)}
	for _, impl := range []struct {
		name string
		fn   func(*codec.BlockStats) (string, error)
	}{{"StatsJSON", StatsJSON}, {"encoding-json", statsJSONReference}} {
		b.Run(impl.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := impl.fn(st); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
