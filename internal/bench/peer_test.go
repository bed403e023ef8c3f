package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec/cdc"
)

// peerPython returns the Python of SINK_TEST_PYTHON when it has what the
// peer and the comparison import, and skips the test otherwise.
func peerPython(t *testing.T) string {
	t.Helper()
	python := os.Getenv("SINK_TEST_PYTHON")
	if python == "" {
		t.Skip("SINK_TEST_PYTHON is not set: it names a Python with confluent-kafka, deltalake and pyarrow (e2e/scripts/python.sh install <venv>)")
	}
	out, err := exec.Command(python, "-c", "import confluent_kafka, deltalake, pyarrow").CombinedOutput()
	if err != nil {
		t.Skipf("SINK_TEST_PYTHON=%s cannot import confluent_kafka, deltalake and pyarrow (e2e/scripts/python.sh install <venv>): %s", python, out)
	}
	return python
}

// TestRunPeer runs the Python peer beside the sink on the in-process broker
// and requires both to have written the same tables, rows and values. It
// asserts nothing about speed.
func TestRunPeer(t *testing.T) {
	python := peerPython(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{
		Tables: 8, Format: cdc.FormatEvoDB, Records: 3000, Seed: 1,
		FlushInterval: 300 * time.Millisecond, TempDir: t.TempDir(),
		Peers: []string{PeerPython}, PeerInterpreter: python,
	})
	require.NoError(t, err)
	require.Len(t, res.Peers, 1)
	peer := res.Peers[0]
	require.Equal(t, PeerPython, peer.Name)
	require.Equal(t, 3000, peer.Throughput.Records)
	require.Positive(t, peer.Throughput.RecordsPerCPUSec)
	require.Positive(t, peer.CPUVsPeer)
	require.True(t, peer.Check.OK, "differences: %v", peer.Check.Differences)
	require.Equal(t, 8, peer.Check.Tables)
	require.Equal(t, 3000, peer.Check.Rows)
	require.Greater(t, peer.Check.Values, 3000*9, "at least the metadata columns and id of every row")

	var out strings.Builder
	require.NoError(t, WriteTable(&out, []*Result{Median([]*Result{res, res, res})}))
	require.Contains(t, out.String(), "sink/python records/CPU-s")
	require.Contains(t, out.String(), "same: 8 tables, 3000 rows")
}

// TestComparePeerFindsDifferences breaks the peer's table on purpose in the
// ways peers have differed from the sink (JSON null written as the text
// "null", a double one ULP off, a row missing, a column of another type)
// and requires the comparison to report each.
func TestComparePeerFindsDifferences(t *testing.T) {
	python := peerPython(t)
	dir := t.TempDir()
	require.NoError(t, writePeerScripts(dir))
	sinkRoot, peerRoot := filepath.Join(dir, "sink"), filepath.Join(dir, "peer")
	script := `
import sys, pyarrow as pa
from deltalake import write_deltalake
sink, peer = sys.argv[1], sys.argv[2]
ts = pa.array([1_700_000_000_000_000] * 3, pa.timestamp("us", tz="UTC"))
def table(lsn, j, d, n, ntype):
    return pa.table({"_op": ["INSERT"] * len(lsn), "_lsn": pa.array(lsn, pa.int64()), "_ts": ts[:len(lsn)],
                     "j": pa.array(j, pa.string()), "d": pa.array(d, pa.float64()), "n": pa.array(n, ntype)})
write_deltalake(sink + "/t0", table([1, 2, 3], ['{"k":1}', None, "x"], [0.1, 2.25, 3.5], [1, 2, 3], pa.int64()))
write_deltalake(peer + "/t0", table([1, 2], ['{"k":1}', "null"], [0.1, 2.2500000000000004], [1, 2], pa.int32()))
write_deltalake(sink + "/t1", table([4], ["a"], [1.0], [1], pa.int64()))
`
	out, err := exec.Command(python, "-c", script, sinkRoot, peerRoot).CombinedOutput()
	require.NoError(t, err, "%s", out)

	check, err := comparePeer(context.Background(), python, dir, sinkRoot, peerRoot)
	require.NoError(t, err)
	require.False(t, check.OK)
	require.Equal(t, 5, check.DifferencesTotal, "%v", check.Differences)
	find := func(key string, want any) map[string]any {
		for _, d := range check.Differences {
			if d[key] == want {
				return d
			}
		}
		require.Failf(t, "difference not reported", "%s=%v in %v", key, want, check.Differences)
		return nil
	}
	require.Equal(t, "table only in sink", find("table", "t1")["what"])
	require.Equal(t, "rows differ", find("what", "rows differ")["what"])
	require.Equal(t, "int32", find("what", "type differs")["peer"])
	null := find("column", "j")
	require.Nil(t, null["sink"])
	require.Equal(t, "null", null["peer"])
	require.EqualValues(t, 1, find("column", "d")["ulps"])

	// Every difference is counted by kind, so one repeated across a
	// column is a line with its count, not hidden behind the first listed.
	kinds := map[string]int{}
	for _, k := range check.Kinds {
		require.NotEmpty(t, k.Examples, k.Kind)
		kinds[k.Kind] = k.Count
	}
	require.Equal(t, map[string]int{
		"t1: table only in sink":                     1,
		"t0: rows differ":                            1,
		"t0.n: type differs: sink int64, peer int32": 1,
		`t0.j: sink null, peer the text "null"`:      1,
		"t0.d: doubles 1 ULP apart":                  1,
	}, kinds)

	var printed strings.Builder
	writePeerDifferences(&printed, []*Result{{Tables: 2, Format: "evodb", Peers: []*Peer{{Name: PeerKafkaDeltaIngest, Check: check}}}})
	require.Contains(t, printed.String(), "kafka-delta-ingest check (2 tables evodb): 5 differences")
	require.Contains(t, printed.String(), `1× t0.j: sink null, peer the text "null"`)
}

