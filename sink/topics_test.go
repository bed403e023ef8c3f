package sink

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/internal/kafkatest"
	"github.com/evodb/sink/objstore"
)

// A topic of kafka.topics that does not exist is reported at start and
// again while it is missing, naming the key; once created, that is said.
func TestMissingTopicIsReported(t *testing.T) {
	c := kafkatest.NewCluster(t, kfake.SeedTopics(1, "cdc"))
	var logs logBuffer
	s, err := newSink(testConfig(c.ListenAddrs(), "cdc", "orders"), objstore.NewMemory(), WithLogger(logs.logger()))
	require.NoError(t, err)
	s.missingEvery = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()

	warnings := func(topic string) int {
		n := 0
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "level=WARN") && strings.Contains(l, "kafka.topics does not exist") && strings.Contains(l, "topic="+topic+" ") {
				n++
			}
		}
		return n
	}
	require.Eventually(t, func() bool { return warnings("orders") >= 2 }, 30*time.Second, 10*time.Millisecond, "repeated warnings for the missing topic:\n%s", logs.String())
	require.Zero(t, warnings("cdc"), "an existing topic is not reported")

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	defer cl.Close()
	_, err = kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "orders")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "topic in kafka.topics is available now") }, 30*time.Second, 10*time.Millisecond)
}

// A sink that cannot reach its brokers says so while it keeps trying,
// instead of printing nothing until kafka.connect_timeout.
func TestUnreachableBrokerIsReportedWhileTrying(t *testing.T) {
	// An address nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	var logs logBuffer
	cfg := testConfig([]string{addr}, "cdc")
	cfg.Kafka.ConnectTimeout = 10 * time.Minute
	s, err := newSink(cfg, objstore.NewMemory(), WithLogger(logs.logger()))
	require.NoError(t, err)
	s.reachEvery = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	require.Eventually(t, func() bool {
		return strings.Count(logs.String(), "still trying to reach the kafka brokers") >= 2
	}, 60*time.Second, 10*time.Millisecond)
	require.Contains(t, logs.String(), addr)
	require.Contains(t, logs.String(), "connection refused")
	// Stopping while still trying is a graceful stop like any other:
	// nothing was consumed, so nothing is left to flush.
	cancel()
	require.NoError(t, <-done)
}
