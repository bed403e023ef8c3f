package committertest

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/committer"
)

// runRowDeletion checks Commit.Deletes and RowDeleter on a format whose
// tables, opened with Options.DeleteRows, implement RowDeleter. A format
// that does not must refuse row deletions instead: a commit with Deletes
// leaves the table unchanged, and a table opened with DeleteRows cannot be
// created, so no writer believes rows gone that readers still see.
func runRowDeletion(t *testing.T, newStore func(t *testing.T) Store) {
	probe := newStore(t)
	if _, ok := probe.Format.Open(root, committer.Options{DeleteRows: true}).(committer.RowDeleter); !ok {
		t.Run("Refused", func(t *testing.T) { testDeletesRefused(t, newStore(t)) })
		return
	}
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, st Store)
	}{
		{"KeptFile", testDeleteFromKeptFile},
		{"AddedFile", testDeleteFromAddedFile},
		{"UnionAcrossCommits", testDeleteUnion},
		{"ManyCommits", testDeleteManyCommits},
		{"ConcurrentDeleters", testConcurrentDeleters},
		{"RemovedFile", testDeleteFromRemovedFile},
		{"RowOutOfRange", testDeleteRowOutOfRange},
		{"AmbiguousCommit", testDeleteAmbiguous},
		{"PlainWriterRefused", testDeletePlainWriterRefused},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// openDeleter opens the table at root for a writer that deletes rows.
func openDeleter(f committer.Format, instance string) committer.RowDeleter {
	return f.Open(root, committer.Options{Instance: instance, DeleteRows: true}).(committer.RowDeleter)
}

// createDeleter creates the table for a writer that deletes rows and adds
// the files, of ten rows each, in one commit.
func createDeleter(t *testing.T, f committer.Format, files ...string) committer.RowDeleter {
	t.Helper()
	ctx := context.Background()
	tbl := openDeleter(f, "test")
	_, err := tbl.Create(ctx, committer.Metadata{Name: "orders_current", Schema: schema(t)})
	require.NoError(t, err)
	if len(files) > 0 {
		c := committer.Commit{ReadVersion: -1}
		for _, p := range files {
			c.Adds = append(c.Adds, block(p, 10))
		}
		_, err = tbl.Commit(ctx, c)
		require.NoError(t, err)
	}
	return tbl
}

func deletes(path string, rows ...int64) committer.Commit {
	return committer.Commit{Operation: committer.OpDelete, Deletes: []committer.RowDeletion{{Path: path, Rows: rows}}, ReadVersion: -1}
}

// requireDeleted checks that path has exactly rows deleted in s, read with
// tbl, and still counts all its rows in its stats.
func requireDeleted(t *testing.T, tbl committer.RowDeleter, s *committer.Snapshot, path string, rows ...int64) {
	t.Helper()
	a, ok := s.Files[path]
	require.True(t, ok, "%s is active at version %d", path, s.Version)
	require.Equal(t, int64(10), a.Rows(), "stats count every row of %s", path)
	if len(rows) == 0 {
		require.Nil(t, a.Deleted)
		return
	}
	require.NotNil(t, a.Deleted, "%s has deleted rows", path)
	require.Equal(t, int64(len(rows)), a.Deleted.Count)
	got, err := tbl.DeletedRows(context.Background(), a)
	require.NoError(t, err)
	require.Equal(t, rows, got)
}

// requireSameAfterReload checks that a new writer reads the same deleted
// rows as s holds.
func requireSameAfterReload(t *testing.T, f committer.Format, s *committer.Snapshot) {
	t.Helper()
	ctx := context.Background()
	fresh := openDeleter(f, "reader")
	r, err := fresh.Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, s.Version, r.Version)
	require.Len(t, r.Files, len(s.Files))
	for p, a := range s.Files {
		b := r.Files[p]
		if a.Deleted == nil {
			require.Nil(t, b.Deleted, p)
			continue
		}
		require.NotNil(t, b.Deleted, p)
		require.Equal(t, a.Deleted.Count, b.Deleted.Count, p)
		want, err := fresh.DeletedRows(ctx, a)
		require.NoError(t, err)
		got, err := fresh.DeletedRows(ctx, b)
		require.NoError(t, err)
		require.Equal(t, want, got, p)
	}
}

