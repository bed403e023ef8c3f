package compaction

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

// TestVacuumRemovedAndLog compacts a table, then vacuums the inputs after
// the retention and the log before its latest checkpoint; the table still
// loads with every row.
func TestVacuumRemovedAndLog(t *testing.T) {
	ctx := testContext(t)
	b := objstore.NewMemory()
	f := newFixture(t, b, "db/users")
	f.table = committer.Open(b, f.path, committer.Options{CheckpointInterval: 3})
	f.mustAppend(ctx, 2, 2, 2, 2, 2, 2, 2)
	before, _ := readRows(t, ctx, b, f.path)
	res, err := NewScheduler(b, Config{}).CompactOnce(ctx, TableRef{Path: f.path, Mode: testMode})
	require.NoError(t, err)
	require.Positive(t, res.Jobs)

	week := 7 * 24 * time.Hour
	v, err := Vacuum(ctx, b, f.path, week, false, time.Now())
	require.NoError(t, err)
	require.Empty(t, v.Removed, "removed just now: kept for readers of old versions")
	later := time.Now().Add(week + time.Hour)
	v, err = Vacuum(ctx, b, f.path, week, false, later)
	require.NoError(t, err)
	require.Len(t, v.Removed, 7)
	require.Empty(t, v.Orphans)

	lv, err := VacuumLog(ctx, b, f.path, week, false, later)
	require.NoError(t, err)
	require.Positive(t, lv.Checkpoint)
	require.NotEmpty(t, lv.Deleted)
	_, err = b.Head(ctx, f.path+"/_delta_log/00000000000000000000.json")
	require.NoError(t, err, "version 0 is kept")

	after, snap := readRows(t, ctx, b, f.path)
	require.Equal(t, len(before), len(after))
	require.Equal(t, res.Version, snap.Version)
	_, err = Vacuum(ctx, b, f.path, time.Minute, true, later)
	require.ErrorContains(t, err, "1h minimum")
}

// TestVacuumLogUnderStaleWriter: sink vacuum -log deletes the versions
// below the newest checkpoint while a writer holds a snapshot from before
// them. The writer's next commit must not take a deleted version (readers
// start from the checkpoint and would never see it): it lands after the
// latest version, and a reader finds it.
func TestVacuumLogUnderStaleWriter(t *testing.T) {
	ctx := testContext(t)
	b := objstore.NewMemory()
	const path = "db/users"
	start := time.Now()
	staleNow := start
	stale := committer.Open(b, path, committer.Options{Instance: "stale", Now: func() time.Time { return staleNow }})
	_, err := stale.Create(ctx, committer.Metadata{SchemaString: `{"type":"struct","fields":[]}`})
	require.NoError(t, err)
	add := func(tbl *committer.Table, name, app string, first int64) *committer.CommitResult {
		res, err := tbl.Commit(ctx, committer.Commit{
			Adds: []committer.Add{{Path: "data/" + name + ".parquet", Size: 1, DataChange: true}},
			Txns: []committer.TxnCondition{{AppID: app, FirstOffset: first, LastOffset: first + 9}},
		})
		require.NoError(t, err)
		return res
	}
	add(stale, "s0", "p0", 0)

	other := committer.Open(b, path, committer.Options{Instance: "other", CheckpointInterval: 10})
	for i := range int64(11) {
		add(other, fmt.Sprint("o", i), "p1", 10*i)
	}
	later := start.Add(2 * committer.MinLogRetention)
	lv, err := VacuumLog(ctx, b, path, committer.MinLogRetention, false, later)
	require.NoError(t, err)
	require.Equal(t, int64(10), lv.Checkpoint)
	require.Contains(t, lv.Deleted, "_delta_log/00000000000000000002.json")

	staleNow = later
	res := add(stale, "s1", "p0", 10)
	require.Equal(t, int64(13), res.Version)
	snap, err := committer.Open(b, path, committer.Options{}).Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(13), snap.Version)
	require.Contains(t, snap.Files, "data/s1.parquet")
	v, _ := snap.TxnVersion("p0")
	require.Equal(t, int64(19), v)

	_, err = VacuumLog(ctx, b, path, committer.MinLogRetention-time.Minute, true, later)
	require.ErrorContains(t, err, "writers rely on")
}
