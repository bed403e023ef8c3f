package codec

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func rowsTestChanges() []Change {
	return []Change{
		{Topic: "a", Partition: 1, Offset: 10, Table: "t", Op: OpInsert, LSN: 30, TS: 1,
			Row: []Field{{"id", Int(1)}, {"name", String("x")}}, Key: []Field{{"id", Int(1)}}},
		{Topic: "b", Partition: 0, Offset: 5, Table: "t", Op: OpUpdate, LSN: 10, TS: 2,
			Row: []Field{{"id", Int(2)}, {"name", String("")}, {"price", Float(2.5)}}},
		{Topic: "a", Partition: 1, Offset: 11, Table: "t", Op: OpDelete, LSN: 10, TS: 3,
			Row: []Field{{"id", Int(3)}, {"blob", Binary([]byte{0, 1})}, {"d", Decimal([]byte{0x04, 0xd2}, 2)}}},
	}
}

func TestRowsRoundTrip(t *testing.T) {
	changes := rowsTestChanges()
	r, err := RowsOf(changes)
	require.NoError(t, err)
	require.Equal(t, 3, r.Len())
	var want int64
	for i := range changes {
		want += int64(changes[i].Size())
		got := r.Change(i)
		require.Equal(t, changes[i], got)
		m := r.Meta(i)
		require.Equal(t, RowMeta{Topic: changes[i].Topic, Partition: changes[i].Partition, Offset: changes[i].Offset,
			LSN: changes[i].LSN, TS: changes[i].TS, Op: changes[i].Op}, m)
	}
	require.Equal(t, want, r.Bytes())
	db, ns, table := r.Table()
	require.Equal(t, [3]string{"", "", "t"}, [3]string{db, ns, table})
}

func TestRowsRefusesAnotherTable(t *testing.T) {
	r := NewRows(RowsHint{})
	_, err := r.Append(&Change{Table: "t", Topic: "a"})
	require.NoError(t, err)
	_, err = r.Append(&Change{Table: "u", Topic: "a", Partition: 2, Offset: 7})
	require.ErrorContains(t, err, "a/2@7")
	require.Equal(t, 1, r.Len())
}

func TestRowsSortAndFilter(t *testing.T) {
	r, err := RowsOf(rowsTestChanges())
	require.NoError(t, err)
	r.Sort()
	var order []int64
	for k := range r.Len() {
		order = append(order, r.Meta(k).Offset)
	}
	// LSN 10 twice (offsets 5 and 11), then LSN 30.
	require.Equal(t, []int64{5, 11, 10}, order)

	kept := r.Filter(func(m RowMeta) bool { return m.Topic == "a" })
	require.Equal(t, 2, kept.Len())
	require.Equal(t, int64(11), kept.Meta(0).Offset)
	require.Equal(t, int64(10), kept.Meta(1).Offset)
	require.Equal(t, rowsTestChanges()[2], kept.Change(0))
	require.Equal(t, 3, r.Len(), "Filter leaves its receiver alone")

	// Appending after a sort keeps the sorted prefix and adds at the end.
	ch := Change{Topic: "c", Table: "t", LSN: 1}
	_, err = r.Append(&ch)
	require.NoError(t, err)
	require.Equal(t, "c", r.Meta(3).Topic)
}

// MemFor predicts exactly how much Mem grows, and Mem counts capacity.
func TestRowsMemFor(t *testing.T) {
	changes := rowsTestChanges()
	for _, h := range []RowsHint{{}, {Rows: 10, Cells: 40, Bytes: 100}} {
		want := h.MemFor(&changes[0])
		r := NewRows(h)
		_, err := r.Append(&changes[0])
		require.NoError(t, err)
		require.Equal(t, want, r.Mem(), "hint %+v", h)
	}
	r := NewRows(RowsHint{})
	grew := 0
	for i := range 2000 {
		ch := changes[i%len(changes)]
		want := r.Mem() + r.MemFor(&ch)
		if r.MemFor(&ch) > 0 {
			grew++
		}
		_, err := r.Append(&ch)
		require.NoError(t, err)
		require.Equal(t, want, r.Mem(), "append %d", i)
	}
	require.Less(t, grew, 100, "arrays grow geometrically")
	// The unused tail stays within about half the used part.
	used := int64(r.Len()*rowMetaBytes+len(r.cells)*cellBytes) + int64(len(r.arena))
	require.LessOrEqual(t, r.Mem(), used+used/2+3*64*int64(rowMetaBytes))
}

