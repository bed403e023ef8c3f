package delta

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

// Changes replays what each commit did: appends with their txns, a
// compaction with dataChange=false on both sides, a schema change with its
// metadata, and the operation and time of each.
func TestChangesReplaysCommits(t *testing.T) {
	forEachBucket(t, func(t *testing.T, b objstore.Bucket) {
		ctx := context.Background()
		tbl := Open(b, testRoot, testOptions("w"))
		_, err := tbl.Create(ctx, committer.Metadata{Schema: mustSchema(t, schemaV1), Configuration: map[string]string{"evodb.primaryKey": "id"}})
		require.NoError(t, err)                                                   // v0
		_, err = tbl.Commit(ctx, appendCommit("data/a.parquet", testAppID, 0, 9)) // v1
		require.NoError(t, err)
		_, err = tbl.Commit(ctx, appendCommit("data/b.parquet", testAppID2, 0, 4)) // v2
		require.NoError(t, err)
		c := block("data/ab.parquet", 15)
		c.DataChange = false
		_, err = tbl.Commit(ctx, committer.Commit{ // v3
			Operation: committer.OpOptimize,
			Removes:   []committer.Remove{{Path: "data/a.parquet"}, {Path: "data/b.parquet"}},
			Adds:      []committer.Add{c},
		})
		require.NoError(t, err)
		widen := appendCommit("data/c.parquet", testAppID, 10, 19)
		widen.Metadata = &committer.Metadata{Schema: mustSchema(t, schemaV2)}
		_, err = tbl.Commit(ctx, widen) // v4
		require.NoError(t, err)

		all, err := tbl.Changes(ctx, -1, 4)
		require.NoError(t, err)
		require.Len(t, all, 5)
		for i, vc := range all {
			require.Equal(t, int64(i), vc.Version)
			require.Positive(t, vc.Timestamp)
		}
		require.NotNil(t, all[0].Metadata)
		require.Equal(t, "id", all[0].Metadata.Configuration["evodb.primaryKey"])
		require.Empty(t, all[0].Adds)

		require.Equal(t, committer.OpStreamingUpdate, all[1].Operation)
		require.Len(t, all[1].Adds, 1)
		require.Equal(t, "data/a.parquet", all[1].Adds[0].Path)
		require.True(t, all[1].Adds[0].DataChange)
		require.Equal(t, int64(10), all[1].Adds[0].Rows())
		require.Equal(t, map[string]int64{testAppID: 9}, all[1].Txns)
		require.Nil(t, all[1].Metadata)

		require.Equal(t, map[string]int64{testAppID2: 4}, all[2].Txns)

		require.Equal(t, committer.OpOptimize, all[3].Operation)
		require.Len(t, all[3].Removes, 2)
		for _, r := range all[3].Removes {
			require.False(t, r.DataChange, "compaction removes %s without a data change", r.Path)
		}
		require.Len(t, all[3].Adds, 1)
		require.False(t, all[3].Adds[0].DataChange)
		require.Nil(t, all[3].Txns)

		require.NotNil(t, all[4].Metadata)
		require.True(t, all[4].Metadata.Schema.Equal(mustSchema(t, schemaV2)))
		s, err := tbl.Snapshot(ctx)
		require.NoError(t, err)
		require.Equal(t, s.Metadata.ID, all[4].Metadata.ID, "a schema change keeps the table's id")

		some, err := tbl.Changes(ctx, 2, 3)
		require.NoError(t, err)
		require.Equal(t, all[3:4], some)

		none, err := tbl.Changes(ctx, 4, 4)
		require.NoError(t, err)
		require.Empty(t, none)

		_, err = tbl.Changes(ctx, 3, 2)
		require.ErrorContains(t, err, "not a range")
		_, err = tbl.Changes(ctx, -2, 2)
		require.ErrorContains(t, err, "not a range")
	})
}

// Once log cleanup has deleted versions, asking for them fails with
// ErrHistoryExpired naming the missing version, and the versions still in
// the log are read as before.
func TestChangesAfterLogCleanup(t *testing.T) {
	forEachBucket(t, func(t *testing.T, b objstore.Bucket) {
		ctx := context.Background()
		opts := testOptions("w")
		opts.CheckpointInterval = 5
		tbl := Open(b, testRoot, opts)
		_, err := tbl.Create(ctx, committer.Metadata{Schema: mustSchema(t, schemaV1)})
		require.NoError(t, err)
		for i := range 7 {
			_, err := tbl.Commit(ctx, appendCommit(fmt.Sprintf("data/%d.parquet", i), testAppID, int64(10*i), int64(10*i+9)))
			require.NoError(t, err)
		}
		cleanLogBelow(t, b, 5)

		_, err = tbl.Changes(ctx, 1, 6)
		require.ErrorIs(t, err, committer.ErrHistoryExpired)
		require.ErrorContains(t, err, "log version 2 ")
		require.ErrorContains(t, err, testRoot)

		_, err = tbl.Changes(ctx, -1, 7)
		require.ErrorIs(t, err, committer.ErrHistoryExpired, "version 0 stays, versions 1 to 4 are gone")

		kept, err := tbl.Changes(ctx, 4, 7)
		require.NoError(t, err)
		require.Len(t, kept, 3)
		require.Equal(t, []int64{5, 6, 7}, []int64{kept[0].Version, kept[1].Version, kept[2].Version})
		require.Equal(t, map[string]int64{testAppID: 69}, kept[2].Txns)
	})
}

// Changes of a version the log does not have yet fail as expired too: a
// caller only asks for versions it saw in a snapshot, so a missing one
// means the log it saw is gone (a replaced table).
func TestChangesOfReplacedTable(t *testing.T) {
	b := objstore.NewMemory()
	ctx := context.Background()
	tbl := Open(b, testRoot, testOptions("w"))
	_, err := tbl.Create(ctx, committer.Metadata{Schema: mustSchema(t, schemaV1)})
	require.NoError(t, err)
	_, err = tbl.Changes(ctx, 0, 1)
	require.ErrorIs(t, err, committer.ErrHistoryExpired)
}
