package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/objstore"
)

// sinkTable creates a Delta table as the sink does (with its committer),
// its schema the metadata and Kafka columns and cols, in dir/name.
func sinkTable(t *testing.T, dir, name string, cols ...codec.Column) {
	t.Helper()
	s := codec.NewSchema()
	s.SetKafkaColumns(true)
	for _, c := range cols {
		require.NoError(t, s.AddColumn(c))
	}
	fs, err := objstore.NewFilesystem(dir)
	require.NoError(t, err)
	_, err = delta.Open(fs, name, delta.Options{}).Create(context.Background(), committer.Metadata{Schema: s})
	require.NoError(t, err)
}

// TestCreateKDITable creates the peer's table from a sink table's schema
// and requires its log to hold the same schema, and its columns (metadata
// first) to map onto the envelope and the row.
func TestCreateKDITable(t *testing.T) {
	dir := t.TempDir()
	sinkTable(t, dir, "t0",
		codec.Column{Name: "id", Type: codec.Type{Kind: codec.TypeLong}, Nullable: true},
		codec.Column{Name: "d1", Type: codec.Type{Kind: codec.TypeDouble}, Nullable: true},
		codec.Column{Name: "s2", Type: codec.Type{Kind: codec.TypeString}, Nullable: true},
	)
	peer := filepath.Join(dir, "peer", "t0")
	cols, err := createKDITable(context.Background(), filepath.Join(dir, "t0"), peer)
	require.NoError(t, err)
	require.Equal(t, []kdiColumn{
		{"_op", "string"}, {"_lsn", "long"}, {"_ts", "timestamp"},
		{"_topic", "string"}, {"_partition", "integer"}, {"_offset", "long"},
		{"id", "long"}, {"d1", "double"}, {"s2", "string"},
	}, cols)

	fs, err := objstore.NewFilesystem(dir)
	require.NoError(t, err)
	sinkSnap, err := delta.Open(fs, "t0", delta.Options{}).Snapshot(context.Background())
	require.NoError(t, err)
	peerSnap, err := delta.Open(fs, "peer/t0", delta.Options{}).Snapshot(context.Background())
	require.NoError(t, err, "the peer's table must be a table the sink's reader loads")
	require.Equal(t, delta.SchemaString(sinkSnap), delta.SchemaString(peerSnap))
	require.Equal(t, int64(0), peerSnap.Version)
	require.Empty(t, peerSnap.Files)

	_, err = createKDITable(context.Background(), filepath.Join(dir, "absent"), filepath.Join(dir, "peer2"))
	require.ErrorContains(t, err, "read the sink's table")
}

// TestKDIArgs requires the command line to carry the run's broker, topic,
// group, batch size and flush interval (rounded up to kafka-delta-ingest's
// whole seconds) and one transform per column: the metadata columns from
// the envelope and the Kafka message, the data columns from the row
// (before's for a delete).
func TestKDIArgs(t *testing.T) {
	k := kdiRun{
		bin: "kdi", dir: "/tmp/x", table: "/tmp/x/peer/t0",
		columns: []kdiColumn{
			{"_op", "string"}, {"_lsn", "long"}, {"_ts", "timestamp"},
			{"_topic", "string"}, {"_partition", "integer"}, {"_offset", "long"},
			{"id", "long"}, {"my col", "string"},
		},
		brokers: []string{"a:1", "b:2"}, topic: "bench-x", group: "bench-x-kafka-delta-ingest",
		flush: 10_000, interval: 1500 * time.Millisecond,
	}
	args, err := k.args()
	require.NoError(t, err)
	require.Equal(t, []string{
		"ingest", "bench-x", "/tmp/x/peer/t0",
		"--kafka", "a:1,b:2",
		"--consumer_group", "bench-x-kafka-delta-ingest",
		"--app_id", "bench-x-kafka-delta-ingest",
		"--auto_offset_reset", "earliest",
		"--allowed_latency", "2",
		"--max_messages_per_batch", "10000",
		"--kafka_setting", "isolation.level=read_committed",
		"--transform", "_op: op",
		"--transform", "_lsn: lsn",
		"--transform", "_ts: epoch_millis_to_micro(ts)",
		"--transform", "_topic: kafka.topic",
		"--transform", "_partition: kafka.partition",
		"--transform", "_offset: kafka.offset",
		"--transform", `id: (before || data)."id"`,
		"--transform", `my col: (before || data)."my col"`,
	}, args)

	k.interval = 0
	args, err = k.args()
	require.NoError(t, err)
	require.Contains(t, strings.Join(args, " "), "--allowed_latency 1 ", "a latency below a second is one second, its least")

	for _, name := range []string{"a:b", "a.b", " a", ""} {
		k.columns = []kdiColumn{{name, "string"}}
		_, err := k.args()
		require.Error(t, err, "column %q", name)
		require.ErrorContains(t, err, fmt.Sprintf("%q", name))
	}
}

// TestRunRefusesKDI requires a run with kafka-delta-ingest to be refused,
// before anything is produced, when its topic would hold more than one
// table, its format is not evodb, or its binary is not given.
func TestRunRefusesKDI(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"tables", Config{Tables: 8, PeerBinary: "kdi"}, "run it with -tables 1, not 8"},
		{"format", Config{Tables: 1, Format: cdc.FormatDebezium, PeerBinary: "kdi"}, "run it with -format evodb, not debezium"},
		{"binary", Config{Tables: 1}, "needs its binary (-peer-bin"},
		{"unknown peer", Config{Tables: 1, Peers: []string{"spark"}}, `peer "spark" is not one of python, kafka-delta-ingest`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg.Peers == nil {
				cfg.Peers = []string{PeerPython, PeerKafkaDeltaIngest}
			}
			cfg.Records, cfg.TempDir = 10, t.TempDir()
			_, err := Run(context.Background(), cfg)
			require.ErrorContains(t, err, tc.want)
			entries, err := os.ReadDir(cfg.TempDir)
			require.NoError(t, err)
			require.Empty(t, entries, "nothing written before the refusal")
		})
	}
}

// TestDeltaLogRows counts the rows a log adds commit by commit, and
// requires a commit that does not parse yet (being written) to be read
// again at the next call instead of counted short or skipped.
func TestDeltaLogRows(t *testing.T) {
	dir := t.TempDir()
	write := func(v int, body string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d.json", v)), []byte(body), 0o644))
	}
	add := func(n int) string {
		return fmt.Sprintf(`{"add":{"path":"p","stats":"{\"numRecords\":%d,\"minValues\":{}}"}}`+"\n", n)
	}
	d := &deltaLogRows{dir: dir}
	n, err := d.rows()
	require.NoError(t, err)
	require.Zero(t, n)

	write(0, `{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}`+"\n")
	write(1, add(10)+add(5)+`{"txn":{"appId":"g-0","version":14}}`+"\n")
	n, err = d.rows()
	require.NoError(t, err)
	require.EqualValues(t, 15, n)

	write(2, add(7)[:20])
	write(3, add(100))
	n, err = d.rows()
	require.NoError(t, err)
	require.EqualValues(t, 15, n, "version 2 does not parse: neither it nor version 3 is counted")

	write(2, add(7))
	n, err = d.rows()
	require.NoError(t, err)
	require.EqualValues(t, 122, n)
}
