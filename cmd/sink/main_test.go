package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/internal/kafkatest"
	"github.com/evodb/sink/internal/leaktest"
	"github.com/evodb/sink/internal/tabletest"
	"github.com/evodb/sink/internal/workload"
	"github.com/evodb/sink/objstore"
)

// The signal tests run the test binary itself as the sink process: with
// EVODB_SINK_TEST_MAIN set, TestMain is main with the arguments of
// EVODB_SINK_TEST_ARGS.
func TestMain(m *testing.M) {
	if os.Getenv("EVODB_SINK_TEST_MAIN") == "1" {
		os.Args = append([]string{"sink"}, strings.Fields(os.Getenv("EVODB_SINK_TEST_ARGS"))...)
		main()
		return
	}
	leaktest.VerifyTestMain(m)
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a running
// command and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testEnv(vars map[string]string) (*env, *syncBuffer, *syncBuffer) {
	out, errOut := &syncBuffer{}, &syncBuffer{}
	return &env{stdout: out, stderr: errOut, lookupEnv: envMap(vars)}, out, errOut
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{name: "no command", args: nil, code: 2, stderr: "usage:"},
		{name: "help", args: []string{"help"}, code: 0, stderr: "sink run -c config.yaml"},
		{name: "unknown", args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{name: "version", args: []string{"version"}, code: 0, stdout: "evodb-sink "},
		{name: "bad flag", args: []string{"demo", "-nope"}, code: 2, stderr: "usage: sink demo"},
		{name: "flag help", args: []string{"run", "-h"}, code: 0, stderr: "configuration file"},
		{name: "run without config", args: []string{"run", "-c", "/nonexistent/x.yaml"}, code: 1, stderr: "read config"},
		{name: "inspect without url", args: []string{"inspect"}, code: 2, stderr: "want a store URL"},
		{name: "inspect bad url", args: []string{"inspect", "ftp://x"}, code: 1, stderr: "unknown scheme"},
		{name: "inspect empty store", args: []string{"inspect", "mem://"}, code: 0, stdout: "no Delta tables (Iceberg tables are listed through their catalog"},
		{name: "produce without topic", args: []string{"produce"}, code: 2, stderr: "-topic is required"},
		{name: "produce bad format", args: []string{"produce", "-topic", "x", "-format", "xml"}, code: 2, stderr: "not one of evodb, debezium, avro"},
		{name: "produce avro without a registry", args: []string{"produce", "-topic", "x", "-format", "avro"}, code: 2, stderr: "-format avro needs -registry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, out, errOut := testEnv(nil)
			code := runMain(testContext(t), e, tc.args)
			require.Equal(t, tc.code, code, "stdout: %s\nstderr: %s", out, errOut)
			require.Contains(t, out.String(), tc.stdout)
			require.Contains(t, errOut.String(), tc.stderr)
		})
	}
}

// coord is a record's Kafka coordinates.
type coord struct {
	topic     string
	partition int32
	offset    int64
}

// readCoords reads every active file of every table in b and returns the
// coordinates of the rows, failing on a duplicate.
func readCoords(t *testing.T, ctx context.Context, b objstore.Bucket) map[coord]codec.Change {
	got := map[coord]codec.Change{}
	for _, ch := range tabletest.Changes(t, ctx, b) {
		c := coord{ch.Topic, ch.Partition, ch.Offset}
		_, dup := got[c]
		require.False(t, dup, "%v is in the tables twice", c)
		got[c] = ch
	}
	return got
}

