// Package tabletest reads what the sink wrote, the way a reader of the
// tables would: through each table's Delta log to its active data files
// and their rows. Tests of every package that writes tables use it to
// check the rows are all there, once.
package tabletest

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

// Changes returns the rows of the active data files of every table in b,
// table by table. It fails the test if a table's log cannot be read, or a
// file is missing, unreadable or not the size its log action names. A row
// in two files is returned twice: duplicates are the caller's to find.
func Changes(t testing.TB, ctx context.Context, b objstore.Bucket) []codec.Change {
	t.Helper()
	roots, err := committer.ListTables(ctx, b)
	require.NoError(t, err)
	var out []codec.Change
	for _, root := range roots {
		snap, err := committer.Open(b, root, committer.Options{}).Snapshot(ctx)
		require.NoError(t, err)
		for path, add := range snap.Files {
			rc, err := b.Get(ctx, root+"/"+path)
			require.NoError(t, err)
			data, err := io.ReadAll(rc)
			require.NoError(t, err)
			require.NoError(t, rc.Close())
			require.Equal(t, add.Size, int64(len(data)), "size of %s/%s", root, path)
			_, changes, err := codec.ReadBlock(bytes.NewReader(data), int64(len(data)))
			require.NoError(t, err)
			out = append(out, changes...)
		}
	}
	return out
}
