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

	"github.com/evodb/sink/objstore"
)

// TestVerifyCommand runs the sink over a produced workload, then verify:
// clean tables exit 0 with an OK report, records the sink never saw are
// listed as gaps and exit 1.
func TestVerifyCommand(t *testing.T) {
	ctx := testContext(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "cdc.dlq"), kfake.AllowAutoTopicCreation())
	require.NoError(t, err)
	defer cluster.Close()
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
