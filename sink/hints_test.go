package sink

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
)

func TestTopicHints(t *testing.T) {
	var th topicHints
	_, ok := th.forNew("cdc", 0)
	require.False(t, ok, "no table of the topic flushed yet")

	th.note("a", []string{"cdc"}, codec.RowsHint{Rows: 100, Cells: 1000, Bytes: 10000})
	th.note("b", []string{"cdc", "other"}, codec.RowsHint{Rows: 300, Cells: 3000, Bytes: 30000})
	h, ok := th.forNew("cdc", 0)
	require.True(t, ok)
	require.Equal(t, codec.RowsHint{Rows: 200, Cells: 2000, Bytes: 20000}, h, "the mean of the topic's tables")

	// A table's newer batch replaces its older one: each table counts once.
	th.note("b", []string{"cdc"}, codec.RowsHint{Rows: 100, Cells: 1000, Bytes: 10000})
	h, _ = th.forNew("cdc", 0)
	require.Equal(t, codec.RowsHint{Rows: 100, Cells: 1000, Bytes: 10000}, h)

	h, ok = th.forNew("other", 0)
	require.True(t, ok)
	require.Equal(t, 300, h.Rows)
	_, ok = th.forNew("unknown", 0)
	require.False(t, ok)

	// A guess claims at most its share of the budget.
	full, _ := th.forNew("cdc", 0)
	share := full.MemFor(&codec.Change{}) / 4
	h, ok = th.forNew("cdc", share)
	require.True(t, ok)
	require.LessOrEqual(t, h.MemFor(&codec.Change{}), share)
	require.InDelta(t, 25, h.Rows, 1)
	_, ok = th.forNew("cdc", 1)
	require.False(t, ok, "a share too small for one row gives no hint")

	// An empty batch says nothing.
	th.note("c", []string{"new"}, codec.RowsHint{})
	_, ok = th.forNew("new", 0)
	require.False(t, ok)
}
