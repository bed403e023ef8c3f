package delta

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

type testRow struct {
	ID   int64  `parquet:"id"`
	Name string `parquet:"name"`
}

// putDataFile uploads rows as a Parquet data file of the table and returns
// its add action with Delta stats.
func putDataFile(t *testing.T, b objstore.Bucket, path string, rows []testRow) committer.Add {
	t.Helper()
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[testRow](&buf)
	_, err := w.Write(rows)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	_, err = b.Put(context.Background(), testRoot+"/"+path, bytes.NewReader(buf.Bytes()), int64(buf.Len()), objstore.PutOptions{IfNoneMatch: true})
	require.NoError(t, err)
	minID, maxID := rows[0].ID, rows[0].ID
	for _, r := range rows {
		minID, maxID = min(minID, r.ID), max(maxID, r.ID)
	}
	stats := fmt.Sprintf(`{"numRecords":%d,"minValues":{"id":%d},"maxValues":{"id":%d},"nullCount":{"id":0,"name":0}}`,
		len(rows), minID, maxID)
	return committer.Add{Path: path, Size: int64(buf.Len()), DataChange: true, Sys: RawStats(stats),
		Tags: map[string]string{"evodb.level": "0", "evodb.firstLsn": fmt.Sprint(minID), "evodb.lastLsn": fmt.Sprint(maxID)}}
}

type deltaView struct {
	Version    int64             `json:"version"`
	Rows       [][2]any          `json:"rows"`
	Files      []string          `json:"files"`
	NumRecords int64             `json:"numRecords"`
	Txns       map[string]*int64 `json:"txns"`
	Protocol   []int             `json:"protocol"`
	Schema     []string          `json:"schema"`
}

func readWithDeltaRS(t *testing.T, python, tableDir string, apps ...string) deltaView {
	t.Helper()
	out := runReader(t, python, "check_delta.py", append([]string{tableDir}, apps...)...)
	var v deltaView
	require.NoError(t, json.Unmarshal(out, &v), "output: %s", out)
	return v
}

