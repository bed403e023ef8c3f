package verify

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/parquetblock"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/internal/kafkatest"
	"github.com/evodb/sink/internal/tabletest"
	"github.com/evodb/sink/internal/workload"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/sink"
	"github.com/evodb/sink/tablefile"
)

const (
	topic = "cdc"
	dlq   = "cdc.dlq"
)

// ingest produces n workload records (2 % undecodable) to a fresh cluster
// and runs a sink over them until every partition is durable.
func ingest(t *testing.T, n int) (*kfake.Cluster, *objstore.Memory) {
	t.Helper()
	bucket := objstore.NewMemory()
	return ingestInto(t, n, bucket), bucket
}

// ingestInto is ingest into the given bucket.
func ingestInto(t *testing.T, n int, bucket objstore.Bucket) *kfake.Cluster {
	t.Helper()
	c := kafkatest.NewCluster(t, kfake.SeedTopics(3, topic, dlq))
	produce(t, c, n, 1)

	cfg := sink.DefaultConfig()
	cfg.Kafka.Brokers = c.ListenAddrs()
	cfg.Kafka.Topics = []string{topic}
	cfg.Tables.Default.FlushInterval = 100 * time.Millisecond
	cfg.Tables.Default.Mode = "do-sqlite"
	cfg.Commit.OffsetCommitInterval = 50 * time.Millisecond
	cfg.Errors.Tolerance = "all"
	cfg.Errors.DLQTopic = dlq
	s, err := sink.New(cfg, bucket, delta.NewFormat(bucket, delta.Options{}))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	require.Eventually(t, func() bool {
		st := s.Status()
		if len(st.Partitions) != 3 {
			return false
		}
		for _, p := range st.Partitions {
			if p.HighWater <= 0 || p.DurableFrom < p.HighWater {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	return c
}

func produce(t *testing.T, c *kfake.Cluster, n int, seed uint64) {
	t.Helper()
	cl, err := kgo.NewClient(append(workload.ProducerOptions(), kgo.SeedBrokers(c.ListenAddrs()...))...)
	require.NoError(t, err)
	defer cl.Close()
	g := workload.New(workload.Config{Topic: topic, Partitions: 3, Tables: 4, BadRate: 0.02}, rand.New(rand.NewPCG(seed, 1)))
	require.NoError(t, workload.Produce(context.Background(), cl, g, n, nil))
}

func run(t *testing.T, c *kfake.Cluster, b objstore.Bucket, opts Options) *Report {
	t.Helper()
	opts.Topics = []string{topic}
	opts.DLQTopic = dlq
	rep, err := Verify(context.Background(), []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, b, delta.NewFormat(b, delta.Options{}), opts)
	require.NoError(t, err)
	return rep
}

func TestVerify(t *testing.T) {
	c, bucket := ingest(t, 1500)
	ctx := context.Background()

	rep := run(t, c, bucket, Options{From: -1, To: -1})
	require.True(t, rep.OK(), rep.String())
	var changes, undecodable, inDLQ int64
	for _, p := range rep.Partitions {
		changes += p.Changes
		undecodable += p.Undecodable
		inDLQ += p.InDLQ
	}
	require.Equal(t, int64(1500), changes+undecodable)
	require.Positive(t, undecodable)
	require.Equal(t, undecodable, inDLQ)
	require.Equal(t, changes, rep.Rows)
	require.Contains(t, rep.String(), "OK: 1500 records in 3 partitions")

	// Pick a table and its first file to tamper with.
	tbl := delta.Open(bucket, "t0", delta.Options{})
	snap, err := tbl.Snapshot(ctx)
	require.NoError(t, err)
	var add committer.Add
	for _, a := range snap.Files {
		add = a
		break
	}
	data := readAll(t, bucket, "t0/"+add.Path)
	schema, rows, err := tablefile.ReadFile(ctx, bucket, "t0", add.Path)
	require.NoError(t, err)

	tests := []struct {
		name   string
		tamper func(t *testing.T)
		want   map[Kind]int64
		detail string
	}{
		{
			name: "duplicate file",
			tamper: func(t *testing.T) {
				dup := add
				dup.Path = "dup-" + add.Path
				put(t, bucket, "t0/"+dup.Path, data)
				commit(t, tbl, committer.Commit{Adds: []committer.Add{dup}})
			},
			want:   map[Kind]int64{Duplicate: int64(len(rows))},
			detail: "held by 2 rows",
		},
		{
			name: "changed value",
			tamper: func(t *testing.T) {
				// Replace the duplicate with a copy whose first row has a
				// different LSN and id.
				changed := append([]codec.Change(nil), rows...)
				first := changed[0]
				first.LSN++
				first.Row = append([]codec.Field(nil), first.Row...)
				for i := range first.Row {
					if first.Row[i].Name == "id" {
						first.Row[i].Value = codec.Int(-42)
					}
				}
				changed[0] = first
				var buf bytes.Buffer
				_, err := parquetblock.EncodeBlock(&buf, schema, changed, parquetblock.EncodeOptions{KafkaColumns: true})
				require.NoError(t, err)
				put(t, bucket, "t0/changed.parquet", buf.Bytes())
				ch := add
				ch.Path, ch.Size = "changed.parquet", int64(buf.Len())
				commit(t, tbl, committer.Commit{
					Adds:    []committer.Add{ch},
					Removes: []committer.Remove{{Path: "dup-" + add.Path, DataChange: true, Size: add.Size}},
				})
			},
			want:   map[Kind]int64{Duplicate: int64(len(rows)), Mismatch: 1},
			detail: "id=-42 want",
		},
		{
			name: "removed file",
			tamper: func(t *testing.T) {
				commit(t, tbl, committer.Commit{Removes: []committer.Remove{
					{Path: "changed.parquet", DataChange: true},
					{Path: add.Path, DataChange: true, Size: add.Size},
				}})
			},
			want:   map[Kind]int64{Gap: int64(len(rows))},
			detail: "is in no table",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.tamper(t)
			rep := run(t, c, bucket, Options{From: -1, To: -1, MaxProblems: 1000})
			require.False(t, rep.OK())
			for k, n := range tt.want {
				require.Equal(t, n, rep.Counts[k], "%s\n%s", k, rep)
			}
			require.Contains(t, rep.String(), tt.detail)
			require.Contains(t, rep.String(), "FAILED")
		})
	}

	t.Run("offset range", func(t *testing.T) {
		// Only offsets before every row of the removed file: clean again
		// except for what the range still covers.
		rep := run(t, c, bucket, Options{From: 0, To: 0})
		require.True(t, rep.OK(), rep.String())
		for _, p := range rep.Partitions {
			require.Zero(t, p.Records)
		}
	})

	t.Run("records produced after the tables", func(t *testing.T) {
		produce(t, c, 10, 2)
		rep := run(t, c, bucket, Options{From: -1, To: -1})
		require.GreaterOrEqual(t, rep.Counts[Gap], int64(len(rows)+1))
		require.Positive(t, rep.Counts[MissingDLQ]+rep.Counts[Gap])
		capped := run(t, c, bucket, Options{From: -1, To: -1, MaxProblems: 5})
		require.Len(t, capped.Problems, 5)
		require.Equal(t, rep.Counts, capped.Counts)
		require.Contains(t, capped.String(), "problems (5 of ")
	})
}

// TestVerifyTableAnotherWriterAppendedTo verifies tables after another
// Delta writer appended to one: its file holds no change of the topics, so
// it is reported as skipped, not read as a sink block. The delta-rs writer
// (write_deltalake(mode="append")) runs when SINK_TEST_PYTHON names a
// Python with the deltalake package.
func TestVerifyTableAnotherWriterAppendedTo(t *testing.T) {
	check := func(t *testing.T, c *kfake.Cluster, b objstore.Bucket) {
		rep := run(t, c, b, Options{From: -1, To: -1})
		require.True(t, rep.OK(), rep.String())
		skipped := map[string]int{}
		for _, tr := range rep.Tables {
			skipped[tr.Path] = tr.Skipped
		}
		require.Equal(t, map[string]int{"t0": 1, "t1": 0, "t2": 0, "t3": 0}, skipped)
		require.Contains(t, rep.String(), "skipped=1 (files another writer appended)")
	}
	t.Run("parquet", func(t *testing.T) {
		c, b := ingest(t, 300)
		tabletest.AppendForeign(t, context.Background(), b, "t0", 5)
		check(t, c, b)
	})
	t.Run("delta-rs", func(t *testing.T) {
		python := tabletest.Python(t)
		dir := t.TempDir()
		b, err := objstore.NewFilesystem(dir)
		require.NoError(t, err)
		c := ingestInto(t, 300, b)
		tabletest.AppendDeltaRS(t, python, filepath.Join(dir, "t0"), 5, 1_000_000)
		check(t, c, b)
	})
}

func readAll(t *testing.T, b objstore.Bucket, key string) []byte {
	t.Helper()
	rc, err := b.Get(context.Background(), key)
	require.NoError(t, err)
	defer rc.Close()
	data, err := io.ReadAll(rc)
	require.NoError(t, err)
	return data
}

func put(t *testing.T, b objstore.Bucket, key string, data []byte) {
	t.Helper()
	_, err := b.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), objstore.PutOptions{})
	require.NoError(t, err)
}

func commit(t *testing.T, tbl committer.Table, c committer.Commit) {
	t.Helper()
	c.ReadVersion = -1
	_, err := tbl.Commit(context.Background(), c)
	require.NoError(t, err)
}