// TestCellHoldsEveryKind round-trips a value of every kind, the edges of
// the numbers and empty strings included, through a 16-byte cell, and
// breaks the invariant the cell relies on: a value with a number and a
// string would lose one of them.
func TestCellHoldsEveryKind(t *testing.T) {
	values := []Value{
		Null(), Bool(true), Bool(false), Int(-1), Int(1<<63 - 1), Int(-1 << 63), Float(-0.5), Float(math.NaN()),
		Float(math.Inf(1)), String(""), String("héllo"), Binary(nil), Binary([]byte{0, 0xff}),
		Decimal([]byte{0x04, 0xd2}, 2), DecimalFromInt64(-1, 38), Date(-1), Date(math.MaxInt32),
		Timestamp(-1), Timestamp(1 << 62), JSON(`{"a":[1]}`), JSON(""),
	}
	for k := KindNull; k <= KindJSON; k++ {
		found := false
		for _, v := range values {
			found = found || v.kind == k
		}
		require.True(t, found, "no value of kind %s", k)
	}
	row := make([]Field, len(values))
	for i, v := range values {
		row[i] = Field{Name: fmt.Sprintf("c%d", i), Value: v}
	}
	r := NewRows(RowsHint{})
	_, err := r.Append(&Change{Table: "t", Op: OpInsert, Row: row})
	require.NoError(t, err)
	lo, hi := r.RowCells(0)
	require.Equal(t, len(values), hi-lo)
	for i, v := range values {
		got := r.CellValue(lo + i)
		require.Equal(t, v.kind, got.kind, "value %d", i)
		require.Equal(t, v.num, got.num, "value %d (%s)", i, v.kind)
		require.Equal(t, v.str, got.str, "value %d (%s)", i, v.kind)
		require.Equal(t, v.scale, got.scale, "value %d (%s)", i, v.kind)
	}

	both := []Value{{kind: KindString, num: 7, str: "x"}, {kind: KindInt, num: 7, str: "x"}}
	for _, v := range both {
		r := NewRows(RowsHint{})
		_, err := r.Append(&Change{Table: "t", Op: OpInsert, Row: []Field{{"c", v}}})
		require.NoError(t, err)
		require.False(t, r.CellValue(0).Equal(v), "a %s value with a number and a string kept both", v.kind)
	}
}

// Sort gives the order a stable sort by (LSN, offset) gives, equal changes
// in the order they were appended, also after more appends and a second
// Sort; changes appended in order get no index.
func TestRowsSortStable(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var changes []Change
	r := NewRows(RowsHint{})
	add := func(n int) {
		for range n {
			// Few distinct LSNs and offsets: many equal changes, told
			// apart by their partition and timestamp.
			ch := Change{Topic: "t", Partition: int32(rng.IntN(12)), Offset: int64(rng.IntN(3)), LSN: uint64(rng.IntN(5)),
				TS: int64(len(changes)), Table: "t", Row: []Field{{"id", Int(int64(len(changes)))}}}
			changes = append(changes, ch)
			_, err := r.Append(&ch)
			require.NoError(t, err)
		}
	}
	check := func() {
		t.Helper()
		want := make([]int, len(changes))
		for i := range want {
			want[i] = i
		}
		slices.SortStableFunc(want, func(a, b int) int {
			if c := cmp.Compare(changes[a].LSN, changes[b].LSN); c != 0 {
				return c
			}
			return cmp.Compare(changes[a].Offset, changes[b].Offset)
		})
		got := make([]int, r.Len())
		for k := range got {
			got[k] = int(r.Meta(k).TS)
		}
		require.Equal(t, want, got)
	}
	add(300)
	r.Sort()
	check()
	add(200)
	r.Sort()
	check()

	sorted := NewRows(RowsHint{})
	for i := range 100 {
		ch := Change{Topic: "t", Offset: int64(i), LSN: uint64(i / 3), TS: int64(i), Table: "t"}
		_, err := sorted.Append(&ch)
		require.NoError(t, err)
	}
	mem := sorted.Mem()
	sorted.Sort()
	require.Equal(t, mem, sorted.Mem(), "changes already in order get no index")
	for k := range 100 {
		require.Equal(t, int64(k), sorted.Meta(k).TS)
	}
}
