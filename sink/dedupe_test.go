package sink

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/internal/kafkatest"
	"github.com/evodb/sink/internal/tabletest"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/tablefile"
)

type dbzChange struct {
	id  int
	lsn uint64
	op  string
}

func produceDebezium(t *testing.T, brokers []string, topic string, changes []dbzChange) {
	t.Helper()
	var recs []*kgo.Record
	for _, c := range changes {
		row := fmt.Sprintf(`{"id":%d,"name":"n%d-%d"}`, c.id, c.id, c.lsn)
		before, after := "null", row
		if c.op == "d" {
			before, after = row, "null"
		}
		val := fmt.Sprintf(`{"before":%s,"after":%s,"source":{"db":"inventory","schema":"public","table":"users","lsn":%d,"ts_ms":1700000000000},"op":%q,"ts_ms":1700000000001}`,
			before, after, c.lsn, c.op)
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(c.id % 2), Key: []byte(fmt.Sprintf(`{"id":%d}`, c.id)), Value: []byte(val)})
	}
	kafkatest.Produce(t, brokers, recs...)
}

// With `dedupe: lsn`, a change re-sent by the source (same LSN and key,
// new offset) is stored once, also when the replay arrives after a sink
// restart, while LSNs that go down in stream order (transactions decoded
// in commit order) are all kept.
func TestSinkDedupeLSN(t *testing.T) {
	c := newCluster(t, 2, "dbz")
	b := objstore.NewMemory()
	cfg := testConfig(c.ListenAddrs(), "dbz")
	cfg.Kafka.Format = "debezium"
	cfg.Dedupe = "lsn"

	first := []dbzChange{{1, 110, "c"}, {2, 100, "c"}, {3, 120, "c"}, {1, 130, "u"}, {4, 90, "c"}, {2, 140, "d"}}
	replay := []dbzChange{{1, 110, "c"}, {2, 100, "c"}, {3, 120, "c"}}
	produceDebezium(t, c.ListenAddrs(), "dbz", append(append([]dbzChange{}, first...), replay...))
	_, stop := runSink(t, cfg, b)
	waitCommitted(t, b, len(first), 30*time.Second)
	time.Sleep(500 * time.Millisecond)
	require.NoError(t, stop())
	rows, _ := readTables(t, b)
	require.Len(t, rows, len(first))

	// A restarted sink reads replays of committed changes: dropped too.
	produceDebezium(t, c.ListenAddrs(), "dbz", []dbzChange{{1, 130, "u"}, {4, 90, "c"}, {5, 150, "c"}})
	s, stop := runSink(t, cfg, b)
	waitCommitted(t, b, len(first)+1, 30*time.Second)
	waitCaughtUp(t, s)
	require.NoError(t, stop())
	rows, _ = readTables(t, b)
	seen := map[string]int{}
	for _, ch := range rows {
		seen[fmt.Sprintf("%d/%s", ch.LSN, ch.Get("id").Text())]++
	}
	require.Len(t, seen, len(first)+1, "rows: %v", seen)
	for k, n := range seen {
		require.Equal(t, 1, n, k)
	}
	require.Equal(t, 2.0, counterValue(t, s.metrics.dedupeDropped.WithLabelValues("inventory/public/users")), "replays dropped after the restart")
}

// Two different tables routed to one path are refused by name, as bad
// records, instead of failing the flush of the table they would share.
func TestSinkRefusesTwoTablesOnOnePath(t *testing.T) {
	c := newCluster(t, 1, "evo", "dbz", "evo.dlq")
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "evo", 1, 1, 10, 0, 31, 0, want) // table t00
	val := `{"before":null,"after":{"id":1},"source":{"db":"inventory","schema":"public","table":"t00","lsn":5,"ts_ms":1},"op":"c"}`
	kafkatest.ProduceValues(t, c.ListenAddrs(), "dbz", 0, val)

	cfg := testConfig(c.ListenAddrs(), "evo", "dbz")
	cfg.Kafka.Formats = map[string]string{"dbz": "debezium"}
	cfg.Tables.Default.Path = "{table}"
	cfg.Errors.Tolerance = "all"
	cfg.Errors.DLQTopic = "evo.dlq"
	s, stop := runSink(t, cfg, objstore.NewMemory())
	require.Eventually(t, func() bool {
		return counterValue(t, s.metrics.dlqRecords.WithLabelValues("dbz")) == 1 ||
			counterValue(t, s.metrics.dlqRecords.WithLabelValues("evo")) == 10
	}, 30*time.Second, 50*time.Millisecond)
	require.NoError(t, stop())
}

