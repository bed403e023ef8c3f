package delta

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

// TestCreateCommitRequests counts the store requests of a table's first
// commit: one put of version 0 holding protocol, metaData and the
// commit's actions after the look that found no table, where Create and
// Commit take two puts and a HEAD. A creator that loses version 0 loads
// the table and commits after it, or is refused when its schema is not
// the table's.
func TestCreateCommitRequests(t *testing.T) {
	ctx := context.Background()
	b := newCountingBucket(objstore.NewMemory())
	a := Open(b, testRoot, testOptions("a"))
	_, err := a.Snapshot(ctx)
	require.ErrorIs(t, err, committer.ErrNoTable)
	b.reset()
	c := appendCommit("data/a0.parquet", testAppID, 0, 9)
	c.Info = map[string]string{"group": "g1"}
	res, err := a.CreateCommit(ctx, committer.Metadata{Name: "orders", Schema: mustSchema(t, schemaV1)}, c)
	require.NoError(t, err)
	require.Equal(t, int64(0), res.Version)
	require.Equal(t, map[string]int{"put": 1}, b.calls, "version 0 only: no HEAD, no read")
	require.Empty(t, b.errs)
	require.Equal(t, exportedState(replay(t, b)), exportedState(res.Snapshot), "the snapshot is what the log holds")

	rc, err := b.Get(ctx, testRoot+"/_delta_log/"+commitName(0))
	require.NoError(t, err)
	data, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	require.Len(t, lines, 5)
	require.True(t, strings.HasPrefix(lines[0], `{"commitInfo":`))
	require.Contains(t, lines[0], `"operation":"STREAMING UPDATE"`)
	require.Contains(t, lines[0], `"evodbInfo":{"group":"g1"}`)
	require.NotContains(t, lines[0], `"readVersion"`, "version 0 read no version")
	require.Equal(t, `{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}`, lines[1])
	require.True(t, strings.HasPrefix(lines[2], `{"metaData":{"id":"`))
	require.True(t, strings.HasPrefix(lines[3], `{"txn":{"appId":"group-orders-topic-0","version":9,`))
	require.True(t, strings.HasPrefix(lines[4], `{"add":{"path":"data/a0.parquet",`))

	b.reset()
	res, err = a.Commit(ctx, appendCommit("data/a1.parquet", testAppID, 10, 19))
	require.NoError(t, err)
	require.Equal(t, int64(1), res.Version)
	require.Equal(t, map[string]int{"put": 1, "head": 1}, b.calls, "the next commit, anchored at version 0")

	t.Run("lost version 0, same schema", func(t *testing.T) {
		b.reset()
		late := Open(b, "other/table", testOptions("late"))
		_, err := late.Snapshot(ctx)
		require.ErrorIs(t, err, committer.ErrNoTable)
		_, err = Open(b, "other/table", testOptions("first")).CreateCommit(ctx,
			committer.Metadata{Schema: mustSchema(t, schemaV1)}, appendCommit("data/f.parquet", testAppID, 0, 9))
		require.NoError(t, err)
		b.reset()
		res, err := late.CreateCommit(ctx, committer.Metadata{Schema: mustSchema(t, schemaV1)}, appendCommit("data/l.parquet", testAppID2, 0, 9))
		require.NoError(t, err)
		require.Equal(t, int64(1), res.Version)
		require.Len(t, res.Snapshot.Files, 2)
		require.Equal(t, map[string]int{"put": 2, "list": 1, "get": 1, "head": 1}, b.calls,
			"the lost put, the load of version 0, the put of version 1 and its HEAD")
		require.Equal(t, map[string]int{"put 412": 1}, b.errs)
	})
	t.Run("lost version 0, another schema", func(t *testing.T) {
		b.reset()
		late := Open(b, "third/table", testOptions("late"))
		_, err := late.Snapshot(ctx)
		require.ErrorIs(t, err, committer.ErrNoTable)
		_, err = Open(b, "third/table", testOptions("first")).CreateCommit(ctx,
			committer.Metadata{Schema: mustSchema(t, schemaV2)}, appendCommit("data/f.parquet", testAppID, 0, 9))
		require.NoError(t, err)
		b.reset()
		_, err = late.CreateCommit(ctx, committer.Metadata{Schema: mustSchema(t, schemaV2b)}, appendCommit("data/l.parquet", testAppID2, 0, 9))
		require.ErrorIs(t, err, committer.ErrMetadataChanged)
		require.Equal(t, map[string]int{"put": 1, "list": 1, "get": 1}, b.calls, "the lost put and the load, nothing else")
		s, err := Open(b, "third/table", testOptions("reader")).Snapshot(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(0), s.Version)
		require.Equal(t, rendered(t, schemaV2), SchemaString(s))
	})
}

