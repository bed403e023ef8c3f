package delta

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

// cleanLogBelow deletes the JSON commits and checkpoints below version cp
// except version 0, as log cleanup (VacuumLog) does once they are older
// than its retention.
func cleanLogBelow(t *testing.T, b objstore.Bucket, cp int64) {
	t.Helper()
	ctx := context.Background()
	for v := int64(1); v < cp; v++ {
		require.NoError(t, b.Delete(ctx, testRoot+"/_delta_log/"+commitName(v)))
		_ = b.Delete(ctx, testRoot+"/_delta_log/"+checkpointName(v))
	}
}

// deletePrefix deletes every object of the test table, as an operator
// deleting the table's prefix does.
func deletePrefix(t *testing.T, b objstore.Bucket) {
	t.Helper()
	ctx := context.Background()
	var keys []string
	require.NoError(t, b.List(ctx, testRoot+"/", func(o objstore.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	}))
	for _, k := range keys {
		require.NoError(t, b.Delete(ctx, k))
	}
}

// TestStaleWriterAfterLogCleanup: a writer whose snapshot is older than log
// cleanup allows for (it last saw the table more than maxSnapshotAge ago)
// commits after the cleanup deleted the versions above its snapshot and
// below the newest checkpoint. The put of its snapshot's successor would
// succeed below the checkpoint, where no reader looks; instead the commit
// lands after the latest version and every reader sees it.
func TestStaleWriterAfterLogCleanup(t *testing.T) {
	forEachBucket(t, func(t *testing.T, b objstore.Bucket) {
		ctx := context.Background()
		clock := newTestClock()
		opts := testOptions("stale")
		opts.Now = clock.Now
		stale := Open(b, testRoot, opts)
		_, err := stale.Create(ctx, committer.Metadata{Schema: mustSchema(t, schemaV1)})
		require.NoError(t, err)
		_, err = stale.Commit(ctx, appendCommit("data/s1.parquet", testAppID, 0, 9))
		require.NoError(t, err)

		otherOpts := testOptions("other")
		otherOpts.CheckpointInterval = 10
		other := Open(b, testRoot, otherOpts)
		for i := range 11 {
			_, err := other.Commit(ctx, appendCommit(fmt.Sprintf("data/o%d.parquet", i), testAppID2, int64(10*i), int64(10*i+9)))
			require.NoError(t, err)
		}
		cleanLogBelow(t, b, 10)
		clock.advance(2 * MinLogRetention)

		res, err := stale.Commit(ctx, appendCommit("data/s2.parquet", testAppID, 10, 19))
		require.NoError(t, err)
		require.Equal(t, int64(13), res.Version, "after the latest version, not at the free version 2 below the checkpoint")
		_, err = b.Head(ctx, testRoot+"/_delta_log/"+commitName(2))
		require.ErrorIs(t, err, objstore.ErrNotExist)

		s, err := Open(b, testRoot, Options{}).Snapshot(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(13), s.Version)
		require.Contains(t, s.Files, "data/s2.parquet")
		require.Len(t, s.Files, 13)
		v, _ := s.TxnVersion(testAppID)
		require.Equal(t, int64(19), v)
	})
}

// TestUpdateStaleSnapshotAfterLogCleanup: Update of a snapshot too old to
// be advanced by probing (the versions after it were cleaned up) loads the
// table instead of returning the stale snapshot as the latest.
func TestUpdateStaleSnapshotAfterLogCleanup(t *testing.T) {
	ctx := context.Background()
	b := objstore.NewMemory()
	clock := newTestClock()
	opts := testOptions("stale")
	opts.Now = clock.Now
	stale := Open(b, testRoot, opts)
	old, err := stale.Create(ctx, committer.Metadata{Schema: mustSchema(t, schemaV1)})
	require.NoError(t, err)
	otherOpts := testOptions("other")
	otherOpts.CheckpointInterval = 5
	other := Open(b, testRoot, otherOpts)
	for i := range 6 {
		_, err := other.Commit(ctx, appendCommit(fmt.Sprintf("data/o%d.parquet", i), testAppID, int64(10*i), int64(10*i+9)))
		require.NoError(t, err)
	}
	cleanLogBelow(t, b, 5)
	clock.advance(2 * MinLogRetention)
	s, err := stale.Update(ctx, old)
	require.NoError(t, err)
	require.Equal(t, int64(6), s.Version)
	require.Len(t, s.Files, 6)
}

// TestFreshWriterCommitsWithoutReading: a snapshot within maxSnapshotAge is
// used as it is, which the stale-writer tests above rely on being the only
// difference.
func TestFreshWriterCommitsWithoutReading(t *testing.T) {
	ctx := context.Background()
	b := newCountingBucket(objstore.NewMemory())
	clock := newTestClock()
	opts := testOptions("a")
	opts.Now = clock.Now
	a := Open(b, testRoot, opts)
	_, err := a.Create(ctx, committer.Metadata{Schema: mustSchema(t, schemaV1)})
	require.NoError(t, err)
	clock.advance(maxSnapshotAge - 1000*1000*1000)
	clear(b.calls)
	_, err = a.Commit(ctx, appendCommit("data/a1.parquet", testAppID, 0, 9))
	require.NoError(t, err)
	require.Equal(t, map[string]int{"put": 1, "head": 1}, b.calls)

	clock.advance(maxSnapshotAge + 1)
	clear(b.calls)
	_, err = a.Commit(ctx, appendCommit("data/a2.parquet", testAppID, 10, 19))
	require.NoError(t, err)
	require.Equal(t, 1, b.calls["put"])
	require.Positive(t, b.calls["get"], "a snapshot older than maxSnapshotAge is read again before the put")
}