func testDeleteFromKeptFile(t *testing.T, st Store) {
	ctx := context.Background()
	tbl := createDeleter(t, st.Format, "data/a.parquet", "data/b.parquet")
	res, err := tbl.Commit(ctx, deletes("data/a.parquet", 7, 3, 3))
	require.NoError(t, err)
	requireDeleted(t, tbl, res.Snapshot, "data/a.parquet", 3, 7)
	requireDeleted(t, tbl, res.Snapshot, "data/b.parquet")
	requireSameAfterReload(t, st.Format, res.Snapshot)
}

func testDeleteFromAddedFile(t *testing.T, st Store) {
	ctx := context.Background()
	tbl := createDeleter(t, st.Format)
	c := deletes("data/a.parquet", 0, 9)
	c.Adds = []committer.Add{block("data/a.parquet", 10)}
	res, err := tbl.Commit(ctx, c)
	require.NoError(t, err)
	requireDeleted(t, tbl, res.Snapshot, "data/a.parquet", 0, 9)
	requireSameAfterReload(t, st.Format, res.Snapshot)

	// A writer sets no deleted rows on the files it adds.
	add := block("data/b.parquet", 10)
	add.Deleted = res.Snapshot.Files["data/a.parquet"].Deleted
	_, err = tbl.Commit(ctx, committer.Commit{Adds: []committer.Add{add}, ReadVersion: -1})
	require.Error(t, err)
}