// runReader runs the reader script testdata/script with python and
// returns what it printed; the script failing fails the test with its
// standard error.
func runReader(t *testing.T, python, script string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(python, append([]string{filepath.Join("testdata", script)}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s could not read the table: %s", script, stderr.String())
	return out
}

// TestDeltaRSReadsTable proves that an independent Delta reader (delta-rs)
// reads what the committer writes, from the JSON commits and from a
// checkpoint. It runs when SINK_TEST_PYTHON names a Python with the
// deltalake package.
func TestDeltaRSReadsTable(t *testing.T) {
	python := os.Getenv("SINK_TEST_PYTHON")
	if python == "" {
		t.Skip("SINK_TEST_PYTHON is not set")
	}
	ctx := context.Background()
	dir := t.TempDir()
	b, err := objstore.NewFilesystem(dir)
	require.NoError(t, err)
	tbl := createTable(t, b)

	var want [][2]any
	nextID := int64(1)
	offsets := map[string]int64{testAppID: -1, testAppID2: -1}
	const commits = 13
	for i := range commits {
		if i == 6 {
			// Compact the first two blocks into one file.
			s, err := tbl.Snapshot(ctx)
			require.NoError(t, err)
			var rows []testRow
			for _, p := range []string{"data/block-000.parquet", "data/block-001.parquet"} {
				rows = append(rows, readDataFile(t, b, p)...)
			}
			add := putDataFile(t, b, "data/compact-000-001.parquet", rows)
			add.DataChange = false
			add.Tags["evodb.level"] = "1"
			_, err = tbl.Commit(ctx, committer.Commit{Operation: committer.OpOptimize, ReadVersion: s.Version,
				Removes: []committer.Remove{{Path: "data/block-000.parquet"}, {Path: "data/block-001.parquet"}},
				Adds:    []committer.Add{add}})
			require.NoError(t, err)
			continue
		}
		var rows []testRow
		for range 3 {
			name := fmt.Sprintf("name-%d", nextID)
			rows = append(rows, testRow{ID: nextID, Name: name})
			want = append(want, [2]any{float64(nextID), name})
			nextID++
		}
		app := []string{testAppID, testAppID2}[i%2]
		first := offsets[app] + 1
		offsets[app] = first + 9
		c := appendCommit("", app, first, first+9)
		c.Adds = []committer.Add{putDataFile(t, b, fmt.Sprintf("data/block-%03d.parquet", i), rows)}
		_, err := tbl.Commit(ctx, c)
		require.NoError(t, err)
	}
	sort.Slice(want, func(i, j int) bool { return want[i][0].(float64) < want[j][0].(float64) })

	s, err := Open(b, testRoot, Options{}).Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(commits), s.Version)
	require.Equal(t, exportedState(replay(t, b)), exportedState(s), "snapshot from the checkpoint equals replay")

	tableDir := filepath.Join(dir, testRoot)
	check := func(t *testing.T) {
		got := readWithDeltaRS(t, python, tableDir, testAppID, testAppID2, "unknown-app")
		require.Equal(t, int64(commits), got.Version)
		require.Equal(t, want, got.Rows)
		require.Equal(t, int64(len(want)), got.NumRecords)
		require.Len(t, got.Files, len(s.Files))
		require.Equal(t, offsets[testAppID], *got.Txns[testAppID])
		require.Equal(t, offsets[testAppID2], *got.Txns[testAppID2])
		require.Nil(t, got.Txns["unknown-app"])
		require.Equal(t, []int{1, 2}, got.Protocol)
		require.Equal(t, []string{"_op", "_lsn", "_ts", "id", "name"}, got.Schema, "the metadata columns first")
	}
	t.Run("from commits and checkpoint", check)
	// Without the commits before the checkpoint, a reader can only get the
	// table's state from the checkpoint.
	for v := int64(0); v < 10; v++ {
		require.NoError(t, os.Remove(filepath.Join(tableDir, "_delta_log", commitName(v))))
	}
	t.Run("from checkpoint only", check)
}

func readDataFile(t *testing.T, b objstore.Bucket, path string) []testRow {
	t.Helper()
	data, err := Open(b, testRoot, Options{}).readObject(context.Background(), testRoot+"/"+path)
	require.NoError(t, err)
	rows, err := parquet.Read[testRow](bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	return rows
}

// TestReadsDeltaRSCheckpoint proves the committer reads a checkpoint another
// engine (delta-rs) wrote into one of its tables, with the same result as
// replaying the JSON commits.
func TestReadsDeltaRSCheckpoint(t *testing.T) {
	python := os.Getenv("SINK_TEST_PYTHON")
	if python == "" {
		t.Skip("SINK_TEST_PYTHON is not set")
	}
	ctx := context.Background()
	dir := t.TempDir()
	b, err := objstore.NewFilesystem(dir)
	require.NoError(t, err)
	tbl := createTable(t, b)
	for i := range 3 {
		c := appendCommit("", testAppID, int64(i*10), int64(i*10+9))
		c.Adds = []committer.Add{putDataFile(t, b, fmt.Sprintf("data/block-%03d.parquet", i), []testRow{{ID: int64(i), Name: "x"}})}
		_, err := tbl.Commit(ctx, c)
		require.NoError(t, err)
	}
	tableDir := filepath.Join(dir, testRoot)
	out, err := exec.Command(python, "-c",
		"import os, sys; from deltalake import DeltaTable; DeltaTable(sys.argv[1]).create_checkpoint(); sys.stdout.flush(); os._exit(0)", tableDir).CombinedOutput()
	require.NoError(t, err, "delta-rs create_checkpoint: %s", out)

	cp, err := tbl.readCheckpoint(ctx, 3)
	require.NoError(t, err)
	require.Equal(t, exportedState(replay(t, b)), exportedState(cp))
	s, err := Open(b, testRoot, Options{}).Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(3), s.Version)
}
