package sink

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/evodb/sink/objstore"
)

// A missing dead-letter topic is created at start with the configured
// partitions, not found missing at the first bad record.
func TestSinkCreatesMissingDLQTopicAtStart(t *testing.T) {
	// No automatic topic creation: only the sink can create the DLQ.
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "cdc"))
	require.NoError(t, err)
	defer c.Close()
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
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics...), kfake.EnableSASL(), kfake.EnableACLs(),
				kfake.Superuser("SCRAM-SHA-256", "admin", "a"), kfake.User("SCRAM-SHA-256", "sink", "s", tc.acls...))
			require.NoError(t, err)
			defer c.Close()
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
