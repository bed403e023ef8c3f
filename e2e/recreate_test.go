package e2e

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/internal/workload"
	"github.com/evodb/sink/tablefile"
)

// TestRecreatedTopic deletes the topic after the sink wrote it and creates
// it again, longer than what the tables hold from it, so that no offset
// goes backwards past the tables' txn versions. The sink must tell the two
// topics apart by the topic ID the broker gives and stop, naming the
// operator's choices, without writing or dropping anything of the new one.
func TestRecreatedTopic(t *testing.T) {
	h := newHarness(t, 9)
	ws := h.singleTopic(workload.Config{Partitions: 2})
	opts := sinkOptions{topics: []string{ws.topic}, flushInterval: 300 * time.Millisecond}
	ctx := h.ctx(5 * time.Minute)
	require.NoError(t, h.produce(ctx, ws, 2000))
	a := h.startSink(opts)
	h.waitDone(opts.topics, 3*time.Minute)
	a.stop()
	h.verdict("", ws)

	// Every table recorded the topic ID the broker's metadata names.
	adm := kadm.NewClient(h.cl)
	topics, err := adm.ListTopics(ctx, ws.topic)
	require.NoError(t, err)
	oldID := kafkaTopicID(topics[ws.topic].ID)
	b := h.bucket()
	roots, err := delta.ListTables(ctx, b)
	require.NoError(t, err)
	require.NotEmpty(t, roots)
	before := map[string]*committer.Snapshot{}
	for _, root := range roots {
		snap, err := delta.Open(b, root, delta.Options{}).Snapshot(ctx)
		require.NoError(t, err)
		before[root] = snap
		recorded := 0
		for app := range snap.Txns {
			if _, id, ok := committer.SplitLineage(app); ok {
				require.Equal(t, oldID, id, "table %s", root)
				recorded++
			}
		}
		require.Positive(t, recorded, "table %s recorded no topic ID", root)
	}

	_, err = adm.DeleteTopics(ctx, ws.topic)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		resp, err := adm.CreateTopics(ctx, 2, 1, nil, ws.topic)
		return err == nil && resp[ws.topic].Err == nil
	}, time.Minute, 500*time.Millisecond, "re-create %s", ws.topic)
	// The broker's metadata names the new topic once it has propagated.
	require.Eventually(t, func() bool {
		topics, err := adm.ListTopics(ctx, ws.topic)
		return err == nil && topics[ws.topic].Err == nil && kafkaTopicID(topics[ws.topic].ID) != oldID
	}, time.Minute, 500*time.Millisecond, "metadata of the re-created %s", ws.topic)
	// A franz-go client keeps the topic ID it learnt for a name and the
	// re-created topic has a new one: produce with a new client.
	cl, err := kgo.NewClient(append(workload.ProducerOptions(), kgo.SeedBrokers(h.svc.brokers))...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	h.cl = cl
	fresh := h.stream(workload.Config{Topic: ws.topic, Partitions: 2})
	h.produceRetrying(ctx, fresh, 6000)

	a = h.startSink(opts)
	select {
	case <-a.exited:
	case <-time.After(2 * time.Minute):
		t.Fatal("the sink did not stop on the re-created topic")
	}
	require.Error(t, a.exitErr, "the sink must exit with an error")
	log, err := os.ReadFile(a.logPath)
	require.NoError(t, err)
	require.Contains(t, string(log), "source offsets went backwards")
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, "source offsets went backwards") {
			t.Logf("sink: %s", line)
			break
		}
	}
	require.Contains(t, string(log), "topic ID "+oldID)
	require.True(t, strings.Contains(string(log), "new group"), "the error names the operator's choices")

	// The tables are as the old topic left them.
	for _, root := range roots {
		snap, err := delta.Open(b, root, delta.Options{}).Snapshot(ctx)
		require.NoError(t, err)
		require.Equal(t, before[root].Version, snap.Version, "table %s was written to", root)
	}
}

// kafkaTopicID renders a topic ID as Kafka does: unpadded URL-safe base64.
func kafkaTopicID(id kadm.TopicID) string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// TestRecreatedTopicWhileRunning deletes and re-creates the topic while a
// sink reads it, with records of the old topic still in its buffers: the
// sink must find the new topic ID, commit what it read of the old topic,
// and stop without writing anything of the new one.
func TestRecreatedTopicWhileRunning(t *testing.T) {
	h := newHarness(t, 10)
	ws := h.singleTopic(workload.Config{Partitions: 2})
	// Only the stop flushes: the old topic's records are in the buffers
	// when it is deleted.
	opts := sinkOptions{topics: []string{ws.topic}, flushInterval: time.Hour, flushThreshold: 1_000_000, mode: "enterprise"}
	ctx := h.ctx(5 * time.Minute)
	require.NoError(t, h.produce(ctx, ws, 2000))
	a := h.startSink(opts)
	require.Eventually(t, func() bool { return bufferedRecords(a) == ws.count() },
		2*time.Minute, 200*time.Millisecond, "the sink did not buffer the whole topic")

	adm := kadm.NewClient(h.cl)
	_, err := adm.DeleteTopics(ctx, ws.topic)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		resp, err := adm.CreateTopics(ctx, 2, 1, nil, ws.topic)
		return err == nil && resp[ws.topic].Err == nil
	}, time.Minute, 500*time.Millisecond, "re-create %s", ws.topic)
	cl, err := kgo.NewClient(append(workload.ProducerOptions(), kgo.SeedBrokers(h.svc.brokers))...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	h.cl = cl
	h.produceRetrying(ctx, h.stream(workload.Config{Topic: ws.topic, Partitions: 2}), 6000)

	select {
	case <-a.exited:
	case <-time.After(2 * time.Minute):
		t.Fatal("the sink did not stop on the re-created topic")
	}
	require.Error(t, a.exitErr, "the sink must exit with an error")
	log, err := os.ReadFile(a.logPath)
	require.NoError(t, err)
	require.Contains(t, string(log), "re-created while the sink read it")

	// Every record of the old topic is in the tables once, and nothing
	// else.
	b := h.bucket()
	roots, err := delta.ListTables(ctx, b)
	require.NoError(t, err)
	var rows int64
	for _, root := range roots {
		snap, err := delta.Open(b, root, delta.Options{}).Snapshot(ctx)
		require.NoError(t, err)
		rows += tablefile.NumRecords(snap)
	}
	require.Equal(t, int64(ws.count()), rows)
}

// bufferedRecords is how many records a sink process holds in its table
// buffers, per its /status; -1 when it does not answer.
func bufferedRecords(p *sinkProc) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + p.addr + "/status")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var st struct {
		Tables []struct {
			BufferedRecords int `json:"buffered_records"`
		} `json:"tables"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil {
		return -1
	}
	n := 0
	for _, t := range st.Tables {
		n += t.BufferedRecords
	}
	return n
}
