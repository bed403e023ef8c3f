// Package kafkatest runs in-process Kafka clusters for tests (franz-go's
// kfake, which speaks the real protocol) and produces to them, so that
// every package's tests start brokers and write records the same way.
package kafkatest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// NewCluster starts a one-broker cluster with opts (seeded topics, topic
// auto-creation, SASL, TLS) and closes it when the test ends.
func NewCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// Produce writes recs to brokers and waits until all are acknowledged,
// failing the test on any error. Each record goes to the partition it
// names (a manual partitioner), so a test knows every record's
// coordinates; within a partition the records keep their order.
func Produce(t testing.TB, brokers []string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	require.NoError(t, cl.ProduceSync(context.Background(), recs...).FirstErr())
}

// ProduceValues writes raw record values to one partition of a topic, in
// order, as Produce does.
func ProduceValues(t testing.TB, brokers []string, topic string, partition int32, values ...string) {
	t.Helper()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Partition: partition, Value: []byte(v)}
	}
	Produce(t, brokers, recs...)
}
