package compaction

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/objstore"
)

// deleteRows deletes rows of the table's file path, at the time now of
// the deleting writer, and returns the file's add afterwards.
func deleteRows(t *testing.T, ctx context.Context, b objstore.Bucket, root, path string, now time.Time, rows ...int64) committer.Add {
	t.Helper()
	opts := fastOptions()
	opts.DeleteRows = true
	opts.Now = func() time.Time { return now }
	tbl := delta.Open(b, root, opts)
	_, err := tbl.Commit(ctx, committer.Commit{Operation: committer.OpDelete, ReadVersion: -1,
		Deletes: []committer.RowDeletion{{Path: path, Rows: rows}}})
	require.NoError(t, err)
	snap, err := tbl.Snapshot(ctx)
	require.NoError(t, err)
	a := snap.Files[path]
	require.NotNil(t, a.Deleted, "rows of %s were deleted", path)
	require.NotEmpty(t, a.Deleted.Path, "the deletion vector of %s is a file", path)
	return a
}

// dvTable is a table of two files whose writer deletes rows (a mirror
// table's): its files, in path order.
func dvTable(t *testing.T, ctx context.Context, b objstore.Bucket, root string, opts delta.Options) (*fixture, []string) {
	t.Helper()
	f := newFixture(t, b, root)
	opts.DeleteRows = true
	f.table = delta.Open(b, root, opts)
	f.mustAppend(ctx, 5, 5)
	snap, err := f.table.Snapshot(ctx)
	require.NoError(t, err)
	files := slices.Sorted(func(yield func(string) bool) {
		for p := range snap.Files {
			if !yield(p) {
				return
			}
		}
	})
	require.Len(t, files, 2)
	return f, files
}

// TestVacuumKeepsDeletionVectors: a file whose deleted rows changed keeps
// its old deletion vector file as long as the removal of the old vector is
// within retention, even when the vector file itself is older than that
// (readers of older versions read it); the current vector file is kept
// whatever its age; a vector file nothing names, older than retention, is
// an orphan; the old vector's file goes once its removal is older than
// retention. A vector file in a subdirectory is never touched.
//
// The shortcut it breaks: Maintainer.Removed returns one removal per path,
// the latest; a vacuum going by it alone would not see the removal of the
// file's first vector and delete that vector's file under readers.
func TestVacuumKeepsDeletionVectors(t *testing.T) {
	ctx := testContext(t)
	b := objstore.NewMemory()
	start := time.Now()
	week := 7 * 24 * time.Hour
	f, files := dvTable(t, ctx, b, "db/users_current", fastOptions())
	first := deleteRows(t, ctx, b, f.path, files[0], start, 0)
	// The second deletion (of the same file, so its first vector is
	// removed) happens a week later: the first vector's file is then older
	// than the retention, its removal is not.
	second := deleteRows(t, ctx, b, f.path, files[0], start.Add(week), 1)
	require.NotEqual(t, first.Deleted.Path, second.Deleted.Path)
	require.Equal(t, int64(2), second.Deleted.Count)
	other := deleteRows(t, ctx, b, f.path, files[1], start.Add(week), 4)

	orphan := "deletion_vector_00000000-0000-4000-8000-000000000000.bin"
	nested := "p1/deletion_vector_00000000-0000-4000-8000-000000000001.bin"
	for _, k := range []string{orphan, nested} {
		_, err := b.Put(ctx, f.path+"/"+k, strings.NewReader("\x01never committed"), 16, objstore.PutOptions{})
		require.NoError(t, err)
	}
	exists := func(rel string) bool {
		_, err := b.Head(ctx, f.path+"/"+rel)
		return err == nil
	}

	res, err := Vacuum(ctx, b, tables(b), f.path, week, true, start.Add(week+time.Hour))
	require.NoError(t, err)
	require.Equal(t, []string{orphan}, res.Orphans, "dry run")
	require.Empty(t, res.Removed)
	require.True(t, exists(orphan), "a dry run deletes nothing")

	res, err = Vacuum(ctx, b, tables(b), f.path, week, false, start.Add(week+time.Hour))
	require.NoError(t, err)
	require.Equal(t, []string{orphan}, res.Orphans)
	require.Empty(t, res.Removed, "the first vector's removal is younger than the retention")
	require.False(t, exists(orphan))
	for _, rel := range []string{first.Deleted.Path, second.Deleted.Path, other.Deleted.Path, nested} {
		require.True(t, exists(rel), "%s is kept", rel)
	}

	// Two weeks after the second deletion: its removal of the first vector
	// is older than the retention.
	res, err = Vacuum(ctx, b, tables(b), f.path, week, false, start.Add(3*week))
	require.NoError(t, err)
	require.Empty(t, res.Orphans)
	require.Equal(t, []string{first.Deleted.Path}, res.Removed)
	require.False(t, exists(first.Deleted.Path))
	for _, rel := range []string{second.Deleted.Path, other.Deleted.Path, nested} {
		require.True(t, exists(rel), "%s is kept", rel)
	}
	tbl := delta.Open(b, f.path, delta.Options{DeleteRows: true})
	snap, err := tbl.Snapshot(ctx)
	require.NoError(t, err)
	for _, p := range files {
		rows, err := tbl.DeletedRows(ctx, snap.Files[p])
		require.NoError(t, err, "the deleted rows of %s are still readable", p)
		require.NotEmpty(t, rows)
	}
	rows, err := tbl.DeletedRows(ctx, snap.Files[files[0]])
	require.NoError(t, err)
	require.Equal(t, []int64{0, 1}, rows)
}