// TestDemo runs the demo end to end and checks that its tables hold every
// produced change exactly once, by Kafka coordinates.
func TestDemo(t *testing.T) {
	ctx := testContext(t)
	dir := filepath.Join(t.TempDir(), "demo")
	e, out, errOut := testEnv(nil)
	o := demoOptions{dir: dir, records: 2000, seed: 3, flushInterval: 200 * time.Millisecond}
	res, err := runDemo(ctx, e, o)
	require.NoError(t, err, "stdout: %s\nstderr: %s", out, errOut)
	require.Equal(t, 2000, res.produced)
	require.Len(t, res.tables, 6)

	b, err := objstore.NewFilesystem(dir)
	require.NoError(t, err)
	got := readCoords(t, ctx, b)
	want := map[coord]bool{}
	for topic, parts := range res.endOffsets {
		for p, end := range parts {
			for off := range end {
				want[coord{topic, p, off}] = true
			}
		}
	}
	require.Len(t, want, 2000, "the topics hold exactly the produced changes")
	require.Len(t, got, len(want))
	ops := map[codec.Op]int{}
	for c, ch := range got {
		require.True(t, want[c], "unexpected row %v", c)
		ops[ch.Op]++
		// The demo's changes are stamped when generated, so the tables'
		// freshness is the sink's real delay.
		require.WithinDuration(t, time.Now(), time.UnixMilli(ch.TS), time.Hour, "row %v", c)
	}
	require.Positive(t, ops[codec.OpInsert])
	require.Positive(t, ops[codec.OpUpdate])
	require.Positive(t, ops[codec.OpDelete])

	var rows int64
	for _, s := range res.tables {
		rows += s.Rows
		require.True(t, s.HasLSN)
	}
	require.EqualValues(t, 2000, rows)

	// The tables' columns are named like a real schema, and the printed
	// queries select them.
	short := regexp.MustCompile(`^(n|b|d|f|s|u|at|j)[0-9]+$`)
	for _, s := range res.tables {
		schema := s.Snapshot.Metadata.Schema
		require.NotNil(t, schema, "table %s", s.Path)
		for _, c := range schema.Columns() {
			require.NotRegexp(t, short, c.Name, "table %s", s.Path)
		}
	}
	printDemo(e, dir, res)
	require.Regexp(t, `SELECT id, [a-z_]+, [a-z_]+, [a-z_]+, _op, _ts FROM delta_scan\('`+regexp.QuoteMeta(filepath.Join(dir, "users"))+`'\) ORDER BY _lsn DESC LIMIT 5`, out.String())
	require.Contains(t, out.String(), "delta_scan('"+filepath.Join(dir, "inventory", "public", "customers")+"')")
	require.Contains(t, out.String(), "deltalake.DeltaTable('"+filepath.Join(dir, "users")+"')")
	runPrintedQueries(t, out.String())

	// A second run replaces the first run's directory.
	o.records = 200
	res, err = runDemo(ctx, e, o)
	require.NoError(t, err)
	require.Equal(t, 200, res.produced)
	require.Len(t, readCoords(t, ctx, b), 200)

	// inspect reads what the demo wrote.
	e, out, errOut = testEnv(nil)
	require.Equal(t, 0, runMain(ctx, e, []string{"inspect", "file://" + dir}), errOut.String())
	for _, name := range []string{"table users", "table inventory/public/shipments", "txn offsets", "evodb-demo/demo.evodb/0"} {
		require.Contains(t, out.String(), name)
	}
	e, out, errOut = testEnv(nil)
	require.Equal(t, 0, runMain(ctx, e, []string{"inspect", "file://" + dir, "orders"}), errOut.String())
	require.Contains(t, out.String(), "data/")
	require.Contains(t, out.String(), "LEVEL")
	e, _, errOut = testEnv(nil)
	require.Equal(t, 1, runMain(ctx, e, []string{"inspect", "file://" + dir, "nope"}))
	require.Contains(t, errOut.String(), "no table")
}