func testDeleteUnion(t *testing.T, st Store) {
	ctx := context.Background()
	tbl := createDeleter(t, st.Format, "data/a.parquet")
	var s *committer.Snapshot
	for _, rows := range [][]int64{{1, 3}, {3, 5}, {9}, {1}} {
		res, err := tbl.Commit(ctx, deletes("data/a.parquet", rows...))
		require.NoError(t, err)
		s = res.Snapshot
	}
	requireDeleted(t, tbl, s, "data/a.parquet", 1, 3, 5, 9)
	requireSameAfterReload(t, st.Format, s)
	// A file can have all its rows deleted and stay in the table.
	res, err := tbl.Commit(ctx, deletes("data/a.parquet", 0, 1, 2, 3, 4, 5, 6, 7, 8, 9))
	require.NoError(t, err)
	requireDeleted(t, tbl, res.Snapshot, "data/a.parquet", 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
}

// testConcurrentDeleters: two writers read the table at the same version
// and delete rows of the same file; both land, in either order, and the
// file ends with the union.
func testConcurrentDeleters(t *testing.T, st Store) {
	ctx := context.Background()
	createDeleter(t, st.Format, "data/a.parquet", "data/b.parquet")
	w1, w2 := openDeleter(st.Format, "w1"), openDeleter(st.Format, "w2")
	for _, w := range []committer.RowDeleter{w1, w2} {
		_, err := w.Snapshot(ctx)
		require.NoError(t, err)
	}
	res1, err := w1.Commit(ctx, deletes("data/a.parquet", 1, 2))
	require.NoError(t, err)
	require.Equal(t, int64(2), res1.Version)
	// w2's snapshot is at version 1, where a has no deleted rows; its
	// commit must not lose w1's.
	c := deletes("data/a.parquet", 2, 8)
	c.Deletes = append(c.Deletes, committer.RowDeletion{Path: "data/b.parquet", Rows: []int64{4}})
	res2, err := w2.Commit(ctx, c)
	require.NoError(t, err)
	require.Equal(t, int64(3), res2.Version)
	requireDeleted(t, w2, res2.Snapshot, "data/a.parquet", 1, 2, 8)
	requireDeleted(t, w2, res2.Snapshot, "data/b.parquet", 4)

	// And truly at once: every deleter lands, with the union.
	errs := make(chan error, 4)
	for i := range 4 {
		w := openDeleter(st.Format, "racer")
		go func() {
			_, err := w.Commit(ctx, deletes("data/b.parquet", int64(5+i)))
			errs <- err
		}()
	}
	for range 4 {
		require.NoError(t, <-errs)
	}
	s := latest(t, st.Format)
	require.Equal(t, int64(7), s.Version)
	requireDeleted(t, w2, s, "data/b.parquet", 4, 5, 6, 7, 8)
	requireSameAfterReload(t, st.Format, s)
}

func testDeleteFromRemovedFile(t *testing.T, st Store) {
	ctx := context.Background()
	tbl := createDeleter(t, st.Format, "data/a.parquet", "data/b.parquet")
	stale := openDeleter(st.Format, "stale")
	_, err := stale.Snapshot(ctx)
	require.NoError(t, err)
	_, err = tbl.Commit(ctx, committer.Commit{Removes: []committer.Remove{{Path: "data/a.parquet"}}, ReadVersion: -1})
	require.NoError(t, err)

	_, err = stale.Commit(ctx, deletes("data/a.parquet", 1))
	require.ErrorIs(t, err, committer.ErrFileRemoved)
	var removed *committer.FileRemovedError
	require.ErrorAs(t, err, &removed)
	require.Equal(t, "data/a.parquet", removed.Path)

	_, err = tbl.Commit(ctx, deletes("data/never.parquet", 1))
	require.ErrorIs(t, err, committer.ErrFileRemoved)

	// A commit cannot remove a file and delete rows of it.
	c := deletes("data/b.parquet", 1)
	c.Removes = []committer.Remove{{Path: "data/b.parquet"}}
	_, err = tbl.Commit(ctx, c)
	require.Error(t, err)
	require.NotErrorIs(t, err, committer.ErrFileRemoved)

	s := latest(t, st.Format)
	require.Equal(t, int64(2), s.Version, "no refused commit landed")
	requireDeleted(t, tbl, s, "data/b.parquet")
}

func testDeleteRowOutOfRange(t *testing.T, st Store) {
	ctx := context.Background()
	tbl := createDeleter(t, st.Format, "data/a.parquet")
	_, err := tbl.Commit(ctx, deletes("data/a.parquet", 3, 10))
	require.ErrorContains(t, err, "data/a.parquet")
	_, err = tbl.Commit(ctx, deletes("data/a.parquet", -1))
	require.Error(t, err)
	s := latest(t, st.Format)
	require.Equal(t, int64(1), s.Version)
	requireDeleted(t, tbl, s, "data/a.parquet")
}

// testDeleteAmbiguous: a commit with deletions whose outcome was unknown
// is found by its id when retried, and deletes its rows once.
func testDeleteAmbiguous(t *testing.T, st Store) {
	ctx := context.Background()
	createDeleter(t, st.Format, "data/a.parquet")
	faulty := st.Ambiguous(t)
	c := deletes("data/a.parquet", 2, 4)
	c.ID = "ambiguous-delete"
	res, err := faulty.Open(root, committer.Options{Instance: "a", DeleteRows: true}).Commit(ctx, c)
	if err == nil {
		require.Equal(t, int64(2), res.Version)
	}
	again := openDeleter(st.Format, "a")
	res, err = again.Commit(ctx, c)
	require.NoError(t, err)
	require.True(t, res.AlreadyCommitted)
	require.Equal(t, int64(2), res.Version)
	s := latest(t, st.Format)
	require.Equal(t, int64(2), s.Version, "the commit landed exactly once")
	requireDeleted(t, again, s, "data/a.parquet", 2, 4)
}

// testDeletePlainWriterRefused: a writer that does not delete rows
// refuses to write a table that may have deleted rows, since it may
// rewrite files whole and bring them back (compaction), and refuses
// Commit.Deletes; it still reads the table.
func testDeletePlainWriterRefused(t *testing.T, st Store) {
	ctx := context.Background()
	tbl := createDeleter(t, st.Format, "data/a.parquet")
	_, err := tbl.Commit(ctx, deletes("data/a.parquet", 1))
	require.NoError(t, err)
	plain := open(st.Format, "plain")
	s, err := plain.Snapshot(ctx)
	require.NoError(t, err)
	require.NotNil(t, s.Files["data/a.parquet"].Deleted)
	require.Equal(t, int64(1), s.Files["data/a.parquet"].Deleted.Count)

	c := committer.Commit{Operation: committer.OpOptimize, Removes: []committer.Remove{{Path: "data/a.parquet"}}, ReadVersion: -1}
	add := block("data/a2.parquet", 10)
	add.DataChange = false
	c.Adds = []committer.Add{add}
	_, err = plain.Commit(ctx, c)
	require.Error(t, err)
	_, err = plain.Commit(ctx, committer.Commit{Adds: []committer.Add{block("data/b.parquet", 1)}, ReadVersion: -1})
	require.Error(t, err)
	_, err = plain.Commit(ctx, deletes("data/a.parquet", 2))
	require.Error(t, err)
	require.Equal(t, int64(2), latest(t, st.Format).Version)
}

// testDeleteManyCommits deletes rows in more commits than formats let pass
// between checkpoints or snapshots of their state (Delta: ten), so that a
// reload reads the deleted rows from one.
func testDeleteManyCommits(t *testing.T, st Store) {
	ctx := context.Background()
	tbl := createDeleter(t, st.Format, "data/a.parquet", "data/b.parquet")
	var s *committer.Snapshot
	for i := range int64(10) {
		c := deletes("data/a.parquet", i)
		if i%3 == 0 {
			c.Deletes = append(c.Deletes, committer.RowDeletion{Path: "data/b.parquet", Rows: []int64{9 - i}})
		}
		c.Adds = []committer.Add{block(fmt.Sprintf("data/n%d.parquet", i), 10)}
		c.Deletes = append(c.Deletes, committer.RowDeletion{Path: fmt.Sprintf("data/n%d.parquet", i), Rows: []int64{i}})
		res, err := tbl.Commit(ctx, c)
		require.NoError(t, err)
		s = res.Snapshot
	}
	require.Equal(t, int64(11), s.Version)
	requireDeleted(t, tbl, s, "data/a.parquet", 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	requireDeleted(t, tbl, s, "data/b.parquet", 0, 3, 6, 9)
	requireDeleted(t, tbl, s, "data/n4.parquet", 4)
	requireSameAfterReload(t, st.Format, s)
}

// testDeletesRefused: a format that cannot delete rows refuses Deletes,
// leaving the table as it was, and refuses to create a table for a writer
// that would delete rows.
func testDeletesRefused(t *testing.T, st Store) {
	ctx := context.Background()
	tbl := st.Format.Open(root, committer.Options{Instance: "test"})
	_, err := tbl.Create(ctx, committer.Metadata{Name: "orders", Schema: schema(t)})
	require.NoError(t, err)
	res, err := tbl.Commit(ctx, committer.Commit{Adds: []committer.Add{block("data/a.parquet", 10)}, ReadVersion: -1})
	require.NoError(t, err)
	_, err = tbl.Commit(ctx, deletes("data/a.parquet", 3))
	require.Error(t, err, "a commit with Deletes")
	after, err := st.Format.Open(root, committer.Options{Instance: "reader"}).Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, res.Version, after.Version, "the refused commit changed the table")
	require.Nil(t, after.Files["data/a.parquet"].Deleted)

	other := st.Format.Open(root+"_current", committer.Options{Instance: "test", DeleteRows: true})
	_, err = other.Create(ctx, committer.Metadata{Name: "orders_current", Schema: schema(t)})
	require.Error(t, err, "a table created for a writer that deletes rows")
}
