// Package tabletest reads what the sink wrote, the way a reader of the
// tables would: through each table's Delta log to its active data files
// and their rows. Tests of every package that writes tables use it to
// check the rows are all there, once.
package tabletest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/tablefile"
)

// Changes returns the rows of the active data files of every table in b,
// table by table; files another writer appended are not the sink's and
// are passed over. It fails the test if a table's log cannot be read, or a
// file is missing, unreadable or not the size its log action names. A row
// in two files is returned twice: duplicates are the caller's to find.
func Changes(t testing.TB, ctx context.Context, b objstore.Bucket) []codec.Change {
	t.Helper()
	roots, err := delta.ListTables(ctx, b)
	require.NoError(t, err)
	var out []codec.Change
	for _, root := range roots {
		snap, err := delta.Open(b, root, delta.Options{}).Snapshot(ctx)
		require.NoError(t, err)
		for path, add := range snap.Files {
			if !tablefile.WrittenBySink(add) {
				continue
			}
			info, err := b.Head(ctx, tablefile.Key(root, path))
			require.NoError(t, err)
			require.Equal(t, add.Size, info.Size, "size of %s/%s", root, path)
			_, changes, err := tablefile.ReadFile(ctx, b, root, path)
			require.NoError(t, err)
			out = append(out, changes...)
		}
	}
	return out
}
