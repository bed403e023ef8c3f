package sink

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/objstore"
)

// logLines collects a logger's JSON lines; safe for concurrent use.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logLines) logger() *slog.Logger { return slog.New(slog.NewJSONHandler(l, nil)) }

// with returns the decoded lines whose msg is msg.
func (l *logLines) with(t *testing.T, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func TestFormatPartitions(t *testing.T) {
	cases := []struct {
		name string
		in   map[string][]int32
		want string
	}{
		{name: "none", in: nil, want: "none"},
		{name: "empty topic", in: map[string][]int32{"a": {}}, want: "none"},
		{name: "one", in: map[string][]int32{"cdc": {3}}, want: "cdc:3"},
		{name: "ranges", in: map[string][]int32{"cdc": {5, 0, 1, 2, 7, 8, 2}}, want: "cdc:0-2,5,7-8"},
		{name: "topics sorted", in: map[string][]int32{"users": {1}, "orders": {0, 1, 2, 3}}, want: "orders:0-3 users:1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, formatPartitions(tc.in))
		})
	}
}

// The progress line states the interval's rates, commits, tables that
// advanced and flush reasons, and starts each interval afresh.
func TestProgressLineStatesTheInterval(t *testing.T) {
	var logs logLines
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s, err := newSink(testConfig([]string{"127.0.0.1:1"}, "cdc"), objstore.NewMemory(),
		WithLogger(logs.logger()), withClock(func() time.Time { return now }))
	require.NoError(t, err)

	s.mu.Lock()
	s.lastProgress = now
	s.progress.reset(now)
	s.noteFlushLocked("bytes")
	s.noteFlushLocked("age")
	s.noteFlushLocked("bytes")
	s.noteCommitLocked("db/a", 3000, 6_000_000)
	s.noteCommitLocked("db/b", 3000, 6_000_000)
	s.noteCommitLocked("db/a", 3000, 6_000_000)
	now = now.Add(10 * time.Second)
	s.logProgressLocked()
	require.Empty(t, logs.with(t, "progress"), "not yet due")
	now = now.Add(20 * time.Second)
	s.logProgressLocked()
	now = now.Add(30 * time.Second)
	s.logProgressLocked()
	s.mu.Unlock()

	lines := logs.with(t, "progress")
	require.Len(t, lines, 2)
	first, second := lines[0], lines[1]
	require.Equal(t, "30s", first["interval"])
	require.Equal(t, 300.0, first["rows_per_sec"])
	require.Equal(t, 0.6, first["mb_per_sec"])
	require.Equal(t, 3.0, first["commits"])
	require.Equal(t, 2.0, first["tables_advanced"])
	require.Equal(t, "age=1,bytes=2", first["flush_reasons"])
	require.Contains(t, first, "lag_records")
	require.Equal(t, 0.0, second["rows_per_sec"])
	require.Equal(t, 0.0, second["commits"])
	require.Equal(t, "none", second["flush_reasons"])
}

