package mirror

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/parquetblock"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/tablefile"
)

// deletedFraction returns the fraction of the mirror's physical rows that
// its deletion vectors delete, and its file count.
func deletedFraction(f *fixture) (float64, int) {
	s := f.mirrorSnapshot()
	var rows, deleted int64
	for _, a := range s.Files {
		rows += a.Rows()
		if a.Deleted != nil {
			deleted += a.Deleted.Count
		}
	}
	return float64(deleted) / float64(rows), len(s.Files)
}

// Mirror compaction merges the small files steps write and drops the
// superseded rows, keeping tombstones (deleted again) so that an older
// change of a deleted key stays ignored; the mirror stays equal to the
// view throughout.
func TestMirrorCompaction(t *testing.T) {
	f := newFixture(t, nil)
	var seed []codec.Change
	for id := range int64(100) {
		seed = append(seed, change(ins, id, uint64(id+1), "v0"))
	}
	f.commit(seed...)
	m := f.maintainer(Options{MaxFiles: 4, TargetFileRows: 64, MaxDeletedFraction: 0.5})
	f.sync(m)
	compacted := false
	for round := range 12 {
		lsn := uint64(1000 * (round + 1))
		var batch []codec.Change
		for i := range int64(10) {
			id := (int64(round)*7 + i*3) % 100
			if i == 9 {
				batch = append(batch, change(del, id, lsn+uint64(i), "gone"))
			} else {
				batch = append(batch, change(upd, id, lsn+uint64(i), "v"+string(rune('a'+round))))
			}
		}
		f.commit(batch...)
		for _, res := range f.sync(m) {
			compacted = compacted || res.Compacted
		}
		f.check()
		frac, files := deletedFraction(f)
		require.LessOrEqual(t, files, 4+1, "round %d", round)
		t.Logf("round %d: %d files, %.0f%% deleted", round, files, 100*frac)
	}
	require.True(t, compacted, "the mirror was compacted")

	// Compaction commits no data change and keeps the mirror's W.
	h := f.openMirror("r").(committer.History)
	s := f.mirrorSnapshot()
	changes, err := h.Changes(f.ctx, -1, s.Version)
	require.NoError(t, err)
	optimizes := 0
	for _, vc := range changes {
		if vc.Operation != committer.OpOptimize {
			continue
		}
		optimizes++
		_, moved := vc.Txns[AppID(mustLog(f).Metadata.ID)]
		require.False(t, moved, "compaction at version %d keeps the mirror's W", vc.Version)
		for _, a := range vc.Adds {
			// The format marks an add that carries deleted rows (the
			// tombstones, deleted again) as a data change.
			if a.Deleted == nil {
				require.False(t, a.DataChange, "version %d adds %s", vc.Version, a.Path)
			}
		}
	}
	require.Positive(t, optimizes)

	// Tombstones survive compaction: an older insert of a deleted key
	// stays out.
	gone := -1
	for id := range int64(100) {
		if _, ok := f.names()[id]; !ok {
			gone = int(id)
			break
		}
	}
	require.GreaterOrEqual(t, gone, 0)
	f.commit(change(ins, int64(gone), 500, "zombie"))
	f.sync(m)
	f.check()
	_, back := f.names()[int64(gone)]
	require.False(t, back)
}

