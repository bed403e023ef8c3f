package mirror

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
)

const (
	ins = codec.OpInsert
	upd = codec.OpUpdate
	del = codec.OpDelete
)

// Inserts, updates and deletes reach the mirror: the first step builds
// it from the change log, later steps apply only the new versions, with
// the superseded rows and the deleted keys hidden by deletion vectors.
func TestMirrorInsertsUpdatesDeletes(t *testing.T) {
	f := newFixture(t, nil)
	f.commit(change(ins, 1, 10, "a"), change(ins, 2, 11, "b"), change(ins, 3, 12, "c"))
	m := f.maintainer(Options{})
	steps := f.sync(m)
	require.True(t, steps[0].Rebuilt, "a new mirror is built from the change log")
	f.check()
	require.Equal(t, map[int64]string{1: "a", 2: "b", 3: "c"}, f.names())

	f.commit(change(upd, 2, 20, "b2"), change(del, 3, 21, "c"))
	f.commit(change(ins, 4, 22, "d"), change(upd, 2, 23, "b3"))
	steps = f.sync(m)
	require.False(t, steps[0].Rebuilt)
	require.Equal(t, 2, steps[0].Rows-1, "keys 2 and 4 and the tombstone of 3")
	r := f.check()
	require.Equal(t, 3, r.Rows)
	require.Equal(t, map[int64]string{1: "a", 2: "b3", 4: "d"}, f.names())

	// Deleting a key twice, and inserting it again.
	f.commit(change(del, 3, 30, "c"))
	f.sync(m)
	f.check()
	f.commit(change(ins, 3, 31, "c2"))
	f.sync(m)
	f.check()
	require.Equal(t, map[int64]string{1: "a", 2: "b3", 3: "c2", 4: "d"}, f.names())

	s := f.mirrorSnapshot()
	w, ok := s.TxnVersion(AppID(mustLog(f).Metadata.ID))
	require.True(t, ok)
	require.Equal(t, mustLog(f).Version, w)
}

// An older change arriving after a newer one is ignored, in a later step
// and within one step, and so is an older change of a deleted key: the
// tombstone holds.
func TestMirrorIgnoresOlderChanges(t *testing.T) {
	f := newFixture(t, nil)
	m := f.maintainer(Options{})
	f.commit(change(ins, 1, 10, "a"), change(upd, 1, 20, "a20"), change(ins, 2, 5, "b"))
	f.sync(m)
	f.commit(change(del, 2, 30, "b"))
	f.sync(m)
	f.check()

	f.commit(change(upd, 1, 15, "a15"), change(upd, 2, 25, "b25"))
	f.sync(m)
	f.check()
	require.Equal(t, map[int64]string{1: "a20"}, f.names())

	// Within one batch, newest first.
	f.commit(change(upd, 1, 40, "a40"), change(upd, 1, 35, "a35"), change(ins, 2, 29, "b29"))
	f.sync(m)
	f.check()
	require.Equal(t, map[int64]string{1: "a40"}, f.names())
}

// Replays (the same LSN again, at a later offset) and changes of equal
// LSN from two partitions order by partition and offset, as the view does.
func TestMirrorReplaysAndPartitions(t *testing.T) {
	f := newFixture(t, nil)
	m := f.maintainer(Options{})
	f.commit(change(ins, 1, 10, "a"), change(ins, 2, 10, "b"))
	f.sync(m)
	f.commit(change(ins, 1, 10, "a"), onPartition(1, change(upd, 2, 10, "b-p1")), change(upd, 2, 10, "b-p0"))
	f.sync(m)
	r := f.check()
	require.Equal(t, 2, r.Rows)
	got := f.visible()
	require.Equal(t, int64(2), got[1].Offset, "the replay at the later offset is the latest change")
	require.Equal(t, "b-p1", fieldValue(got[2].Row, "name").Str(), "partition 1 orders after partition 0 at the same LSN")

	f.commit(onPartition(1, change(del, 1, 10, "a")))
	f.sync(m)
	f.check()
	require.Equal(t, map[int64]string{2: "b-p1"}, f.names())
}

