package tablefile

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/parquetblock"
	"github.com/evodb/sink/objstore"
)

func TestWriteBlock(t *testing.T) {
	ctx := context.Background()
	b := objstore.NewMemory()
	schema, changes, _ := block(t, 5)
	name := func(stats codec.BlockStats, attempt int) string {
		return "data/" + strconv.FormatUint(stats.MinLSN, 10) + "-" + strconv.Itoa(attempt) + ".parquet"
	}
	blk := Block{Schema: schema, Changes: changes, Encode: parquetblock.EncodeOptions{KafkaColumns: true}, Name: name,
		Level: 2, Sources: "cdc:0:1-5", ModTime: time.UnixMilli(1234)}

	w, err := WriteBlock(ctx, b, "db/users", blk)
	require.NoError(t, err)
	require.Equal(t, "data/1-0.parquet", w.Add.Path)
	require.Equal(t, int64(1234), w.Add.ModificationTime)
	require.False(t, w.Add.DataChange)
	require.Equal(t, Tags{MinLSN: 1, MaxLSN: 5, Sources: "cdc:0:1-5", Level: 2, Rows: 5}.Map(), w.Add.Tags)
	require.True(t, WrittenBySink(w.Add))
	require.Equal(t, int64(5), w.Add.Stats.Rows)
	require.Equal(t, w.Stats, *w.Add.Stats)
	info, err := b.Head(ctx, "db/users/data/1-0.parquet")
	require.NoError(t, err)
	require.Equal(t, w.Add.Size, info.Size)
	_, rows, err := ReadFile(ctx, b, "db/users", w.Add.Path)
	require.NoError(t, err)
	require.Len(t, rows, 5)

	// A taken name is never overwritten: the block goes under a fresh one.
	blk.DataChange = true
	w2, err := WriteBlock(ctx, b, "db/users", blk)
	require.NoError(t, err)
	require.Equal(t, "data/1-1.parquet", w2.Add.Path)
	require.True(t, w2.Add.DataChange)

	// Rows work as changes do.
	r := codec.NewRows(codec.RowsHint{})
	for i := range changes {
		_, err := r.Append(&changes[i])
		require.NoError(t, err)
	}
	blk.Rows, blk.Changes = r, nil
	w3, err := WriteBlock(ctx, b, "db/users", blk)
	require.NoError(t, err)
	require.Equal(t, "data/1-2.parquet", w3.Add.Path)
	require.Equal(t, w.Add.Size, w3.Add.Size)

	// Names run out after maxRenames.
	_, err = WriteBlock(ctx, b, "db/users", Block{Schema: schema, Changes: changes, Name: func(codec.BlockStats, int) string { return "data/1-0.parquet" }})
	require.ErrorIs(t, err, objstore.ErrPreconditionFailed)

	// A store error fails the write at once: the bucket retries its own
	// transient errors, the caller the whole operation.
	faulty := objstore.NewFaulty(b, 1)
	faulty.Add(objstore.Fault{Op: objstore.OpPut, KeySuffix: ".parquet", Rate: 1})
	_, err = WriteBlock(ctx, faulty, "db/users", blk)
	require.ErrorIs(t, err, objstore.ErrInjected)
	require.NotErrorIs(t, err, ErrEncode)
}

// A block whose rows do not fit its schema fails with ErrEncode and writes
// nothing: the caller must not run the write again.
func TestWriteBlockEncodeError(t *testing.T) {
	ctx := context.Background()
	b := objstore.NewMemory()
	schema := codec.NewSchema()
	require.NoError(t, schema.AddColumn(codec.Column{Name: "c", Type: codec.Type{Kind: codec.TypeLong}, Nullable: true}))
	changes := []codec.Change{{Table: "t", Op: codec.OpInsert, LSN: 1, Topic: "tp", Partition: 3, Offset: 8,
		Row: []codec.Field{{Name: "c", Value: codec.String("x")}}}}
	_, err := WriteBlock(ctx, b, "db/t", Block{Schema: schema, Changes: changes,
		Name: func(codec.BlockStats, int) string { return "data/x.parquet" }})
	require.ErrorIs(t, err, ErrEncode)
	require.ErrorContains(t, err, "tp/3@8")
	_, err = b.Head(ctx, "db/t/data/x.parquet")
	require.ErrorIs(t, err, objstore.ErrNotExist)
}
