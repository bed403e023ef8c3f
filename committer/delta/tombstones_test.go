package delta

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

// removeCommit removes the given files.
func removeCommit(paths ...string) committer.Commit {
	c := committer.Commit{Operation: committer.OpOptimize}
	for _, p := range paths {
		c.Removes = append(c.Removes, committer.Remove{Path: p})
	}
	return c
}

// TestTombstonesExpireInMemory: a long-running writer drops tombstones past
// TombstoneRetention from its own snapshots, as checkpoints do, instead of
// keeping every file ever removed.
func TestTombstonesExpireInMemory(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	opts := testOptions("a")
	opts.Now = clock.Now
	opts.TombstoneRetention = 24 * time.Hour
	tbl := Open(objstore.NewMemory(), testRoot, opts)
	_, err := tbl.Create(ctx, committer.Metadata{Schema: mustSchema(t, schemaV1)})
	require.NoError(t, err)
	var old []string
	for i := range 50 {
		old = append(old, fmt.Sprintf("data/old-%d.parquet", i))
	}
	for _, p := range old {
		_, err := tbl.Commit(ctx, committer.Commit{Adds: []committer.Add{block(p, 1)}})
		require.NoError(t, err)
	}
	res, err := tbl.Commit(ctx, removeCommit(old...))
	require.NoError(t, err)
	require.Equal(t, 50, NumTombstones(res.Snapshot))

	// Within the retention (and its batching slack) they stay.
	clock.advance(24 * time.Hour)
	res, err = tbl.Commit(ctx, committer.Commit{Adds: []committer.Add{block("data/new.parquet", 1)}})
	require.NoError(t, err)
	require.Equal(t, 50, NumTombstones(res.Snapshot))

	clock.advance(24*time.Hour/16 + time.Second)
	res, err = tbl.Commit(ctx, removeCommit("data/new.parquet"))
	require.NoError(t, err)
	require.Equal(t, 1, NumTombstones(res.Snapshot), "only the tombstone within the retention is left")
	_, ok := Tombstone(res.Snapshot, "data/new.parquet")
	require.True(t, ok)
	_, ok = Tombstone(res.Snapshot, "data/old-0.parquet")
	require.False(t, ok)

	// A reader replaying the JSON log expires them as well.
	s, err := tbl.Update(ctx, emptySnapshot())
	require.NoError(t, err)
	require.Equal(t, 1, NumTombstones(s))
}

// TestTombstonesAreCopiedOnWrite: snapshots share tombstone shards, and a
// commit copies only what it changes. Changing a clone (adding tombstones,
// re-adding a removed path, expiring) must leave its source as it was,
// through several generations; a write to a shared shard breaks this.
func TestTombstonesAreCopiedOnWrite(t *testing.T) {
	base := emptySnapshot()
	for i := range 2000 {
		st(base).tombs.put(committer.Remove{Path: fmt.Sprintf("data/%d.parquet", i), DeletionTimestamp: int64(1000 + i)})
	}
	want := map[string]committer.Remove{}
	for p, r := range Tombstones(base) {
		want[p] = r
	}
	contents := func(s *committer.Snapshot) map[string]committer.Remove {
		out := map[string]committer.Remove{}
		for p, r := range Tombstones(s) {
			out[p] = r
		}
		return out
	}

	gen1 := clone(base)
	apply(gen1, 1, &logEntry{
		removes: []committer.Remove{{Path: "data/new.parquet", DeletionTimestamp: 5000}},
		adds:    []committer.Add{{Path: "data/7.parquet"}},
	})
	require.Equal(t, want, contents(base), "the source is unchanged")
	require.Equal(t, 2000, NumTombstones(gen1))
	_, ok := Tombstone(gen1, "data/7.parquet")
	require.False(t, ok, "re-added")
	_, ok = Tombstone(base, "data/7.parquet")
	require.True(t, ok)

	gen2 := clone(gen1)
	st(gen2).tombs.expire(2000, 0)
	require.Equal(t, want, contents(base))
	require.Equal(t, 2000, NumTombstones(gen1))
	require.Len(t, contents(gen1), 2000)
	// 1000..1999 expire, except data/7 (1007), which gen1 re-added.
	require.Equal(t, 1001, NumTombstones(gen2))
	require.Len(t, contents(gen2), 1001)
	for _, r := range contents(gen2) {
		require.GreaterOrEqual(t, r.DeletionTimestamp, int64(2000))
	}
}
