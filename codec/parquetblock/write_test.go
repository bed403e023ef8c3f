package parquetblock

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/internal/codectest"
)

// TestManyPagesAndGroups writes chunks of many pages in many row groups
// and reads them back: every value, and every page's column index entry
// against the page's values. A chunk of one page takes its page bounds
// from the chunk's statistics instead of scanning its values again; with
// pages this small no chunk has one page, so a writer that took the
// chunk's bounds for every page fails here.
func TestManyPagesAndGroups(t *testing.T) {
	changes := codectest.ManyTypesChanges(3000, 1)
	for _, opts := range []EncodeOptions{{KafkaColumns: true, RowGroupBytes: 64 << 10, PageBytes: 200}, {Compression: "none", PageBytes: 200}} {
		s, data, st := encodeAll(t, changes, opts)
		require.Equal(t, int64(len(changes)), st.Rows)
		got, back, err := ReadBlock(bytes.NewReader(data), int64(len(data)))
		require.NoError(t, err)
		require.True(t, s.Equal(got))
		require.Len(t, back, len(changes))
		for i := range changes {
			require.Equal(t, normalized(t, s, changes[i]), normalized(t, got, back[i]), "change %d", i)
		}

		f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
		require.NoError(t, err)
		if opts.RowGroupBytes > 0 {
			require.Greater(t, len(f.RowGroups()), 2, "row groups")
		}
		pagesSeen := 0
		for _, rg := range f.RowGroups() {
			for _, cc := range rg.ColumnChunks() {
				checkPageIndex(t, f, cc, &pagesSeen)
			}
		}
		require.Greater(t, pagesSeen, 10*len(f.RowGroups()))
	}
}

// checkPageIndex compares a chunk's column and offset indexes with its
// pages: each page's bounds (exact for all but long byte arrays, which
// need only contain them), null count and first row.
func checkPageIndex(t *testing.T, f *parquet.File, cc parquet.ColumnChunk, pagesSeen *int) {
	t.Helper()
	ci, err := cc.ColumnIndex()
	require.NoError(t, err)
	oi, err := cc.OffsetIndex()
	require.NoError(t, err)
	name := f.Schema().Columns()[cc.Column()][0]
	typ := cc.Type()
	pages := cc.Pages()
	defer pages.Close()
	var row int64
	for i := 0; ; i++ {
		p, err := pages.ReadPage()
		if err != nil {
			require.Equal(t, ci.NumPages(), i, name)
			break
		}
		*pagesSeen++
		require.Equal(t, row, oi.FirstRowIndex(i), "%s page %d", name, i)
		require.Equal(t, p.NumNulls(), ci.NullCount(i), "%s page %d", name, i)
		lo, hi, ok := valueBounds(t, typ, p)
		require.Equal(t, !ok, ci.NullPage(i), "%s page %d", name, i)
		if ok {
			ilo, ihi := ci.MinValue(i), ci.MaxValue(i)
			if typ.Kind() == parquet.ByteArray && (len(lo.ByteArray()) > columnIndexBytes || len(hi.ByteArray()) > columnIndexBytes) {
				require.LessOrEqual(t, compare(typ, ilo, lo), 0, "%s page %d min", name, i)
				require.GreaterOrEqual(t, compare(typ, ihi, hi), 0, "%s page %d max", name, i)
			} else {
				require.Zero(t, compare(typ, ilo, lo), "%s page %d min %v, values' %v", name, i, ilo, lo)
				require.Zero(t, compare(typ, ihi, hi), "%s page %d max %v, values' %v", name, i, ihi, hi)
			}
		}
		row += p.NumRows()
		parquet.Release(p)
	}
	require.Equal(t, cc.NumValues(), row, name)
}

// TestChunkStatistics checks a chunk's min and max in the footer against
// its values, for every type, with the signed zeros the format asks for.
func TestChunkStatistics(t *testing.T) {
	changes := codectest.ManyTypesChanges(500, 2)
	_, data, _ := encodeAll(t, changes, EncodeOptions{KafkaColumns: true})
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	require.Len(t, f.RowGroups(), 1)
	md := f.Metadata().RowGroups[0].Columns
	for j, cc := range f.RowGroups()[0].ColumnChunks() {
		name := f.Schema().Columns()[j][0]
		typ := cc.Type()
		var lo, hi parquet.Value
		var nulls int64
		pages := cc.Pages()
		for {
			p, err := pages.ReadPage()
			if err != nil {
				break
			}
			nulls += p.NumNulls()
			if plo, phi, ok := valueBounds(t, typ, p); ok {
				if lo.IsNull() || compare(typ, plo, lo) < 0 {
					lo = plo
				}
				if hi.IsNull() || compare(typ, phi, hi) > 0 {
					hi = phi
				}
			}
			parquet.Release(p)
		}
		pages.Close()
		st := md[j].MetaData.Statistics
		require.Equal(t, nulls, st.NullCount, name)
		require.Greater(t, nulls+int64(len(st.MinValue)), int64(0), name)
		if name == "x" {
			// The values' bounds keep whichever zero came first; the
			// footer has -0 for a zero minimum, +0 for a zero maximum.
			require.Equal(t, typ.Kind().Value(st.MaxValue).Double() == 0, hi.Double() == 0, name)
			if lo.Double() == 0 {
				require.True(t, math.Signbit(typ.Kind().Value(st.MinValue).Double()), "zero minimum is -0")
			}
			if hi.Double() == 0 {
				require.False(t, math.Signbit(typ.Kind().Value(st.MaxValue).Double()), "zero maximum is +0")
			}
			continue
		}
		require.Zero(t, compare(typ, typ.Kind().Value(st.MinValue), lo), "%s min", name)
		require.Zero(t, compare(typ, typ.Kind().Value(st.MaxValue), hi), "%s max", name)
	}
}