// A Debezium topic read with the default evodb format stops the sink with
// the keys to set, not with the advice to divert records to a dead-letter
// topic, which would take every record of the topic.
func TestSinkNamesTheFormatOfAForeignEnvelope(t *testing.T) {
	c := newCluster(t, 2, "dbz")
	produceDebezium(t, c.ListenAddrs(), "dbz", []dbzChange{{id: 1, lsn: 10, op: "c"}})
	s, err := newSink(testConfig(c.ListenAddrs(), "dbz"), objstore.NewMemory())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = s.Run(ctx)
	var rerr *RecordError
	require.ErrorAs(t, err, &rerr)
	require.ErrorContains(t, err, "record dbz/1@0 cannot be decoded: this looks like a Debezium envelope: set kafka.format or kafka.formats.dbz to debezium")
	require.NotContains(t, err.Error(), "errors.tolerance")
}

// An evodb table "inv" and a Debezium MySQL table "inv.data" rendered by
// "{db}/{table}" land on paths "inv" and "inv/data", one inside the other.
// The second one to arrive is refused as a record error naming both
// tables, which with errors.tolerance none stops the sink.
func TestSinkRefusesNestedTablePaths(t *testing.T) {
	c := newCluster(t, 1, "evo", "dbz")
	outer := `{"op":"INSERT","table":"inv","data":{"id":1},"lsn":1}`
	inner := `{"before":null,"after":{"id":2},"source":{"db":"inv","table":"data","pos":7,"ts_ms":1},"op":"c"}`
	kafkatest.ProduceValues(t, c.ListenAddrs(), "evo", 0, outer)

	cfg := testConfig(c.ListenAddrs(), "evo", "dbz")
	cfg.Kafka.Formats = map[string]string{"dbz": "debezium"}
	cfg.Tables.Default.Path = "{db}/{table}"
	b := objstore.NewMemory()
	s, err := newSink(cfg, b)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	// The inner table's change is produced once the outer table exists,
	// so the refusal names the tables in a known order.
	waitCommitted(t, b, 1, 30*time.Second)
	kafkatest.ProduceValues(t, c.ListenAddrs(), "dbz", 0, inner)
	err = <-done
	var rerr *RecordError
	require.ErrorAs(t, err, &rerr)
	require.Equal(t, "dbz", rerr.Topic)
	require.ErrorContains(t, err, "table inv.data (path inv/data) and table inv (path inv) are nested")
}