// TestVacuumRemovedFileWithDeletionVector: a file removed with deleted
// rows (a mirror compaction's input) and its deletion vector file go
// together once the removal is older than the retention.
func TestVacuumRemovedFileWithDeletionVector(t *testing.T) {
	ctx := testContext(t)
	b := objstore.NewMemory()
	start := time.Now()
	week := 7 * 24 * time.Hour
	f, files := dvTable(t, ctx, b, "users_current", fastOptions())
	gone := deleteRows(t, ctx, b, f.path, files[0], start, 2, 3)
	opts := fastOptions()
	opts.DeleteRows = true
	_, err := delta.Open(b, f.path, opts).Commit(ctx, committer.Commit{Operation: committer.OpDelete, ReadVersion: -1,
		Removes: []committer.Remove{{Path: files[0], DeletionTimestamp: start.UnixMilli(), DataChange: true}}})
	require.NoError(t, err)

	res, err := Vacuum(ctx, b, tables(b), f.path, week, false, start.Add(time.Hour))
	require.NoError(t, err)
	require.Empty(t, res.Removed)
	require.Empty(t, res.Orphans)

	res, err = Vacuum(ctx, b, tables(b), f.path, week, false, start.Add(week+time.Hour))
	require.NoError(t, err)
	slices.Sort(res.Removed)
	want := []string{gone.Deleted.Path, files[0]}
	slices.Sort(want)
	require.Equal(t, want, res.Removed)
	require.Empty(t, res.Orphans)
	rows, snap := readRows(t, ctx, b, f.path)
	require.Len(t, rows, 5, "the other file is whole")
	require.Len(t, snap.Files, 1)
}

// TestVacuumLogKeepsDeletionVectors: log cleanup of a table with deleted
// rows leaves every active file's deletion vector in the checkpoint it
// keeps, and vacuum afterwards keeps their files: the table reads the same
// deleted rows before and after both.
func TestVacuumLogKeepsDeletionVectors(t *testing.T) {
	ctx := testContext(t)
	b := objstore.NewMemory()
	start := time.Now()
	week := 7 * 24 * time.Hour
	opts := fastOptions()
	opts.CheckpointInterval = 2
	f, files := dvTable(t, ctx, b, "users_current", opts)
	for i := range int64(4) {
		deleteRows(t, ctx, b, f.path, files[i%2], start, i)
	}
	tbl := delta.Open(b, f.path, delta.Options{DeleteRows: true})
	deleted := func() map[string][]int64 {
		snap, err := tbl.Snapshot(ctx)
		require.NoError(t, err)
		out := map[string][]int64{}
		for p, a := range snap.Files {
			rows, err := tbl.DeletedRows(ctx, a)
			require.NoError(t, err, "deleted rows of %s", p)
			out[p] = rows
		}
		return out
	}
	before := deleted()
	require.Equal(t, map[string][]int64{files[0]: {0, 2}, files[1]: {1, 3}}, before)

	later := start.Add(week + time.Hour)
	lv, err := VacuumLog(ctx, tables(b), f.path, week, false, later)
	require.NoError(t, err)
	require.Positive(t, lv.Checkpoint)
	require.NotEmpty(t, lv.Deleted)
	res, err := Vacuum(ctx, b, tables(b), f.path, week, false, later)
	require.NoError(t, err)
	require.Empty(t, res.Orphans)
	// The vectors replaced by later deletions are removed: 4 deletions
	// wrote 4 vector files, 2 of which the active files name.
	require.Len(t, res.Removed, 2)
	for _, r := range res.Removed {
		require.True(t, isVectorFile(r), "%s", r)
	}
	require.Equal(t, before, deleted())
}