// The checker fails on a mirror that breaks the rule: a superseded row
// whose deletion is lost comes back as a duplicate or a wrong row, and a
// row the change log never had is extra.
func TestCheckDetectsCorruptMirror(t *testing.T) {
	setup := func(t *testing.T) *fixture {
		f := newFixture(t, nil)
		f.commit(change(ins, 1, 10, "a"), change(ins, 2, 11, "b"))
		m := f.maintainer(Options{MaxFiles: 100, MaxDeletedFraction: 1})
		f.sync(m)
		f.commit(change(upd, 1, 20, "a2"), change(del, 2, 21, "b"))
		f.sync(m)
		f.check()
		return f
	}
	// sneak commits rows to the mirror without any deletion.
	sneak := func(f *fixture, rows ...codec.Change) {
		w, err := tablefile.WriteBlock(f.ctx, f.b, mirrorRoot, tablefile.Block{
			Schema: f.schema.Clone(), Changes: rows, Encode: parquetblock.EncodeOptions{KafkaColumns: true},
			Name: func(codec.BlockStats, int) string { return "data/sneaked.parquet" }, DataChange: true,
		})
		require.NoError(f.t, err)
		_, err = f.openMirror("vandal").Commit(f.ctx, committer.Commit{Adds: []committer.Add{w.Add}, ReadVersion: -1})
		require.NoError(f.t, err)
	}
	t.Run("missing deletion", func(t *testing.T) {
		// This breaks the layout invariant the maintainer's lookup relies
		// on (a key's rows other than its latest are deleted): the
		// maintainer, which reads only the latest row of a key, keeps the
		// stray row, and only the checker, which reads every visible row,
		// finds it.
		f := setup(t)
		sneak(f, change(ins, 1, 10, "a"))
		r, err := Check(f.ctx, f.b, f.log, f.openMirror("c"), nil)
		require.NoError(t, err)
		require.False(t, r.OK())
		require.Equal(t, 1, r.Duplicates)
		require.Contains(t, r.String(), "duplicate key id=1")

		f.commit(change(upd, 1, 40, "a4"))
		f.sync(f.maintainer(Options{MaxFiles: 100, MaxDeletedFraction: 1}))
		r, err = Check(f.ctx, f.b, f.log, f.openMirror("c"), nil)
		require.NoError(t, err)
		require.Equal(t, 1, r.Duplicates, r.String())
	})
	t.Run("deleted key visible", func(t *testing.T) {
		f := setup(t)
		sneak(f, change(ins, 2, 11, "b"))
		r, err := Check(f.ctx, f.b, f.log, f.openMirror("c"), nil)
		require.NoError(t, err)
		require.Equal(t, 1, r.Extra)
		require.Contains(t, r.String(), `extra key id=2: the mirror has {INSERT lsn=11`)
	})
	t.Run("extra row", func(t *testing.T) {
		f := setup(t)
		sneak(f, change(ins, 9, 99, "never"))
		r, err := Check(f.ctx, f.b, f.log, f.openMirror("c"), nil)
		require.NoError(t, err)
		require.Equal(t, 1, r.Extra)
		require.Contains(t, r.String(), `name=string("never")`)
	})
	t.Run("missing and different rows", func(t *testing.T) {
		f := setup(t)
		// The change log gains rows the mirror does not apply.
		f.commit(change(ins, 3, 30, "c"), change(upd, 1, 31, "a3"))
		s := f.mirrorSnapshot()
		_, err := f.openMirror("vandal").Commit(f.ctx, committer.Commit{
			ReadVersion: s.Version,
			Txns:        []committer.TxnCondition{{AppID: AppID(mustLog(f).Metadata.ID), FirstOffset: s.Txns[AppID(mustLog(f).Metadata.ID)] + 1, LastOffset: mustLog(f).Version}},
		})
		require.NoError(t, err)
		r, err := Check(f.ctx, f.b, f.log, f.openMirror("c"), nil)
		require.NoError(t, err)
		require.Equal(t, 1, r.Missing)
		require.Equal(t, 1, r.Different)
		require.Contains(t, r.String(), `key id=1 differs: _lsn 20, want 31`)
	})
}

// The checker replays the change log's history when the mirror holds an
// older version than the latest, and compares with the view at that
// version.
func TestCheckAtOlderVersion(t *testing.T) {
	f := newFixture(t, nil)
	f.commit(change(ins, 1, 10, "a"))
	f.sync(f.maintainer(Options{}))
	f.commit(change(upd, 1, 20, "a2"), change(ins, 2, 21, "b"))
	r := f.check()
	require.Equal(t, int64(0), r.ChangeLogVersion)
	require.Equal(t, 1, r.Rows)
}
