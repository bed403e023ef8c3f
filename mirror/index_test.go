package mirror

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
)

// The index finds every key of a file, and no other, in a sorted file and
// in a file written unsorted or with a key twice (which it indexes by
// position, keeping the row of greatest order).
func TestFileIndex(t *testing.T) {
	kr := keyer{cols: []string{"id"}}
	mk := func(ids ...int64) []keyedRow {
		rows := make([]keyedRow, len(ids))
		for i, id := range ids {
			ch := change(ins, id, uint64(100+i), "x")
			rows[i] = keyedRow{key: kr.keyOf(nil, &ch), ch: &ch, pos: i}
		}
		return rows
	}
	sorted := newFileIndex("a", mk(-5, 1, 2, 3, 10, 1<<40))
	require.Nil(t, sorted.pos, "a sorted file needs no positions")
	unsorted := newFileIndex("b", mk(3, -5, 10, 1, 3, 2))
	require.NotNil(t, unsorted.pos)
	for _, id := range []int64{-5, 1, 2, 3, 10} {
		ch := change(ins, id, 0, "")
		e, ok := sorted.find(kr.keyOf(nil, &ch))
		require.True(t, ok, "id %d", id)
		require.Equal(t, "a", e.path)
		e, ok = unsorted.find(kr.keyOf(nil, &ch))
		require.True(t, ok, "id %d", id)
		if id == 3 {
			require.Equal(t, int64(4), e.pos, "the later row of a key written twice")
			require.Equal(t, uint64(104), e.order.lsn)
		}
	}
	for _, id := range []int64{-6, 0, 4, 11, 1 << 41} {
		ch := change(ins, id, 0, "")
		_, ok := sorted.find(kr.keyOf(nil, &ch))
		require.False(t, ok, "id %d", id)
	}
}

// Keys of every kind encode to distinct byte strings: equal keys only for
// equal values, and a null apart from every value.
func TestKeyEncoding(t *testing.T) {
	kr := keyer{cols: []string{"a", "b"}}
	vals := []codec.Value{codec.Null(), codec.Int(0), codec.Int(-1), codec.String(""), codec.String("0"), codec.Binary([]byte{0}),
		codec.Bool(false), codec.Float(0), codec.DecimalFromInt64(10, 1), codec.DecimalFromInt64(10, 2), codec.Timestamp(0), codec.Date(0)}
	seen := map[string]string{}
	for _, a := range vals {
		for _, b := range vals {
			ch := codec.Change{Row: []codec.Field{{Name: "a", Value: a}, {Name: "b", Value: b}}}
			k := string(kr.keyOf(nil, &ch))
			desc := fmt.Sprintf("%#v,%#v", a, b)
			prev, dup := seen[k]
			require.False(t, dup, "%s and %s encode alike", prev, desc)
			seen[k] = desc
		}
	}
}

// TestIndexMemory measures the index's memory per row for a long key (10
// bytes encoded): the target is at most 32 bytes plus the key.
func TestIndexMemory(t *testing.T) {
	kr := keyer{cols: []string{"id"}}
	const n = 100_000
	rows := make([]keyedRow, n)
	chs := make([]codec.Change, n)
	for i := range rows {
		chs[i] = change(upd, int64(i), uint64(i), "x")
		rows[i] = keyedRow{key: kr.keyOf(nil, &chs[i]), ch: &chs[i], pos: i}
	}
	f := newFileIndex("f", rows)
	perRow := float64(f.bytes()) / n
	t.Logf("index: %.1f bytes per row (key %d bytes)", perRow, len(rows[0].key))
	require.LessOrEqual(t, perRow, 32.0+float64(len(rows[0].key)))
}
