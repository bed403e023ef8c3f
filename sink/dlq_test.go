package sink

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/evodb/sink/internal/kafkatest"
	"github.com/evodb/sink/objstore"
)

// A missing dead-letter topic is created at start with the configured
// partitions, not found missing at the first bad record.
func TestSinkCreatesMissingDLQTopicAtStart(t *testing.T) {
	// No automatic topic creation: only the sink can create the DLQ.
	c := kafkatest.NewCluster(t, kfake.SeedTopics(1, "cdc"))
	cfg := testConfig(c.ListenAddrs(), "cdc")
	cfg.Errors = ErrorsConfig{Tolerance: "all", DLQTopic: "cdc.dlq", DLQTopicPartitions: 3}
	s, stop := runSink(t, cfg, objstore.NewMemory())
	require.Eventually(t, s.Ready, 30*time.Second, 10*time.Millisecond)

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	topics, err := kadm.NewClient(cl).ListTopics(ctx, "cdc.dlq")
	require.NoError(t, err)
	require.True(t, topics.Has("cdc.dlq"), "the DLQ topic exists before any bad record")
	require.Len(t, topics["cdc.dlq"].Partitions, 3)
	require.NoError(t, stop())
}

// A dead-letter topic the sink's user can neither create nor write stops
// the sink at start with an error naming errors.dlq_topic.
func TestSinkStopsAtStartWhenDLQIsUnusable(t *testing.T) {
	allow := func(res kmsg.ACLResourceType, name string, op kmsg.ACLOperation) kfake.ACL {
		return kfake.ACL{Resource: res, Name: name, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true}
	}
	consume := []kfake.ACL{
		allow(kmsg.ACLResourceTypeTopic, "cdc", kmsg.ACLOperationRead),
		allow(kmsg.ACLResourceTypeTopic, "cdc", kmsg.ACLOperationDescribe),
		allow(kmsg.ACLResourceTypeGroup, "test-group", kmsg.ACLOperationRead),
		allow(kmsg.ACLResourceTypeGroup, "test-group", kmsg.ACLOperationDescribe),
	}
	describeDLQ := allow(kmsg.ACLResourceTypeTopic, "cdc.dlq", kmsg.ACLOperationDescribe)
	for _, tc := range []struct {
		name string
		acls []kfake.ACL
		dlq  string // seeded when set
		want string
	}{
		{"missing and no CREATE", append(consume, describeDLQ), "", "cannot be created"},
		{"present but no WRITE", append(consume, describeDLQ), "cdc.dlq", "may not write"},
		{"present but not even DESCRIBE", consume, "cdc.dlq", "grant the sink's user DESCRIBE and WRITE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topics := []string{"cdc"}
			if tc.dlq != "" {
				topics = append(topics, tc.dlq)
			}
			c := kafkatest.NewCluster(t, kfake.SeedTopics(1, topics...), kfake.EnableSASL(), kfake.EnableACLs(),
				kfake.Superuser("SCRAM-SHA-256", "admin", "a"), kfake.User("SCRAM-SHA-256", "sink", "s", tc.acls...))
			cfg := testConfig(c.ListenAddrs(), "cdc")
			cfg.Kafka.SASL = SASLConfig{Mechanism: "SCRAM-SHA-256", Username: "sink", Password: "s"}
			cfg.Errors = ErrorsConfig{Tolerance: "all", DLQTopic: "cdc.dlq"}
			s, err := New(cfg, objstore.NewMemory())
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = s.Run(ctx)
			require.Error(t, err)
			require.NoError(t, ctx.Err(), "stopped at start, not at the test deadline")
			require.Contains(t, err.Error(), "errors.dlq_topic cdc.dlq")
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// A dead-letter record is sized against the DLQ topic's max.message.bytes,
// not the producer's 1 MB default: one that fits goes whole, however large;
// one that does not becomes a pointer (coordinates, error, original size,
// the start of the value), and the partition moves on either way.
func TestSinkDLQRecordSizes(t *testing.T) {
	for _, tc := range []struct {
		name          string
		dlqMax, size  int
		wantTruncated bool
	}{
		{"larger than 1 MB but within the topic's limit", 4 << 20, 2 << 20, false},
		{"larger than the topic's limit", 64 << 10, 200 << 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := kafkatest.NewCluster(t)
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerBatchMaxBytes(8<<20),
				kgo.ConsumeTopics("cdc.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(16<<20))
			require.NoError(t, err)
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			adm := kadm.NewClient(cl)
			_, err = adm.CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": kmsg.StringPtr("8388608")}, "cdc")
			require.NoError(t, err)
			_, err = adm.CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": kmsg.StringPtr(strconv.Itoa(tc.dlqMax))}, "cdc.dlq")
			require.NoError(t, err)

			// Bad (not JSON), large and incompressible, then a good record.
			big := make([]byte, tc.size)
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range big {
				big[i] = byte(rng.Uint32())
			}
			good := []byte(`{"op":"INSERT","table":"users","data":{"id":1},"lsn":1}`)
			require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "cdc", Key: []byte("k"), Value: big}, &kgo.Record{Topic: "cdc", Value: good}).FirstErr())

			b := objstore.NewMemory()
			cfg := testConfig(c.ListenAddrs(), "cdc")
			cfg.Errors = ErrorsConfig{Tolerance: "all", DLQTopic: "cdc.dlq"}
			_, stop := runSink(t, cfg, b)
			waitCommitted(t, b, 1, 30*time.Second)
			require.NoError(t, stop())

			fs := cl.PollRecords(ctx, 1)
			require.NoError(t, fs.Err())
			got := fs.Records()[0]
			headers := map[string]string{}
			for _, h := range got.Headers {
				headers[h.Key] = string(h.Value)
			}
			require.Equal(t, "cdc", headers["evodb.source.topic"])
			require.Equal(t, "0", headers["evodb.source.partition"])
			require.Equal(t, "0", headers["evodb.source.offset"])
			require.NotEmpty(t, headers["evodb.error"])
			require.Equal(t, []byte("k"), got.Key)
			if !tc.wantTruncated {
				require.Equal(t, big, got.Value)
				require.NotContains(t, headers, "evodb.truncated")
				return
			}
			require.Equal(t, "true", headers["evodb.truncated"])
			require.Equal(t, strconv.Itoa(tc.size), headers["evodb.original.size"])
			require.NotEmpty(t, got.Value)
			require.Less(t, len(got.Value), tc.dlqMax)
			require.Equal(t, big[:len(got.Value)], got.Value, "the pointer holds the start of the value")
		})
	}
}

