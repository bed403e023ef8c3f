package sink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/tablefile"
)

// produceXValues writes one evodb change of table users per value of column
// x to topic, with LSNs from lsn.
func produceXValues(t *testing.T, brokers []string, topic string, lsn int, xs ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	require.NoError(t, err)
	defer cl.Close()
	for i, x := range xs {
		val := fmt.Sprintf(`{"op":"INSERT","table":"users","data":{"id":%d,"x":%s},"lsn":%d}`, lsn+i, x, lsn+i)
		require.NoError(t, cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: []byte(val)}).FirstErr())
	}
}

// Member A buffers column x as long while member B commits x with another
// type first. A's flush takes the committed type: values that fit it are
// stored in it (a long as text in a string column), values that do not are
// record errors (dead-letter topic or a stop naming the record), never a
// failed merge that stops the sink.
func TestSinkSchemaConflictAcrossMembers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		committed string // B's value of x
		tolerance string
		wantRows  map[string]string // id → x as stored
		wantDLQ   int
		wantErr   string
	}{
		{name: "string committed first", committed: `"abc"`, tolerance: "none",
			wantRows: map[string]string{"1": "1", "2": "2", "100": "abc"}},
		{name: "boolean committed first, dead-letter topic", committed: `true`, tolerance: "all",
			wantRows: map[string]string{"100": "true"}, wantDLQ: 2},
		{name: "boolean committed first, stop", committed: `true`, tolerance: "none",
			wantErr: "record a/0@0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 1, "a", "b", "a.dlq")
			b := objstore.NewMemory()

			cfgA := testConfig(c.ListenAddrs(), "a")
			cfgA.Kafka.Group = "group-a"
			cfgA.Tables.Default.FlushThreshold = 2
			cfgA.Tables.Default.FlushInterval = time.Hour
			cfgA.Errors.Tolerance = tc.tolerance
			if tc.tolerance == "all" {
				cfgA.Errors.DLQTopic = "a.dlq"
			}
			produceXValues(t, c.ListenAddrs(), "a", 1, "1")
			a, stopA := runSink(t, cfgA, b)
			require.Eventually(t, func() bool {
				st := a.Status()
				return len(st.Tables) == 1 && st.Tables[0].BufferedRecords == 1
			}, 30*time.Second, 20*time.Millisecond, "A buffers x as long")

			cfgB := testConfig(c.ListenAddrs(), "b")
			cfgB.Kafka.Group = "group-b"
			cfgB.Tables.Default.FlushThreshold = 1
			produceXValues(t, c.ListenAddrs(), "b", 100, tc.committed)
			_, stopB := runSink(t, cfgB, b)
			waitCommitted(t, b, 1, 30*time.Second)
			require.NoError(t, stopB())

			// A's second change fills its buffer: the flush meets B's type.
			produceXValues(t, c.ListenAddrs(), "a", 2, "2")
			if tc.wantErr != "" {
				require.Eventually(t, func() bool { return a.Status().Error != "" }, 30*time.Second, 20*time.Millisecond)
				err := stopA()
				var rerr *RecordError
				require.True(t, errors.As(err, &rerr), "%v", err)
				require.Contains(t, err.Error(), tc.wantErr)
				require.Contains(t, err.Error(), `the table's files hold column "x" as boolean`)
				return
			}
			waitCommitted(t, b, len(tc.wantRows), 30*time.Second)
			require.Eventually(t, func() bool {
				return counterValue(t, a.metrics.dlqRecords.WithLabelValues("a")) == float64(tc.wantDLQ) &&
					a.Status().BufferedBytes == 0
			}, 30*time.Second, 20*time.Millisecond)
			require.NoError(t, stopA())
			rows, _ := readTables(t, b)
			got := map[string]string{}
			for _, ch := range rows {
				got[ch.Get("id").Text()] = ch.Get("x").Text()
				if ch.Get("id").Int() < 100 {
					require.Equal(t, codec.KindString, ch.Get("x").Kind())
				}
			}
			require.Equal(t, tc.wantRows, got)
		})
	}
}

// Once column x is committed as long, a fractional value is a record error
// (here sent to the dead-letter topic) instead of a widening to double that
// would leave INT64 files under a double column, which Spark and Polars
// refuse to read. With SINK_TEST_PYTHON set, Polars reads the table.
func TestSinkKeepsCommittedTypes(t *testing.T) {
	c := newCluster(t, 1, "a", "a.dlq")
	dir := t.TempDir()
	b, err := objstore.NewFilesystem(dir)
	require.NoError(t, err)
	cfg := testConfig(c.ListenAddrs(), "a")
	cfg.Tables.Default.FlushThreshold = 1
	cfg.Errors.Tolerance = "all"
	cfg.Errors.DLQTopic = "a.dlq"
	produceXValues(t, c.ListenAddrs(), "a", 1, "1")
	s, stop := runSink(t, cfg, b)
	waitCommitted(t, b, 1, 30*time.Second)
	produceXValues(t, c.ListenAddrs(), "a", 2, "1.5", "2")
	waitCommitted(t, b, 2, 30*time.Second)
	require.Eventually(t, func() bool {
		return counterValue(t, s.metrics.dlqRecords.WithLabelValues("a")) == 1
	}, 30*time.Second, 20*time.Millisecond)
	require.NoError(t, stop())
	// Refused when it arrived, not at its flush: the dead-letter topic
	// holds the original record.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("a.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	fetches := cl.PollRecords(context.Background(), 1)
	require.NoError(t, fetches.Err())
	require.Equal(t, `{"op":"INSERT","table":"users","data":{"id":2,"x":1.5},"lsn":2}`, string(fetches.Records()[0].Value))

	roots, err := delta.ListTables(context.Background(), b)
	require.NoError(t, err)
	require.Len(t, roots, 1)
	snap, err := delta.Open(b, roots[0], delta.Options{}).Snapshot(context.Background())
	require.NoError(t, err)
	schema, err := tablefile.TableSchema(snap)
	require.NoError(t, err)
	col, _ := schema.Column("x")
	require.Equal(t, codec.Type{Kind: codec.TypeLong}, col.Type)

	python := os.Getenv("SINK_TEST_PYTHON")
	if python == "" {
		t.Skip("SINK_TEST_PYTHON is not set: Polars does not read the table")
	}
	script := `import os, sys, json
import polars as pl
df = pl.read_delta(sys.argv[1]).sort("id")
print(json.dumps({"x": df["x"].to_list(), "dtype": str(df.schema["x"])}))
sys.stdout.flush()
os._exit(0)`
	out, err := exec.Command(python, "-c", script, filepath.Join(dir, roots[0])).Output()
	var stderr []byte
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = ee.Stderr
	}
	require.NoError(t, err, "polars: %s", stderr)
	require.JSONEq(t, `{"x":[1,2],"dtype":"Int64"}`, string(out))
}
