package compaction

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/objstore"
)

// TestNeverCompactsDeletionVectorTables: compaction rewrites files whole,
// so on a table with deleted rows (Delta deletion vectors) it would bring
// them back. The scheduler leaves such tables alone (ErrDeletesRows); the
// executor opens tables without committer.Options.DeleteRows, so the
// committer refuses it such tables anyway (delta.ErrUnsupportedProtocol),
// and the table stays as it was, deleted rows included.
func TestNeverCompactsDeletionVectorTables(t *testing.T) {
	ctx := testContext(t)
	b := objstore.NewMemory()
	f := newFixture(t, b, "users")
	opts := fastOptions()
	opts.DeleteRows = true
	f.table = delta.Open(b, f.path, opts)
	bigBlocks(t, ctx, f, 5, 5, 5, 5, 5, 5)
	snap, err := f.table.Snapshot(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, Plan(snap, testMode, PlanOptions{}), "the table would be compacted without its deleted rows")
	var victim string
	for p := range snap.Files {
		victim = p
		break
	}
	res, err := f.table.Commit(ctx, committer.Commit{Operation: committer.OpDelete, Deletes: []committer.RowDeletion{{Path: victim, Rows: []int64{0, 2}}}, ReadVersion: -1})
	require.NoError(t, err)

	_, err = NewScheduler(b, tables(b), Config{}).CompactOnce(ctx, TableRef{Path: f.path, Mode: testMode})
	require.ErrorIs(t, err, ErrDeletesRows, "the scheduler leaves the table alone before merging anything")
	// The executor run on the table anyway is refused by the committer.
	snap, err = f.table.Snapshot(ctx)
	require.NoError(t, err)
	jobs := Plan(snap, testMode, PlanOptions{})
	require.NotEmpty(t, jobs)
	_, err = Execute(ctx, b, tables(b).Open(f.path, committer.Options{}), snap, jobs[0], ExecOptions{Mode: testMode})
	require.ErrorIs(t, err, delta.ErrUnsupportedProtocol)
	after, err := f.table.Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, res.Version, after.Version, "compaction committed nothing")
	require.Equal(t, int64(2), after.Files[victim].Deleted.Count)
}
