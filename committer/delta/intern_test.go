package delta

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

// TestSnapshotsShareAppIDsAndSchemas checks that the snapshots of tables
// with the same schema, written from the same source partitions, hold one
// copy of the schemaString and of each txn app id between them, whether
// the snapshot came from the table's own commits, from a replay of its log
// or from a checkpoint: a process at thousands of tables keeps a snapshot
// of each.
func TestSnapshotsShareAppIDsAndSchemas(t *testing.T) {
	ctx := context.Background()
	b := objstore.NewMemory()
	const commits = 12 // past the checkpoint interval
	var snaps []*committer.Snapshot
	for i := range 2 {
		tbl := Open(b, fmt.Sprintf("tenant%d/orders", i), testOptions("test"))
		var s *committer.Snapshot
		for v := range commits {
			c := appendCommit(fmt.Sprintf("data/%03d.parquet", v), testAppID, int64(v*10), int64(v*10+9))
			// Each commit builds its app ids afresh, as the sink does.
			c.Txns[0].AppID = string([]byte(testAppID))
			c.Txns[0].Lineage = "topic-id-1"
			var res *committer.CommitResult
			var err error
			if v == 0 {
				res, err = tbl.CreateCommit(ctx, committer.Metadata{Name: "orders", Schema: mustSchema(t, schemaV1)}, c)
			} else {
				res, err = tbl.Commit(ctx, c)
			}
			require.NoError(t, err)
			s = res.Snapshot
		}
		snaps = append(snaps, s)
		// The canonical copies are dropped once nothing holds their
		// handles: the snapshots must.
		runtime.GC()
		replayed, err := Open(b, fmt.Sprintf("tenant%d/orders", i), testOptions("reader")).Snapshot(ctx)
		require.NoError(t, err)
		require.Equal(t, s.Version, replayed.Version)
		snaps = append(snaps, replayed)
	}
	for _, s := range snaps[1:] {
		require.Same(t, unsafe.StringData(SchemaString(snaps[0])), unsafe.StringData(SchemaString(s)), "one schemaString for all tables")
		require.Len(t, s.Txns, 2)
		for app := range s.Txns {
			var found bool
			for first := range snaps[0].Txns {
				if first == app {
					require.Same(t, unsafe.StringData(first), unsafe.StringData(app), "one copy of app id %s", app)
					found = true
				}
			}
			require.True(t, found, app)
		}
	}
}

// TestCommitIDWindow checks how far back a retried commit is recognised by
// its id: within recentCommitIDs versions it is found and reported as
// already committed; beyond them it is not, and the append is refused by
// its txn versions instead, never landed twice.
func TestCommitIDWindow(t *testing.T) {
	ctx := context.Background()
	b := objstore.NewMemory()
	tbl := createTable(t, b) // version 0
	other := Open(b, testRoot, testOptions("other"))
	others := 0
	byOthers := func(n int) {
		t.Helper()
		for range n {
			_, err := other.Commit(ctx, appendCommit(fmt.Sprintf("data/o%04d.parquet", others), testAppID2, int64(others*10), int64(others*10+9)))
			require.NoError(t, err)
			others++
		}
	}
	// own commits an append of offsets first..first+9 from tbl, which
	// then holds the table's latest snapshot.
	own := func(name string, first int64) (committer.Commit, int64) {
		t.Helper()
		c := appendCommit("data/"+name+".parquet", testAppID, first, first+9)
		c.ID = name
		res, err := tbl.Commit(ctx, c)
		require.NoError(t, err)
		return c, res.Version
	}

	recent, at := own("recent", 0)
	byOthers(recentCommitIDs - 2)
	_, latest := own("later", 100)
	require.Equal(t, at+recentCommitIDs-1, latest)
	again, err := tbl.Commit(ctx, recent)
	require.NoError(t, err)
	require.True(t, again.AlreadyCommitted, "found %d versions later", latest-at)
	require.Equal(t, at, again.Version)

	old, at := own("old", 200)
	byOthers(recentCommitIDs - 1)
	_, latest = own("latest", 300)
	require.Equal(t, at+recentCommitIDs, latest)
	before, err := Open(b, testRoot, testOptions("reader")).Snapshot(ctx)
	require.NoError(t, err)
	_, err = tbl.Commit(ctx, old)
	var conflict *committer.TxnConflictError
	require.ErrorAs(t, err, &conflict, "%d versions later the txn versions refuse it", latest-at)
	after, err := Open(b, testRoot, testOptions("reader")).Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, before.Version, after.Version, "nothing landed twice")
	require.LessOrEqual(t, len(st(tbl.cached()).commitIDs), recentCommitIDs)
}
