package delta

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

// deleterOptions are test options for a Table that deletes rows.
func deleterOptions(instance string) Options {
	o := testOptions(instance)
	o.DeleteRows = true
	return o
}

func deleteCommit(path string, rows ...int64) committer.Commit {
	return committer.Commit{Operation: committer.OpDelete, Deletes: []committer.RowDeletion{{Path: path, Rows: rows}}, ReadVersion: -1}
}

// rawLog returns the JSON lines of version v of the table at root.
func rawLog(t *testing.T, b objstore.Bucket, v int64) []map[string]json.RawMessage {
	t.Helper()
	rc, err := b.Get(context.Background(), testRoot+"/_delta_log/"+commitName(v))
	require.NoError(t, err)
	defer rc.Close()
	var out []map[string]json.RawMessage
	dec := json.NewDecoder(rc)
	for dec.More() {
		var m map[string]json.RawMessage
		require.NoError(t, dec.Decode(&m))
		out = append(out, m)
	}
	return out
}

func TestDeleteRowsProtocol(t *testing.T) {
	ctx := context.Background()
	for _, viaCreateCommit := range []bool{false, true} {
		b := objstore.NewMemory()
		tbl := Open(b, testRoot, deleterOptions("m"))
		md := committer.Metadata{Name: "orders_current", Schema: mustSchema(t, schemaV1), Configuration: map[string]string{"x": "y"}}
		var s *committer.Snapshot
		if viaCreateCommit {
			c := deleteCommit("data/a.parquet", 1)
			c.Adds = []committer.Add{block("data/a.parquet", 10)}
			res, err := tbl.CreateCommit(ctx, md, c)
			require.NoError(t, err)
			s = res.Snapshot
			require.Equal(t, int64(1), s.Files["data/a.parquet"].Deleted.Count)
		} else {
			var err error
			s, err = tbl.Create(ctx, md)
			require.NoError(t, err)
		}
		require.Equal(t, Protocol{MinReaderVersion: 3, MinWriterVersion: 7, ReaderFeatures: []string{"deletionVectors"}, WriterFeatures: []string{"deletionVectors", "invariants", "appendOnly"}}, ProtocolOf(s))
		require.Equal(t, map[string]string{"x": "y", "delta.enableDeletionVectors": "true"}, s.Metadata.Configuration)
		require.JSONEq(t, `{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["deletionVectors"],"writerFeatures":["deletionVectors","invariants","appendOnly"]}`, string(rawLog(t, b, 0)[1]["protocol"]))

		// A writer that does not delete rows reads the table and refuses
		// to write it.
		plain := Open(b, testRoot, testOptions("p"))
		ps, err := plain.Snapshot(ctx)
		require.NoError(t, err)
		require.Equal(t, s.Version, ps.Version)
		_, err = plain.Commit(ctx, appendCommit("data/b.parquet", "app", 0, 1))
		require.ErrorIs(t, err, ErrUnsupportedProtocol)
	}

	// Without DeleteRows a table is created at (1, 2) and takes no
	// deletions, even from a writer that deletes rows.
	b := objstore.NewMemory()
	tbl := createTable(t, b)
	_, err := tbl.Commit(ctx, committer.Commit{Adds: []committer.Add{block("data/a.parquet", 10)}})
	require.NoError(t, err)
	_, err = tbl.Commit(ctx, deleteCommit("data/a.parquet", 1))
	require.ErrorContains(t, err, "DeleteRows")
	_, err = Open(b, testRoot, deleterOptions("m")).Commit(ctx, deleteCommit("data/a.parquet", 1))
	require.ErrorContains(t, err, "deletionVectors")
	// But a writer that deletes rows may append to it.
	_, err = Open(b, testRoot, deleterOptions("m")).Commit(ctx, committer.Commit{Adds: []committer.Add{block("data/b.parquet", 10)}})
	require.NoError(t, err)
}

