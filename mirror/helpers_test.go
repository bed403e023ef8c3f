package mirror

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/parquetblock"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/internal/leaktest"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/tablefile"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

const (
	logRoot    = "db/users"
	mirrorRoot = "db/users_current"
)

// fixture is a change log written as the sink writes it (real Parquet
// blocks, txn-fenced commits, the primary key in its metadata) and its
// mirror table.
type fixture struct {
	t      testing.TB
	ctx    context.Context
	b      objstore.Bucket
	format *delta.Format
	log    committer.Table
	mirror committer.Table
	schema *codec.Schema
	// next is the next Kafka offset of each partition.
	next map[int32]int64
	// key is the change log's primary key, "" for none.
	key string
}

func newFixture(t testing.TB, b objstore.Bucket) *fixture {
	if b == nil {
		b = objstore.NewMemory()
	}
	schema := codec.NewSchema()
	schema.SetKafkaColumns(true)
	require.NoError(t, schema.AddColumn(codec.Column{Name: "id", Type: codec.Type{Kind: codec.TypeLong}, Nullable: true}))
	require.NoError(t, schema.AddColumn(codec.Column{Name: "name", Type: codec.Type{Kind: codec.TypeString}, Nullable: true}))
	f := &fixture{t: t, ctx: context.Background(), b: b, schema: schema, next: map[int32]int64{}, key: "id"}
	f.format = delta.NewFormat(b, delta.Options{MaxCommitAttempts: 5, RetryInitialInterval: time.Millisecond, RetryMaxInterval: 5 * time.Millisecond, CheckpointInterval: 1000})
	f.log = f.format.Open(logRoot, committer.Options{Instance: "sink"})
	f.mirror = f.openMirror("m")
	return f
}

func (f *fixture) openMirror(instance string) committer.Table {
	return f.format.Open(mirrorRoot, committer.Options{Instance: instance, DeleteRows: true})
}

// change builds a change of key id at lsn from partition 0; name nil for
// a null name.
func change(op codec.Op, id int64, lsn uint64, name string) codec.Change {
	return codec.Change{Topic: "cdc", Table: "users", Op: op, LSN: lsn, TS: 1_700_000_000_000 + int64(lsn),
		Row: []codec.Field{{Name: "id", Value: codec.Int(id)}, {Name: "name", Value: codec.String(name)}}}
}

func onPartition(p int32, ch codec.Change) codec.Change {
	ch.Partition = p
	return ch
}

// commit appends changes as one block, in the given order, each at the
// next offset of its partition, with the txn of every partition, as a
// sink flush does; it creates the change log on its first commit.
func (f *fixture) commit(changes ...codec.Change) {
	f.t.Helper()
	ranges := map[int32][2]int64{}
	for i := range changes {
		p := changes[i].Partition
		o := f.next[p]
		f.next[p] = o + 1
		changes[i].Offset = o
		r, ok := ranges[p]
		if !ok {
			r[0] = o
		}
		r[1] = o
		ranges[p] = r
		_, err := f.schema.Accept(&changes[i])
		require.NoError(f.t, err)
	}
	w, err := tablefile.WriteBlock(f.ctx, f.b, logRoot, tablefile.Block{
		Schema:     f.schema.Clone(),
		Changes:    changes,
		Encode:     parquetblock.EncodeOptions{KafkaColumns: true},
		Name:       func(codec.BlockStats, int) string { return "data/" + newID() + ".parquet" },
		DataChange: true,
	})
	require.NoError(f.t, err)
	c := committer.Commit{Operation: committer.OpStreamingUpdate, Adds: []committer.Add{w.Add}, ReadVersion: -1}
	for _, p := range slices.Sorted(maps.Keys(ranges)) {
		c.Txns = append(c.Txns, committer.TxnCondition{AppID: fmt.Sprintf("g-cdc-%d", p), FirstOffset: ranges[p][0], LastOffset: ranges[p][1]})
	}
	snap, err := f.log.Snapshot(f.ctx)
	if err != nil {
		md := committer.Metadata{Name: "users", Schema: f.schema.Clone()}
		if f.key != "" {
			md.Configuration = map[string]string{PrimaryKeyConfig: f.key}
		}
		_, err = committer.CreateCommit(f.ctx, f.log, md, c)
		require.NoError(f.t, err)
		return
	}
	if !f.schema.Equal(snap.Metadata.Schema) {
		md, err := tablefile.SchemaMetadata(snap, f.schema.Clone())
		require.NoError(f.t, err)
		c.Metadata = md
		c.ReadVersion = snap.Version
	}
	_, err = f.log.Commit(f.ctx, c)
	require.NoError(f.t, err)
}

func (f *fixture) maintainer(opts Options) *Maintainer {
	f.t.Helper()
	m, err := New(f.b, f.log, f.mirror, opts)
	require.NoError(f.t, err)
	return m
}

// sync steps m until the mirror holds the change log's latest version,
// and returns the results of the steps.
func (f *fixture) sync(m *Maintainer) []StepResult {
	f.t.Helper()
	var out []StepResult
	for range 100 {
		res, err := m.Step(f.ctx)
		require.NoError(f.t, err)
		out = append(out, res)
		if res.To == res.ChangeLogVersion && !res.Conflict {
			return out
		}
	}
	f.t.Fatalf("mirror did not catch up in 100 steps: %+v", out[len(out)-1])
	return nil
}

// check runs the checker and requires the mirror to equal the view.
func (f *fixture) check() *Report {
	f.t.Helper()
	r, err := Check(f.ctx, f.b, f.log, f.openMirror("checker"), nil)
	require.NoError(f.t, err)
	require.True(f.t, r.OK(), r.String())
	return r
}

// visible reads the mirror as a reader does, applying its deletion
// vectors, keyed by id (which it requires unique).
func (f *fixture) visible() map[int64]codec.Change {
	f.t.Helper()
	tbl := f.openMirror("reader")
	snap, err := tbl.Snapshot(f.ctx)
	require.NoError(f.t, err)
	out := map[int64]codec.Change{}
	for path, a := range snap.Files {
		deleted, err := tbl.(committer.RowDeleter).DeletedRows(f.ctx, a)
		require.NoError(f.t, err)
		_, rows, err := tablefile.ReadFile(f.ctx, f.b, mirrorRoot, path)
		require.NoError(f.t, err)
		for i, ch := range rows {
			if slices.Contains(deleted, int64(i)) {
				continue
			}
			id := fieldValue(ch.Row, "id").Int()
			_, dup := out[id]
			require.False(f.t, dup, "id %d is visible twice", id)
			out[id] = ch
		}
	}
	return out
}

// names returns id → name of the visible rows.
func (f *fixture) names() map[int64]string {
	out := map[int64]string{}
	for id, ch := range f.visible() {
		out[id] = fieldValue(ch.Row, "name").Str()
	}
	return out
}

func (f *fixture) mirrorSnapshot() *committer.Snapshot {
	f.t.Helper()
	s, err := f.openMirror("reader").Snapshot(f.ctx)
	require.NoError(f.t, err)
	return s
}

func mustLog(f *fixture) *committer.Snapshot {
	f.t.Helper()
	s, err := f.log.Snapshot(f.ctx)
	require.NoError(f.t, err)
	return s
}

func committerOptions(instance string) committer.Options {
	return committer.Options{Instance: instance}
}