// A column added mid-stream reaches the mirror's schema in the commit of
// the first rows that have it; older rows read it as null.
func TestMirrorSchemaWidening(t *testing.T) {
	f := newFixture(t, nil)
	m := f.maintainer(Options{})
	f.commit(change(ins, 1, 10, "a"), change(ins, 2, 11, "b"))
	f.sync(m)
	wide := change(upd, 2, 20, "b2")
	wide.Row = append(wide.Row, codec.Field{Name: "email", Value: codec.String("b@x")})
	f.commit(wide)
	f.sync(m)
	f.check()
	s := f.mirrorSnapshot()
	_, ok := s.Metadata.Schema.Column("email")
	require.True(t, ok, "the mirror's schema is the change log's")
	got := f.visible()
	require.Equal(t, "b@x", fieldValue(got[2].Row, "email").Str())
	require.True(t, fieldValue(got[1].Row, "email").IsNull())
}

// A primary-key update (delete of the old key and insert of the new one
// at the same LSN) moves the row.
func TestMirrorPrimaryKeyChange(t *testing.T) {
	f := newFixture(t, nil)
	m := f.maintainer(Options{})
	f.commit(change(ins, 1, 10, "a"), change(ins, 2, 11, "b"))
	f.sync(m)
	f.commit(change(del, 1, 20, "a"), change(ins, 100, 20, "a"))
	f.sync(m)
	f.check()
	require.Equal(t, map[int64]string{2: "b", 100: "a"}, f.names())
}

// A change log without a primary key cannot be mirrored: the error names
// the table and the configuration key; a configured key works.
func TestMirrorNeedsKey(t *testing.T) {
	f := newFixture(t, nil)
	f.key = ""
	f.commit(change(ins, 1, 10, "a"))
	_, err := f.maintainer(Options{}).Step(f.ctx)
	require.ErrorContains(t, err, logRoot)
	require.ErrorContains(t, err, "mirror.key")

	f.sync(f.maintainer(Options{Key: []string{"id"}}))
	r, err := Check(f.ctx, f.b, f.log, f.openMirror("c"), nil)
	require.NoError(t, err)
	require.True(t, r.OK(), r.String())
}

// Null key values are a key like any other, as the view partitions them.
func TestMirrorNullKey(t *testing.T) {
	f := newFixture(t, nil)
	m := f.maintainer(Options{})
	n1 := change(ins, 0, 10, "null-1")
	n1.Row[0].Value = codec.Null()
	n2 := change(upd, 0, 11, "null-2")
	n2.Row[0].Value = codec.Null()
	f.commit(n1, change(ins, 1, 12, "a"))
	f.sync(m)
	f.commit(n2)
	f.sync(m)
	r := f.check()
	require.Equal(t, 2, r.Rows)
}

// A change log whose rows another engine deleted (a deletion vector) is
// no longer a log of every change: the maintainer refuses to follow it,
// naming the file, and leaves the mirror as it was.
func TestMirrorRefusesChangeLogWithDeletedRows(t *testing.T) {
	f := newFixture(t, nil)
	// Created by a writer that may delete rows, as another engine's table.
	f.log = f.format.Open(logRoot, committer.Options{Instance: "sink", DeleteRows: true})
	m := f.maintainer(Options{})
	f.commit(change(ins, 1, 10, "a"), change(ins, 2, 11, "b"))
	f.sync(m)
	before := f.mirrorSnapshot()
	f.commit(change(upd, 1, 20, "a2"))
	snap := mustLog(f)
	var victim string
	for p := range snap.Files {
		victim = p
		break
	}
	_, err := f.log.Commit(f.ctx, committer.Commit{Operation: committer.OpDelete, Deletes: []committer.RowDeletion{{Path: victim, Rows: []int64{0}}}, ReadVersion: -1})
	require.NoError(t, err)
	_, err = m.Step(f.ctx)
	require.ErrorContains(t, err, "deletes rows of its file")
	require.ErrorContains(t, err, logRoot)
	require.Equal(t, before.Version, f.mirrorSnapshot().Version)
}

// The recorded key drops record-key fields that are not columns (the
// evodb key's table name); a configured key column the change log lacks
// is refused, naming it.
func TestKeyColumns(t *testing.T) {
	f := newFixture(t, nil)
	f.key = "table,id"
	f.commit(change(ins, 1, 10, "a"))
	md := mustLog(f).Metadata
	cols, err := KeyColumns(logRoot, nil, md)
	require.NoError(t, err)
	require.Equal(t, []string{"id"}, cols)
	_, err = KeyColumns(logRoot, []string{"idd"}, md)
	require.ErrorContains(t, err, `key column "idd" (tables.<table>.mirror.key) is not a column of the change log`)
	md.Configuration = map[string]string{PrimaryKeyConfig: "table"}
	_, err = KeyColumns(logRoot, nil, md)
	require.ErrorContains(t, err, "mirror.key")
}
