package mirror

import (
	"fmt"
	"path"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/parquetblock"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/tablefile"
)

// A step killed at any point (its file uploaded but never committed, its
// deletion vectors written but never committed, its commit refused, its
// commit landed with an answer lost) leaves orphans at most: the next step
// converges, and nothing is applied twice.
func TestMirrorKillPoints(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault objstore.Fault
	}{
		{"data file upload", objstore.Fault{Op: objstore.OpPut, KeyPrefix: mirrorRoot + "/data/", Nth: 1}},
		{"commit put", objstore.Fault{Op: objstore.OpPut, KeyPrefix: mirrorRoot + "/_delta_log/", KeySuffix: ".json", Rate: 1}},
		{"commit landed, answer lost", objstore.Fault{Op: objstore.OpPut, KeyPrefix: mirrorRoot + "/_delta_log/", KeySuffix: ".json", Nth: 1, Ambiguous: true}},
		{"deletion vector upload", objstore.Fault{Op: objstore.OpPut, KeyPrefix: mirrorRoot + "/", KeySuffix: ".bin", Nth: 1}},
		// The step's merge commits; the compaction that follows it in the
		// same step fails to upload its output.
		{"compaction output upload", objstore.Fault{Op: objstore.OpPut, KeyPrefix: mirrorRoot + "/data/", Nth: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			faulty := objstore.NewFaulty(objstore.NewMemory(), 1)
			f := newFixture(t, faulty)
			m := f.maintainer(Options{})
			f.commit(change(ins, 1, 10, "a"), change(ins, 2, 11, "b"), change(ins, 3, 12, "c"))
			f.sync(m)
			before := f.mirrorSnapshot()

			f.commit(change(upd, 1, 20, "a2"), change(del, 2, 21, "b"), change(ins, 4, 22, "d"))
			faulty.Add(tc.fault)
			res, err := m.Step(f.ctx)
			require.Positive(t, faulty.Injected(objstore.OpPut), "the fault hit")
			if tc.name == "compaction output upload" {
				require.Error(t, err)
				require.Equal(t, res.ChangeLogVersion, res.To, "the merge landed before the compaction failed")
			}
			faulty.Reset()
			if err != nil {
				after := f.mirrorSnapshot()
				if after.Version == before.Version {
					require.Equal(t, before.Files, after.Files, "a failed step leaves the mirror as it was")
				}
			}
			f.sync(m)
			f.check()
			require.Equal(t, map[int64]string{1: "a2", 3: "c", 4: "d"}, f.names())

			// A new maintainer (a restarted process) goes on from the mirror.
			f.commit(change(upd, 3, 30, "c2"))
			f.sync(f.maintainer(Options{}))
			f.check()
			require.Equal(t, map[int64]string{1: "a2", 3: "c2", 4: "d"}, f.names())
		})
	}
}

// Two maintainers of one mirror stepping at the same time both converge,
// and the txn fences make each change-log version land once.
func TestMirrorRacingMaintainers(t *testing.T) {
	forEachBucket(t, testRacingMaintainers)
}

func testRacingMaintainers(t *testing.T, b objstore.Bucket) {
	f := newFixture(t, b)
	f.commit(change(ins, 1, 1, "a"))
	m1 := f.maintainer(Options{MaxVersions: 2})
	m2, err := New(f.b, f.format.Open(logRoot, committerOptions("m2")), f.openMirror("m2"), Options{MaxVersions: 2})
	require.NoError(t, err)
	var conflicts atomic.Int64
	for round := range 10 {
		lsn := uint64(10 * (round + 1))
		f.commit(change(upd, 1, lsn, "a"), change(ins, int64(round+2), lsn+1, "x"))
		f.commit(change(del, int64(round+2), lsn+2, "x"), change(upd, 1, lsn+3, "a"))
		var wg sync.WaitGroup
		for _, m := range []*Maintainer{m1, m2} {
			wg.Go(func() {
				for range 3 {
					res, err := m.Step(f.ctx)
					if err != nil {
						t.Errorf("step: %v", err)
						return
					}
					if res.Conflict {
						conflicts.Add(1)
					}
				}
			})
		}
		wg.Wait()
	}
	f.sync(m1)
	f.sync(m2)
	f.check()
	require.Equal(t, map[int64]string{1: "a"}, f.names())
	t.Logf("%d conflicts", conflicts.Load())

	// Every mirror commit holds versions after the previous one's: the
	// W txn never repeats a version.
	tbl := f.openMirror("r")
	h := tbl.(committer.History)
	s := f.mirrorSnapshot()
	changes, err := h.Changes(f.ctx, -1, s.Version)
	require.NoError(t, err)
	app := AppID(mustLog(f).Metadata.ID)
	last := int64(-1)
	for _, vc := range changes {
		if v, ok := vc.Txns[app]; ok {
			require.Greater(t, v, last, "mirror version %d", vc.Version)
			last = v
		}
	}
}

