package sink

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/evodb/sink/codec/confluent"
	"github.com/evodb/sink/objstore"
)

const avroRowSchema = `{"type":"record","name":"User","fields":[
 {"name":"op","type":"string"},{"name":"lsn","type":"long"},{"name":"table","type":"string"},
 {"name":"id","type":"long"},{"name":"name","type":"string"}]}`

// produceAvro registers avroRowSchema and produces n plain Avro records
// (ids and LSNs from 1) to topic.
func produceAvro(t *testing.T, brokers []string, reg *srfake.Registry, topic string, n int) {
	t.Helper()
	id, _, err := reg.RegisterSchema(topic+"-value", sr.Schema{Schema: avroRowSchema})
	require.NoError(t, err)
	s, err := avro.ParseWithCache(avroRowSchema, "", &avro.SchemaCache{})
	require.NoError(t, err)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	require.NoError(t, err)
	defer cl.Close()
	var h sr.ConfluentHeader
	for i := 1; i <= n; i++ {
		body, err := avro.Marshal(s, map[string]any{"op": "INSERT", "lsn": int64(i), "table": "users", "id": int64(i), "name": "u"})
		require.NoError(t, err)
		v, _ := h.AppendEncode(nil, id, nil)
		require.NoError(t, cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: append(v, body...)}).FirstErr())
	}
}

// An Avro topic beside a JSON one: both land in their tables exactly once.
func TestSinkAvroTopic(t *testing.T) {
	c := newCluster(t, 1, "json", "avro")
	reg := srfake.New()
	defer reg.Close()
	b := objstore.NewMemory()
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "json", 1, 2, 50, 0, 1, 0, want)
	produceAvro(t, c.ListenAddrs(), reg, "avro", 30)

	cfg := testConfig(c.ListenAddrs(), "json", "avro")
	cfg.Kafka.Formats = map[string]string{"avro": "avro"}
	cfg.SchemaRegistry.URLs = []string{reg.URL()}
	_, stop := runSink(t, cfg, b)
	waitCommitted(t, b, 80, time.Minute)
	require.NoError(t, stop())
	rows, counts := readTables(t, b)
	require.Equal(t, 80, len(counts))
	for k, p := range want.recs {
		require.Equal(t, 1, counts[k], "json record %v", k)
		require.Equal(t, p.lsn, rows[k].LSN)
	}
	for off := int64(0); off < 30; off++ {
		k := coord{"avro", 0, off}
		require.Equal(t, 1, counts[k], "avro record at offset %d", off)
		require.Equal(t, "users", rows[k].Table)
		require.Equal(t, uint64(off+1), rows[k].LSN)
		row := rows[k]
		require.Equal(t, off+1, row.Get("id").Int())
	}
}

// A registry outage stops the sink even under tolerance: all: the record
// is neither dead-lettered nor skipped, and nothing of its topic is
// committed past it.
func TestSinkRegistryOutageStopsTheSink(t *testing.T) {
	c := newCluster(t, 1, "avro", "avro.dlq")
	reg := srfake.New()
	defer reg.Close()
	produceAvro(t, c.ListenAddrs(), reg, "avro", 3)
	reg.Intercept(func(w http.ResponseWriter, _ *http.Request) bool {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return true
	})
	b := objstore.NewMemory()
	cfg := testConfig(c.ListenAddrs(), "avro")
	cfg.Kafka.Formats = map[string]string{"avro": "avro"}
	cfg.SchemaRegistry.URLs = []string{reg.URL()}
	cfg.SchemaRegistry.RetryTimeout = 500 * time.Millisecond
	cfg.Errors = ErrorsConfig{Tolerance: "all", DLQTopic: "avro.dlq"}
	s, err := newSink(cfg, b)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the sink did not stop on the registry outage")
	}
	require.ErrorIs(t, err, confluent.ErrUnavailable)
	require.Contains(t, err.Error(), "record avro/0@0")
	rows, _ := readTables(t, b)
	require.Empty(t, rows)
	require.Empty(t, fetchGroupOffsets(t, c.ListenAddrs(), cfg.Kafka.Group, "avro"))
	var re *RecordError
	require.False(t, errors.As(err, &re), "an outage is not a record error: %v", err)
}

// A sink stopped while a decode waits out a registry outage stops at once
// and gracefully, not after schema_registry.retry_timeout: what it
// buffered before is committed, the record it could not decode is not.
func TestSinkStopsDuringRegistryOutage(t *testing.T) {
	c := newCluster(t, 1, "json", "avro")
	reg := srfake.New()
	defer reg.Close()
	var asked atomic.Int64
	reg.Intercept(func(w http.ResponseWriter, _ *http.Request) bool {
		asked.Add(1)
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return true
	})
	b := objstore.NewMemory()
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "json", 1, 2, 50, 0, 1, 0, want)
	cfg := testConfig(c.ListenAddrs(), "json", "avro")
	cfg.Kafka.Formats = map[string]string{"avro": "avro"}
	cfg.SchemaRegistry.URLs = []string{reg.URL()}
	cfg.SchemaRegistry.RetryTimeout = time.Hour
	s, err := newSink(cfg, b)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitCommitted(t, b, 50, time.Minute)

	// The registry answers 503 to the schema lookup, so the decode of the
	// first Avro record retries for up to an hour.
	id, _, err := reg.RegisterSchema("avro-value", sr.Schema{Schema: avroRowSchema})
	require.NoError(t, err)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	defer cl.Close()
	var h sr.ConfluentHeader
	v, _ := h.AppendEncode(nil, id, nil)
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "avro", Value: append(v, 0)}).FirstErr())
	require.Eventually(t, func() bool { return asked.Load() > 0 }, time.Minute, 20*time.Millisecond)

	cancel()
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the cancelled sink still waits for the registry")
	}
	require.NoError(t, err)
	rows, counts := readTables(t, b)
	require.Len(t, rows, 50)
	for k := range want.recs {
		require.Equal(t, 1, counts[k], "json record %v", k)
	}
	require.Empty(t, fetchGroupOffsets(t, c.ListenAddrs(), cfg.Kafka.Group, "avro"))
}

func TestSchemaRegistryConfigErrors(t *testing.T) {
	cfg := testConfig([]string{"127.0.0.1:1"}, "t")
	cfg.Kafka.Format = "avro"
	cfg.Kafka.KeyFormat = "xml"
	cfg.ApplyDefaults()
	err := cfg.Validate()
	require.ErrorContains(t, err, "schema_registry.urls: required")
	require.ErrorContains(t, err, `kafka.key_format: "xml" is not one of avro, protobuf, json-schema`)

	cfg.SchemaRegistry.URLs = []string{"registry:8081"}
	cfg.SchemaRegistry.BearerToken = "t"
	cfg.SchemaRegistry.Username = "u"
	cfg.Kafka.KeyFormat = ""
	cfg.Kafka.Formats = map[string]string{"p": "protobuf", "x": "thrift"}
	err = cfg.Validate()
	require.ErrorContains(t, err, `schema_registry.urls[0]: "registry:8081" is not an http:// or https:// URL`)
	require.ErrorContains(t, err, "schema_registry.bearer_token: set either")
	require.ErrorContains(t, err, `kafka.formats.x: "thrift" is not one of evodb, debezium, avro, protobuf, json-schema`)
	require.NotContains(t, err.Error(), "kafka.formats.p")
}