// runPrintedQueries runs every "python -c" command line the demo printed,
// as a user would paste it into a shell, with the Python that
// SINK_TEST_PYTHON names (one with duckdb, duckdb-extension-delta and
// deltalake installed from PyPI, and nothing else).
func runPrintedQueries(t *testing.T, printed string) {
	python := os.Getenv("SINK_TEST_PYTHON")
	if python == "" {
		t.Log("SINK_TEST_PYTHON is not set: the printed queries are not run")
		return
	}
	var n int
	for _, line := range strings.Split(printed, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "python -c ") {
			continue
		}
		n++
		cmd := exec.Command("sh", "-c", "\"$PY\" "+strings.TrimPrefix(line, "python "))
		cmd.Env = append(os.Environ(), "PY="+python)
		got, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s\n%s", line, got)
		require.NotEmpty(t, strings.TrimSpace(string(got)), line)
	}
	require.Equal(t, 3, n, "the demo prints two DuckDB commands and one delta-rs command:\n%s", printed)
}

func TestDemoRefusesForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "precious.txt"), []byte("x"), 0o644))
	e, _, errOut := testEnv(nil)
	require.Equal(t, 1, runMain(testContext(t), e, []string{"demo", "-dir", dir, "-records", "10"}))
	require.Contains(t, errOut.String(), "was not made by the demo")
	_, err := os.Stat(filepath.Join(dir, "precious.txt"))
	require.NoError(t, err)
}

// TestRunAndProduce produces with the produce command, runs the sink with
// the run command until the changes are committed, then cancels it (as the
// first SIGTERM does) and expects a clean exit.
func TestRunAndProduce(t *testing.T) {
	ctx := testContext(t)
	cluster := kafkatest.NewCluster(t, kfake.AllowAutoTopicCreation())
	brokers := strings.Join(cluster.ListenAddrs(), ",")

	e, out, errOut := testEnv(nil)
	code := runMain(ctx, e, []string{"produce", "-brokers", brokers, "-topic", "cdc", "-records", "600",
		"-tables", "4", "-partitions", "3", "-format", "debezium", "-seed", "5"})
	require.Equal(t, 0, code, errOut.String())
	require.Contains(t, out.String(), "produced 600 records to cdc (3 partitions, 4 tables, debezium)")

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`
kafka:
  brokers: ["${BROKERS}"]
  topics: [cdc]
  format: debezium
store:
  url: file://${DIR}/store
tables:
  default: {flush_interval: 200ms, path: "{db}/{schema}/{table}"}
http:
  addr: 127.0.0.1:0
log:
  format: json
`), 0o644))
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	e, _, errOut = testEnv(map[string]string{"BROKERS": brokers, "DIR": dir})
	done := make(chan int, 1)
	go func() { done <- runMain(runCtx, e, []string{"run", "-c", cfgPath}) }()

	b, err := objstore.NewFilesystem(filepath.Join(dir, "store"))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return countRows(ctx, b) == 600
	}, time.Minute, 50*time.Millisecond, "stderr: %s", errOut)
	stop()
	select {
	case code := <-done:
		require.Equal(t, 0, code, errOut.String())
	case <-ctx.Done():
		t.Fatal("run did not stop after cancellation")
	}
	require.Contains(t, errOut.String(), `"msg":"sink stopped; everything consumed is committed"`)
	require.Len(t, readCoords(t, ctx, b), 600)

	// The records are the generator's: the same seed gives the same LSNs.
	g := workload.New(workload.Config{Format: cdc.FormatDebezium, Tables: 4, Partitions: 3},
		rand.New(rand.NewPCG(5, 5)))
	lsns := map[uint64]bool{}
	for range 600 {
		lsns[g.Next().LSN] = true
	}
	for _, ch := range readCoords(t, ctx, b) {
		require.True(t, lsns[ch.LSN], fmt.Sprint(ch.LSN))
	}
}

// countRows sums the rows of every table in b, -1 on error.
func countRows(ctx context.Context, b objstore.Bucket) int64 {
	paths, err := delta.ListTables(ctx, b)
	if err != nil {
		return -1
	}
	var n int64
	for _, p := range paths {
		s, err := summarize(ctx, delta.NewFormat(b, delta.Options{}), p)
		if err != nil {
			return -1
		}
		n += s.Rows
	}
	return n
}

