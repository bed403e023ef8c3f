package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/evodb/sink/internal/kafkatest"
	"github.com/evodb/sink/objstore"
)

// TestVerifyCommand runs the sink over a produced workload, then verify:
// clean tables exit 0 with an OK report, records the sink never saw are
// listed as gaps and exit 1.
func TestVerifyCommand(t *testing.T) {
	ctx := testContext(t)
	cluster := kafkatest.NewCluster(t, kfake.SeedTopics(2, "cdc.dlq"), kfake.AllowAutoTopicCreation())
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	produce := func(seed string) {
		e, _, errOut := testEnv(nil)
		code := runMain(ctx, e, []string{"produce", "-brokers", brokers, "-topic", "cdc", "-records", "400",
			"-tables", "3", "-partitions", "2", "-seed", seed, "-bad-rate", "0.05"})
		require.Equal(t, 0, code, errOut.String())
	}
	produce("3")

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`
kafka:
  brokers: ["${BROKERS}"]
  topics: [cdc]
store:
  url: file://${DIR}/store
tables:
  default: {flush_interval: 100ms}
errors: {tolerance: all, dlq_topic: cdc.dlq}
http:
  addr: ""
`), 0o644))
	vars := map[string]string{"BROKERS": brokers, "DIR": dir}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	e, _, runErr := testEnv(vars)
	done := make(chan int, 1)
	go func() { done <- runMain(runCtx, e, []string{"run", "-c", cfgPath}) }()
	b, err := objstore.NewFilesystem(filepath.Join(dir, "store"))
	require.NoError(t, err)

	verifyOnce := func(args ...string) (int, string, string) {
		e, out, errOut := testEnv(vars)
		code := runMain(ctx, e, append([]string{"verify", "-c", cfgPath}, args...))
		return code, out.String(), errOut.String()
	}
	// The run is done once verify is clean (the DLQ'd records are not rows).
	require.Eventually(t, func() bool {
		code, _, _ := verifyOnce()
		return code == 0 && countRows(ctx, b) > 0
	}, time.Minute, 200*time.Millisecond, "stderr: %s", runErr)
	stop()
	require.Equal(t, 0, <-done, runErr.String())

	code, out, errOut := verifyOnce()
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "OK: 400 records in 2 partitions")

	produce("4")
	code, out, errOut = verifyOnce("-max", "3")
	require.Equal(t, 1, code)
	require.Contains(t, out, "FAILED")
	require.Contains(t, out, "problems (3 of ")
	require.Contains(t, out, "gap")
	require.Contains(t, errOut, "do not hold the topics exactly once")

	// An offset range ending before the new records is still clean.
	code, out, _ = verifyOnce("-topic", "cdc", "-to", "150")
	require.Equal(t, 0, code, out)

	code, _, errOut = verifyOnce("extra")
	require.Equal(t, 2, code, errOut)
}

// TestVerifyTopicRegex checks that verify reads the topics a kafka.topic_regex
// sink consumes: every matching topic, but neither the dead-letter topic nor
// topics the expression does not match.
func TestVerifyTopicRegex(t *testing.T) {
	ctx := testContext(t)
	cluster := kafkatest.NewCluster(t, kfake.SeedTopics(1, "cdc.dlq"), kfake.AllowAutoTopicCreation())
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	for topic, partitions := range map[string]string{"cdc.a": "2", "cdc.b": "1", "other": "1"} {
		e, _, errOut := testEnv(nil)
		code := runMain(ctx, e, []string{"produce", "-brokers", brokers, "-topic", topic, "-records", "20", "-partitions", partitions})
		require.Equal(t, 0, code, errOut.String())
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	write := func(regex string) {
		require.NoError(t, os.WriteFile(cfgPath, []byte(`
kafka:
  brokers: ["${BROKERS}"]
  topic_regex: '`+regex+`'
store:
  url: file://${DIR}/store
errors: {tolerance: all, dlq_topic: cdc.dlq}
`), 0o644))
	}
	vars := map[string]string{"BROKERS": brokers, "DIR": dir}

	write(`^cdc\.`)
	e, out, errOut := testEnv(vars)
	// Nothing was consumed: verify finds every record missing, in every
	// partition of both matching topics.
	require.Equal(t, 1, runMain(ctx, e, []string{"verify", "-c", cfgPath}), "stderr: %s", errOut)
	require.Contains(t, out.String(), "FAILED: 40 records in 3 partitions")
	for _, p := range []string{"cdc.a/0 ", "cdc.a/1 ", "cdc.b/0 "} {
		require.Contains(t, out.String(), "  "+p)
	}
	require.NotContains(t, out.String(), "cdc.dlq/")
	require.NotContains(t, out.String(), "other/")

	write(`^nothing$`)
	e, _, errOut = testEnv(vars)
	require.Equal(t, 1, runMain(ctx, e, []string{"verify", "-c", cfgPath}))
	require.Contains(t, errOut.String(), `no topic matches kafka.topic_regex "^nothing$"`)
}
