package delta

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/objstore"
)

// removeCommit removes the given files.
func removeCommit(paths ...string) Commit {
	c := Commit{Operation: OpOptimize}
	for _, p := range paths {
		c.Removes = append(c.Removes, Remove{Path: p})
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
	_, err := tbl.Create(ctx, Metadata{SchemaString: schemaV1})
	require.NoError(t, err)
	var old []string
	for i := range 50 {
		old = append(old, fmt.Sprintf("data/old-%d.parquet", i))
	}
	for _, p := range old {
		_, err := tbl.Commit(ctx, Commit{Adds: []Add{block(p, 1)}})
		require.NoError(t, err)
	}
	res, err := tbl.Commit(ctx, removeCommit(old...))
	require.NoError(t, err)
	require.Equal(t, 50, res.Snapshot.NumTombstones())

	// Within the retention (and its batching slack) they stay.
	clock.advance(24 * time.Hour)
	res, err = tbl.Commit(ctx, Commit{Adds: []Add{block("data/new.parquet", 1)}})
	require.NoError(t, err)
	require.Equal(t, 50, res.Snapshot.NumTombstones())

	clock.advance(24*time.Hour/16 + time.Second)
	res, err = tbl.Commit(ctx, removeCommit("data/new.parquet"))
	require.NoError(t, err)
	require.Equal(t, 1, res.Snapshot.NumTombstones(), "only the tombstone within the retention is left")
	_, ok := res.Snapshot.Tombstone("data/new.parquet")
	require.True(t, ok)
	_, ok = res.Snapshot.Tombstone("data/old-0.parquet")
	require.False(t, ok)

	// A reader replaying the JSON log expires them as well.
	s, err := tbl.Update(ctx, emptySnapshot())
	require.NoError(t, err)
	require.Equal(t, 1, s.NumTombstones())
}

// TestTombstonesAreCopiedOnWrite: snapshots share tombstone shards, and a
// commit copies only what it changes. Changing a clone (adding tombstones,
// re-adding a removed path, expiring) must leave its source as it was,
// through several generations; a write to a shared shard breaks this.
func TestTombstonesAreCopiedOnWrite(t *testing.T) {
	base := emptySnapshot()
	for i := range 2000 {
		base.tombs.put(Remove{Path: fmt.Sprintf("data/%d.parquet", i), DeletionTimestamp: int64(1000 + i)})
	}
	want := map[string]Remove{}
	for p, r := range base.Tombstones() {
		want[p] = r
	}
	contents := func(s *Snapshot) map[string]Remove {
		out := map[string]Remove{}
		for p, r := range s.Tombstones() {
			out[p] = r
		}
		return out
	}

	gen1 := base.clone()
	gen1.apply(1, &logEntry{
		removes: []Remove{{Path: "data/new.parquet", DeletionTimestamp: 5000}},
		adds:    []Add{{Path: "data/7.parquet"}},
	})
	require.Equal(t, want, contents(base), "the source is unchanged")
	require.Equal(t, 2000, gen1.NumTombstones())
	_, ok := gen1.Tombstone("data/7.parquet")
	require.False(t, ok, "re-added")
	_, ok = base.Tombstone("data/7.parquet")
	require.True(t, ok)

	gen2 := gen1.clone()
	gen2.tombs.expire(2000, 0)
	require.Equal(t, want, contents(base))
	require.Equal(t, 2000, gen1.NumTombstones())
	require.Len(t, contents(gen1), 2000)
	// 1000..1999 expire, except data/7 (1007), which gen1 re-added.
	require.Equal(t, 1001, gen2.NumTombstones())
	require.Len(t, contents(gen2), 1001)
	for _, r := range contents(gen2) {
		require.GreaterOrEqual(t, r.DeletionTimestamp, int64(2000))
	}
}
