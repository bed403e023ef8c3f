package delta

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

func TestListTables(t *testing.T) {
	ctx := context.Background()
	b := objstore.NewMemory()
	for _, root := range []string{"b/users", "a", "c/d/e"} {
		_, err := Open(b, root, Options{}).Create(ctx, committer.Metadata{Schema: codec.NewSchema()})
		require.NoError(t, err)
	}
	// A data file alone is not a table.
	_, err := b.Put(ctx, "x/data/1.parquet", nil, 0, objstore.PutOptions{})
	require.NoError(t, err)
	roots, err := ListTables(ctx, b)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b/users", "c/d/e"}, roots)
}