// Debezium records whose Kafka key is not a JSON object (a string
// converter's text, "users:42") are stored, not refused; with `dedupe: lsn`
// their key bytes tell apart rows of one source event (same LSN) while a
// replay (same LSN, same key) is still dropped.
func TestSinkOpaqueKeys(t *testing.T) {
	c := newCluster(t, 1, "dbz")
	var recs []*kgo.Record
	for _, r := range []struct {
		key string
		id  int
		lsn uint64
	}{
		{"users:1", 1, 100},
		{"users:2", 2, 100}, // a second row of the same event
		{"Struct{id=3}", 3, 101},
		{"users:1", 1, 100}, // a replay
	} {
		val := fmt.Sprintf(`{"before":null,"after":{"id":%d},"source":{"db":"inventory","schema":"public","table":"users","lsn":%d,"ts_ms":1},"op":"c"}`, r.id, r.lsn)
		recs = append(recs, &kgo.Record{Topic: "dbz", Key: []byte(r.key), Value: []byte(val)})
	}
	kafkatest.Produce(t, c.ListenAddrs(), recs...)

	cfg := testConfig(c.ListenAddrs(), "dbz")
	cfg.Kafka.Format = "debezium"
	cfg.Dedupe = "lsn"
	b := objstore.NewMemory()
	s, stop := runSink(t, cfg, b)
	waitCommitted(t, b, 3, 30*time.Second)
	require.Eventually(t, func() bool {
		return counterValue(t, s.metrics.dedupeDropped.WithLabelValues("inventory/public/users")) == 1
	}, 30*time.Second, 50*time.Millisecond)
	require.NoError(t, stop(), "no record is refused for its key")
	rows, _ := readTables(t, b)
	ids := map[string]int{}
	for _, ch := range rows {
		ids[ch.Get("id").Text()]++
	}
	require.Equal(t, map[string]int{"1": 1, "2": 1, "3": 1}, ids)
	require.Zero(t, counterValue(t, s.metrics.decodeErrors.WithLabelValues("dbz")))
}