// Compaction of the change log (dataChange=false) changes no row: the
// mirror skips it and stays equal to the view.
func TestMirrorSkipsChangeLogCompaction(t *testing.T) {
	f := newFixture(t, nil)
	m := f.maintainer(Options{})
	f.commit(change(ins, 1, 10, "a"), change(ins, 2, 11, "b"))
	f.commit(change(upd, 1, 12, "a2"))
	f.sync(m)

	// Merge the change log's two files into one, as compaction does.
	f.compactLog(nil)
	f.commit(change(upd, 2, 13, "b2"))

	steps := f.sync(m)
	require.False(t, steps[0].Rebuilt)
	require.Equal(t, 1, steps[0].Rows, "only the update after the compaction")
	f.check()
	require.Equal(t, map[int64]string{1: "a2", 2: "b2"}, f.names())
}

// Skipping dataChange=false commits relies on their changing no row, as
// Delta defines the flag. A writer that breaks it, rewriting the change log
// without a change of key 2 under dataChange=false, is not followed by the
// maintainer; the checker, which computes the view from the change log's
// files, finds the mirror wrong.
func TestMirrorChangeLogRewriteThatChangesRows(t *testing.T) {
	f := newFixture(t, nil)
	m := f.maintainer(Options{})
	f.commit(change(ins, 1, 10, "a"), change(ins, 2, 11, "b"))
	f.sync(m)
	f.compactLog(func(ch codec.Change) bool { return ch.Get("id").Text() != "2" })
	steps := f.sync(m)
	require.Zero(t, steps[0].Rows, "the rewrite is skipped")
	r, err := Check(f.ctx, f.b, f.log, f.openMirror("checker"), nil)
	require.NoError(t, err)
	require.False(t, r.OK(), "key 2 is in the mirror, not in the view: %s", r.String())
}

// A change-log version log cleanup deleted, and a change log replaced by
// another (deleted and created again), make the maintainer rebuild the
// mirror from a snapshot.
func TestMirrorRebuilds(t *testing.T) {
	t.Run("history expired", func(t *testing.T) {
		f := newFixture(t, nil)
		f.format = delta.NewFormat(f.b, delta.Options{CheckpointInterval: 4})
		f.log = f.format.Open(logRoot, committerOptions("sink"))
		f.mirror = f.openMirror("m")
		m := f.maintainer(Options{})
		f.commit(change(ins, 1, 10, "a"), change(ins, 2, 11, "b"))
		f.sync(m)
		f.commit(change(upd, 1, 20, "a2"))
		f.commit(change(del, 2, 21, "b"))
		f.commit(change(ins, 3, 22, "c"))
		f.commit(change(ins, 4, 23, "d"))
		// Cleanup of the versions before the newest checkpoint, as log
		// retention does (version 0 stays).
		cp := int64(-1)
		require.NoError(t, f.b.List(f.ctx, logRoot+"/_delta_log/", func(o objstore.ObjectInfo) error {
			var v int64
			if _, err := fmt.Sscanf(path.Base(o.Key), "%d.checkpoint.parquet", &v); err == nil {
				cp = max(cp, v)
			}
			return nil
		}))
		require.Greater(t, cp, int64(1), "the change log has a checkpoint")
		for v := int64(1); v < cp; v++ {
			require.NoError(t, f.b.Delete(f.ctx, fmt.Sprintf("%s/_delta_log/%020d.json", logRoot, v)))
		}
		steps := f.sync(m)
		require.True(t, steps[0].Rebuilt)
		require.Contains(t, steps[0].Reason, "no longer in the log")
		f.check()
		require.Equal(t, map[int64]string{1: "a2", 3: "c", 4: "d"}, f.names())
	})
	t.Run("change log replaced", func(t *testing.T) {
		f := newFixture(t, nil)
		f.commit(change(ins, 1, 10, "a"), change(ins, 2, 11, "b"))
		f.sync(f.maintainer(Options{}))
		f.replaceLog()
		f.commit(change(ins, 7, 5, "g"))
		steps := f.sync(f.maintainer(Options{}))
		require.True(t, steps[0].Rebuilt)
		f.check()
		require.Equal(t, map[int64]string{7: "g"}, f.names())
	})
	t.Run("change log replaced under a running maintainer", func(t *testing.T) {
		// The maintainer's change-log table advances its snapshot by the
		// commits after it, which a log created again under the same root
		// continues; reading the snapshot whole, every ReloadEvery, finds
		// the new table id.
		f := newFixture(t, nil)
		now := time.Unix(1_700_000_000, 0)
		m := f.maintainer(Options{ReloadEvery: time.Minute, Now: func() time.Time { return now }})
		f.commit(change(ins, 1, 10, "a"), change(ins, 2, 11, "b"))
		f.sync(m)
		f.replaceLog()
		f.commit(change(ins, 7, 5, "g"))
		f.commit(change(ins, 8, 6, "h"))
		now = now.Add(time.Minute)
		steps := f.sync(m)
		require.True(t, steps[0].Rebuilt, "%+v", steps[0])
		f.check()
		require.Equal(t, map[int64]string{7: "g", 8: "h"}, f.names())
	})
	t.Run("change log replaced by a longer one under a running maintainer", func(t *testing.T) {
		// The new log's versions 1 and 2 follow the version the maintainer
		// holds, so advancing its snapshot reads them; Changes must see
		// that they are another table's before the step applies them to
		// the old table's mirror. The clock does not move: no reload.
		f := newFixture(t, nil)
		now := time.Unix(1_700_000_000, 0)
		m := f.maintainer(Options{ReloadEvery: time.Hour, Now: func() time.Time { return now }})
		f.commit(change(ins, 1, 10, "a"), change(ins, 2, 11, "b"))
		f.sync(m)
		f.replaceLog()
		f.commit(change(ins, 7, 5, "g"))
		f.commit(change(ins, 8, 6, "h"))
		f.commit(change(ins, 9, 7, "i"))
		steps := f.sync(m)
		require.Contains(t, steps[0].Reason, "deleted and created again", "%+v", steps)
		require.Zero(t, steps[0].Rows, "the first step applies nothing of the new log")
		require.True(t, steps[len(steps)-1].Rebuilt, "%+v", steps)
		f.check()
		require.Equal(t, map[int64]string{7: "g", 8: "h", 9: "i"}, f.names())
	})
	t.Run("file vacuumed", func(t *testing.T) {
		f := newFixture(t, nil)
		m := f.maintainer(Options{})
		f.commit(change(ins, 1, 10, "a"))
		f.sync(m)
		f.commit(change(upd, 1, 20, "a2"), change(ins, 2, 21, "b"))
		f.commit(change(del, 1, 22, "a2"))
		// Compaction merges the change log's files, and vacuum deletes
		// the inputs the maintainer has not read yet.
		removes := f.compactLog(nil)
		for _, r := range removes {
			require.NoError(t, f.b.Delete(f.ctx, logRoot+"/"+r.Path))
		}
		steps := f.sync(m)
		require.True(t, steps[0].Rebuilt)
		f.check()
		require.Equal(t, map[int64]string{2: "b"}, f.names())
	})
	t.Run("key changed", func(t *testing.T) {
		f := newFixture(t, nil)
		f.commit(change(ins, 1, 10, "a"), change(ins, 2, 11, "a"))
		f.sync(f.maintainer(Options{}))
		f.commit(change(ins, 3, 12, "c"))
		steps := f.sync(f.maintainer(Options{Key: []string{"name"}}))
		require.True(t, steps[0].Rebuilt)
		require.Contains(t, steps[0].Reason, "the key changed")
		r, err := Check(f.ctx, f.b, f.log, f.openMirror("c"), nil)
		require.NoError(t, err)
		require.True(t, r.OK(), r.String())
		require.Equal(t, 2, r.Rows, "one row per name")
	})
}

