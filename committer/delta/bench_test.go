package delta

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

// BenchmarkCommitAfterRemovals measures one append commit (one add, one
// txn) by a long-running writer whose table has had 100,000 files removed
// by compaction, and the memory its cached snapshot holds. In "recent" the
// files were removed an hour ago, so vacuum still needs their tombstones;
// in "expired" eight days ago, past the one-week TombstoneRetention.
// Checkpoints are off so that only the commit itself is measured. Run it
// with a fixed -benchtime (such as 200x) so that every run adds the same
// number of files before the memory is measured.
func BenchmarkCommitAfterRemovals(b *testing.B) {
	const removed = 100_000
	const batch = 1000
	for _, tc := range []struct {
		name string
		age  time.Duration
	}{{"recent", time.Hour}, {"expired", 8 * 24 * time.Hour}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			clock := newTestClock()
			bucket := objstore.NewMemory()
			tbl := Open(bucket, testRoot, Options{Instance: "bench", Now: clock.Now, CheckpointInterval: 1 << 30})
			if _, err := tbl.Create(ctx, committer.Metadata{Schema: mustSchema(b, schemaV1)}); err != nil {
				b.Fatal(err)
			}
			for i := 0; i < removed; i += batch {
				var adds []committer.Add
				var removes []committer.Remove
				for j := i; j < i+batch; j++ {
					p := fmt.Sprintf("data/%08d.parquet", j)
					adds = append(adds, committer.Add{Path: p, Size: 1 << 20, DataChange: true})
					removes = append(removes, committer.Remove{Path: p})
				}
				if _, err := tbl.Commit(ctx, committer.Commit{Adds: adds}); err != nil {
					b.Fatal(err)
				}
				if _, err := tbl.Commit(ctx, committer.Commit{Operation: committer.OpOptimize, Removes: removes}); err != nil {
					b.Fatal(err)
				}
			}
			clock.advance(tc.age)
			// The first commit after the pause loads the table (see Table);
			// only the commits after it are timed.
			if _, err := tbl.Commit(ctx, appendCommit("data/first.parquet", testAppID2, 0, 9)); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			offset := int64(0)
			for b.Loop() {
				c := appendCommit(fmt.Sprintf("data/new-%d.parquet", offset), testAppID, offset, offset+9)
				if _, err := tbl.Commit(ctx, c); err != nil {
					b.Fatal(err)
				}
				offset += 10
			}
			b.StopTimer()
			var withTable, without runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&withTable)
			runtime.KeepAlive(tbl)
			tbl = nil
			runtime.GC()
			runtime.ReadMemStats(&without)
			runtime.KeepAlive(bucket)
			b.ReportMetric(float64(int64(withTable.HeapAlloc)-int64(without.HeapAlloc))/(1<<20), "snapshot-MiB")
		})
	}
}
