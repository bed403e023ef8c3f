package mirror

import (
	_ "embed"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/internal/tabletest"
	"github.com/evodb/sink/objstore"
)

//go:embed testdata/read_mirror.py
var readMirrorPy []byte

// Independent Delta readers (DuckDB's delta_scan, Polars, delta-rs's SQL
// QueryBuilder) read a mirror, deletion vectors applied, as the rows of
// the view: updates, deletes, a tombstone and a compaction included. It
// runs when SINK_TEST_PYTHON names a Python with duckdb, the DuckDB delta
// extension, polars and deltalake.
func TestMirrorReaders(t *testing.T) {
	python := tabletest.Python(t)
	dir := t.TempDir()
	b, err := objstore.NewFilesystem(dir)
	require.NoError(t, err)
	f := newFixture(t, b)
	m := f.maintainer(Options{MaxFiles: 3, MaxDeletedFraction: 0.3})
	f.commit(change(ins, 1, 10, "a"), change(ins, 2, 11, "b"), change(ins, 3, 12, "c"), change(ins, 4, 13, "d"))
	f.sync(m)
	compacted := false
	for round := range 5 {
		lsn := uint64(100 * (round + 1))
		f.commit(change(upd, 1, lsn, "a"+string(rune('0'+round))), change(del, int64(2+round%3), lsn+1, "x"), change(ins, int64(10+round), lsn+2, "n"))
		for _, res := range f.sync(m) {
			compacted = compacted || res.Compacted
		}
	}
	require.True(t, compacted, "the readers read a compacted mirror")
	f.check()

	var want [][]any
	for _, id := range slices.Sorted(mapKeys(f.visible())) {
		ch := f.visible()[id]
		want = append(want, []any{float64(id), fieldValue(ch.Row, "name").Str(), ch.Op.String(), float64(ch.LSN), float64(ch.Offset)})
	}
	script := filepath.Join(t.TempDir(), "read_mirror.py")
	require.NoError(t, os.WriteFile(script, readMirrorPy, 0o644))
	out, err := exec.Command(python, script, filepath.Join(dir, mirrorRoot)).Output()
	require.NoError(t, err, "%s", out)
	var got map[string]any
	require.NoError(t, json.Unmarshal(out, &got), "%s", out)
	for _, reader := range []string{"duckdb", "polars", "delta-rs"} {
		rows, ok := got[reader].([]any)
		require.True(t, ok, "%s: %v", reader, got[reader])
		var have [][]any
		for _, r := range rows {
			have = append(have, r.([]any))
		}
		require.Equal(t, want, have, reader)
	}
}

func mapKeys[V any](m map[int64]V) func(func(int64) bool) {
	return func(yield func(int64) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
