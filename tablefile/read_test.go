package tablefile

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/parquetblock"
	"github.com/evodb/sink/objstore"
)

// block encodes n changes of table users as a sink block.
func block(t *testing.T, n int) (*codec.Schema, []codec.Change, []byte) {
	t.Helper()
	schema := codec.NewSchema()
	schema.SetKafkaColumns(true)
	changes := make([]codec.Change, n)
	for i := range changes {
		o := int64(i + 1)
		changes[i] = codec.Change{Topic: "cdc", Partition: 0, Offset: o, Table: "users", Op: codec.OpInsert,
			LSN: uint64(o), TS: 1_700_000_000_000 + o, Row: []codec.Field{
				{Name: "id", Value: codec.Int(o)},
				{Name: "name", Value: codec.String("user-" + strconv.FormatInt(o, 10))},
			}}
		_, err := schema.Accept(&changes[i])
		require.NoError(t, err)
	}
	var buf bytes.Buffer
	_, err := parquetblock.EncodeBlock(&buf, schema, changes, parquetblock.EncodeOptions{KafkaColumns: true})
	require.NoError(t, err)
	return schema, changes, buf.Bytes()
}

func TestReadFile(t *testing.T) {
	ctx := context.Background()
	b := objstore.NewMemory()
	schema, changes, data := block(t, 5)
	put := func(key string, data []byte) {
		_, err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), objstore.PutOptions{})
		require.NoError(t, err)
	}
	put("db/users/data/a b.parquet", data)
	put("top.parquet", data)
	put("db/users/data/foreign.parquet", []byte("PAR1 not a sink block PAR1"))

	// Log paths are URL-encoded; the object key is not.
	got, rows, err := ReadFile(ctx, b, "db/users", "data/a%20b.parquet")
	require.NoError(t, err)
	require.Equal(t, schema.Columns(), got.Columns())
	require.Len(t, rows, len(changes))
	for i := range rows {
		require.Equal(t, changes[i].Offset, rows[i].Offset)
		require.Equal(t, changes[i].LSN, rows[i].LSN)
		require.Equal(t, "users", rows[i].Table)
	}
	// A table at the root of the bucket.
	_, rows, err = ReadFile(ctx, b, "", "top.parquet")
	require.NoError(t, err)
	require.Len(t, rows, len(changes))

	_, _, err = ReadFile(ctx, b, "db/users", "data/missing.parquet")
	require.ErrorIs(t, err, objstore.ErrNotExist)
	require.Contains(t, err.Error(), "db/users/data/missing.parquet")

	_, _, err = ReadFile(ctx, b, "db/users", "data/foreign.parquet")
	require.Error(t, err)
	require.True(t, strings.HasPrefix(err.Error(), "decode data file db/users/data/foreign.parquet"), err.Error())
}