// A rebalance is one log line naming what the member gained and gave up,
// per topic; leaving the group names what it gave back.
func TestSinkLogsOneLinePerRebalance(t *testing.T) {
	c := newCluster(t, 4, "cdc")
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 4, 2, 200, 0, 5, 0, want)
	b := objstore.NewMemory()
	cfg := testConfig(c.ListenAddrs(), "cdc")
	var logsA, logsB logLines
	a, stopA := runSink(t, cfg, b, WithLogger(logsA.logger()))
	waitCommitted(t, b, 200, 30*time.Second)
	// The flushes and commits that made the rows durable feed the next
	// progress line.
	a.mu.Lock()
	commits, rows, nbytes := a.progress.commits, a.progress.rows, a.progress.bytes
	tables, reasons := len(a.progress.tables), len(a.progress.reasons)
	a.mu.Unlock()
	require.Positive(t, commits)
	require.Positive(t, rows)
	require.Positive(t, nbytes)
	require.Positive(t, tables)
	require.Positive(t, reasons)
	lines := logsA.with(t, "rebalance")
	require.Len(t, lines, 1)
	require.Equal(t, "cdc:0-3", lines[0]["assigned"])
	require.Equal(t, "none", lines[0]["revoked"])
	require.Equal(t, 4.0, lines[0]["owned"])

	_, stopB := runSink(t, cfg, b, WithLogger(logsB.logger()))
	require.Eventually(t, func() bool {
		for _, l := range logsB.with(t, "rebalance") {
			if l["assigned"] != "none" {
				return true
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond)
	var revoked []string
	for _, l := range logsA.with(t, "rebalance") {
		if l["revoked"] != "none" {
			revoked = append(revoked, l["revoked"].(string))
		}
	}
	require.NotEmpty(t, revoked, "member A's rebalance line names what it gave up")
	require.NoError(t, stopB())
	require.NoError(t, stopA())
	left := logsA.with(t, "partitions revoked on leaving the group")
	require.Len(t, left, 1)
	require.True(t, strings.HasPrefix(left[0]["revoked"].(string), "cdc:"), left[0])
	require.Empty(t, logsA.with(t, "partition assigned"))
}

// Every counter an alert may watch exists at 0 from the start, per topic
// once the sink is created and per table once it opens the table, so
// rate() and increase() see the first error.
func TestCountersExportedAtZero(t *testing.T) {
	c := newCluster(t, 1, "cdc")
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 1, 1, 50, 0, 3, 0, want)
	b := objstore.NewMemory()
	reg := prometheus.NewRegistry()
	series := func() map[string]float64 {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		out := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if m.GetCounter() == nil {
					continue
				}
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
				out[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = m.GetCounter().GetValue()
			}
		}
		return out
	}
	s, stop := runSink(t, testConfig(c.ListenAddrs(), "cdc"), b, WithRegisterer(reg))
	for _, name := range []string{
		"evodb_sink_decode_errors_total{topic=cdc}",
		"evodb_sink_dlq_records_total{topic=cdc}",
		"evodb_sink_tombstones_total{topic=cdc}",
		"evodb_sink_store_retries_total{step=commit}",
		"evodb_sink_store_retries_total{step=upload}",
	} {
		v, ok := series()[name]
		require.True(t, ok, "%s is exported before anything happened", name)
		require.Zero(t, v, name)
	}
	waitCommitted(t, b, 50, 30*time.Second)
	tables := s.Tables()
	require.Len(t, tables, 1)
	got := series()
	for _, name := range []string{
		"evodb_sink_records_already_durable_total{table=" + tables[0].Path + "}",
		"evodb_sink_commit_conflicts_total{table=" + tables[0].Path + "}",
	} {
		v, ok := got[name]
		require.True(t, ok, "%s is exported once the table is open", name)
		require.Zero(t, v, name)
	}
	require.NoError(t, stop())
}

// Opening a table that does not exist yet says so instead of naming a
// version -1; reopening it names its version.
func TestSinkLogsTableOpened(t *testing.T) {
	c := newCluster(t, 1, "cdc")
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 1, 1, 20, 0, 3, 0, want)
	b := objstore.NewMemory()
	cfg := testConfig(c.ListenAddrs(), "cdc")
	var first, second logLines
	_, stop := runSink(t, cfg, b, WithLogger(first.logger()))
	waitCommitted(t, b, 20, 30*time.Second)
	require.NoError(t, stop())
	require.Empty(t, first.with(t, "table opened"))
	lines := first.with(t, "table opened: it does not exist yet and is created by its first commit")
	require.Len(t, lines, 1)
	require.NotContains(t, lines[0], "version")

	produceEvoDB(t, c.ListenAddrs(), "cdc", 1, 1, 5, 0, 4, 1000, want)
	_, stop = runSink(t, cfg, b, WithLogger(second.logger()))
	waitCommitted(t, b, 25, 30*time.Second)
	require.NoError(t, stop())
	lines = second.with(t, "table opened")
	require.Len(t, lines, 1)
	require.GreaterOrEqual(t, lines[0]["version"], 0.0, "the version the first run committed")
}