// TestDeleteRowsTableFeatures: tables of other engines at (3, 7) are
// written only when the committer honours every feature they list.
func TestDeleteRowsTableFeatures(t *testing.T) {
	ctx := context.Background()
	invariantSchema := `{"type":"struct","fields":[{"name":"id","type":"long","nullable":false,"metadata":{"delta.invariants":"{\"expression\":{\"expression\":\"id > 0\"}}"}}]}`
	for _, tc := range []struct {
		name     string
		protocol string
		schema   string
		conf     string
		err      string
		deletes  bool
	}{
		{"spark's features", `{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["deletionVectors"],"writerFeatures":["deletionVectors","invariants","appendOnly"]}`, schemaV1, `{"delta.enableDeletionVectors":"true"}`, "", true},
		{"column invariants", `{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["deletionVectors"],"writerFeatures":["deletionVectors","invariants"]}`, invariantSchema, `{"delta.enableDeletionVectors":"true"}`, "invariants", false},
		{"append only", `{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["deletionVectors"],"writerFeatures":["deletionVectors","appendOnly"]}`, schemaV1, `{"delta.enableDeletionVectors":"true","delta.appendOnly":"true"}`, "append-only", true},
		{"vectors not enabled", `{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["deletionVectors"],"writerFeatures":["deletionVectors"]}`, schemaV1, `{}`, "delta.enableDeletionVectors", true},
		{"column mapping", `{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["deletionVectors","columnMapping"],"writerFeatures":["deletionVectors","columnMapping"]}`, schemaV1, `{}`, "columnMapping", false},
		{"unknown writer feature", `{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":[],"writerFeatures":["rowTracking"]}`, schemaV1, `{}`, "rowTracking", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := objstore.NewMemory()
			schema, err := json.Marshal(tc.schema)
			require.NoError(t, err)
			v0 := `{"commitInfo":{"operation":"CREATE TABLE"}}` + "\n" +
				`{"protocol":` + tc.protocol + "}\n" +
				`{"metaData":{"id":"x","format":{"provider":"parquet","options":{}},"schemaString":` + string(schema) + `,"partitionColumns":[],"configuration":` + tc.conf + `}}` + "\n" +
				`{"add":{"path":"data/a.parquet","partitionValues":{},"size":100,"modificationTime":1,"dataChange":true,"stats":"{\"numRecords\":10}"}}` + "\n"
			_, err = b.Put(ctx, testRoot+"/_delta_log/"+commitName(0), strings.NewReader(v0), int64(len(v0)), objstore.PutOptions{})
			require.NoError(t, err)
			tbl := Open(b, testRoot, deleterOptions("m"))
			c := committer.Commit{Adds: []committer.Add{block("data/b.parquet", 10)}}
			if tc.deletes {
				c = deleteCommit("data/a.parquet", 1)
			}
			_, err = tbl.Commit(ctx, c)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
			if !tc.deletes {
				require.ErrorIs(t, err, ErrUnsupportedProtocol)
			}
		})
	}
}

// TestDeleteRowsLog checks the actions a deletion writes, as Spark writes
// them: the kept file removed with its old vector and added again with the
// new one, unchanged otherwise, with stats saying the bounds are loose.
func TestDeleteRowsLog(t *testing.T) {
	ctx := context.Background()
	b := objstore.NewMemory()
	tbl := Open(b, testRoot, deleterOptions("m"))
	_, err := tbl.Create(ctx, committer.Metadata{Name: "orders_current", Schema: mustSchema(t, schemaV1)})
	require.NoError(t, err)
	a := block("data/a.parquet", 10)
	a.PartitionValues = map[string]string{"p": "1"}
	res, err := tbl.Commit(ctx, committer.Commit{Adds: []committer.Add{a}})
	require.NoError(t, err)
	orig := res.Snapshot.Files["data/a.parquet"]
	res, err = tbl.Commit(ctx, deleteCommit("data/a.parquet", 4))
	require.NoError(t, err)
	first := res.Snapshot.Files["data/a.parquet"].Deleted
	res, err = tbl.Commit(ctx, deleteCommit("data/a.parquet", 5))
	require.NoError(t, err)
	second := res.Snapshot.Files["data/a.parquet"].Deleted

	lines := rawLog(t, b, 3)
	require.Len(t, lines, 3) // commitInfo, remove, add
	var rm jsonRemove
	require.NoError(t, json.Unmarshal(lines[1]["remove"], &rm))
	require.Equal(t, "data/a.parquet", rm.Path)
	require.True(t, rm.DataChange)
	require.Equal(t, orig.Size, *rm.Size)
	require.Equal(t, map[string]string{"p": "1"}, rm.PartitionValues)
	require.Equal(t, first.Sys, *rm.DeletionVector)
	var ad jsonAdd
	require.NoError(t, json.Unmarshal(lines[2]["add"], &ad))
	require.Equal(t, second.Sys, *ad.DeletionVector)
	require.Equal(t, orig.Size, ad.Size)
	require.Equal(t, orig.ModificationTime, ad.ModificationTime)
	require.Equal(t, orig.Tags, ad.Tags)
	require.True(t, ad.DataChange)
	require.Equal(t, `{"numRecords":10,"minValues":{"id":0},"maxValues":{"id":10},"nullCount":{"id":0},"tightBounds":false}`, ad.Stats)
	require.Equal(t, "u", ad.DeletionVector.StorageType)
	require.Equal(t, int32(1), *ad.DeletionVector.Offset)
	require.Equal(t, int64(2), ad.DeletionVector.Cardinality)
	_, err = b.Head(ctx, testRoot+"/"+second.Path)
	require.NoError(t, err, "the deletion vector file is where the descriptor says")

	// The first vector's removal is kept for vacuum beside the active
	// file, with its vector's file.
	r, ok := tbl.Removed(res.Snapshot, "data/a.parquet")
	require.True(t, ok)
	require.Equal(t, first.Path, r.Deleted.Path)
	var had []*committer.DeletedRows
	for p, r := range Tombstones(res.Snapshot) {
		require.Equal(t, "data/a.parquet", p)
		had = append(had, r.Deleted)
	}
	require.ElementsMatch(t, []*committer.DeletedRows{nil, first}, had, "a removal per vector the file had: none, then the first")

	// Removing the file records its vector on the removal.
	res, err = tbl.Commit(ctx, committer.Commit{Removes: []committer.Remove{{Path: "data/a.parquet"}}})
	require.NoError(t, err)
	r, ok = tbl.Removed(res.Snapshot, "data/a.parquet")
	require.True(t, ok)
	require.Equal(t, second.Path, r.Deleted.Path)
	require.Equal(t, second.Count, r.Deleted.Count)
}