// With a dead-letter topic, records in the wrong format are diverted as
// configured, and each warning says which keys to set.
func TestSinkDeadLetterWarningNamesTheFormat(t *testing.T) {
	c := newCluster(t, 2, "dbz", "dbz.dlq")
	produceDebezium(t, c.ListenAddrs(), "dbz", []dbzChange{{id: 1, lsn: 10, op: "c"}})
	cfg := testConfig(c.ListenAddrs(), "dbz")
	cfg.Errors.Tolerance = "all"
	cfg.Errors.DLQTopic = "dbz.dlq"
	logs := &lockedBuffer{}
	s, stop := runSink(t, cfg, objstore.NewMemory(), WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	require.Eventually(t, func() bool {
		return counterValue(t, s.metrics.dlqRecords.WithLabelValues("dbz")) == 1
	}, 30*time.Second, 20*time.Millisecond)
	require.NoError(t, stop())
	require.Contains(t, logs.String(), `msg="record sent to dead-letter topic"`)
	require.Contains(t, logs.String(), `hint="this looks like a Debezium envelope: set kafka.format or kafka.formats.dbz to debezium"`)
}

// lockedBuffer is a bytes.Buffer for a logger that writes from several
// goroutines while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A table nested with one that already exists on the store (written by
// another sink or an earlier run) is refused too, naming both paths, and
// nothing is written for it.
func TestSinkRefusesTablesNestedWithStoredTables(t *testing.T) {
	for _, tc := range []struct {
		name, stored, topic, value, wantPath string
	}{
		{name: "inside", stored: "inv", topic: "dbz", wantPath: "inv/data",
			value: `{"before":null,"after":{"id":2},"source":{"db":"inv","table":"data","pos":7,"ts_ms":1},"op":"c"}`},
		{name: "around", stored: "inv/data", topic: "evo", wantPath: "inv",
			value: `{"op":"INSERT","table":"inv","data":{"id":1},"lsn":1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			b := objstore.NewMemory()
			_, err := delta.Open(b, tc.stored, delta.Options{}).Create(ctx, committer.Metadata{Schema: codec.NewSchema()})
			require.NoError(t, err)
			c := newCluster(t, 1, "evo", "dbz")
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
			require.NoError(t, err)
			defer cl.Close()
			require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: tc.topic, Value: []byte(tc.value)}).FirstErr())

			cfg := testConfig(c.ListenAddrs(), "evo", "dbz")
			cfg.Kafka.Formats = map[string]string{"dbz": "debezium"}
			cfg.Tables.Default.Path = "{db}/{table}"
			s, err := newSink(cfg, b)
			require.NoError(t, err)
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			err = s.Run(rctx)
			var rerr *RecordError
			require.ErrorAs(t, err, &rerr)
			require.ErrorContains(t, err, "(path "+tc.wantPath+") and the table at path "+tc.stored+" on the store are nested")
			_, err = b.Head(ctx, tc.wantPath+"/"+delta.FirstCommit)
			require.ErrorIs(t, err, objstore.ErrNotExist, "no table was created at %s", tc.wantPath)
		})
	}
}

// With `dedupe: lsn`, a table another Delta writer (a Spark or delta-rs
// job) appended to opens and takes new changes as before: the other
// writer's file is not read as a sink block, and replays of the sink's own
// changes are still dropped. The delta-rs writer runs when SINK_TEST_PYTHON
// names a Python with the deltalake package.
func TestSinkDedupeTableAnotherWriterAppendedTo(t *testing.T) {
	t.Run("parquet", func(t *testing.T) {
		dedupeAfterForeignAppend(t, objstore.NewMemory(), func(t *testing.T, b objstore.Bucket, table string) {
			tabletest.AppendForeign(t, context.Background(), b, table, 3)
		})
	})
	t.Run("delta-rs", func(t *testing.T) {
		python := tabletest.Python(t)
		dir := t.TempDir()
		b, err := objstore.NewFilesystem(dir)
		require.NoError(t, err)
		dedupeAfterForeignAppend(t, b, func(t *testing.T, _ objstore.Bucket, table string) {
			tabletest.AppendDeltaRS(t, python, filepath.Join(dir, table), 3, 1_000_000)
		})
	})
}

// dedupeAfterForeignAppend commits changes with dedupe on, has another
// writer append to their table, and restarts the sink over replays and one
// new change.
func dedupeAfterForeignAppend(t *testing.T, b objstore.Bucket, appendRows func(t *testing.T, b objstore.Bucket, table string)) {
	const table = "inventory/public/users"
	c := newCluster(t, 2, "dbz")
	cfg := testConfig(c.ListenAddrs(), "dbz")
	cfg.Kafka.Format = "debezium"
	cfg.Dedupe = "lsn"

	first := []dbzChange{{1, 110, "c"}, {2, 100, "c"}, {3, 120, "c"}}
	produceDebezium(t, c.ListenAddrs(), "dbz", first)
	_, stop := runSink(t, cfg, b)
	waitCommitted(t, b, len(first), 30*time.Second)
	time.Sleep(500 * time.Millisecond)
	require.NoError(t, stop())

	appendRows(t, b, table)
	snap, err := delta.Open(b, table, delta.Options{}).Snapshot(context.Background())
	require.NoError(t, err)
	foreign := 0
	for _, a := range snap.Files {
		if !tablefile.WrittenBySink(a) {
			foreign++
		}
	}
	require.Equal(t, 1, foreign, "the other writer appended one file")

	produceDebezium(t, c.ListenAddrs(), "dbz", []dbzChange{{1, 110, "c"}, {3, 120, "c"}, {4, 130, "c"}})
	s, stop := runSink(t, cfg, b)
	waitCaughtUp(t, s)
	require.NoError(t, stop())
	rows, _ := readTables(t, b)
	seen := map[string]int{}
	for _, ch := range rows {
		seen[fmt.Sprintf("%d/%s", ch.LSN, ch.Get("id").Text())]++
	}
	require.Equal(t, map[string]int{"100/2": 1, "110/1": 1, "120/3": 1, "130/4": 1}, seen)
	require.Equal(t, 2.0, counterValue(t, s.metrics.dedupeDropped.WithLabelValues(table)), "replays dropped after the restart")
}

// waitCaughtUp waits until the sink owns partitions and has committed
// each to its end. A partition whose high watermark no fetch has reported
// yet shows no lag, but is not caught up.
func waitCaughtUp(t *testing.T, s *Sink) {
	t.Helper()
	require.Eventually(t, func() bool {
		st := s.Status()
		for _, p := range st.Partitions {
			if p.HighWater < 0 || p.Lag != 0 {
				return false
			}
		}
		return len(st.Partitions) > 0
	}, 30*time.Second, 50*time.Millisecond)
}