// TestCommitAfterTableDeleted: the table's prefix is deleted while a writer
// holds it. A put of the next version would create a log with no version 0
// and no checkpoint, which no engine can load; the commit is withdrawn and
// fails with committer.ErrTableReplaced, and the table can be created again.
func TestCommitAfterTableDeleted(t *testing.T) {
	forEachBucket(t, func(t *testing.T, b objstore.Bucket) {
		ctx := context.Background()
		a := createTable(t, b)
		for i := range 3 {
			_, err := a.Commit(ctx, appendCommit(fmt.Sprintf("data/a%d.parquet", i), testAppID, int64(10*i), int64(10*i+9)))
			require.NoError(t, err)
		}
		deletePrefix(t, b)

		_, err := a.Commit(ctx, appendCommit("data/a3.parquet", testAppID, 30, 39))
		require.ErrorIs(t, err, committer.ErrTableReplaced)
		require.ErrorContains(t, err, "withdrawn")
		var left []string
		require.NoError(t, b.List(ctx, testRoot+"/", func(o objstore.ObjectInfo) error {
			left = append(left, o.Key)
			return nil
		}))
		require.Empty(t, left, "the commit put into the deleted prefix was withdrawn")

		_, err = a.Commit(ctx, appendCommit("data/a3.parquet", testAppID, 30, 39))
		require.ErrorIs(t, err, committer.ErrNoTable, "the writer reads the log again and finds no table")
		s, err := Open(b, testRoot, testOptions("b")).Create(ctx, committer.Metadata{Schema: mustSchema(t, schemaV1)})
		require.NoError(t, err)
		require.Equal(t, int64(0), s.Version)
	})
}

// TestCommitAfterTableRecreated: the table is deleted and created again by
// another writer while a writer holds the old one. Its put of the old
// table's next version lands in the new log above a gap; the anchor's ETag
// exposes the new table, the commit is withdrawn, and the new table's
// writer later takes that version without ever reading the stray commit.
func TestCommitAfterTableRecreated(t *testing.T) {
	forEachBucket(t, func(t *testing.T, b objstore.Bucket) {
		ctx := context.Background()
		a := createTable(t, b)
		for i := range 3 {
			_, err := a.Commit(ctx, appendCommit(fmt.Sprintf("data/a%d.parquet", i), testAppID, int64(10*i), int64(10*i+9)))
			require.NoError(t, err)
		}
		deletePrefix(t, b)
		nb := Open(b, testRoot, testOptions("b"))
		_, err := nb.Create(ctx, committer.Metadata{Schema: mustSchema(t, schemaV1)})
		require.NoError(t, err)
		_, err = nb.Commit(ctx, appendCommit("data/b0.parquet", testAppID, 0, 9))
		require.NoError(t, err)

		_, err = a.Commit(ctx, appendCommit("data/a3.parquet", testAppID, 30, 39))
		require.ErrorIs(t, err, committer.ErrTableReplaced)

		for i := 1; i < 5; i++ {
			_, err = nb.Commit(ctx, appendCommit(fmt.Sprintf("data/b%d.parquet", i), testAppID, int64(10*i), int64(10*i+9)))
			require.NoError(t, err)
		}
		s, err := Open(b, testRoot, Options{}).Snapshot(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(5), s.Version)
		for p := range s.Files {
			require.True(t, strings.HasPrefix(p, "data/b"), "file %s of the deleted table", p)
		}
	})
}

// TestCommitAfterVersionZeroCleanedUp: another engine's log cleanup deleted
// version 0, the anchor this writer saw; the table is still whole (it has
// a checkpoint), so the commit counts, and the checkpoint becomes the
// anchor.
func TestCommitAfterVersionZeroCleanedUp(t *testing.T) {
	ctx := context.Background()
	b := newCountingBucket(objstore.NewMemory())
	opts := testOptions("a")
	opts.CheckpointInterval = 5
	a := Open(b, testRoot, opts)
	_, err := a.Create(ctx, committer.Metadata{Schema: mustSchema(t, schemaV1)})
	require.NoError(t, err)
	for i := range 5 {
		_, err := a.Commit(ctx, appendCommit(fmt.Sprintf("data/a%d.parquet", i), testAppID, int64(10*i), int64(10*i+9)))
		require.NoError(t, err)
	}
	for v := range int64(5) {
		require.NoError(t, b.Delete(ctx, testRoot+"/_delta_log/"+commitName(v)))
	}
	res, err := a.Commit(ctx, appendCommit("data/a5.parquet", testAppID, 50, 59))
	require.NoError(t, err)
	require.Equal(t, int64(6), res.Version)
	clear(b.calls)
	res, err = a.Commit(ctx, appendCommit("data/a6.parquet", testAppID, 60, 69))
	require.NoError(t, err)
	require.Equal(t, int64(7), res.Version)
	require.Equal(t, map[string]int{"put": 1, "head": 1}, b.calls, "the checkpoint is the new anchor")
	s, err := Open(b, testRoot, Options{}).Snapshot(ctx)
	require.NoError(t, err)
	require.Len(t, s.Files, 7)
}