// TestCreateCommitAfterAmbiguousFailure: the put of version 0 lands and
// reports a failure. The commit is found by its id in the table loaded
// after it, not put again.
func TestCreateCommitAfterAmbiguousFailure(t *testing.T) {
	forEachBucket(t, func(t *testing.T, b objstore.Bucket) {
		ctx := context.Background()
		fb := objstore.NewFaulty(b, 1)
		fb.Add(objstore.Fault{Op: objstore.OpPut, KeySuffix: commitName(0), Nth: 1, Ambiguous: true})
		tbl := Open(fb, testRoot, testOptions("a"))
		_, err := tbl.Snapshot(ctx)
		require.ErrorIs(t, err, committer.ErrNoTable)
		res, err := tbl.CreateCommit(ctx, committer.Metadata{ID: "mine", Schema: mustSchema(t, schemaV1)}, appendCommit("data/a.parquet", testAppID, 0, 9))
		require.NoError(t, err)
		require.True(t, res.AlreadyCommitted)
		require.Equal(t, int64(0), res.Version)
		require.Equal(t, "mine", res.Snapshot.Metadata.ID)
		require.Equal(t, int64(1), fb.Calls(objstore.OpPut), "the table was found, not created twice")
		require.Len(t, readLog(t, b, testRoot), 1)

		// The table goes on from the snapshot the resolution loaded.
		next, err := tbl.Commit(ctx, appendCommit("data/b.parquet", testAppID, 10, 19))
		require.NoError(t, err)
		require.Equal(t, int64(1), next.Version)
	})
}

// TestCreateCommitRefusesRemoves: a new table holds no file to remove; the
// refusal creates no table.
func TestCreateCommitRefusesRemoves(t *testing.T) {
	ctx := context.Background()
	b := objstore.NewMemory()
	tbl := Open(b, testRoot, testOptions("a"))
	c := appendCommit("data/a.parquet", testAppID, 0, 9)
	c.Removes = []committer.Remove{{Path: "data/old.parquet"}}
	_, err := tbl.CreateCommit(ctx, committer.Metadata{Schema: mustSchema(t, schemaV1)}, c)
	require.ErrorIs(t, err, committer.ErrFileRemoved)
	_, err = Open(b, testRoot, testOptions("reader")).Snapshot(ctx)
	require.ErrorIs(t, err, committer.ErrNoTable)
}

// TestDeltaRSReadsCreateCommit: delta-rs reads a table whose version 0
// holds its first data, at version 0 and after the next commit. It runs
// when SINK_TEST_PYTHON names a Python with the deltalake package.
func TestDeltaRSReadsCreateCommit(t *testing.T) {
	python := os.Getenv("SINK_TEST_PYTHON")
	if python == "" {
		t.Skip("SINK_TEST_PYTHON is not set")
	}
	ctx := context.Background()
	dir := t.TempDir()
	b, err := objstore.NewFilesystem(dir)
	require.NoError(t, err)
	tbl := Open(b, testRoot, testOptions("a"))
	c := appendCommit("", testAppID, 0, 9)
	c.Adds = []committer.Add{putDataFile(t, b, "data/block-000.parquet", []testRow{{ID: 1, Name: "a"}, {ID: 2, Name: "b"}})}
	_, err = tbl.CreateCommit(ctx, committer.Metadata{Name: "orders", Schema: mustSchema(t, schemaV1)}, c)
	require.NoError(t, err)
	tableDir := filepath.Join(dir, testRoot)
	got := readWithDeltaRS(t, python, tableDir, testAppID)
	require.Equal(t, int64(0), got.Version)
	require.Equal(t, [][2]any{{float64(1), "a"}, {float64(2), "b"}}, got.Rows)
	require.Equal(t, int64(9), *got.Txns[testAppID])
	require.Equal(t, []int{1, 2}, got.Protocol)

	c = appendCommit("", testAppID, 10, 19)
	c.Adds = []committer.Add{putDataFile(t, b, "data/block-001.parquet", []testRow{{ID: 3, Name: "c"}})}
	_, err = tbl.Commit(ctx, c)
	require.NoError(t, err)
	got = readWithDeltaRS(t, python, tableDir, testAppID)
	require.Equal(t, int64(1), got.Version)
	require.Len(t, got.Rows, 3)
	require.Equal(t, int64(19), *got.Txns[testAppID])
	require.Equal(t, fmt.Sprint([]string{"_op", "_lsn", "_ts", "id", "name"}), fmt.Sprint(got.Schema))
}