// A topic_regex that also matches the DLQ and notification topics consumes
// neither: the sink never reads its own dead letters or commit events.
func TestTopicRegexExcludesOwnTopics(t *testing.T) {
	c := newCluster(t, 1, "cdc.users", "cdc.dlq", "cdc.commits")
	rec := func(topic, table string) *kgo.Record {
		return &kgo.Record{Topic: topic, Value: []byte(`{"op":"INSERT","table":"` + table + `","data":{"id":1},"lsn":1}`)}
	}
	// Decodable changes in the sink's own topics: consumed, they would
	// become rows.
	kafkatest.Produce(t, c.ListenAddrs(), rec("cdc.dlq", "from_dlq"), rec("cdc.commits", "from_commits"), rec("cdc.users", "users"))

	b := objstore.NewMemory()
	cfg := testConfig(c.ListenAddrs())
	cfg.Kafka.TopicRegex = `cdc\..*`
	cfg.Errors = ErrorsConfig{Tolerance: "all", DLQTopic: "cdc.dlq"}
	cfg.Notify.Topic = "cdc.commits"
	_, stop := runSink(t, cfg, b)
	waitCommitted(t, b, 1, 30*time.Second)
	require.NoError(t, stop())

	rows, _ := readTables(t, b)
	for k, ch := range rows {
		require.Equal(t, "cdc.users", k.topic, "row of table %s read from the sink's own topic", ch.Table)
	}
	for _, topic := range []string{"cdc.dlq", "cdc.commits"} {
		require.Empty(t, fetchGroupOffsets(t, c.ListenAddrs(), cfg.Kafka.Group, topic), "group offsets committed for %s", topic)
	}
}

// Listing the DLQ or notification topic in kafka.topics is a configuration
// error naming the key.
func TestTopicsListingOwnTopicsIsInvalid(t *testing.T) {
	cfg := testConfig([]string{"127.0.0.1:1"}, "cdc", "cdc.dlq", "cdc.commits")
	cfg.Errors = ErrorsConfig{Tolerance: "all", DLQTopic: "cdc.dlq"}
	cfg.Notify.Topic = "cdc.commits"
	_, err := New(cfg, objstore.NewMemory())
	require.ErrorContains(t, err, `kafka.topics[1]: "cdc.dlq" is errors.dlq_topic`)
	require.ErrorContains(t, err, `kafka.topics[2]: "cdc.commits" is notifications.topic`)
}
