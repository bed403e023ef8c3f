package iceberg

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/committer"
)

// TestDeleteRowsRefused: Iceberg tables do not delete rows of kept files
// yet; a writer asking for it is refused before anything is written, and
// the table is no committer.RowDeleter, so the conformance test's
// row-deletion part says it skips.
func TestDeleteRowsRefused(t *testing.T) {
	ctx := context.Background()
	f := &Format{}
	tbl := f.Open("sales/orders", committer.Options{DeleteRows: true})
	_, ok := tbl.(committer.RowDeleter)
	require.False(t, ok)
	_, err := tbl.Create(ctx, committer.Metadata{})
	require.ErrorIs(t, err, ErrDeleteRowsUnsupported)
	_, err = tbl.Commit(ctx, committer.Commit{Adds: []committer.Add{{Path: "data/a.parquet"}}})
	require.ErrorIs(t, err, ErrDeleteRowsUnsupported)
	_, err = committer.CreateCommit(ctx, tbl, committer.Metadata{}, committer.Commit{Adds: []committer.Add{{Path: "data/a.parquet"}}})
	require.ErrorIs(t, err, ErrDeleteRowsUnsupported)

	plain := f.Open("sales/orders", committer.Options{})
	_, err = plain.Commit(ctx, committer.Commit{
		Adds:    []committer.Add{{Path: "data/a.parquet"}},
		Deletes: []committer.RowDeletion{{Path: "data/a.parquet", Rows: []int64{1}}},
	})
	require.ErrorIs(t, err, ErrDeleteRowsUnsupported)
	require.ErrorContains(t, err, "not supported for Iceberg tables yet")
}
