package compaction

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/objstore"
)

// TestVacuumRemovedAndLog compacts a table, then vacuums the inputs after
// the retention and the log before its latest checkpoint; the table still
// loads with every row.
func TestVacuumRemovedAndLog(t *testing.T) {
	ctx := testContext(t)
	b := objstore.NewMemory()
	f := newFixture(t, b, "db/users")
	f.table = delta.Open(b, f.path, delta.Options{CheckpointInterval: 3})
	f.mustAppend(ctx, 2, 2, 2, 2, 2, 2, 2)
	before, _ := readRows(t, ctx, b, f.path)
	res, err := NewScheduler(b, tables(b), Config{}).CompactOnce(ctx, TableRef{Path: f.path, Mode: testMode})
	require.NoError(t, err)
	require.Positive(t, res.Jobs)

	week := 7 * 24 * time.Hour
	v, err := Vacuum(ctx, b, tables(b), f.path, week, false, time.Now())
	require.NoError(t, err)
	require.Empty(t, v.Removed, "removed just now: kept for readers of old versions")
	later := time.Now().Add(week + time.Hour)
	v, err = Vacuum(ctx, b, tables(b), f.path, week, false, later)
	require.NoError(t, err)
	require.Len(t, v.Removed, 7)
	require.Empty(t, v.Orphans)

	lv, err := VacuumLog(ctx, tables(b), f.path, week, false, later)
	require.NoError(t, err)
	require.Positive(t, lv.Checkpoint)
	require.NotEmpty(t, lv.Deleted)
	_, err = b.Head(ctx, f.path+"/_delta_log/00000000000000000000.json")
	require.NoError(t, err, "version 0 is kept")

	after, snap := readRows(t, ctx, b, f.path)
	require.Equal(t, len(before), len(after))
	require.Equal(t, res.Version, snap.Version)
	_, err = Vacuum(ctx, b, tables(b), f.path, time.Minute, true, later)
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
	stale := delta.Open(b, path, delta.Options{Instance: "stale", Now: func() time.Time { return staleNow }})
	_, err := stale.Create(ctx, committer.Metadata{Schema: codec.NewSchema()})
	require.NoError(t, err)
	add := func(tbl committer.Table, name, app string, first int64) *committer.CommitResult {
		res, err := tbl.Commit(ctx, committer.Commit{
			Adds: []committer.Add{{Path: "data/" + name + ".parquet", Size: 1, DataChange: true}},
			Txns: []committer.TxnCondition{{AppID: app, FirstOffset: first, LastOffset: first + 9}},
		})
		require.NoError(t, err)
		return res
	}
	add(stale, "s0", "p0", 0)

	other := delta.Open(b, path, delta.Options{Instance: "other", CheckpointInterval: 10})
	for i := range int64(11) {
		add(other, fmt.Sprint("o", i), "p1", 10*i)
	}
	later := start.Add(2 * delta.MinLogRetention)
	lv, err := VacuumLog(ctx, tables(b), path, delta.MinLogRetention, false, later)
	require.NoError(t, err)
	require.Equal(t, int64(10), lv.Checkpoint)
	require.Contains(t, lv.Deleted, "_delta_log/00000000000000000002.json")

	staleNow = later
	res := add(stale, "s1", "p0", 10)
	require.Equal(t, int64(13), res.Version)
	snap, err := delta.Open(b, path, delta.Options{}).Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(13), snap.Version)
	require.Contains(t, snap.Files, "data/s1.parquet")
	v, _ := snap.TxnVersion("p0")
	require.Equal(t, int64(19), v)

	_, err = VacuumLog(ctx, tables(b), path, delta.MinLogRetention-time.Minute, true, later)
	require.ErrorContains(t, err, "writers rely on")
}

// TestVacuumLeavesNestedTable vacuums a table at "inv" while another table
// lives at "inv/data" (an evodb table "inv" and a Debezium table "inv.data"
// routed by a template): the nested table's data files and checkpoints lie
// under inv/data/ but are not inv's orphans. A real orphan of inv, uploaded
// and never committed, is still removed.
func TestVacuumLeavesNestedTable(t *testing.T) {
	ctx := testContext(t)
	b := objstore.NewMemory()
	outer := newFixture(t, b, "inv")
	outer.mustAppend(ctx, 2, 2)
	nested := newFixture(t, b, "inv/data")
	nested.table = delta.Open(b, nested.path, delta.Options{CheckpointInterval: 2})
	nested.mustAppend(ctx, 2, 2, 2)
	_, err := b.Put(ctx, "inv/data/orphan.parquet", strings.NewReader("never committed"), 15, objstore.PutOptions{})
	require.NoError(t, err)

	var nestedKeys []string
	require.NoError(t, b.List(ctx, "inv/data/", func(o objstore.ObjectInfo) error {
		if strings.HasPrefix(o.Key, "inv/data/data/") || strings.HasSuffix(o.Key, ".checkpoint.parquet") {
			nestedKeys = append(nestedKeys, o.Key)
		}
		return nil
	}))
	require.NotEmpty(t, nestedKeys)
	require.True(t, slices.ContainsFunc(nestedKeys, func(k string) bool { return strings.HasSuffix(k, ".checkpoint.parquet") }),
		"the nested table has a checkpoint: %v", nestedKeys)

	later := time.Now().Add(8 * 24 * time.Hour)
	res, err := Vacuum(ctx, b, tables(b), "inv", 7*24*time.Hour, false, later)
	require.NoError(t, err)
	require.Equal(t, []string{"data/orphan.parquet"}, res.Orphans)
	for _, k := range nestedKeys {
		_, err := b.Head(ctx, k)
		require.NoError(t, err, "%s belongs to table inv/data", k)
	}
	nestedRows, _ := readRows(t, ctx, b, "inv/data")
	require.Len(t, nestedRows, 6)
	outerRows, _ := readRows(t, ctx, b, "inv")
	require.Len(t, outerRows, 4)
}

// TestMinRetentionCoversLogCleanup: vacuum's minimum retention must not be
// shorter than the one Delta writers rely on when they put a version
// without reading the log first.
func TestMinRetentionCoversLogCleanup(t *testing.T) {
	require.GreaterOrEqual(t, MinRetention, delta.MinLogRetention)
}
