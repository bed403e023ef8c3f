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
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/evodb/sink/internal/kafkatest"
	"github.com/evodb/sink/objstore"
)

// produce -format avro registers schemas and writes Avro records (bad ones
// included) that run reads and verify checks exactly once.
func TestProduceRunVerifyAvro(t *testing.T) { testProduceRunVerify(t, "avro") }

// The same for Protobuf records.
func TestProduceRunVerifyProtobuf(t *testing.T) { testProduceRunVerify(t, "protobuf") }

func testProduceRunVerify(t *testing.T, format string) {
	ctx := testContext(t)
	cluster := kafkatest.NewCluster(t, kfake.SeedTopics(2, "cdc.dlq"), kfake.AllowAutoTopicCreation())
	reg := srfake.New()
	defer reg.Close()
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	e, out, errOut := testEnv(nil)
	code := runMain(ctx, e, []string{"produce", "-brokers", brokers, "-topic", "cdc", "-format", format, "-registry", reg.URL(),
		"-records", "300", "-tables", "3", "-partitions", "2", "-seed", "5", "-bad-rate", "0.05", "-evolve-after", "20"})
	require.Equal(t, 0, code, errOut.String())
	require.Contains(t, out.String(), "produced 300 records")
	require.True(t, reg.SubjectExists("cdc-t0-value") || reg.SubjectExists("cdc-t1-value"))

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`
kafka:
  brokers: ["${BROKERS}"]
  topics: [cdc]
  format: ${FORMAT}
schema_registry:
  urls: ["${REGISTRY}"]
store:
  url: file://${DIR}/store
tables:
  default: {flush_interval: 100ms}
errors: {tolerance: all, dlq_topic: cdc.dlq}
http:
  addr: ""
`), 0o644))
	vars := map[string]string{"BROKERS": brokers, "DIR": dir, "REGISTRY": reg.URL(), "FORMAT": format}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	re, _, runErr := testEnv(vars)
	done := make(chan int, 1)
	go func() { done <- runMain(runCtx, re, []string{"run", "-c", cfgPath}) }()
	b, err := objstore.NewFilesystem(filepath.Join(dir, "store"))
	require.NoError(t, err)
	verifyOnce := func() (int, string, string) {
		e, out, errOut := testEnv(vars)
		code := runMain(ctx, e, []string{"verify", "-c", cfgPath})
		return code, out.String(), errOut.String()
	}
	require.Eventually(t, func() bool {
		code, _, _ := verifyOnce()
		return code == 0 && countRows(ctx, b) > 0
	}, time.Minute, 200*time.Millisecond, "stderr: %s", runErr)
	stop()
	require.Equal(t, 0, <-done, runErr.String())
	code, vout, verr := verifyOnce()
	require.Equal(t, 0, code, verr)
	require.Contains(t, vout, "OK: 300 records in 2 partitions")
}
