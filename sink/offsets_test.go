package sink

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/internal/kafkatest"
	"github.com/evodb/sink/objstore"
)

// A topic deleted and re-created restarts its offsets below what the tables
// hold: the sink stops with an error naming the operator's choices instead
// of filtering the new records as duplicates.
func TestSinkStopsWhenOffsetsGoBackwards(t *testing.T) {
	c := newCluster(t, 1, "cdc")
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 1, 2, 200, 0, 11, 0, want)
	b := objstore.NewMemory()
	cfg := testConfig(c.ListenAddrs(), "cdc")
	_, stop := runSink(t, cfg, b)
	waitCommitted(t, b, 200, 30*time.Second)
	require.NoError(t, stop())

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = adm.DeleteTopics(ctx, "cdc")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := adm.CreateTopic(ctx, 1, 1, nil, "cdc")
		return err == nil
	}, 10*time.Second, 100*time.Millisecond)
	fresh := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 1, 2, 20, 0, 12, 1000, fresh)

	s, err := newSink(cfg, b)
	require.NoError(t, err)
	err = s.Run(ctx)
	require.ErrorIs(t, err, ErrOffsetsWentBack)
	require.Contains(t, err.Error(), "new group")
	// Nothing of the new topic was written, and the old data is intact.
	requireExactlyOnce(t, b, want)
}

// recreateTopic deletes a topic and creates it again with the same name.
func recreateTopic(t *testing.T, brokers []string, topic string, partitions int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = adm.DeleteTopics(ctx, topic)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
		return err == nil
	}, 10*time.Second, 100*time.Millisecond)
}

// lineages returns the topic IDs the tables recorded, by txn appId.
func lineages(t *testing.T, b objstore.Bucket) map[string][]string {
	t.Helper()
	ctx := context.Background()
	roots, err := delta.ListTables(ctx, b)
	require.NoError(t, err)
	out := map[string][]string{}
	for _, root := range roots {
		snap, err := delta.Open(b, root, delta.Options{}).Snapshot(ctx)
		require.NoError(t, err)
		for app := range snap.Txns {
			if id, lineage, ok := committer.SplitLineage(app); ok && !slices.Contains(out[id], lineage) {
				out[id] = append(out[id], lineage)
			}
		}
	}
	return out
}

// A re-created topic already longer than what the tables hold from it
// cannot be told from the old one by its offsets: the topic ID each commit
// records with the partition's txn version tells them apart, also once it
// is read back from a checkpoint. Nothing of the new topic is filtered or
// written.
func TestSinkStopsWhenARecreatedTopicIsLonger(t *testing.T) {
	c := newCluster(t, 1, "cdc")
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 1, 2, 200, 0, 11, 0, want)
	b := objstore.NewMemory()
	cfg := testConfig(c.ListenAddrs(), "cdc")
	cfg.Tables.Default.FlushThreshold = 20
	cfg.Commit.CheckpointInterval = 2
	_, stop := runSink(t, cfg, b)
	waitCommitted(t, b, 200, 30*time.Second)
	require.NoError(t, stop())
	ids := lineages(t, b)
	require.Len(t, ids, 1, "the topic ID is recorded")

	recreateTopic(t, c.ListenAddrs(), "cdc", 1)
	fresh := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 1, 2, 400, 0, 12, 1000, fresh)

	s, err := newSink(cfg, b)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = s.Run(ctx)
	require.ErrorIs(t, err, ErrOffsetsWentBack)
	require.Contains(t, err.Error(), "topic ID")
	require.Contains(t, err.Error(), "new group")
	requireExactlyOnce(t, b, want)
}

