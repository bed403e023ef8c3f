package sink

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/confluent"
	"github.com/evodb/sink/objstore"
)

// A Protobuf topic beside a JSON one: both land in their tables exactly
// once, the Protobuf columns with their types.
func TestSinkProtobufTopic(t *testing.T) {
	c := newCluster(t, 1, "json", "proto")
	fake := srfake.New()
	defer fake.Close()
	reg, err := confluent.NewRegistry(confluent.Options{URLs: []string{fake.URL()}})
	require.NoError(t, err)
	defer reg.Close()
	enc := confluent.NewProtoEncoder(reg, "proto")
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	defer cl.Close()
	for i := int64(1); i <= 30; i++ {
		ch := codec.Change{Table: "users", Op: codec.OpInsert, LSN: uint64(i), TS: 1700000000000, Row: []codec.Field{
			{Name: "id", Value: codec.Int(i)}, {Name: "name", Value: codec.String("u")}, {Name: "seen", Value: codec.Timestamp(1700000000000 + i)},
		}}
		v, err := enc.Append(context.Background(), nil, &ch)
		require.NoError(t, err)
		require.NoError(t, cl.ProduceSync(context.Background(), &kgo.Record{Topic: "proto", Value: v}).FirstErr())
	}
	b := objstore.NewMemory()
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "json", 1, 2, 20, 0, 1, 0, want)

	cfg := testConfig(c.ListenAddrs(), "json", "proto")
	cfg.Kafka.Formats = map[string]string{"proto": "protobuf"}
	cfg.SchemaRegistry.URLs = []string{fake.URL()}
	_, stop := runSink(t, cfg, b)
	waitCommitted(t, b, 50, time.Minute)
	require.NoError(t, stop())
	rows, counts := readTables(t, b)
	require.Equal(t, 50, len(counts))
	for off := int64(0); off < 30; off++ {
		k := coord{"proto", 0, off}
		require.Equal(t, 1, counts[k], "protobuf record at offset %d", off)
		require.Equal(t, "users", rows[k].Table)
		require.Equal(t, uint64(off+1), rows[k].LSN)
		row := rows[k]
		require.Equal(t, off+1, row.Get("id").Int())
		require.Equal(t, codec.Timestamp(1700000000000+off+1), row.Get("seen"))
	}
}
