package delta

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/parquetblock"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/tablefile"
)

// dvTable is a table with deletion vectors and the rows it should hold:
// per data file the ids at each row position, and the positions deleted.
type dvTable struct {
	t       *testing.T
	b       objstore.Bucket
	tbl     *Table
	schema  *codec.Schema
	ids     map[string][]int64
	deleted map[string]map[int64]bool
}

// writeFile writes the ids as a data file with the sink's writer, several
// row groups to a file, and returns its add.
func (d *dvTable) writeFile(name string, ids ...int64) committer.Add {
	t := d.t
	changes := make([]codec.Change, len(ids))
	for i, id := range ids {
		changes[i] = codec.Change{Topic: "cdc", Offset: id, Table: "orders", Op: codec.OpInsert, LSN: uint64(id), TS: 1_700_000_000_000 + id,
			Row: []codec.Field{{Name: "id", Value: codec.Int(id)}, {Name: "name", Value: codec.String(fmt.Sprintf("name-%d", id))}}}
		_, err := d.schema.Accept(&changes[i])
		require.NoError(t, err)
	}
	w, err := tablefile.WriteBlock(context.Background(), d.b, testRoot, tablefile.Block{
		Schema:     d.schema,
		Changes:    changes,
		Encode:     parquetblock.EncodeOptions{RowGroupBytes: 4 << 10},
		Name:       func(codec.BlockStats, int) string { return "data/" + name + ".parquet" },
		DataChange: true,
	})
	require.NoError(t, err)
	// The positions are the file's, as read back.
	_, rows, err := tablefile.ReadFile(context.Background(), d.b, testRoot, w.Add.Path)
	require.NoError(t, err)
	got := make([]int64, len(rows))
	for i, r := range rows {
		for _, f := range r.Row {
			if f.Name == "id" {
				got[i] = f.Value.Int()
			}
		}
	}
	d.ids[w.Add.Path] = got
	d.deleted[w.Add.Path] = map[int64]bool{}
	return w.Add
}

// del returns the deletion of the positions of path that keep(position)
// rejects, and records it.
func (d *dvTable) del(path string, drop func(pos int64) bool) committer.RowDeletion {
	rd := committer.RowDeletion{Path: path}
	for pos := range int64(len(d.ids[path])) {
		if drop(pos) {
			rd.Rows = append(rd.Rows, pos)
			d.deleted[path][pos] = true
		}
	}
	return rd
}

// want returns the ids the table holds.
func (d *dvTable) want() []int64 {
	var out []int64
	for path, ids := range d.ids {
		for pos, id := range ids {
			if !d.deleted[path][int64(pos)] {
				out = append(out, id)
			}
		}
	}
	slices.Sort(out)
	return out
}

func (d *dvTable) commit(c committer.Commit) *committer.Snapshot {
	c.ReadVersion = -1
	res, err := d.tbl.Commit(context.Background(), c)
	require.NoError(d.t, err)
	return res.Snapshot
}

func idRange(from, to int64) []int64 {
	var out []int64
	for id := from; id < to; id++ {
		out = append(out, id)
	}
	return out
}

