package compaction

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/partitioner"
)

// A table sizes its compacted files by the partition mode it records, not
// by the mode its TableRef configures: background compaction and `sink
// compact` then size a table's files alike, whatever either's
// configuration says.
func TestCompactOnceUsesTheRecordedMode(t *testing.T) {
	ctx := testContext(t)
	b := objstore.NewMemory()
	f := newFixture(t, b, "users")
	_, err := f.table.Create(ctx, committer.Metadata{Name: "users", Schema: codec.NewSchema(),
		Configuration: map[string]string{partitioner.ModeConfigKey: partitioner.ModeDOSQLite}})
	require.NoError(t, err)
	f.mustAppend(ctx, 10, 10, 10, 10, 10, 10)

	// Configured alone, this mode finds every file full already.
	full := partitioner.Mode{Name: "full", BlockSize: 64, PartitionMax: 64, MaxMergeInputs: 8}
	snap, err := f.table.Snapshot(ctx)
	require.NoError(t, err)
	require.Empty(t, Plan(snap, full, PlanOptions{}))
	sqlite, err := partitioner.ModeByName(partitioner.ModeDOSQLite)
	require.NoError(t, err)
	require.NotEmpty(t, Plan(snap, sqlite, PlanOptions{}))

	res, err := NewScheduler(b, tables(b), Config{}).CompactOnce(ctx, TableRef{Path: f.path, Mode: full})
	require.NoError(t, err)
	require.Positive(t, res.Jobs, "compacted by the recorded do-sqlite mode")
	require.Less(t, res.FilesAfter, res.FilesBefore)
}

// A recorded mode this version does not know stops the table's compaction
// with an error naming it, before anything is written.
func TestCompactOnceRefusesAnUnknownRecordedMode(t *testing.T) {
	ctx := testContext(t)
	b := objstore.NewMemory()
	f := newFixture(t, b, "users")
	_, err := f.table.Create(ctx, committer.Metadata{Name: "users", Schema: codec.NewSchema(),
		Configuration: map[string]string{partitioner.ModeConfigKey: "huge"}})
	require.NoError(t, err)
	f.mustAppend(ctx, 10, 10, 10, 10, 10, 10)

	res, err := NewScheduler(b, tables(b), Config{}).CompactOnce(ctx, TableRef{Path: f.path, Mode: testMode})
	require.ErrorContains(t, err, `evodb.partitionMode: unknown partition mode "huge"`)
	require.Zero(t, res.Jobs)
	snap, err := f.table.Snapshot(ctx)
	require.NoError(t, err)
	require.Len(t, snap.Files, 6)
}
