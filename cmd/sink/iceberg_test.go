package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/iceberg"
	"github.com/evodb/sink/internal/kafkatest"
	"github.com/evodb/sink/sink"
)

// icebergTestEnv returns the catalog URL and the S3 settings of a real
// REST catalog and S3 server, or skips.
func icebergTestEnv(t *testing.T) map[string]string {
	t.Helper()
	vars := map[string]string{}
	for _, k := range []string{"EVODB_ICEBERG_REST_URL", "SINK_TEST_S3_ENDPOINT", "SINK_TEST_S3_BUCKET",
		"SINK_TEST_S3_ACCESS_KEY", "SINK_TEST_S3_SECRET_KEY"} {
		v := os.Getenv(k)
		if v == "" {
			t.Skipf("set %s (and the other SINK_TEST_S3_* variables) to run the sink against a REST catalog", k)
		}
		vars[k] = v
	}
	vars["SINK_TEST_S3_REGION"] = os.Getenv("SINK_TEST_S3_REGION")
	if vars["SINK_TEST_S3_REGION"] == "" {
		vars["SINK_TEST_S3_REGION"] = "auto"
	}
	return vars
}

// TestRunIceberg runs the sink on Iceberg tables of a real REST catalog
// whose files are on a real S3 server: every record lands exactly once,
// as the sink's own reading and PyIceberg, pyarrow and DuckDB (when the
// Python readers are available) all find; inspect, verify, compact and
// vacuum work on the tables.
func TestRunIceberg(t *testing.T) {
	vars := icebergTestEnv(t)
	ctx := testContext(t)
	cluster := kafkatest.NewCluster(t, kfake.AllowAutoTopicCreation())
	brokers := strings.Join(cluster.ListenAddrs(), ",")

	var r [6]byte
	_, _ = rand.Read(r[:])
	id := "s" + hex.EncodeToString(r[:])
	vars["BROKERS"], vars["NS"], vars["PREFIX"] = brokers, id, "iceberg-sink-test/"+id
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	// One namespace for the test's tables (their names differ), so
	// readers that take one-level namespaces find them too.
	require.NoError(t, os.WriteFile(cfgPath, []byte(`
kafka:
  brokers: ["${BROKERS}"]
  topics: [cdc]
  format: debezium
store:
  url: s3://${SINK_TEST_S3_BUCKET}/${PREFIX}?endpoint=${SINK_TEST_S3_ENDPOINT}&region=${SINK_TEST_S3_REGION}&path_style=true
  s3: {access_key_id: "${SINK_TEST_S3_ACCESS_KEY}", secret_access_key: "${SINK_TEST_S3_SECRET_KEY}"}
tables:
  default: {flush_interval: 200ms, format: iceberg}
catalog:
  uri: ${EVODB_ICEBERG_REST_URL}
  namespace: ${NS}
compaction: {enabled: false, min_inputs: 2}
http: {addr: "127.0.0.1:0"}
log:
  format: json
`), 0o644))
	cfg, err := loadConfig(cfgPath, envMap(vars))
	require.NoError(t, err)
	ic, err := cfg.icebergConfig()
	require.NoError(t, err)
	f, err := iceberg.NewFormat(ctx, ic, iceberg.Options{})
	require.NoError(t, err)
	rows := func() (map[string]int64, int64) {
		roots, err := f.ListTables(ctx)
		if err != nil {
			return nil, -1
		}
		out, total := map[string]int64{}, int64(0)
		for _, root := range roots {
			s, err := f.Open(root, committer.Options{}).Snapshot(ctx)
			if err != nil {
				return nil, -1
			}
			for _, a := range s.Files {
				out[root] += a.Rows()
				total += a.Rows()
			}
		}
		return out, total
	}

	// Two runs, each over 300 new records, so each table has files of
	// two flushes for compaction to merge.
	for i, seed := range []string{"5", "6"} {
		e, _, errOut := testEnv(nil)
		code := runMain(ctx, e, []string{"produce", "-brokers", brokers, "-topic", "cdc", "-records", "300",
			"-tables", "4", "-partitions", "3", "-format", "debezium", "-seed", seed})
		require.Equal(t, 0, code, errOut.String())
		runCtx, stop := context.WithCancel(ctx)
		e, _, errOut = testEnv(vars)
		done := make(chan int, 1)
		go func() { done <- runMain(runCtx, e, []string{"run", "-c", cfgPath}) }()
		require.Eventually(t, func() bool {
			_, n := rows()
			return n == int64(300*(i+1))
		}, time.Minute, 100*time.Millisecond, "stderr: %s", errOut)
		st := sinkStatus(t, errOut.String())
		require.Len(t, st.Tables, 4)
		for _, ts := range st.Tables {
			require.Equal(t, "iceberg", ts.Format, ts.Table)
			require.Equal(t, int64(i+1), ts.Version, "/status shows the snapshot sequence number of %s", ts.Table)
		}
		stop()
		select {
		case code := <-done:
			require.Equal(t, 0, code, errOut.String())
		case <-ctx.Done():
			t.Fatal("run did not stop after cancellation")
		}
	}
	perTable, total := rows()
	require.Equal(t, int64(600), total)
	require.Len(t, perTable, 4)

	// The sink's own commands read the Iceberg tables.
	e, out, errOut := testEnv(vars)
	require.Equal(t, 0, runMain(ctx, e, []string{"inspect", "-c", cfgPath}), errOut.String())
	for root := range perTable {
		require.Contains(t, out.String(), root)
	}
	e, out, errOut = testEnv(vars)
	require.Equal(t, 0, runMain(ctx, e, []string{"verify", "-c", cfgPath}), "stdout: %s\nstderr: %s", out, errOut)
	t.Logf("verify: %s", out)
	e, out, errOut = testEnv(vars)
	require.Equal(t, 0, runMain(ctx, e, []string{"compact", "-c", cfgPath}), "stdout: %s\nstderr: %s", out, errOut)
	t.Logf("compact: %s", out)
	require.Contains(t, out.String(), "files 2 -> 1", "compaction merged the two flushes' files")
	e, out, errOut = testEnv(vars)
	require.Equal(t, 0, runMain(ctx, e, []string{"vacuum", "-c", cfgPath, "-dry-run", "-log"}), "stdout: %s\nstderr: %s", out, errOut)
	t.Logf("vacuum: %s", out)
	require.Contains(t, out.String(), "would delete 0 files", "the replaced files are still referenced by retained snapshots")
	require.Contains(t, out.String(), "metadata files before snapshot", "-log speaks of the Iceberg table's history")
	require.NotContains(t, out.String(), "checkpoint")
	perTable2, total2 := rows()
	require.Equal(t, int64(600), total2, "compaction keeps every row")
	require.Equal(t, perTable, perTable2)
	for root := range perTable {
		s, err := f.Open(root, committer.Options{}).Snapshot(ctx)
		require.NoError(t, err)
		require.Len(t, s.Files, 1, root)
		require.Equal(t, int64(3), s.Version, "two appends and a replace")
	}

	python := os.Getenv("SINK_TEST_PYTHON")
	if python == "" {
		t.Log("SINK_TEST_PYTHON is not set: the independent Iceberg readers are skipped")
		return
	}
	var names []string
	for root := range perTable {
		names = append(names, strings.Join(f.Identifier(root), "."))
	}
	req, err := json.Marshal(map[string]any{
		"catalog_uri": vars["EVODB_ICEBERG_REST_URL"], "endpoint": vars["SINK_TEST_S3_ENDPOINT"],
		"access_key": vars["SINK_TEST_S3_ACCESS_KEY"], "secret_key": vars["SINK_TEST_S3_SECRET_KEY"],
		"region": vars["SINK_TEST_S3_REGION"], "tables": names,
	})
	require.NoError(t, err)
	cmd := exec.CommandContext(ctx, python, filepath.Join("..", "..", "e2e", "readers", "iceberg_tables.py"), string(req))
	cmd.Stderr = os.Stderr
	raw, err := cmd.Output()
	require.NoError(t, err)
	var got map[string]map[string]struct {
		Rows     int64  `json:"rows"`
		Distinct int64  `json:"distinct"`
		Error    string `json:"error"`
	}
	require.NoError(t, json.Unmarshal(raw, &got), string(raw))
	for root, n := range perTable {
		name := strings.Join(f.Identifier(root), ".")
		for _, reader := range []string{"pyiceberg", "pyarrow", "duckdb"} {
			res := got[name][reader]
			require.Empty(t, res.Error, "%s reading %s", reader, name)
			require.Equal(t, n, res.Rows, fmt.Sprintf("%s reading %s", reader, name))
			require.Equal(t, n, res.Distinct, "%s finds every change of %s once", reader, name)
		}
	}
}

// sinkStatus reads /status from the sink whose JSON log is stderr.
func sinkStatus(t *testing.T, stderr string) sink.Status {
	t.Helper()
	m := regexp.MustCompile(`"msg":"serving metrics and health","addr":"([^"]+)"`).FindStringSubmatch(stderr)
	require.NotNil(t, m, "the sink logs its HTTP address: %s", stderr)
	resp, err := http.Get("http://" + m[1] + "/status")
	require.NoError(t, err)
	defer resp.Body.Close()
	var st sink.Status
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st
}
