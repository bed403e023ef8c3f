package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/parquetblock"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/partitioner"
	"github.com/evodb/sink/tablefile"
)

// writeSmallTable commits n blocks of a few rows to table "users" the way
// the sink does, in the do-sqlite mode.
func writeSmallTable(t *testing.T, ctx context.Context, b objstore.Bucket, n int) {
	t.Helper()
	schema := codec.NewSchema()
	schema.SetKafkaColumns(true)
	table := delta.Open(b, "users", delta.Options{})
	for blk := range n {
		var changes []codec.Change
		for i := range 5 {
			o := int64(blk*5 + i + 1)
			ch := codec.Change{Topic: "cdc", Offset: o, Table: "users", Op: codec.OpInsert, LSN: uint64(o), TS: o,
				Row: []codec.Field{{Name: "id", Value: codec.Int(o)}}}
			_, err := schema.Accept(&ch)
			require.NoError(t, err)
			changes = append(changes, ch)
		}
		sources := []partitioner.SourceRange{{Topic: "cdc", FirstOffset: changes[0].Offset, LastOffset: changes[len(changes)-1].Offset}}
		w, err := tablefile.WriteBlock(ctx, b, "users", tablefile.Block{
			Schema:  schema,
			Changes: changes,
			Encode:  parquetblock.EncodeOptions{KafkaColumns: true},
			Name: func(stats codec.BlockStats, _ int) string {
				return partitioner.DataFileKey(partitioner.BlockID{FirstLSN: stats.MinLSN, LastLSN: stats.MaxLSN, Sources: sources})
			},
			Sources:    tablefile.FormatSources(sources),
			DataChange: true,
		})
		require.NoError(t, err)
		_, err = table.Create(ctx, committer.Metadata{Name: "users", Schema: schema,
			Configuration: map[string]string{partitioner.ModeConfigKey: partitioner.ModeDOSQLite}})
		require.NoError(t, err)
		_, err = table.Commit(ctx, committer.Commit{ReadVersion: -1, Adds: []committer.Add{w.Add}})
		require.NoError(t, err)
	}
}

func TestCompactAndVacuumCommands(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	require.NoError(t, os.MkdirAll(store, 0o755))
	b, err := objstore.NewFilesystem(store)
	require.NoError(t, err)
	writeSmallTable(t, ctx, b, 6)
	cfgPath := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(
		"kafka: {brokers: [127.0.0.1:9092], topics: [cdc]}\nstore: {url: %q}\ncompaction: {min_inputs: 4}\n", "file://"+store)), 0o644))

	e, out, errOut := testEnv(nil)
	code := runMain(ctx, e, []string{"compact", "-c", cfgPath})
	require.Equal(t, 0, code, "stderr: %s", errOut)
	require.Contains(t, out.String(), "table users: files 6 -> 1")

	s, err := summarize(ctx, delta.NewFormat(b, delta.Options{}), "users")
	require.NoError(t, err)
	require.Equal(t, int64(30), s.Rows)
	require.Len(t, s.Files, 1)

	// An orphan written long ago, and the removed inputs (removed just now).
	_, err = b.Put(ctx, "users/data/orphan.parquet", bytes.NewReader([]byte("x")), 1, objstore.PutOptions{})
	require.NoError(t, err)
	old := time.Now().Add(-30 * 24 * time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(store, "users", "data", "orphan.parquet"), old, old))

	e, out, errOut = testEnv(nil)
	code = runMain(ctx, e, []string{"vacuum", "-c", cfgPath, "-dry-run", "-log", "users"})
	require.Equal(t, 0, code, "stderr: %s", errOut)
	require.Contains(t, out.String(), "would delete users/data/orphan.parquet (not in the log)")
	require.Contains(t, out.String(), "would delete 1 files")
	_, err = b.Head(ctx, "users/data/orphan.parquet")
	require.NoError(t, err)

	e, out, errOut = testEnv(nil)
	code = runMain(ctx, e, []string{"vacuum", "-c", cfgPath, "-retention", "24h"})
	require.Equal(t, 0, code, "stderr: %s", errOut)
	require.Contains(t, out.String(), "deleted 1 files")
	_, err = b.Head(ctx, "users/data/orphan.parquet")
	require.ErrorIs(t, err, objstore.ErrNotExist)
	s, err = summarize(ctx, delta.NewFormat(b, delta.Options{}), "users")
	require.NoError(t, err)
	require.Equal(t, int64(30), s.Rows)

	// A retention under the minimum is refused, 0s too: it does not mean
	// the default.
	for r, shown := range map[string]string{"1m": "1m0s", "30m": "30m0s", "0s": "0s"} {
		e, _, errOut = testEnv(nil)
		require.Equal(t, 2, runMain(ctx, e, []string{"vacuum", "-c", cfgPath, "-retention", r}), "-retention %s", r)
		require.Contains(t, errOut.String(), "-retention "+shown+" is under the 1h minimum")
	}
	e, _, errOut = testEnv(nil)
	require.Equal(t, 0, runMain(ctx, e, []string{"vacuum", "-h"}))
	require.Contains(t, errOut.String(), "at least 1h")
	// A table that is not there is named once, with the ones that are.
	for _, cmd := range []string{"compact", "vacuum"} {
		e, _, errOut = testEnv(nil)
		require.Equal(t, 1, runMain(ctx, e, []string{cmd, "-c", cfgPath, "orders"}))
		require.Equal(t, "sink "+cmd+": no table \"orders\"; the store holds: users\n", errOut.String())
	}
	e, _, errOut = testEnv(nil)
	require.Equal(t, 2, runMain(ctx, e, []string{"compact", "-c", cfgPath, "a", "b"}))
	require.Contains(t, errOut.String(), "at most one table")

	// With log.format json the error compact stops with is a JSON line.
	jsonCfg := filepath.Join(dir, "json.yaml")
	require.NoError(t, os.WriteFile(jsonCfg, []byte(fmt.Sprintf(
		"kafka: {brokers: [127.0.0.1:9092], topics: [cdc]}\nstore: {url: %q}\nlog: {format: json}\n", "file://"+store)), 0o644))
	e, _, errOut = testEnv(nil)
	require.Equal(t, 1, runMain(ctx, e, []string{"compact", "-c", jsonCfg, "nope"}))
	msgs := jsonMessages(t, errOut.String())
	require.Equal(t, "exiting with an error", msgs[len(msgs)-1], errOut.String())
}
