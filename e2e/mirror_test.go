package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/mirror"
	"github.com/evodb/sink/objstore"
)

// mirrorPair names a change log and its mirror table for mirror_check.py.
type mirrorPair struct {
	Changelog string   `json:"changelog"`
	Mirror    string   `json:"mirror"`
	Key       []string `json:"key,omitempty"`
	AppID     string   `json:"app_id,omitempty"`
}

// mirrorResult is mirror_check.py's answer.
type mirrorResult struct {
	OK      bool `json:"ok"`
	Mirrors map[string]struct {
		Changelog     string `json:"changelog"`
		Error         string `json:"error"`
		W             *int64 `json:"w"`
		MirrorVersion int64  `json:"mirror_version"`
		ViewRows      int    `json:"view_rows"`
		Readers       map[string]struct {
			Rows      int             `json:"rows"`
			Error     string          `json:"error"`
			Missing   int             `json:"missing"`
			Extra     int             `json:"extra"`
			Different int             `json:"different"`
			Duplicate int             `json:"duplicate"`
			Diffs     json.RawMessage `json:"diffs"`
			Seconds   float64         `json:"seconds"`
		} `json:"readers"`
	} `json:"mirrors"`
}

// runMirrorCheck runs e2e/readers/mirror_check.py (through the reader
// server, so Spark's JVM is shared) on the scenario's mirror tables and
// returns its answer; raw is its JSON, for failure messages.
func (h *harness) runMirrorCheck(pairs []mirrorPair) (res mirrorResult, raw string) {
	h.t.Helper()
	arg, err := json.Marshal(map[string]any{
		"endpoint": h.svc.s3.Endpoint, "bucket": h.svc.s3.Bucket, "prefix": h.name,
		"access_key": h.svc.s3.AccessKey, "secret_key": h.svc.s3.SecretKey, "region": h.svc.s3.Region,
		"local_root": h.svc.s3.DataDir, "mirrors": pairs,
	})
	require.NoError(h.t, err)
	out, err := tableReaders.check(arg, 10*time.Minute)
	require.NoError(h.t, err)
	require.NoError(h.t, json.Unmarshal(out, &res), string(out))
	return res, string(out)
}

// mirrors proves each mirror table equals the current-state view of its
// change log at the version the mirror records, in every reader.
func (h *harness) mirrors(pairs []mirrorPair) {
	h.t.Helper()
	if h.svc.python == "" || tableReaders == nil {
		h.t.Log("SINK_TEST_PYTHON is not set: mirror readers skipped")
		return
	}
	start := time.Now()
	res, raw := h.runMirrorCheck(pairs)
	require.True(h.t, res.OK, "mirror_check.py: the mirrors differ from their change logs' views:\n%s", raw)
	for _, p := range pairs {
		m := res.Mirrors[p.Mirror]
		seconds := map[string]float64{}
		for r, rr := range m.Readers {
			seconds[r] = rr.Seconds
		}
		h.t.Logf("mirror %s: version %d = view of %s at version %v: %d rows (seconds per reader: %v)", p.Mirror, m.MirrorVersion, p.Changelog, ptrString(m.W), m.ViewRows, seconds)
	}
	h.t.Logf("mirror readers: %d mirrors agree with their views (%s)", len(pairs), time.Since(start).Round(time.Millisecond))
}

func ptrString(p *int64) string {
	if p == nil {
		return "none"
	}
	return fmt.Sprint(*p)
}

// mirrorPairs are the change logs of tables (routed names) and their
// mirror tables at the default path, "{path}_current"; the sinks write
// every table at "{table}", the last part of its routed name.
func mirrorPairs(tables ...string) []mirrorPair {
	pairs := make([]mirrorPair, len(tables))
	for i, t := range tables {
		path := t[strings.LastIndex(t, ".")+1:]
		pairs[i] = mirrorPair{Changelog: path, Mirror: path + "_current", Key: []string{"id"}}
	}
	return pairs
}

// waitMirrors waits until every mirror holds its change log's latest
// version (its txn version for the change log is the change log's
// version), while the sinks keep them; a mirror whose maintainer was
// killed is taken over once its lease expires.
func (h *harness) waitMirrors(pairs []mirrorPair, timeout time.Duration) {
	h.t.Helper()
	start := time.Now()
	ctx := h.ctx(timeout)
	tf := h.tableFormat()
	lag := map[string]string{}
	for {
		clear(lag)
		for _, p := range pairs {
			logSnap, err := tf.Open(p.Changelog, committer.Options{}).Snapshot(ctx)
			if err != nil {
				lag[p.Mirror] = err.Error()
				continue
			}
			snap, err := tf.Open(p.Mirror, committer.Options{}).Snapshot(ctx)
			if err != nil {
				lag[p.Mirror] = err.Error()
				continue
			}
			if w, ok := snap.TxnVersion(mirror.AppID(logSnap.Metadata.ID)); !ok || w != logSnap.Version {
				lag[p.Mirror] = fmt.Sprintf("holds change-log version %d (found: %v) of %d", w, ok, logSnap.Version)
			}
		}
		if len(lag) == 0 {
			h.t.Logf("mirrors: %d caught up with their change logs (%s)", len(pairs), time.Since(start).Round(time.Millisecond))
			return
		}
		select {
		case <-ctx.Done():
			h.t.Fatalf("mirrors did not catch up with their change logs within %s: %v", timeout, lag)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// mirrorVerdict proves every mirror of o's sinks equals the current-state
// view of its change log at the version it holds: `sink verify` (the Go
// checker, mirror.Check, beside the exactly-once proof) reads both through
// the committer, mirror_check.py through DuckDB, delta-rs, Polars and
// Spark.
func (h *harness) mirrorVerdict(o sinkOptions) {
	h.t.Helper()
	start := time.Now()
	// The sinks' configuration, but straight to the S3 server (the
	// scenario may have put a fault proxy in between).
	saved := h.storeEndpoint
	h.storeEndpoint = h.svc.s3.Endpoint
	cfg := h.config(o, freeAddr(h.t))
	h.storeEndpoint = saved
	out, err := exec.CommandContext(h.ctx(5*time.Minute), sinkBin, "verify", "-c", cfg).CombinedOutput()
	require.NoError(h.t, err, "sink verify:\n%s", out)
	var ok []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "  OK: mirror ") {
			ok = append(ok, line)
		}
	}
	require.Len(h.t, ok, len(o.mirrors), "sink verify checks every mirror:\n%s", out)
	h.t.Logf("sink verify (%s):\n%s", time.Since(start).Round(time.Millisecond), strings.Join(ok, "\n"))
	h.mirrors(mirrorPairs(o.mirrors...))
}

// putDir uploads the files under dir to the scenario's bucket prefix,
// under table.
func (h *harness) putDir(dir, table string, edit func(rel string, data []byte) []byte) {
	h.t.Helper()
	b := h.bucket()
	ctx := h.ctx(time.Minute)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if edit != nil {
			if data = edit(rel, data); data == nil {
				return nil
			}
		}
		_, err = b.Put(ctx, table+"/"+rel, bytes.NewReader(data), int64(len(data)), objstore.PutOptions{})
		return err
	})
	require.NoError(h.t, err)
}

