package compaction

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/parquetblock"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/partitioner"
	"github.com/evodb/sink/tablefile"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testMode has small sizes so that real blocks of a few kilobytes exercise
// every tier.
var testMode = partitioner.Mode{Name: "test", BlockSize: 4 << 10, PartitionMax: 48 << 10, MaxMergeInputs: 8}

// fastOptions makes commits give up quickly in fault tests.
func fastOptions() delta.Options {
	return delta.Options{MaxCommitAttempts: 3, RetryInitialInterval: time.Millisecond, RetryMaxInterval: 5 * time.Millisecond}
}

// fixture is a table with a writer that appends real blocks the way the
// sink does: LSN-ordered rows, create-only upload, tags, txn conditions.
type fixture struct {
	t     testing.TB
	b     objstore.Bucket
	path  string
	table committer.Table

	mu     sync.Mutex
	next   int64 // next offset and LSN
	schema *codec.Schema
}

func newFixture(t testing.TB, b objstore.Bucket, path string) *fixture {
	f := &fixture{t: t, b: b, path: path, table: delta.Open(b, path, fastOptions()), next: 1, schema: codec.NewSchema()}
	f.schema.SetKafkaColumns(true)
	return f
}

// row builds the change at offset (and LSN) o with extra columns.
func row(o int64, extra ...codec.Field) codec.Change {
	fields := append([]codec.Field{
		{Name: "id", Value: codec.Int(o)},
		{Name: "name", Value: codec.String("user-" + strconv.FormatInt(o, 10))},
	}, extra...)
	return codec.Change{Topic: "cdc", Partition: int32(o % 3), Offset: o, Table: "users", Op: codec.OpInsert,
		LSN: uint64(o), TS: 1_700_000_000_000 + o, Row: fields}
}

// appendBlock commits a block of n rows (built by mk from their offsets)
// and returns its add action. The table schema is widened in the same
// commit unless narrow is set, which lets tests build tables whose schema
// lags their files.
func (f *fixture) appendBlock(ctx context.Context, n int, mk func(o int64) codec.Change) (committer.Add, error) {
	f.mu.Lock()
	first := f.next
	f.next += int64(n)
	changes := make([]codec.Change, n)
	schema := f.schema
	for i := range changes {
		changes[i] = mk(first + int64(i))
		if _, err := schema.Accept(&changes[i]); err != nil {
			f.mu.Unlock()
			return committer.Add{}, err
		}
	}
	schema = schema.Clone()
	f.mu.Unlock()

	sources := []partitioner.SourceRange{{Topic: "cdc", Partition: 0, FirstOffset: first, LastOffset: first + int64(n) - 1}}
	w, err := tablefile.WriteBlock(ctx, f.b, f.path, tablefile.Block{
		Schema:  schema,
		Changes: changes,
		Encode:  parquetblock.EncodeOptions{RowGroupBytes: testMode.BlockSize, KafkaColumns: true},
		Name: func(stats codec.BlockStats, _ int) string {
			return partitioner.DataFileKey(partitioner.BlockID{FirstLSN: stats.MinLSN, LastLSN: stats.MaxLSN, Sources: sources})
		},
		Sources:    tablefile.FormatSources(sources),
		DataChange: true,
	})
	if err != nil {
		return committer.Add{}, err
	}
	add := w.Add
	if _, err := f.table.Create(ctx, committer.Metadata{Name: "users", Schema: schema}); err != nil {
		return committer.Add{}, err
	}
	for {
		snap, err := f.table.Snapshot(ctx)
		if err != nil {
			return committer.Add{}, err
		}
		c := committer.Commit{
			Operation:   committer.OpStreamingUpdate,
			Adds:        []committer.Add{add},
			Txns:        []committer.TxnCondition{{AppID: "cdc-0", FirstOffset: first, LastOffset: first + int64(n) - 1}},
			ReadVersion: snap.Version,
		}
		if !schema.Equal(snap.Metadata.Schema) {
			theirs := snap.Metadata.Schema.Clone()
			if err := theirs.Merge(schema); err != nil {
				return committer.Add{}, err
			}
			if !theirs.Equal(snap.Metadata.Schema) {
				md := snap.Metadata
				md.Schema = theirs
				c.Metadata = &md
			}
		}
		_, err = f.table.Commit(ctx, c)
		if errors.Is(err, committer.ErrMetadataChanged) {
			continue // a compaction widened the schema meanwhile
		}
		if err != nil {
			return committer.Add{}, err
		}
		return add, nil
	}
}

// mustAppend appends blocks of the given sizes (rows) of plain rows.
func (f *fixture) mustAppend(ctx context.Context, sizes ...int) {
	f.t.Helper()
	for _, n := range sizes {
		_, err := f.appendBlock(ctx, n, func(o int64) codec.Change { return row(o) })
		require.NoError(f.t, err)
	}
}

// readRows reads every row of the table's active files, keyed by offset,
// failing on a duplicate offset. It also checks each file's rows are in
// _lsn order and that its stats count them.
func readRows(t testing.TB, ctx context.Context, b objstore.Bucket, path string) (map[int64]codec.Change, *committer.Snapshot) {
	t.Helper()
	snap, err := delta.Open(b, path, delta.Options{}).Snapshot(ctx)
	require.NoError(t, err)
	out := map[int64]codec.Change{}
	for _, a := range snap.Files {
		_, changes, err := tablefile.ReadFile(ctx, b, path, a.Path)
		require.NoError(t, err)
		for i, ch := range changes {
			if i > 0 {
				require.LessOrEqual(t, changes[i-1].LSN, ch.LSN, "file %s is not in _lsn order", a.Path)
			}
			_, dup := out[ch.Offset]
			require.False(t, dup, "offset %d appears twice (file %s)", ch.Offset, a.Path)
			out[ch.Offset] = ch
		}
		require.Equal(t, int64(len(changes)), a.Rows(), "row count of %s", a.Path)
	}
	return out, snap
}

// mustJSON returns the JSON of one field of a JSON object.
func mustJSON(t testing.TB, text, field string) string {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(text), &m))
	return string(m[field])
}

// tables is the Delta format over b, as cmd/sink wires it.
func tables(b objstore.Bucket) committer.Format { return delta.NewFormat(b, delta.Options{}) }
