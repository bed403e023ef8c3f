package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/evodb/sink/internal/kafkatest"
)

// TestRunMirrors runs the sink with mirrors enabled over a produced
// workload: `sink verify` checks every mirror against its change log, and
// `sink compact` over all tables leaves the mirrors to their maintainer.
func TestRunMirrors(t *testing.T) {
	ctx := testContext(t)
	cluster := kafkatest.NewCluster(t, kfake.AllowAutoTopicCreation())
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	e, _, errOut := testEnv(nil)
	code := runMain(ctx, e, []string{"produce", "-brokers", brokers, "-topic", "cdc", "-records", "600",
		"-tables", "2", "-partitions", "2", "-seed", "7"})
	require.Equal(t, 0, code, errOut.String())

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`
kafka:
  brokers: ["${BROKERS}"]
  topics: [cdc]
store:
  url: file://${DIR}/store
tables:
  default:
    flush_interval: 100ms
    flush_threshold: 50
    mirror: {enabled: true, key: [id], interval: 1h, max_files: 4}
http:
  addr: ""
`), 0o644))
	vars := map[string]string{"BROKERS": brokers, "DIR": dir}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	e, _, runErr := testEnv(vars)
	done := make(chan int, 1)
	go func() { done <- runMain(runCtx, e, []string{"run", "-c", cfgPath}) }()

	verifyOnce := func() (int, string) {
		e, out, errOut := testEnv(vars)
		code := runMain(ctx, e, []string{"verify", "-c", cfgPath})
		return code, out.String() + errOut.String()
	}
	// Done once the change logs hold every record and each mirror holds
	// its change log's latest version. With an interval of an hour, only
	// the sink's commits, which wake the maintainers, get them there.
	require.Eventually(t, func() bool {
		code, out := verifyOnce()
		return code == 0 && strings.Count(out, "  OK: mirror ") == 2 && caughtUp(out)
	}, time.Minute, 200*time.Millisecond, "stderr: %s", runErr)
	// More changes while the maintainers wait out their hour.
	e, _, errOut = testEnv(nil)
	code = runMain(ctx, e, []string{"produce", "-brokers", brokers, "-topic", "cdc", "-records", "300",
		"-tables", "2", "-partitions", "2", "-seed", "8"})
	require.Equal(t, 0, code, errOut.String())
	require.Eventually(t, func() bool {
		code, out := verifyOnce()
		return code == 0 && strings.Contains(out, "OK: 900 records") && strings.Count(out, "  OK: mirror ") == 2 && caughtUp(out)
	}, time.Minute, 200*time.Millisecond, "stderr: %s", runErr)
	stop()
	require.Equal(t, 0, <-done, runErr.String())
	code, out := verifyOnce()
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "OK: 900 records in 2 partitions")
	require.Contains(t, out, "_current at version ")
	require.Contains(t, out, ", equal to the view")

	e, stdout, errOut := testEnv(vars)
	code = runMain(ctx, e, []string{"compact", "-c", cfgPath})
	require.Equal(t, 0, code, errOut.String())
	require.Contains(t, stdout.String(), "_current: skipped, ")
	require.Contains(t, stdout.String(), "deletion vectors")

	// inspect and a dry-run vacuum read mirror tables like any other.
	for _, args := range [][]string{{"inspect", "-c", cfgPath, "t0_current"}, {"vacuum", "-c", cfgPath, "-dry-run"}} {
		e, stdout, errOut = testEnv(vars)
		code = runMain(ctx, e, args)
		require.Equal(t, 0, code, "%v: %s", args, errOut.String())
		require.Contains(t, stdout.String(), "t0_current", "%v", args)
	}
}

// caughtUp reports whether every mirror line of a verify report holds its
// change log's latest version.
func caughtUp(report string) bool {
	n := 0
	for _, line := range strings.Split(report, "\n") {
		j := strings.LastIndex(line, " holds change log ")
		if !strings.Contains(line, "OK: mirror ") || j < 0 {
			continue
		}
		rest := line[j:]
		k := strings.Index(rest, " at version ")
		var w, latest int64
		if _, err := fmt.Sscanf(rest[max(k, 0):], " at version %d (latest %d)", &w, &latest); k < 0 || err != nil || w != latest {
			return false
		}
		n++
	}
	return n > 0
}