// Tables written before topic IDs were recorded (their txn appIds carry
// none; a broker that returns no topic IDs writes the same) keep their
// exactly-once state: a replay from offset zero writes nothing twice, and
// the next commits start recording the topic ID.
func TestSinkKeepsExactlyOnceWhenTopicIDsAppear(t *testing.T) {
	c := newCluster(t, 2, "cdc")
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 2, 3, 600, 0, 21, 0, want)
	b := objstore.NewMemory()
	cfg := testConfig(c.ListenAddrs(), "cdc")
	// Fetch requests before version 13 (Kafka 3.0) carry no topic IDs.
	_, stop := runSink(t, cfg, b, withKafkaOptions(kgo.MaxVersions(kversion.V3_0_0())))
	waitCommitted(t, b, 600, 30*time.Second)
	require.NoError(t, stop())
	require.Empty(t, lineages(t, b), "no topic ID without one from the broker")

	adm, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	defer adm.Close()
	deleteGroupOffsets(t, adm, cfg.Kafka.Group)
	produceEvoDB(t, c.ListenAddrs(), "cdc", 2, 3, 300, 0, 22, 10_000, want)
	_, stop = runSink(t, cfg, b)
	waitCommitted(t, b, 900, 30*time.Second)
	require.NoError(t, stop())
	requireExactlyOnce(t, b, want)
	ids := lineages(t, b)
	require.Len(t, ids, 2, "both partitions' txns record the topic ID")
	for _, l := range ids {
		require.Len(t, l, 1)
	}
}

func TestSinkHTTPEndpoints(t *testing.T) {
	c := newCluster(t, 2, "cdc")
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 2, 3, 300, 0, 13, 0, want)
	b := objstore.NewMemory()
	reg := prometheus.NewRegistry()
	s, stop := runSink(t, testConfig(c.ListenAddrs(), "cdc"), b, WithRegisterer(reg))
	srv := httptest.NewServer(s.Handler(reg))
	defer srv.Close()
	waitCommitted(t, b, 300, 30*time.Second)

	get := func(path string) (int, []byte) {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, body
	}
	code, _ := get("/healthz")
	require.Equal(t, http.StatusOK, code)
	require.Eventually(t, func() bool { c, _ := get("/readyz"); return c == http.StatusOK }, 10*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		_, body := get("/status")
		var st Status
		require.NoError(t, json.Unmarshal(body, &st))
		var rows int64
		for _, tb := range st.Tables {
			rows += tb.RowsWritten
			require.GreaterOrEqual(t, tb.Version, int64(0), "the table's first commit created it")
		}
		lagZero := len(st.Partitions) == 2
		for _, p := range st.Partitions {
			lagZero = lagZero && p.Lag == 0
		}
		if rows != 300 || !lagZero || st.RowsWritten != rows {
			return false
		}
		_, body = get("/status?summary=true")
		var sum Status
		require.NoError(t, json.Unmarshal(body, &sum))
		return sum.RowsWritten == 300 && sum.Tables == nil && sum.Partitions == nil
	}, 10*time.Second, 50*time.Millisecond)
	code, _ = get("/debug/pprof/")
	require.Equal(t, http.StatusNotFound, code, "the profiler is off unless http.pprof is set")
	code, body := get("/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(body), "evodb_sink_rows_committed_total")
	require.NoError(t, stop())
}

// With http.pprof set, the handler serves the Go profiler.
func TestSinkPprofOptIn(t *testing.T) {
	cfg := testConfig([]string{"127.0.0.1:1"}, "cdc")
	cfg.HTTP.Pprof = true
	reg := prometheus.NewRegistry()
	s, err := newSink(cfg, objstore.NewMemory(), WithRegisterer(reg))
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	s.Handler(reg).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), "goroutine")
}

// With notifications.topic set, every table commit publishes a JSON event
// naming the table, version, files and LSN range (for cache invalidation).
func TestSinkCommitNotifications(t *testing.T) {
	c := newCluster(t, 2, "cdc", "commits")
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 2, 3, 600, 0, 15, 0, want)
	b := objstore.NewMemory()
	cfg := testConfig(c.ListenAddrs(), "cdc")
	cfg.Notify.Topic = "commits"
	_, stop := runSink(t, cfg, b)
	waitCommitted(t, b, 600, 30*time.Second)
	require.NoError(t, stop())

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("commits"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var rows int64
	versions := map[string]int64{}
	for rows < 600 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var ev CommitEvent
			require.NoError(t, json.Unmarshal(r.Value, &ev))
			require.Equal(t, ev.Table, string(r.Key))
			require.Len(t, ev.FilesAdded, 1)
			require.LessOrEqual(t, ev.MinLSN, ev.MaxLSN)
			if prev, ok := versions[ev.Table]; ok {
				require.Greater(t, ev.Version, prev, "versions increase per table")
			}
			versions[ev.Table] = ev.Version
			rows += ev.Rows
		})
	}
	require.Equal(t, int64(600), rows)
	require.Len(t, versions, 3)
}