// TestReadersReadDeletionVectors proves that independent Delta readers
// apply the deletion vectors the committer writes: DuckDB (delta_scan),
// delta-rs (QueryBuilder) and Polars read exactly the rows left, from the
// JSON commits, at an older version, and from a checkpoint and the commits
// after it; so does Spark, from the latter, with SINK_TEST_SPARK. delta-rs' pyarrow entry point does not apply
// deletion vectors and must refuse the table rather than return deleted
// rows. It runs when SINK_TEST_PYTHON names a Python with the readers.
func TestReadersReadDeletionVectors(t *testing.T) {
	python := os.Getenv("SINK_TEST_PYTHON")
	if python == "" {
		t.Skip("SINK_TEST_PYTHON is not set")
	}
	ctx := context.Background()
	dir := t.TempDir()
	b, err := objstore.NewFilesystem(dir)
	require.NoError(t, err)
	opts := deleterOptions("mirror")
	opts.CheckpointInterval = 3
	d := &dvTable{t: t, b: b, tbl: Open(b, testRoot, opts), schema: codec.NewSchema(), ids: map[string][]int64{}, deleted: map[string]map[int64]bool{}}

	f1 := d.writeFile("f1", idRange(0, 3000)...)
	f2 := d.writeFile("f2", idRange(10_000, 12_000)...)
	_, err = d.tbl.CreateCommit(ctx, committer.Metadata{Name: "orders_current", Schema: d.schema}, committer.Commit{Adds: []committer.Add{f1, f2}})
	require.NoError(t, err)
	// Version 1: scattered rows of f1 and every seventh row of f2.
	d.commit(committer.Commit{Operation: committer.OpDelete, Deletes: []committer.RowDeletion{
		d.del(f1.Path, func(p int64) bool { return p == 0 || p == 5 || p == 2999 }),
		d.del(f2.Path, func(p int64) bool { return p%7 == 3 }),
	}})
	// Version 2: a new file with rows deleted in the same commit.
	f3 := d.writeFile("f3", idRange(20_000, 20_100)...)
	d.commit(committer.Commit{Adds: []committer.Add{f3}, Deletes: []committer.RowDeletion{d.del(f3.Path, func(p int64) bool { return p < 10 })}})
	wantV2 := d.want()
	// Version 3 (checkpointed): a run of f1, and rows f1 already had
	// deleted again.
	d.commit(committer.Commit{Operation: committer.OpDelete, Deletes: []committer.RowDeletion{
		d.del(f1.Path, func(p int64) bool { return (p >= 1000 && p < 1500) || p == 5 }),
	}})
	// Versions 4 and 5: more of f2 and f3, and a file without deletions.
	d.commit(committer.Commit{Operation: committer.OpDelete, Deletes: []committer.RowDeletion{
		d.del(f2.Path, func(p int64) bool { return p >= 1990 }),
		d.del(f3.Path, func(p int64) bool { return p%2 == 1 }),
	}})
	f4 := d.writeFile("f4", idRange(30_000, 30_050)...)
	s := d.commit(committer.Commit{Adds: []committer.Add{f4}})
	require.Equal(t, int64(5), s.Version)
	for path, del := range d.deleted {
		a := s.Files[path]
		if len(del) == 0 {
			require.Nil(t, a.Deleted, path)
			continue
		}
		require.Equal(t, int64(len(del)), a.Deleted.Count, path)
		rows, err := d.tbl.DeletedRows(ctx, a)
		require.NoError(t, err)
		require.Len(t, rows, len(del), path)
	}
	want := d.want()

	tableDir := filepath.Join(dir, testRoot)
	read := func(t *testing.T, python string, args ...string) map[string]json.RawMessage {
		t.Helper()
		out := runReader(t, python, "read_dv.py", append([]string{tableDir}, args...)...)
		var got map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(out, &got), "output: %s", out)
		return got
	}
	check := func(t *testing.T, want []int64, args ...string) {
		got := read(t, python, args...)
		for _, reader := range []string{"duckdb", "deltars", "polars"} {
			var ids []int64
			require.NoError(t, json.Unmarshal(got[reader], &ids), "%s: %s", reader, got[reader])
			require.Equal(t, want, ids, reader)
		}
		// delta-rs' pyarrow reader refuses the table; should it ever read
		// it, it must read the rows left.
		var refused struct{ Refused string }
		if json.Unmarshal(got["deltars_pyarrow"], &refused) == nil && refused.Refused != "" {
			require.Contains(t, refused.Refused, "deletionVectors")
		} else {
			var ids []int64
			require.NoError(t, json.Unmarshal(got["deltars_pyarrow"], &ids), "deltars_pyarrow: %s", got["deltars_pyarrow"])
			require.Equal(t, want, ids, "delta-rs to_pyarrow_table")
		}
	}
	t.Run("latest", func(t *testing.T) { check(t, want) })
	t.Run("version 2", func(t *testing.T) { check(t, wantV2, "2") })
	// Without the commits before the checkpoint of version 3, readers get
	// the vectors of that version from the checkpoint.
	for v := int64(0); v < 3; v++ {
		require.NoError(t, os.Remove(filepath.Join(tableDir, "_delta_log", commitName(v))))
	}
	t.Run("from checkpoint", func(t *testing.T) { check(t, want) })
	// Spark, which takes minutes to start, reads the checkpoint and the
	// commits after it.
	if spark := os.Getenv("SINK_TEST_SPARK"); spark != "" {
		t.Run("spark from checkpoint", func(t *testing.T) {
			var ids []int64
			got := read(t, spark, "--spark")
			require.NoError(t, json.Unmarshal(got["spark"], &ids), "spark: %s", got["spark"])
			require.Equal(t, want, ids)
		})
	}
	s2, err := Open(b, testRoot, opts).Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, exportedState(s), exportedState(s2))
}
