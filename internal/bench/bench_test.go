package bench

import (
	"bytes"
	"context"
	"flag"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/codec/confluent"
	"github.com/evodb/sink/internal/workload"
)

// TestRun runs a small scenario end to end and checks that every figure is
// filled in and consistent; it asserts nothing about speed.
func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name   string
		format codec.Format
		tables int
	}{
		{"evodb-8", cdc.FormatEvoDB, 8},
		{"debezium-64", cdc.FormatDebezium, 64},
		{"avro-8", confluent.FormatAvro, 8},
		{"protobuf-8", confluent.FormatProtobuf, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			res, err := Run(ctx, Config{
				Tables: tc.tables, Format: tc.format, Records: 3000, Seed: 1,
				FlushInterval: 300 * time.Millisecond, LatencyDuration: 500 * time.Millisecond,
				TempDir: t.TempDir(),
			})
			require.NoError(t, err)
			require.Equal(t, 3000, res.Sink.Records)
			require.Positive(t, res.Sink.RecordsPerSec)
			require.Positive(t, res.Consume.RecordsPerSec)
			require.Positive(t, res.Encode.Records)
			require.Positive(t, res.EncodeBytes)
			require.Positive(t, res.Written.DataFiles)
			require.Positive(t, res.Written.Objects)
			require.Greater(t, res.Written.Bytes, res.Written.DataBytes)
			require.Equal(t, res.Written.Commits, res.Written.DataFiles, "a commit per data file, each table's first its version 0")
			require.GreaterOrEqual(t, res.PerCommit.Requests["put"], int64(res.Written.Commits+res.Written.DataFiles), "every commit and data file is a put")
			require.Positive(t, res.PerCommit.CPU)
			require.Equal(t, res.Latency.Records, res.Latency.Measured, "every paced record is found in exactly one committed block")
			require.Positive(t, res.Latency.P99)
			require.GreaterOrEqual(t, res.Latency.Max, res.Latency.P99)

			var out bytes.Buffer
			require.NoError(t, WriteTable(&out, []*Result{Median([]*Result{res, res, res})}))
			require.Contains(t, out.String(), "sink records/CPU-s")
			require.Contains(t, out.String(), "store requests/commit")
		})
	}
}

// TestRunWarm runs the second pass on the same tables: every one of its
// records is committed once more, no table is created again, and its
// figures count that pass alone.
func TestRunWarm(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{
		Tables: 8, Records: 3000, Seed: 2, FlushInterval: 300 * time.Millisecond,
		LatencyDuration: 500 * time.Millisecond, Warm: true, TempDir: t.TempDir(),
	})
	require.NoError(t, err)
	w := res.Warm
	require.NotNil(t, w)
	require.Equal(t, 3000, w.Sink.Records)
	require.Positive(t, w.Sink.RecordsPerCPUSec)
	require.Positive(t, w.CPUVsEncode)
	require.Positive(t, w.DataFiles)
	require.Equal(t, w.Commits, w.DataFiles, "a commit per data file")
	// The tables exist: no version 0 is written, and the first pass's
	// figures are not counted again.
	require.Zero(t, w.PerCommit.Requests["list"], "no table is opened again")
	require.GreaterOrEqual(t, w.PerCommit.Requests["put"], int64(w.Commits+w.DataFiles))
	require.Positive(t, w.PerCommit.CPU)
	require.Equal(t, res.Latency.Records, res.Latency.Measured, "the paced phase counts the warm pass's records as committed before it")

	var out bytes.Buffer
	require.NoError(t, WriteTable(&out, []*Result{Median([]*Result{res, res, res})}))
	require.Contains(t, out.String(), "warm: sink records/CPU-s")
}

func TestMedian(t *testing.T) {
	runs := []*Result{
		{Sink: Throughput{RecordsPerSec: 3}, Latency: Latency{P99: 3 * time.Second}},
		{Sink: Throughput{RecordsPerSec: 1}, Latency: Latency{P99: 1 * time.Second}},
		{Sink: Throughput{RecordsPerSec: 2}, Latency: Latency{P99: 9 * time.Second}},
	}
	m := Median(runs)
	require.Equal(t, 2.0, m.Sink.RecordsPerSec)
	require.Equal(t, 3*time.Second, m.Latency.P99)
	require.Nil(t, Median(nil))
}

func TestChildStoreURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"file:///tmp/x", "file:///tmp/x/p"},
		{"s3://b?endpoint=http://127.0.0.1:1", "s3://b/p?endpoint=http://127.0.0.1:1"},
		{"s3://b/pre", "s3://b/pre/p"},
	} {
		got, err := childStoreURL(tc.in, "p")
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
	}
	_, err := childStoreURL("mem://", "p")
	require.Error(t, err)
}