// TestProduceToExistingTopic keeps the partition count of an existing topic.
func TestProduceToExistingTopic(t *testing.T) {
	ctx := testContext(t)
	cluster := kafkatest.NewCluster(t, kfake.SeedTopics(2, "two"))
	e, out, errOut := testEnv(nil)
	code := runMain(ctx, e, []string{"produce", "-brokers", strings.Join(cluster.ListenAddrs(), ","),
		"-topic", "two", "-records", "50", "-partitions", "12", "-bad-rate", "0.1"})
	require.Equal(t, 0, code, errOut.String())
	require.Contains(t, out.String(), "(2 partitions")

	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics("two"))
	require.NoError(t, err)
	defer cl.Close()
	n := 0
	dec, err := cdc.NewDecoder(cdc.FormatEvoDB)
	require.NoError(t, err)
	for n < 50 {
		fs := cl.PollFetches(ctx)
		require.NoError(t, fs.Err())
		n += fs.NumRecords()
		fs.EachRecord(func(r *kgo.Record) {
			var ch codec.Change
			if dec.Decode(codec.Record{Key: r.Key, Value: r.Value}, &ch) == nil {
				// Stamped now, not at a fixed date years ago.
				require.WithinDuration(t, time.Now(), time.UnixMilli(ch.TS), time.Hour)
			}
		})
	}
	require.Equal(t, 50, n)
}

// startSinkProcess produces n changes to a fresh in-process broker and
// starts the sink as a child process consuming them into store; extra is
// appended to its configuration.
func startSinkProcess(t *testing.T, ctx context.Context, n int, store string, extra ...string) (*exec.Cmd, *syncBuffer) {
	return startSinkProcessFlags(t, ctx, n, store, "", extra...)
}