// TestMedianPeers requires repeated runs' peers to be combined peer by
// peer: each peer's median figures, and its worst run's check.
func TestMedianPeers(t *testing.T) {
	run := func(py, kdi float64, kdiDiffs int) *Result {
		return &Result{Peers: []*Peer{
			{Name: PeerPython, Throughput: Throughput{RecordsPerCPUSec: py}, Check: PeerCheck{OK: true}},
			{Name: PeerKafkaDeltaIngest, Throughput: Throughput{RecordsPerCPUSec: kdi}, Check: PeerCheck{OK: kdiDiffs == 0, DifferencesTotal: kdiDiffs}},
		}}
	}
	ps := medianPeers([]*Result{run(10, 100, 0), run(30, 300, 7), run(20, 200, 3)})
	require.Len(t, ps, 2)
	require.Equal(t, PeerPython, ps[0].Name)
	require.Equal(t, 20.0, ps[0].Throughput.RecordsPerCPUSec)
	require.True(t, ps[0].Check.OK)
	require.Equal(t, PeerKafkaDeltaIngest, ps[1].Name)
	require.Equal(t, 200.0, ps[1].Throughput.RecordsPerCPUSec)
	require.Equal(t, 7, ps[1].Check.DifferencesTotal, "the worst run's check")
	require.Nil(t, medianPeers([]*Result{{}, {}}))
}

// A peer whose pace over the last window cannot finish before the deadline
// is reported; one that keeps a sufficient pace, or has not been watched
// for a window yet, is not.
func TestPaceCheck(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	c := paceCheck{window: 2 * time.Minute, deadline: t0.Add(30 * time.Minute)}
	// 1,000 rows a minute for 10 minutes: 10,000 of 20,000, ten minutes
	// left at that pace and twenty before the deadline.
	for m := 0; m <= 10; m++ {
		require.NoError(t, c.check(t0.Add(time.Duration(m)*time.Minute), int64(m*1000), 20_000), "minute %d", m)
	}
	// Then one row every six seconds: within a window the pace says the
	// rest takes days.
	var err error
	for s := 6; s <= 180 && err == nil; s += 6 {
		err = c.check(t0.Add(10*time.Minute+time.Duration(s)*time.Second), int64(10_000+s/6), 20_000)
	}
	require.ErrorContains(t, err, "at that pace the rest takes longer")

	// No progress at all in a first window is a stall too.
	c = paceCheck{window: 2 * time.Minute, deadline: t0.Add(30 * time.Minute)}
	require.NoError(t, c.check(t0, 0, 100))
	require.NoError(t, c.check(t0.Add(time.Minute), 0, 100))
	require.Error(t, c.check(t0.Add(2*time.Minute), 0, 100))
}
