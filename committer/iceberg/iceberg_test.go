package iceberg

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

const testRoot = "sales/public/orders"

func kafkaSchema(t *testing.T) *codec.Schema {
	s := codec.NewSchema()
	s.SetKafkaColumns(true)
	require.NoError(t, s.AddColumn(codec.Column{Name: "id", Type: codec.Type{Kind: codec.TypeLong}}))
	require.NoError(t, s.AddColumn(codec.Column{Name: "name", Type: codec.Type{Kind: codec.TypeString}, Nullable: true}))
	return s
}

func statsAdd(path string, lsnLo, lsnHi int64) committer.Add {
	return committer.Add{
		Path: path, Size: 1000, DataChange: true,
		Stats: &codec.BlockStats{Rows: 3, Columns: map[string]codec.ColumnStats{
			codec.ColLSN: {Type: codec.Type{Kind: codec.TypeLong}, Min: codec.Int(lsnLo), Max: codec.Int(lsnHi)},
			codec.ColTS:  {Type: codec.Type{Kind: codec.TypeTimestamp}, Min: codec.Timestamp(1000), Max: codec.Timestamp(2000)},
			"id":         {Type: codec.Type{Kind: codec.TypeLong}, Min: codec.Int(7), Max: codec.Int(9)},
			"name":       {Type: codec.Type{Kind: codec.TypeString}, Min: codec.String("a"), Max: codec.String(strings.Repeat("z", 40)), NullCount: 1},
		}},
		Tags: map[string]string{"evodb.level": "0", "evodb.minLsn": "5"},
	}
}

func newTable(t *testing.T) (*testEnv, *Format, committer.Table, string) {
	env := newTestEnv(t)
	cfg, prefix := env.config(t)
	f := env.format(t, cfg)
	t.Cleanup(func() { env.dropObjects(t, prefix) })
	tbl := f.Open(testRoot, committer.Options{Instance: "test"})
	_, err := tbl.Create(context.Background(), committer.Metadata{Name: "orders", Schema: kafkaSchema(t)})
	require.NoError(t, err)
	return env, f, tbl, prefix
}

// TestColumnMetricsInManifests: a commit's column stats reach the
// manifest entries as value/null counts and Iceberg binary bounds, keyed
// by field ID, and read back from a fresh load.
func TestColumnMetricsInManifests(t *testing.T) {
	ctx := context.Background()
	_, f, tbl, _ := newTable(t)
	_, err := tbl.Commit(ctx, committer.Commit{Adds: []committer.Add{statsAdd("data/a.parquet", 100, 200)}, ReadVersion: -1})
	require.NoError(t, err)

	s, err := f.Open(testRoot, committer.Options{}).Snapshot(ctx)
	require.NoError(t, err)
	a := s.Files["data/a.parquet"]
	require.Equal(t, "5", a.Tags["evodb.minLsn"], "tags come back from the adding snapshot's summary")
	df, ok := a.Sys.(iceberg.DataFile)
	require.True(t, ok)
	is := st(s).tbl.Schema()
	field := func(name string) int {
		fl, ok := is.FindFieldByName(name)
		require.True(t, ok, name)
		return fl.ID
	}
	lsn, ts, id, name := field(codec.ColLSN), field(codec.ColTS), field("id"), field("name")
	require.Equal(t, uint64(100), binary.LittleEndian.Uint64(df.LowerBoundValues()[lsn]))
	require.Equal(t, uint64(200), binary.LittleEndian.Uint64(df.UpperBoundValues()[lsn]))
	require.Equal(t, uint64(1000*1000), binary.LittleEndian.Uint64(df.LowerBoundValues()[ts]), "timestamps are microseconds")
	require.Equal(t, uint64(7), binary.LittleEndian.Uint64(df.LowerBoundValues()[id]))
	require.Equal(t, "a", string(df.LowerBoundValues()[name]))
	_, hasUpper := df.UpperBoundValues()[name]
	require.False(t, hasUpper, "a long string has no (truncated) upper bound")
	require.Equal(t, int64(1), df.NullValueCounts()[name])
	require.Equal(t, int64(3), df.ValueCounts()[lsn])
	require.Equal(t, int64(3), df.Count())
}