// startSinkProcessFlags is startSinkProcess with flags of the run command
// before -c (space-separated).
func startSinkProcessFlags(t *testing.T, ctx context.Context, n int, store, flags string, extra ...string) (*exec.Cmd, *syncBuffer) {
	cluster := kafkatest.NewCluster(t, kfake.SeedTopics(2, "cdc"))
	cl, err := kgo.NewClient(append(workload.ProducerOptions(), kgo.SeedBrokers(cluster.ListenAddrs()...))...)
	require.NoError(t, err)
	g := workload.New(workload.Config{Topic: "cdc", Partitions: 2, Tables: 2}, rand.New(rand.NewPCG(1, 1)))
	require.NoError(t, workload.Produce(ctx, cl, g, n, nil))
	cl.Close()

	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
kafka: {brokers: [%q], topics: [cdc]}
store:
  url: %q
  s3: {access_key_id: test, secret_access_key: test, max_retries: -1}
tables: {default: {flush_interval: 100ms}}
shutdown_timeout: 1m
%s
`, cluster.ListenAddrs()[0], store, strings.Join(extra, "\n"))), 0o644))
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "EVODB_SINK_TEST_MAIN=1", "EVODB_SINK_TEST_ARGS=run "+flags+" -c "+cfgPath)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, stderr
}

// exitCode waits for cmd and returns its exit status.
func exitCode(t *testing.T, cmd *exec.Cmd) int {
	err := cmd.Wait()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	return ee.ExitCode()
}

func TestSignalGraceful(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	cmd, stderr := startSinkProcess(t, ctx, 300, "file://"+dir)
	b, err := objstore.NewFilesystem(dir)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return countRows(ctx, b) == 300 },
		time.Minute, 50*time.Millisecond, "stderr: %s", stderr)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, exitCode(t, cmd), stderr.String())
	require.Contains(t, stderr.String(), "shutting down gracefully")
	require.Contains(t, stderr.String(), "everything consumed is committed")
}

// run -memprofile writes a heap profile when the sink is told to stop.
func TestRunMemProfile(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	prof := filepath.Join(t.TempDir(), "heap.prof")
	cmd, stderr := startSinkProcessFlags(t, ctx, 100, "file://"+dir, "-memprofile "+prof)
	b, err := objstore.NewFilesystem(dir)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return countRows(ctx, b) == 100 },
		time.Minute, 50*time.Millisecond, "stderr: %s", stderr)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, exitCode(t, cmd), stderr.String())
	fi, err := os.Stat(prof)
	require.NoError(t, err, "stderr: %s", stderr)
	require.Positive(t, fi.Size())
}

// With log.format json every line on stderr is JSON, the shutdown
// notices included.
func TestSignalGracefulJSON(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	cmd, stderr := startSinkProcess(t, ctx, 300, "file://"+dir, "log: {format: json}")
	b, err := objstore.NewFilesystem(dir)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return countRows(ctx, b) == 300 },
		time.Minute, 50*time.Millisecond, "stderr: %s", stderr)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, exitCode(t, cmd), stderr.String())
	msgs := jsonMessages(t, stderr.String())
	require.Contains(t, msgs, "shutting down gracefully (signal again to exit at once)")
	require.Contains(t, msgs, "sink stopped; everything consumed is committed")
}

// With log.format json the error a run stops with is a JSON line too.
func TestRunErrorJSON(t *testing.T) {
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
kafka: {brokers: ["127.0.0.1:1"], topics: [cdc], connect_timeout: 1s}
store: {url: %q}
log: {format: json}
`, "file://"+t.TempDir())), 0o644))
	e, _, errOut := testEnv(nil)
	require.Equal(t, 1, runMain(testContext(t), e, []string{"run", "-c", cfgPath}))
	lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
	msgs := jsonMessages(t, errOut.String())
	require.Equal(t, "exiting with an error", msgs[len(msgs)-1])
	var last struct{ Level, Command, Err string }
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &last))
	require.Equal(t, "ERROR", last.Level)
	require.Equal(t, "run", last.Command)
	require.Contains(t, last.Err, "unreachable within kafka.connect_timeout")
}

// jsonMessages decodes every line of stderr as a JSON log line, failing
// on any other line, and returns their messages.
func jsonMessages(t *testing.T, stderr string) []string {
	t.Helper()
	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		var l struct{ Msg string }
		require.NoError(t, json.Unmarshal([]byte(line), &l), "not a JSON line: %q", line)
		msgs = append(msgs, l.Msg)
	}
	return msgs
}

// TestSignalTwiceExitsAtOnce stops a sink whose graceful shutdown cannot
// finish, because the store accepts no upload: the second signal exits at
// once with status 130.
func TestSignalTwiceExitsAtOnce(t *testing.T) {
	ctx := testContext(t)
	putSeen := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPut || r.Method == http.MethodPost:
			select {
			case putSeen <- struct{}{}:
			default:
			}
			select {
			case <-release:
			case <-r.Context().Done():
			}
			w.WriteHeader(http.StatusServiceUnavailable)
		case r.URL.Query().Has("list-type"):
			w.Header().Set("Content-Type", "application/xml")
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>lake</Name><IsTruncated>false</IsTruncated><KeyCount>0</KeyCount></ListBucketResult>`)
		default:
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusNotFound)
			if r.Method != http.MethodHead {
				fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>not found</Message></Error>`)
			}
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })

	cmd, stderr := startSinkProcess(t, ctx, 300, "s3://lake/t?region=auto&path_style=true&endpoint="+srv.URL)
	select {
	case <-putSeen:
	case <-ctx.Done():
		t.Fatalf("no upload started: %s", stderr)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "shutting down gracefully") },
		time.Minute, 10*time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	require.Equal(t, 130, exitCode(t, cmd), stderr.String())
	require.Contains(t, stderr.String(), "exiting at once")
}