// TestDeleteRowsCheckpoint round-trips deletion vectors and the removals
// of older vectors through a checkpoint, and compares with a replay of
// the JSON commits.
func TestDeleteRowsCheckpoint(t *testing.T) {
	ctx := context.Background()
	b := objstore.NewMemory()
	opts := deleterOptions("m")
	opts.CheckpointInterval = 4
	tbl := Open(b, testRoot, opts)
	_, err := tbl.Create(ctx, committer.Metadata{Name: "orders_current", Schema: mustSchema(t, schemaV1)})
	require.NoError(t, err)
	_, err = tbl.Commit(ctx, committer.Commit{Adds: []committer.Add{block("data/a.parquet", 10), block("data/b.parquet", 10)}})
	require.NoError(t, err)
	_, err = tbl.Commit(ctx, deleteCommit("data/a.parquet", 1, 2))
	require.NoError(t, err)
	c := deleteCommit("data/b.parquet", 3)
	c.Deletes = append(c.Deletes, committer.RowDeletion{Path: "data/a.parquet", Rows: []int64{9}})
	_, err = tbl.Commit(ctx, c)
	require.NoError(t, err)
	res, err := tbl.Commit(ctx, committer.Commit{Adds: []committer.Add{block("data/c.parquet", 10)}})
	require.NoError(t, err)
	require.Equal(t, int64(4), res.Version)
	_, err = b.Head(ctx, testRoot+"/_delta_log/"+checkpointName(4))
	require.NoError(t, err)

	cp, err := tbl.readCheckpoint(ctx, 4)
	require.NoError(t, err)
	want, err := Open(b, testRoot, opts).update(ctx, emptySnapshot())
	require.NoError(t, err)
	require.Equal(t, ProtocolOf(want), ProtocolOf(cp))
	require.Equal(t, len(want.Files), len(cp.Files))
	for p, a := range want.Files {
		require.Equal(t, a.Deleted, cp.Files[p].Deleted, p)
	}
	tombs := func(s *committer.Snapshot) map[string]*committer.DeletedRows {
		out := map[string]*committer.DeletedRows{}
		for p, r := range Tombstones(s) {
			out[tombKey(p, r.Deleted)] = r.Deleted
		}
		return out
	}
	require.Equal(t, tombs(want), tombs(cp))
	require.Len(t, tombs(cp), 3, "a@none, a@{1,2}, b@none")

	rows, err := tbl.DeletedRows(ctx, cp.Files["data/a.parquet"])
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 9}, rows)
}

func TestDeletedRowsOfFileOutsideTable(t *testing.T) {
	tbl := Open(objstore.NewMemory(), testRoot, deleterOptions("m"))
	dv := DeletionVector{StorageType: dvPath, PathOrInlineDv: "s3://bucket/elsewhere/dv.bin", SizeInBytes: 10, Cardinality: 1}
	_, err := tbl.DeletedRows(context.Background(), committer.Add{Path: "data/a.parquet", Deleted: dv.deleted(tbl.root)})
	require.ErrorContains(t, err, "s3://bucket/elsewhere/dv.bin")
	require.ErrorContains(t, err, "outside")
}

