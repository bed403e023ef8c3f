package tablefile

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/partitioner"
)

func TestLSNRangeAndWrittenBySink(t *testing.T) {
	stats := &codec.BlockStats{Rows: 1, MinLSN: 10, MaxLSN: 19}
	for _, tc := range []struct {
		name   string
		add    committer.Add
		lo, hi uint64
		sink   bool
		level  int
	}{
		{name: "tags win over names", add: committer.Add{Path: partitioner.PartitionFileKey(20, 29, 2, "z"),
			Tags: map[string]string{TagMinLSN: "40", TagMaxLSN: "49", TagLevel: "1"}}, lo: 40, hi: 49, sink: true, level: 1},
		{name: "compacted file name", add: committer.Add{Path: partitioner.PartitionFileKey(20, 29, 2, "z"), Stats: stats},
			lo: 20, hi: 29, sink: true, level: 2},
		{name: "block name", add: committer.Add{Path: partitioner.DataFileKey(partitioner.BlockID{FirstLSN: 30, LastLSN: 39})},
			lo: 30, hi: 39, sink: true},
		{name: "tags out of order fall back to the name", add: committer.Add{Path: partitioner.PartitionFileKey(20, 29, 2, "z"),
			Tags: map[string]string{TagMinLSN: "49", TagMaxLSN: "40"}}, lo: 20, hi: 29, sink: true, level: 2},
		// Another writer's file has the table's _lsn column in its stats
		// but neither the tags nor a sink name.
		{name: "delta-rs file", add: committer.Add{Path: "part-00000-0b5f-c000.snappy.parquet", Stats: stats}},
		{name: "unknown name under data", add: committer.Add{Path: "data/y.parquet", Stats: stats}},
		{name: "one tag only", add: committer.Add{Path: "data/w.parquet", Tags: map[string]string{TagMinLSN: "1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lo, hi, ok := LSNRange(tc.add)
			require.Equal(t, tc.sink, ok)
			require.Equal(t, tc.sink, WrittenBySink(tc.add))
			require.Equal(t, tc.lo, lo)
			require.Equal(t, tc.hi, hi)
			require.Equal(t, tc.level, Level(tc.add))
		})
	}
}

func TestTagsRoundTrip(t *testing.T) {
	tags := Tags{MinLSN: 1 << 60, MaxLSN: 1<<60 + 9, Sources: "cdc:0:1-19", Level: 2, Rows: 19}
	a := committer.Add{Path: "data/x.parquet", Tags: tags.Map()}
	lo, hi, ok := TagLSNRange(a)
	require.True(t, ok)
	require.Equal(t, tags.MinLSN, lo)
	require.Equal(t, tags.MaxLSN, hi)
	require.Equal(t, tags.MaxLSN, MaxLSN(a))
	l, ok := TagLevelOf(a)
	require.True(t, ok)
	require.Equal(t, 2, l)
	require.Equal(t, int64(19), Rows(a))
	require.Equal(t, "cdc:0:1-19", Sources(a))

	_, _, ok = TagLSNRange(committer.Add{})
	require.False(t, ok)
	_, ok = TagLevelOf(committer.Add{Tags: map[string]string{TagLevel: "-1"}})
	require.False(t, ok)
	require.Zero(t, MaxLSN(committer.Add{}))
}

func TestStats(t *testing.T) {
	// Rows: the tag wins, else the stats, else zero.
	require.Equal(t, int64(7), Rows(committer.Add{Stats: &codec.BlockStats{Rows: 5}, Tags: map[string]string{TagRows: "7"}}))
	require.Equal(t, int64(5), Rows(committer.Add{Stats: &codec.BlockStats{Rows: 5}}))
	require.Zero(t, Rows(committer.Add{}))

	snap := &committer.Snapshot{Files: map[string]committer.Add{
		"a": {Stats: &codec.BlockStats{Rows: 200}},
		"b": {Stats: &codec.BlockStats{Rows: 30}},
		"c": {},
	}}
	require.Equal(t, int64(230), NumRecords(snap))
}

func TestSources(t *testing.T) {
	require.Equal(t, "a:0:1-5,b:3:7-7", FormatSources([]partitioner.SourceRange{
		{Topic: "a", Partition: 0, FirstOffset: 1, LastOffset: 5},
		{Topic: "b", Partition: 3, FirstOffset: 7, LastOffset: 7},
	}))
	require.Equal(t, "", FormatSources(nil))
	files := []committer.Add{
		{Tags: map[string]string{TagSources: "cdc:1:10-19,cdc:0:5-9"}},
		{Tags: map[string]string{TagSources: "cdc:0:0-4,other:0:3-3,bad,x:y:1-2,cdc:0:9-3"}},
		{},
	}
	require.Equal(t, "cdc:0:0-9,cdc:1:10-19,other:0:3-3", MergeSources(files))
}