// TestMirrorCheckerFindsWrongMirrors runs the mirror checker and the
// table readers on a mirror table written by Spark (row deletions with
// deletion vectors; readers/testdata/mirror, made by its make.py): a
// mirror that matches its change log's view at its version W passes in
// every reader, and two broken copies fail with the differences named by
// key: one whose deletions were lost (superseded rows and a deleted key
// visible again), one whose txn claims a later change-log version than
// its rows hold. The table readers read the good mirror's rows, not every
// row its files hold: pyarrow over the listed files applies the deletion
// vectors.
func TestMirrorCheckerFindsWrongMirrors(t *testing.T) {
	h := newHarness(t, 71)
	if h.svc.python == "" || tableReaders == nil {
		t.Skip("SINK_TEST_PYTHON is not set: the readers are what this tests")
	}
	fixture := filepath.Join("readers", "testdata", "mirror")
	h.putDir(filepath.Join(fixture, "cl"), "cl", nil)
	h.putDir(filepath.Join(fixture, "m"), "m", nil)
	// nodv: version 2 (Spark's DELETE of the superseded rows and the
	// deleted key) never happened; version 3 (the txn) becomes 2.
	h.putDir(filepath.Join(fixture, "m"), "nodv", func(rel string, data []byte) []byte {
		switch rel {
		case "_delta_log/00000000000000000002.json":
			return nil
		case "_delta_log/00000000000000000003.json":
			h.putBytes("nodv/_delta_log/00000000000000000002.json", data)
			return nil
		}
		return data
	})
	// ahead: the txn says change-log version 2, the rows are version 1's.
	h.putDir(filepath.Join(fixture, "m"), "ahead", func(rel string, data []byte) []byte {
		if rel == "_delta_log/00000000000000000003.json" {
			edited := bytes.Replace(data, []byte(`"version":1`), []byte(`"version":2`), 1)
			require.NotEqual(t, data, edited, "the fixture's txn action")
			return edited
		}
		return data
	})
	pair := func(m string) mirrorPair {
		return mirrorPair{Changelog: "cl", Mirror: m, Key: []string{"id"}, AppID: "evodb-mirror/TEST"}
	}

	h.mirrors([]mirrorPair{pair("m")})
	res, raw := h.runMirrorCheck([]mirrorPair{pair("nodv"), pair("ahead")})
	require.False(t, res.OK, raw)
	for _, reader := range []string{"duckdb", "deltalake", "polars", "spark"} {
		nodv := res.Mirrors["nodv"].Readers[reader]
		require.Empty(t, nodv.Error, "%s: %s", reader, raw)
		require.Equal(t, 8, nodv.Rows, "%s reads every row of nodv: %s", reader, raw)
		require.Equal(t, 1, nodv.Extra, "%s: key 3, deleted, is back: %s", reader, raw)
		require.Equal(t, 2, nodv.Duplicate, "%s: keys 2 and 3 twice: %s", reader, raw)
		require.Contains(t, string(nodv.Diffs), `"key": [3]`, "%s", raw)
		ahead := res.Mirrors["ahead"].Readers[reader]
		require.Empty(t, ahead.Error, "%s: %s", reader, raw)
		require.Equal(t, 1, ahead.Extra, "%s: key 5 was deleted at version 2: %s", reader, raw)
		require.Equal(t, 1, ahead.Different, "%s: key 1 was updated at version 2: %s", reader, raw)
		require.Contains(t, string(ahead.Diffs), `"mirror": "n1"`, "%s", raw)
	}
	require.Equal(t, int64(2), *res.Mirrors["ahead"].W)

	// The mirror's visible rows: keys 1, 2, 4, 5, 6 at these offsets.
	var coords []string
	for _, o := range []int{1, 6, 4, 5, 8} {
		coords = append(coords, fmt.Sprintf("t/0/%d", o))
	}
	h.readers(map[string][]string{"m": coords})
}

// putBytes puts one object under the scenario's bucket prefix.
func (h *harness) putBytes(key string, data []byte) {
	h.t.Helper()
	_, err := h.bucket().Put(h.ctx(time.Minute), key, bytes.NewReader(data), int64(len(data)), objstore.PutOptions{})
	require.NoError(h.t, err)
}
