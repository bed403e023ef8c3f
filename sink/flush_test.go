package sink

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/sink/buffer"
)

func TestDedupeOffsets(t *testing.T) {
	ch := func(topic string, p int32, off int64) codec.Change {
		return codec.Change{Topic: topic, Partition: p, Offset: off}
	}
	tests := []struct {
		name string
		in   []codec.Change
		want int
	}{
		{"empty", nil, 0},
		{"increasing", []codec.Change{ch("a", 0, 1), ch("a", 1, 1), ch("a", 0, 2), ch("b", 0, 0)}, 4},
		{"repeated offset", []codec.Change{ch("a", 0, 1), ch("a", 0, 2), ch("a", 0, 1)}, 2},
		{"same offset, other partition", []codec.Change{ch("a", 0, 1), ch("a", 1, 1)}, 2},
		{"going back without repeat", []codec.Change{ch("a", 0, 5), ch("a", 0, 3)}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := dedupeOffsets(rowsOf(t, tt.in))
			require.Equal(t, tt.want, out.Len())
			seen := map[coord]bool{}
			for i := range out.Len() {
				c := out.Meta(i)
				k := coord{c.Topic, c.Partition, c.Offset}
				require.False(t, seen[k], "duplicate %v", k)
				seen[k] = true
			}
		})
	}
}

func TestFilterDurable(t *testing.T) {
	s := &Sink{cfg: Config{Kafka: KafkaConfig{Group: "g"}}}
	snap := &committer.Snapshot{Txns: map[string]int64{
		s.appID(topicPartition{"a", 0}): 10,
	}}
	in := []codec.Change{{Topic: "a", Partition: 0, Offset: 9}, {Topic: "a", Partition: 0, Offset: 10}, {Topic: "a", Partition: 0, Offset: 11}, {Topic: "a", Partition: 1, Offset: 3}}
	batchOf := func(changes []codec.Change) buffer.Batch { return buffer.BatchOf("t", rowsOf(t, changes), time.Time{}) }
	kept, dropped := s.filterDurable(batchOf(in), snap)
	require.Equal(t, 2, dropped)
	require.Equal(t, []int64{11, 3}, []int64{kept.Rows.Meta(0).Offset, kept.Rows.Meta(1).Offset})
	kept, dropped = s.filterDurable(batchOf(in[2:]), snap)
	require.Zero(t, dropped)
	require.Equal(t, 2, kept.Len())
	kept, dropped = s.filterDurable(batchOf(in[:2]), snap)
	require.Equal(t, 2, dropped)
	require.Zero(t, kept.Len())
}

func rowsOf(t *testing.T, changes []codec.Change) *codec.Rows {
	t.Helper()
	for i := range changes {
		changes[i].Table = "t"
	}
	r, err := codec.RowsOf(changes)
	require.NoError(t, err)
	return r
}