// benchRecords returns n generated records of a workload of the given
// number of tables (the default 8 when zero).
func benchRecords(n int, format codec.Format, tables int) []workload.Record {
	g := workload.New(workload.Config{Format: format, Topic: "bench", Tables: tables}, rand.New(rand.NewPCG(1, 2)))
	recs := make([]workload.Record, n)
	for i := range recs {
		recs[i] = g.Next()
	}
	return recs
}

// decodeEncodeRecords sizes BenchmarkDecodeEncode's workload: at the
// default, most tables' first blocks are still growing their buffers; at
// the 300 000 records of BENCHMARKS.md most blocks are sized from the
// previous one, as in a running sink.
var decodeEncodeRecords = flag.Int("decode-encode-records", 50_000, "records of BenchmarkDecodeEncode's workload")

// BenchmarkDecodeEncode is baseline (b) on the 8-table workload, in each
// JSON format, and on the 64- and 512-table workloads in evodb's;
// records/CPU-s is the figure sink bench reports.
func BenchmarkDecodeEncode(b *testing.B) {
	cases := []struct {
		name   string
		format codec.Format
		tables int
	}{
		{string(cdc.FormatEvoDB), cdc.FormatEvoDB, 0},
		{string(cdc.FormatDebezium), cdc.FormatDebezium, 0},
		{string(cdc.FormatEvoDB) + "-64", cdc.FormatEvoDB, 64},
		{string(cdc.FormatEvoDB) + "-512", cdc.FormatEvoDB, 512},
	}
	for _, tc := range cases {
		f := tc.format
		b.Run(tc.name, func(b *testing.B) {
			recs := benchRecords(*decodeEncodeRecords, f, tc.tables)
			b.ResetTimer()
			var (
				n, blocks, passes int
				cpu               time.Duration
			)
			for b.Loop() {
				res, err := DecodeEncode(recs, EncodeConfig{Format: f})
				if err != nil {
					b.Fatal(err)
				}
				n += res.Records
				cpu += res.CPU
				blocks += res.Blocks
				passes++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(n)/cpu.Seconds(), "records/CPU-s")
			// The blocks a pass closes, to set beside the sink's data
			// files on the same records.
			b.ReportMetric(float64(blocks)/float64(passes), "blocks")
		})
	}
}

// BenchmarkSinkThroughput is the full sink loop over an in-process broker
// and a filesystem store on the 8-table workload: each iteration produces a
// fresh backlog (outside the timer) and times the sink until all of it is
// committed.
func BenchmarkSinkThroughput(b *testing.B) {
	const n = 50_000
	ctx := context.Background()
	var total int
	var wall time.Duration
	for b.Loop() {
		res, err := Run(ctx, Config{Records: n, Seed: 1, TempDir: b.TempDir(), FlushInterval: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		total += n
		wall += res.Sink.Wall
		b.ReportMetric(res.Sink.RecordsPerCPUSec, "records/CPU-s")
	}
	b.ReportMetric(float64(total)/wall.Seconds(), "records/s")
}

func TestNextPoll(t *testing.T) {
	require.Equal(t, maxChildPoll, nextPoll(0, 100, time.Second), "nothing committed yet: the longest wait")
	// Half done after 1 s: the rest should take 1 s, checked after 250 ms
	// at most (the cap), then ever more often towards the end.
	require.Equal(t, maxChildPoll, nextPoll(50, 100, time.Second))
	require.Equal(t, 50*time.Millisecond, nextPoll(90, 100, 900*time.Millisecond))
	require.Equal(t, minChildPoll, nextPoll(999, 1000, time.Second))
}

func TestParseRequests(t *testing.T) {
	text := `# HELP objstore_requests_total Object store requests by operation.
# TYPE objstore_requests_total counter
objstore_requests_total{operation="delete"} 0
objstore_requests_total{operation="head"} 12
objstore_requests_total{operation="put"} 1.5e+06
objstore_request_errors_total{operation="put"} 3
`
	require.Equal(t, map[string]int64{"delete": 0, "head": 12, "put": 1500000}, parseRequests(text))
	require.Equal(t, "head 12, put 1500000", formatRequests(parseRequests(text)))
}

func TestIsCommitKey(t *testing.T) {
	for key, want := range map[string]bool{
		"db/t/_delta_log/00000000000000000003.json":               true,
		"_delta_log/00000000000000000000.json":                    true,
		"db/t/_delta_log/00000000000000000010.checkpoint.parquet": false,
		"db/t/_delta_log/_last_checkpoint":                        false,
		"db/t/data/00000000000000000003.json":                     false,
	} {
		require.Equal(t, want, isCommitKey(key), key)
	}
}
