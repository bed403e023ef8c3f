package compaction

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/internal/tabletest"
	"github.com/evodb/sink/objstore"
)

// TestCompactTableAnotherWriterAppendedTo compacts a table after another
// Delta writer appended to it, as a Spark or Python job appending to a
// sink's table does. The foreign file has the table's columns, _lsn
// statistics included, but none of the sink's tags or Parquet metadata:
// compaction merges the sink's blocks around it, leaves it active, and
// every row, the appended ones too, stays readable.
//
// The delta-rs writer (write_deltalake(mode="append")) runs when
// SINK_TEST_PYTHON names a Python with the deltalake package; the Spark
// writer (Delta Lake on Spark, timestamps as INT96) when SINK_TEST_SPARK
// names a Python with pyspark and delta-spark whose Delta jars Spark can
// resolve. Spark takes minutes to start on a small machine, hence its own
// switch.
func TestCompactTableAnotherWriterAppendedTo(t *testing.T) {
	spark := func(t testing.TB, python, dir string, rows int, base int64) {
		runPython(t, python, "append_spark.py", dir, strconv.Itoa(rows), strconv.FormatInt(base, 10))
	}
	for _, w := range []struct {
		name, env  string
		appendRows func(t testing.TB, python, dir string, rows int, base int64)
	}{
		{"delta-rs", "SINK_TEST_PYTHON", tabletest.AppendDeltaRS},
		{"spark", "SINK_TEST_SPARK", spark},
	} {
		t.Run(w.name, func(t *testing.T) {
			python := os.Getenv(w.env)
			if python == "" {
				t.Skip(w.env + " is not set")
			}
			// Reading the result back takes delta-rs.
			reader := os.Getenv("SINK_TEST_PYTHON")
			if reader == "" {
				reader = python
			}
			compactForeign(t, python, w.appendRows, reader)
		})
	}
}

// compactForeign builds a table, has another writer append to it, compacts
// it and reads it back with delta-rs.
func compactForeign(t *testing.T, python string, appendRows func(t testing.TB, python, dir string, rows int, base int64), reader string) {
	ctx := testContext(t)
	dir := t.TempDir()
	b, err := objstore.NewFilesystem(dir)
	require.NoError(t, err)
	f := newFixture(t, b, "users")
	bigBlocks(t, ctx, f, 5, 5, 5, 5)
	const appended, base = 7, 1_000_000
	appendRows(t, python, filepath.Join(dir, f.path), appended, base)
	// The other writer may take minutes (Spark): the rest gets a fresh
	// deadline.
	ctx = testContext(t)
	bigBlocks(t, ctx, f, 5, 5, 5, 5)

	snap, err := f.table.Snapshot(ctx)
	require.NoError(t, err)
	var foreign []string
	for p := range snap.Files {
		if !strings.HasPrefix(p, "data/") {
			foreign = append(foreign, p)
		}
	}
	require.Len(t, foreign, 1, "the other writer wrote one file: %v", foreign)

	res, err := NewScheduler(b, tables(b), Config{}).CompactOnce(ctx, TableRef{Path: f.path, Mode: testMode})
	require.NoError(t, err)
	require.Positive(t, res.Jobs)
	snap, err = f.table.Update(ctx, snap)
	require.NoError(t, err)
	require.Contains(t, snap.Files, foreign[0], "the foreign file is left as it is")
	require.Empty(t, Plan(snap, testMode, PlanOptions{}), "compacted to a fixpoint")

	var got struct {
		Offsets []int64 `json:"offsets"`
	}
	out := runPython(t, reader, "read_delta.py", filepath.Join(dir, f.path))
	require.NoError(t, json.Unmarshal(out, &got), "output: %s", out)
	var want []int64
	for o := int64(1); o < f.next; o++ {
		want = append(want, o)
	}
	for i := range int64(appended) {
		want = append(want, base+i)
	}
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	require.Equal(t, want, got.Offsets)
}

// runPython runs a script from testdata and returns its standard output.
func runPython(t testing.TB, python, script string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(python, append([]string{filepath.Join("testdata", script)}, args...)...)
	out, err := cmd.Output()
	var stderr string
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = string(ee.Stderr)
	}
	require.NoError(t, err, "%s: %s", script, stderr)
	return out
}