// replaceLog deletes the change log, every object of it, and opens it
// again for a new writer, as if an operator deleted the table and the sink
// created it again.
func (f *fixture) replaceLog() {
	f.t.Helper()
	var keys []string
	require.NoError(f.t, f.b.List(f.ctx, logRoot+"/", func(o objstore.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	}))
	for _, k := range keys {
		require.NoError(f.t, f.b.Delete(f.ctx, k))
	}
	f.log = f.format.Open(logRoot, committerOptions("sink2"))
	f.next = map[int32]int64{}
}

// compactLog merges the change log's files into one, as compaction does,
// keeping the rows keep accepts (all if keep is nil), and commits it with
// dataChange=false. It returns the removals it committed.
func (f *fixture) compactLog(keep func(codec.Change) bool) []committer.Remove {
	f.t.Helper()
	snap := mustLog(f)
	var rows []codec.Change
	var removes []committer.Remove
	for p := range snap.Files {
		_, ch, err := tablefile.ReadFile(f.ctx, f.b, logRoot, p)
		require.NoError(f.t, err)
		for _, c := range ch {
			if keep == nil || keep(c) {
				rows = append(rows, c)
			}
		}
		removes = append(removes, committer.Remove{Path: p})
	}
	w, err := tablefile.WriteBlock(f.ctx, f.b, logRoot, tablefile.Block{
		Schema: f.schema.Clone(), Changes: rows, Encode: parquetblock.EncodeOptions{KafkaColumns: true},
		Name: func(codec.BlockStats, int) string { return "data/compacted.parquet" },
	})
	require.NoError(f.t, err)
	_, err = f.log.Commit(f.ctx, committer.Commit{Operation: committer.OpOptimize, Removes: removes, Adds: []committer.Add{w.Add}, ReadVersion: snap.Version})
	require.NoError(f.t, err)
	return removes
}