// TestTxnsSurviveExpiry: every commit carries the whole txn map, so once
// expiry has dropped the snapshots that first recorded a partition's
// offset, the table still holds it and still fences.
func TestTxnsSurviveExpiry(t *testing.T) {
	ctx := context.Background()
	_, f, tbl, _ := newTable(t)
	commit := func(path, app string, first, last int64) error {
		_, err := tbl.Commit(ctx, committer.Commit{
			Adds: []committer.Add{statsAdd(path, first, last)},
			Txns: []committer.TxnCondition{{AppID: app, FirstOffset: first, LastOffset: last, Lineage: "L1"}}, ReadVersion: -1,
		})
		return err
	}
	require.NoError(t, commit("data/a.parquet", "g-t-0", 0, 9))
	require.NoError(t, commit("data/b.parquet", "g-t-1", 0, 4))
	for i := range 3 {
		require.NoError(t, commit("data/c"+string(rune('0'+i))+".parquet", "g-t-1", int64(5+i), int64(5+i)))
	}
	m := tbl.(committer.Maintainer)
	_, err := m.ExpireHistory(ctx, 30*time.Minute, false, time.Now())
	require.ErrorContains(t, err, "under the 1h minimum")

	dry, err := m.ExpireHistory(ctx, time.Hour, true, time.Now().Add(2*time.Hour))
	require.NoError(t, err)
	require.Len(t, dry.Deleted, 4, "every snapshot but the current one")
	s, err := f.Open(testRoot, committer.Options{}).Snapshot(ctx)
	require.NoError(t, err)
	require.Len(t, st(s).tbl.Metadata().Snapshots(), 5, "a dry run expires nothing")

	res, err := m.ExpireHistory(ctx, time.Hour, false, time.Now().Add(2*time.Hour))
	require.NoError(t, err)
	require.Equal(t, int64(5), res.Oldest)
	s, err = f.Open(testRoot, committer.Options{}).Snapshot(ctx)
	require.NoError(t, err)
	require.Len(t, st(s).tbl.Metadata().Snapshots(), 1)
	require.Equal(t, int64(5), s.Version)
	v, ok := s.TxnVersion("g-t-0")
	require.True(t, ok, "the first partition's offset outlives the snapshot that recorded it")
	require.Equal(t, int64(9), v)
	v, _ = s.TxnVersion(committer.LineageAppID("g-t-0", "L1"))
	require.Equal(t, int64(9), v)
	require.Len(t, s.Files, 5)
	require.Error(t, commit("data/x.parquet", "g-t-0", 5, 20), "the carried-forward offset still fences")
}

// TestRefusedCommitManifestsAreCleaned: a commit that loses a race to
// the catalog has written its manifest and manifest list already; they
// are orphans that ExpireHistory deletes once older than the retention.
func TestRefusedCommitManifestsAreCleaned(t *testing.T) {
	ctx := context.Background()
	env, f, a, prefix := newTable(t)
	b := f.Open(testRoot, committer.Options{Instance: "b"})
	_, err := b.Snapshot(ctx)
	require.NoError(t, err)
	_, err = a.Commit(ctx, committer.Commit{Adds: []committer.Add{statsAdd("data/a.parquet", 0, 1)}, ReadVersion: -1})
	require.NoError(t, err)
	// b's first attempt is refused (409) and retried.
	res, err := b.Commit(ctx, committer.Commit{Adds: []committer.Add{statsAdd("data/b.parquet", 2, 3)}, ReadVersion: -1})
	require.NoError(t, err)
	require.Equal(t, 2, res.Attempts)

	count := func() int {
		n := 0
		require.NoError(t, env.bucket.List(ctx, prefix+"/"+testRoot+"/metadata/", func(o objstore.ObjectInfo) error {
			if strings.HasSuffix(o.Key, ".avro") {
				n++
			}
			return nil
		}))
		return n
	}
	before := count()
	m := a.(committer.Maintainer)
	young, err := m.ExpireHistory(ctx, time.Hour, true, time.Now())
	require.NoError(t, err)
	require.Empty(t, young.Deleted, "orphans younger than the retention are kept: a commit may be in flight")

	// Reference everything as an hour older: the cleanup judges orphan age by
	// the wall clock, so call the unexported step directly.
	s, err := a.Snapshot(ctx)
	require.NoError(t, err)
	out, err := a.(*Table).deleteOrphanMetadata(ctx, st(s).tbl, committer.ExpireResult{}, 0)
	require.NoError(t, err)
	require.NotEmpty(t, out.Deleted, "the refused attempt's manifests are orphans")
	for _, d := range out.Deleted {
		require.True(t, strings.HasPrefix(d, "metadata/") && strings.HasSuffix(d, ".avro"), d)
	}
	require.Equal(t, before-len(out.Deleted), count())
	s, err = f.Open(testRoot, committer.Options{}).Snapshot(ctx)
	require.NoError(t, err)
	require.Len(t, s.Files, 2, "the table reads whole after the cleanup")
}
