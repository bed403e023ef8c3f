//go:build kdi

package bench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec/cdc"
)

// TestRunKDI runs kafka-delta-ingest beside the sink on one table and
// requires it to have committed every record, both tables to hold the same
// rows, and every value difference to be reported by kind (the counts of
// the kinds add up to the total). It needs SINK_TEST_KDI, the binary
// (e2e/scripts/kafka-delta-ingest.sh install), and SINK_TEST_PYTHON. The
// binary is a release build of about 25 minutes, beyond CI's budget, so
// this test is built only with the kdi tag and run by hand with the
// measurement in BENCHMARKS.md:
//
//	SINK_TEST_KDI=<binary> SINK_TEST_PYTHON=<python> go test -tags kdi ./internal/bench -run TestRunKDI It uses the broker of
//
// SINK_E2E_KAFKA when set (e2e/scripts/kafka.sh), else the in-process one.
// It asserts nothing about speed.
func TestRunKDI(t *testing.T) {
	bin := os.Getenv("SINK_TEST_KDI")
	require.NotEmpty(t, bin, "SINK_TEST_KDI names the kafka-delta-ingest binary (e2e/scripts/kafka-delta-ingest.sh install)")
	python := peerPython(t)
	var brokers []string
	if b := os.Getenv("SINK_E2E_KAFKA"); b != "" {
		brokers = []string{b}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const records = 3000
	res, err := Run(ctx, Config{
		Tables: 1, Format: cdc.FormatEvoDB, Records: records, Seed: 1, Brokers: brokers,
		FlushInterval: time.Second, TempDir: t.TempDir(),
		Peers: []string{PeerKafkaDeltaIngest}, PeerInterpreter: python, PeerBinary: bin,
	})
	require.NoError(t, err)
	require.Len(t, res.Peers, 1)
	peer := res.Peers[0]
	require.Equal(t, PeerKafkaDeltaIngest, peer.Name)
	require.Equal(t, records, peer.Throughput.Records)
	require.Positive(t, peer.Throughput.RecordsPerCPUSec)
	require.Equal(t, 1, peer.Check.Tables)
	require.Equal(t, records, peer.Check.Rows, "both tables hold every row")
	sum := 0
	for _, k := range peer.Check.Kinds {
		sum += k.Count
		require.NotContains(t, k.Kind, "rows differ")
		require.NotContains(t, k.Kind, "only in")
		require.NotContains(t, k.Kind, "duplicate")
	}
	require.Equal(t, peer.Check.DifferencesTotal, sum)

	var out strings.Builder
	require.NoError(t, WriteTable(&out, []*Result{res}))
	require.Contains(t, out.String(), "sink/kafka-delta-ingest records/CPU-s")
	t.Logf("%s", out.String())
}
