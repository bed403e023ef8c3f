package sink

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/internal/kafkatest"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/tablefile"
)

// tableSchema returns the committed schema of the table at root.
func tableSchema(t *testing.T, b objstore.Bucket, root string) *codec.Schema {
	t.Helper()
	snap, err := delta.Open(b, root, delta.Options{}).Snapshot(context.Background())
	require.NoError(t, err)
	s, err := tablefile.TableSchema(snap)
	require.NoError(t, err)
	return s
}

func columnNames(s *codec.Schema) []string {
	var names []string
	for _, c := range s.Columns() {
		names = append(names, c.Name)
	}
	return names
}

// A record refused because it is larger than the table buffer goes to the
// dead-letter topic, and the column only it has never reaches the table's
// schema: schema changes come only from records that are committed.
func TestSinkRefusedRecordDoesNotChangeSchema(t *testing.T) {
	c := newCluster(t, 1, "cdc", "cdc.dlq")
	big := strings.Repeat("x", 100<<10)
	kafkatest.ProduceValues(t, c.ListenAddrs(), "cdc", 0,
		`{"op":"INSERT","table":"users","data":{"id":1,"name":"a"},"lsn":1}`,
		fmt.Sprintf(`{"op":"INSERT","table":"users","data":{"id":2,"name":"b","blob":%q},"lsn":2}`, big),
		`{"op":"INSERT","table":"users","data":{"id":3,"name":"c"},"lsn":3}`,
	)
	b := objstore.NewMemory()
	cfg := testConfig(c.ListenAddrs(), "cdc")
	cfg.Errors.Tolerance = "all"
	cfg.Errors.DLQTopic = "cdc.dlq"
	cfg.Tables.Default.MaxBufferBytes = 64 << 10 // the do-sqlite block size
	_, stop := runSink(t, cfg, b)
	waitCommitted(t, b, 2, 30*time.Second)
	require.NoError(t, stop())
	rows, _ := readTables(t, b)
	require.Len(t, rows, 2)
	require.Equal(t, []string{"id", "name"}, columnNames(tableSchema(t, b, "users")))
}

// Changes dropped from the buffer when their partition is lost are re-read
// by the partition's next owner: the columns only they have must not reach
// the schema this member commits, while the columns the remaining changes
// declare (Debezium's schema wrapper, here a column that is null in every
// row) stay.
func TestSinkDroppedRecordsDoNotChangeSchema(t *testing.T) {
	c := newCluster(t, 2, "cdc")
	source := `"source":{"db":"shop","schema":"public","table":"users","lsn":%d,"ts_ms":1700000000000}`
	wrapped := `{"schema":{"type":"struct","fields":[{"type":"struct","field":"after","fields":[` +
		`{"type":"int64","field":"id"},{"type":"string","optional":true,"field":"note"}]}]},` +
		`"payload":{"after":{"id":%d,"note":null},` + source + `,"op":"c"}}`
	plain := `{"after":{"id":%d,"extra":"only here"},` + source + `,"op":"c"}`
	kafkatest.ProduceValues(t, c.ListenAddrs(), "cdc", 0, fmt.Sprintf(wrapped, 1, 1), fmt.Sprintf(wrapped, 2, 2))
	kafkatest.ProduceValues(t, c.ListenAddrs(), "cdc", 1, fmt.Sprintf(plain, 3, 3))
	b := objstore.NewMemory()
	cfg := testConfig(c.ListenAddrs(), "cdc")
	cfg.Kafka.Format = "debezium"
	cfg.Tables.Default.FlushInterval = time.Hour // only the shutdown flushes
	cfg.Tables.Default.FlushThreshold = 1_000_000
	s, stop := runSink(t, cfg, b)
	require.Eventually(t, func() bool {
		n := 0
		for _, tb := range s.Status().Tables {
			n += tb.BufferedRecords
		}
		return n == 3
	}, 30*time.Second, 50*time.Millisecond)
	// What franz-go calls when the group takes the partition away without
	// a revoke (a session that timed out).
	s.onLost(context.Background(), nil, map[string][]int32{"cdc": {1}})
	require.NoError(t, stop())

	rows, _ := readTables(t, b)
	require.Len(t, rows, 2)
	roots, err := delta.ListTables(context.Background(), b)
	require.NoError(t, err)
	require.Len(t, roots, 1)
	require.Equal(t, []string{"id", "note"}, columnNames(tableSchema(t, b, roots[0])))
}