// TestDeleteRowsVectorPutFails: a failed put of the deletion vector file
// is retried with another file before the log entry is put; the entry
// names the file that was put.
func TestDeleteRowsVectorPutFails(t *testing.T) {
	ctx := context.Background()
	mem := objstore.NewMemory()
	fb := objstore.NewFaulty(mem, 1)
	tbl := Open(fb, testRoot, deleterOptions("m"))
	_, err := tbl.Create(ctx, committer.Metadata{Name: "orders_current", Schema: mustSchema(t, schemaV1)})
	require.NoError(t, err)
	_, err = tbl.Commit(ctx, committer.Commit{Adds: []committer.Add{block("data/a.parquet", 10)}})
	require.NoError(t, err)
	fb.Add(objstore.Fault{Op: objstore.OpPut, KeySuffix: ".bin", Nth: 1})
	res, err := tbl.Commit(ctx, deleteCommit("data/a.parquet", 3))
	require.NoError(t, err)
	require.Equal(t, 2, res.Attempts)
	s, err := Open(mem, testRoot, deleterOptions("r")).Snapshot(ctx)
	require.NoError(t, err)
	rows, err := tbl.DeletedRows(ctx, s.Files["data/a.parquet"])
	require.NoError(t, err)
	require.Equal(t, []int64{3}, rows)
}

// TestRemoveWithStaleVector: a writer that rewrote a file from the rows it
// read (the vector it saw) is refused if rows of the file were deleted
// since; one that read the current vector is not.
func TestRemoveWithStaleVector(t *testing.T) {
	ctx := context.Background()
	b := objstore.NewMemory()
	tbl := Open(b, testRoot, deleterOptions("m"))
	_, err := tbl.Create(ctx, committer.Metadata{Name: "orders_current", Schema: mustSchema(t, schemaV1)})
	require.NoError(t, err)
	_, err = tbl.Commit(ctx, committer.Commit{Adds: []committer.Add{block("data/a.parquet", 10)}})
	require.NoError(t, err)
	res, err := tbl.Commit(ctx, deleteCommit("data/a.parquet", 1))
	require.NoError(t, err)
	read := res.Snapshot.Files["data/a.parquet"].Deleted
	compact := func() committer.Commit {
		add := block("data/a2.parquet", 9)
		add.DataChange = false
		return committer.Commit{Operation: committer.OpOptimize, ReadVersion: -1,
			Removes: []committer.Remove{{Path: "data/a.parquet", Deleted: read}}, Adds: []committer.Add{add}}
	}
	// Rows are deleted after the compactor read the file.
	_, err = tbl.Commit(ctx, deleteCommit("data/a.parquet", 2))
	require.NoError(t, err)
	_, err = tbl.Commit(ctx, compact())
	require.ErrorIs(t, err, committer.ErrFileRemoved)

	s, err := tbl.Snapshot(ctx)
	require.NoError(t, err)
	read = s.Files["data/a.parquet"].Deleted
	res, err = tbl.Commit(ctx, compact())
	require.NoError(t, err)
	r, ok := tbl.Removed(res.Snapshot, "data/a.parquet")
	require.True(t, ok)
	require.Equal(t, read, r.Deleted)
}

// TestCreateCommitVectorPutFails: CreateCommit retries a failed put of its
// deletion vector file too.
func TestCreateCommitVectorPutFails(t *testing.T) {
	ctx := context.Background()
	mem := objstore.NewMemory()
	fb := objstore.NewFaulty(mem, 1)
	fb.Add(objstore.Fault{Op: objstore.OpPut, KeySuffix: ".bin", Nth: 1})
	tbl := Open(fb, testRoot, deleterOptions("m"))
	_, err := tbl.Snapshot(ctx)
	require.ErrorIs(t, err, committer.ErrNoTable)
	c := deleteCommit("data/a.parquet", 3, 4)
	c.Adds = []committer.Add{block("data/a.parquet", 10)}
	res, err := tbl.CreateCommit(ctx, committer.Metadata{Name: "orders_current", Schema: mustSchema(t, schemaV1)}, c)
	require.NoError(t, err)
	require.Equal(t, int64(0), res.Version)
	rows, err := tbl.DeletedRows(ctx, res.Snapshot.Files["data/a.parquet"])
	require.NoError(t, err)
	require.Equal(t, []int64{3, 4}, rows)
}