// A commit of another topic ID's offsets that lands after this sink read
// the table (a sink still reading the deleted topic, say) is caught at the
// commit: the committer refuses the block, and the sink stops instead of
// committing records of two topics under one txn id.
func TestSinkFlushStopsOnAnotherTopicIDCommittedMeanwhile(t *testing.T) {
	c := newCluster(t, 1, "cdc")
	kafkatest.ProduceValues(t, c.ListenAddrs(), "cdc", 0,
		`{"op":"INSERT","table":"users","data":{"id":1},"lsn":1}`,
		`{"op":"INSERT","table":"users","data":{"id":2},"lsn":2}`)
	b := objstore.NewMemory()
	ctx := context.Background()
	other := delta.Open(b, "users", delta.Options{Instance: "other"})
	_, err := other.Create(ctx, committer.Metadata{Name: "users", Schema: codec.NewSchema()})
	require.NoError(t, err)

	cfg := testConfig(c.ListenAddrs(), "cdc")
	cfg.Tables.Default.FlushInterval = time.Hour // only the shutdown flushes
	cfg.Tables.Default.FlushThreshold = 1_000_000
	s, err := newSink(cfg, b)
	require.NoError(t, err)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx) }()
	require.Eventually(t, func() bool {
		n := 0
		for _, tb := range s.Status().Tables {
			n += tb.BufferedRecords
		}
		return n == 2
	}, 30*time.Second, 50*time.Millisecond)

	// Another sink commits offsets of the partition read under another
	// topic ID, recording only that ID, so that no txn version refuses
	// this sink's block first.
	app := s.appID(topicPartition{"cdc", 0})
	_, err = other.Commit(ctx, committer.Commit{
		Txns:        []committer.TxnCondition{{AppID: committer.LineageAppID(app, "AAAAAAAAAAAAAAAAAAAAAA"), FirstOffset: 7, LastOffset: 7}},
		ReadVersion: -1,
	})
	require.NoError(t, err)
	cancel()
	err = <-done
	require.ErrorIs(t, err, ErrOffsetsWentBack)
	require.Contains(t, err.Error(), "AAAAAAAAAAAAAAAAAAAAAA")
	snap, err := delta.Open(b, "users", delta.Options{}).Snapshot(ctx)
	require.NoError(t, err)
	require.Empty(t, snap.Files, "nothing of this sink's block was committed")
}

// A topic deleted and re-created while the sink reads it: franz-go keeps
// fetching under the old topic ID and fails with UNKNOWN_TOPIC_ID. The
// sink commits what it read of the old topic, commits no group offset (the
// name now means another topic), and stops with the documented error.
func TestSinkStopsWhenItsTopicIsRecreatedWhileRunning(t *testing.T) {
	c := newCluster(t, 1, "cdc")
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 1, 2, 200, 0, 31, 0, want)
	b := objstore.NewMemory()
	cfg := testConfig(c.ListenAddrs(), "cdc")
	cfg.Tables.Default.FlushInterval = time.Hour // only the stop flushes
	cfg.Tables.Default.FlushThreshold = 1_000_000
	s, err := newSink(cfg, b)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	require.Eventually(t, func() bool {
		n := 0
		for _, tb := range s.Status().Tables {
			n += tb.BufferedRecords
		}
		return n == 200
	}, 30*time.Second, 50*time.Millisecond)

	recreateTopic(t, c.ListenAddrs(), "cdc", 1)
	produceEvoDB(t, c.ListenAddrs(), "cdc", 1, 2, 400, 0, 32, 1000, &produced{recs: map[coord]producedRec{}})
	err = <-done
	require.ErrorIs(t, err, ErrOffsetsWentBack)
	require.Contains(t, err.Error(), "re-created while")
	requireExactlyOnce(t, b, want)
	require.Empty(t, fetchGroupOffsets(t, c.ListenAddrs(), cfg.Kafka.Group, "cdc"))
}
