package tabletest

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/objstore"
)

//go:embed testdata/append_foreign.py
var appendForeignPy []byte

// Python returns the Python that SINK_TEST_PYTHON names, one with the
// deltalake package, and skips the test when it is not set.
func Python(t testing.TB) string {
	t.Helper()
	python := os.Getenv("SINK_TEST_PYTHON")
	if python == "" {
		t.Skip("SINK_TEST_PYTHON is not set")
	}
	return python
}

// AppendDeltaRS appends rows to the Delta table in the directory dir the
// way another writer does: delta-rs write_deltalake(mode="append"), run
// by python (a Python with the deltalake package). It copies the table's
// first rows and gives them _offset values from base up, in one data file
// with neither the sink's tags nor its Parquet metadata.
func AppendDeltaRS(t testing.TB, python, dir string, rows int, base int64) {
	t.Helper()
	script := filepath.Join(t.TempDir(), "append_foreign.py")
	require.NoError(t, os.WriteFile(script, appendForeignPy, 0o644))
	cmd := exec.Command(python, script, dir, strconv.Itoa(rows), strconv.FormatInt(base, 10))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "append_foreign.py: %s", out)
}

// foreignRow is a row of a file another writer appended.
type foreignRow struct {
	ID   int64  `parquet:"id"`
	Name string `parquet:"name"`
	LSN  int64  `parquet:"_lsn"`
}

// AppendForeign commits to the table at root in b a data file another
// Delta writer could have written: plain Parquet with an id, a name and an
// _lsn column and Delta stats, named the way Spark and delta-rs name
// files, without the sink's tags or Parquet metadata. It returns the
// file's path.
func AppendForeign(t testing.TB, ctx context.Context, b objstore.Bucket, root string, rows int) string {
	t.Helper()
	data := make([]foreignRow, rows)
	for i := range data {
		data[i] = foreignRow{ID: int64(i), Name: "foreign-" + strconv.Itoa(i), LSN: int64(i)}
	}
	var buf bytes.Buffer
	require.NoError(t, parquet.Write(&buf, data))
	path := "part-00000-7c3e1f2a-9d4b-4f0e-8a61-0c5d2b9e4f11-c000.snappy.parquet"
	key := path
	if root != "" {
		key = root + "/" + path
	}
	_, err := b.Put(ctx, key, bytes.NewReader(buf.Bytes()), int64(buf.Len()), objstore.PutOptions{IfNoneMatch: true})
	require.NoError(t, err)
	stats := fmt.Sprintf(`{"numRecords":%d,"minValues":{"id":0,"_lsn":0},"maxValues":{"id":%d,"_lsn":%d},"nullCount":{"id":0,"name":0,"_lsn":0}}`,
		rows, rows-1, rows-1)
	_, err = delta.Open(b, root, delta.Options{}).Commit(ctx, committer.Commit{
		Operation:   committer.OpWrite,
		ReadVersion: -1,
		Adds:        []committer.Add{{Path: path, Size: int64(buf.Len()), DataChange: true, Sys: delta.RawStats(stats)}},
	})
	require.NoError(t, err)
	return path
}
