package sink

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/codec"
)

// A released poll batch points at no record and no borrowed bytes, in
// every entry up to its capacity, and keeps its row arrays for reuse.
func TestReleaseDropsRecords(t *testing.T) {
	value := []byte(`{"id":1}`)
	batch := make([]decoded, 3, 4)
	for i := range batch {
		batch[i] = decoded{rec: &kgo.Record{Value: value}, table: &tableWriter{}, skip: true}
		batch[i].change.Row = append(make([]codec.Field, 0, 8), codec.Field{Name: "id", Value: codec.String(string(value))})
	}
	// An entry beyond the batch's length, left by an earlier chunk.
	full := batch[:4]
	full[3] = decoded{rec: &kgo.Record{Value: value}}
	release(full)
	for i, d := range full {
		require.Nil(t, d.rec, "entry %d", i)
		require.Nil(t, d.table, "entry %d", i)
		require.False(t, d.skip, "entry %d", i)
		require.Empty(t, d.change.Row, "entry %d", i)
		for _, f := range d.change.Row[:cap(d.change.Row)] {
			require.Equal(t, codec.Field{}, f, "entry %d keeps a borrowed field", i)
		}
	}
	require.Equal(t, 8, cap(full[0].change.Row), "the row array is kept")
}