// compare orders two values of a column as the format does: by
// parquet-go's comparison of the type, but wide decimals (fixed-length
// byte arrays) as signed integers, which parquet-go compares as unsigned
// bytes.
func compare(typ parquet.Type, a, b parquet.Value) int {
	if typ.Kind() == parquet.FixedLenByteArray {
		return cmpTwos(a.ByteArray(), b.ByteArray())
	}
	return typ.Compare(a, b)
}

// valueBounds reads a page's values and returns their bounds by compare,
// NaN left out; ok is false when the page has none.
func valueBounds(t *testing.T, typ parquet.Type, p parquet.Page) (lo, hi parquet.Value, ok bool) {
	t.Helper()
	vals := make([]parquet.Value, p.NumValues())
	n, err := p.Values().ReadValues(vals)
	if err != nil && err != io.EOF {
		require.NoError(t, err)
	}
	for _, v := range vals[:n] {
		if v.IsNull() || (typ.Kind() == parquet.Double && math.IsNaN(v.Double())) {
			continue
		}
		if !ok || compare(typ, v, lo) < 0 {
			lo = v.Clone()
		}
		if !ok || compare(typ, v, hi) > 0 {
			hi = v.Clone()
		}
		ok = true
	}
	return lo, hi, ok
}

// TestIndexBounds covers the column index's cut of long byte arrays.
func TestIndexBounds(t *testing.T) {
	p := columnPlan{phys: 6} // BYTE_ARRAY
	long := []byte(strings.Repeat("b", 40))
	require.Equal(t, long[:columnIndexBytes], indexMin(p, long))
	require.Equal(t, append(bytes.Repeat([]byte("b"), columnIndexBytes-1), 'c'), indexMax(p, long))
	carry := append(bytes.Repeat([]byte("a"), columnIndexBytes-2), 'z', 0xff, 0xff, 1)
	require.Equal(t, append(bytes.Repeat([]byte("a"), columnIndexBytes-2), 'z'+1), indexMax(p, carry))
	ff := bytes.Repeat([]byte{0xff}, 40)
	require.Equal(t, ff, indexMax(p, ff), "no shorter upper bound")
	require.Equal(t, []byte("short"), indexMax(p, []byte("short")))
	require.Equal(t, -1, cmpTwos([]byte{0x80, 0}, []byte{0x7f, 0xff}))
	require.Equal(t, 1, cmpTwos([]byte{0x00, 1}, []byte{0xff, 0xff}))
	require.Equal(t, -1, cmpTwos([]byte{0xff, 0xfe}, []byte{0xff, 0xff}))
}

// TestDictionaryChoice: a byte array column whose values repeat is
// dictionary-encoded, one whose values are distinct keeps the lengths
// delta-encoded, and one that starts repetitive and turns distinct past
// the sample falls back when its dictionary stops paying; every value
// reads back either way.
func TestDictionaryChoice(t *testing.T) {
	const n = 5000
	changes := make([]codec.Change, n)
	for i := range changes {
		late := "early"
		if i >= dictSample {
			late = fmt.Sprintf("late-%08d-%s", i, strings.Repeat("x", 40))
		}
		changes[i] = codec.Change{Table: "t", Op: codec.OpInsert, LSN: uint64(i + 1), Row: []codec.Field{
			{Name: "status", Value: codec.String([]string{"active", "paused", "closed"}[i%3])},
			{Name: "email", Value: codec.String(fmt.Sprintf("user%06d@example.org", i))},
			{Name: "late", Value: codec.String(late)},
			{Name: "doc", Value: codec.JSON(fmt.Sprintf(`{"k":%d}`, i%7))},
		}}
	}
	s, data, _ := encodeAll(t, changes, EncodeOptions{})
	_, back, err := ReadBlock(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	for i := range changes {
		require.Equal(t, normalized(t, s, changes[i]), normalized(t, s, back[i]), "change %d", i)
	}
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	enc := map[string][]string{}
	for _, cc := range f.Metadata().RowGroups[0].Columns {
		for _, e := range cc.MetaData.Encoding {
			enc[cc.MetaData.PathInSchema[0]] = append(enc[cc.MetaData.PathInSchema[0]], e.String())
		}
	}
	require.Contains(t, enc["status"], "RLE_DICTIONARY")
	require.Contains(t, enc["doc"], "RLE_DICTIONARY")
	require.Contains(t, enc["_op"], "RLE_DICTIONARY")
	require.Equal(t, []string{"RLE", "DELTA_LENGTH_BYTE_ARRAY"}, enc["email"])
	require.Equal(t, []string{"RLE", "DELTA_LENGTH_BYTE_ARRAY"}, enc["late"])
}
