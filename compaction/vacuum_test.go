package compaction

import (
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
