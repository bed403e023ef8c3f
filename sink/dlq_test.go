package sink

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/evodb/sink/internal/kafkatest"
	"github.com/evodb/sink/objstore"
)

// A missing dead-letter topic is created at start with the configured
// partitions, not found missing at the first bad record; and a broker whose
// metadata does not list the new topic at once (as a real one) is asked
// again rather than taken for a refusal.
func TestSinkCreatesMissingDLQTopicAtStart(t *testing.T) {
	// No automatic topic creation: only the sink can create the DLQ.
	c := kafkatest.NewCluster(t, kfake.SeedTopics(1, "cdc"))
	// After the creation, answer the first three metadata requests for the
	// DLQ alone as a broker whose metadata lags does: unknown topic.
	var mu sync.Mutex
	created, lagged := false, 0
	c.ControlKey(kmsg.CreateTopics.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		mu.Lock()
		defer mu.Unlock()
		created = true
		c.KeepControl()
		return nil, nil, false
	})
	c.ControlKey(kmsg.Metadata.Int16(), func(r kmsg.Request) (kmsg.Response, error, bool) {
		req := r.(*kmsg.MetadataRequest)
		mu.Lock()
		defer mu.Unlock()
		c.KeepControl()
		if !created || lagged == 3 || len(req.Topics) != 1 || req.Topics[0].Topic == nil || *req.Topics[0].Topic != "cdc.dlq" {
			return nil, nil, false
		}
		lagged++
		resp := req.ResponseKind().(*kmsg.MetadataResponse)
		resp.Version = req.Version
		for i, addr := range c.ListenAddrs() {
			host, port, _ := net.SplitHostPort(addr)
			p, _ := strconv.Atoi(port)
			resp.Brokers = append(resp.Brokers, kmsg.MetadataResponseBroker{NodeID: int32(i), Host: host, Port: int32(p)})
		}
		tp := kmsg.NewMetadataResponseTopic()
		tp.Topic = kmsg.StringPtr("cdc.dlq")
		tp.ErrorCode = kerr.UnknownTopicOrPartition.Code
		resp.Topics = append(resp.Topics, tp)
		return resp, nil, true
	})

	cfg := testConfig(c.ListenAddrs(), "cdc")
	cfg.Errors = ErrorsConfig{Tolerance: "all", DLQTopic: "cdc.dlq", DLQTopicPartitions: 3}
	s, stop := runSink(t, cfg, objstore.NewMemory())
	require.Eventually(t, s.Ready, 30*time.Second, 10*time.Millisecond)

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The group may be joined before the DLQ check ends; no bad record is
	// ever produced, so only that check can create the topic. (Two topics
	// per request, so these are never the lagged ones.)
	var topics kadm.TopicDetails
	require.Eventually(t, func() bool {
		topics, err = kadm.NewClient(cl).ListTopics(ctx, "cdc", "cdc.dlq")
		return err == nil && topics["cdc.dlq"].Err == nil && len(topics["cdc.dlq"].Partitions) > 0
	}, 30*time.Second, 10*time.Millisecond, "the DLQ topic is created without any bad record")
	require.Len(t, topics["cdc.dlq"].Partitions, 3)

	// The sink got past the lagging metadata: a bad record reaches the DLQ.
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "cdc", Value: []byte("not json")}).FirstErr())
	dlq, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("cdc.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer dlq.Close()
	fs := dlq.PollRecords(ctx, 1)
	require.NoError(t, fs.Err())
	require.Equal(t, []byte("not json"), fs.Records()[0].Value)
	require.NoError(t, stop())
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 3, lagged, "the sink asked again while the metadata did not list the new topic")
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
			s, err := newSink(cfg, objstore.NewMemory())
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
		decodable     bool
		wantTruncated bool
	}{
		{"larger than 1 MB but within the topic's limit", 4 << 20, 2 << 20, false, false},
		{"larger than the topic's limit", 64 << 10, 200 << 10, false, true},
		// A valid change over do-sqlite's buffer limit (256 KiB) is a bad
		// record too.
		{"a change over the table buffer limit, larger than 1 MB", 4 << 20, 2 << 20, true, false},
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

			// Bad, large and incompressible (random bytes, or a change
			// holding them in hex), then a good record.
			big := make([]byte, tc.size)
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range big {
				big[i] = byte(rng.Uint32())
			}
			if tc.decodable {
				blob := hex.EncodeToString(big)[:tc.size-100]
				big = []byte(`{"op":"INSERT","table":"users","data":{"id":2,"blob":"` + blob + `"},"lsn":2}`)
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
			require.Equal(t, strconv.Itoa(len(big)), headers["evodb.original.size"])
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
	_, err := newSink(cfg, objstore.NewMemory())
	require.ErrorContains(t, err, `kafka.topics[1]: "cdc.dlq" is errors.dlq_topic`)
	require.ErrorContains(t, err, `kafka.topics[2]: "cdc.commits" is notifications.topic`)
}
