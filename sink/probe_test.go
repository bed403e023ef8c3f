package sink

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/objstore"
)

// clientHook records whether a Kafka client was created: creating the
// group's client is what joins the group.
type clientHook struct{ created atomic.Bool }

func (h *clientHook) OnNewClient(*kgo.Client) { h.created.Store(true) }

// listRequests reads objstore_requests_total{operation="list"} from reg.
func listRequests(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "objstore_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "operation" && l.GetValue() == "list" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatal("no objstore_requests_total{operation=list}")
	return 0
}

// A store that can never work (here: a self-hosted endpoint addressed in
// virtual-hosted style, so the bucket's host name cannot resolve) fails the
// start with one request, before the member joins the group, instead of
// being retried for commit.store_retry_timeout.
func TestSinkProbeFailsAtOnceBeforeJoining(t *testing.T) {
	c := newCluster(t, 1, "cdc")
	s3, err := objstore.NewS3(context.Background(), objstore.S3Config{
		Bucket: "evodb", Endpoint: "http://127.0.0.1:1", Region: "auto",
		AccessKeyID: "k", SecretAccessKey: "s",
	})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	cfg := testConfig(c.ListenAddrs(), "cdc")
	// Far longer than the test's deadline: only a permanent error ends Run.
	cfg.Commit.StoreRetryTimeout = time.Hour
	var hook clientHook
	s, err := newSink(cfg, objstore.WithMetrics(s3, reg), withKafkaOptions(kgo.WithHooks(&hook)))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = s.Run(ctx)
	require.ErrorIs(t, err, objstore.ErrNeedsPathStyle)
	require.NoError(t, ctx.Err(), "failed at once, not at the test deadline")
	require.Equal(t, 1.0, listRequests(t, reg), "a configuration error is not retried")
	require.False(t, hook.created.Load(), "the kafka client (and so the group member) must not exist before the store answers")
}

// A store that is down is retried, with one warning per backoff step that
// gives the gist of the error rather than the SDK's framing of it.
func TestSinkProbeRetriesTransientErrorsWithShortWarnings(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	s3, err := objstore.NewS3(context.Background(), objstore.S3Config{
		Bucket: "evodb", Endpoint: "http://" + addr, Region: "auto", PathStyle: true,
		AccessKeyID: "k", SecretAccessKey: "s", MaxRetries: -1,
	})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	cfg := testConfig([]string{"127.0.0.1:1"}, "cdc")
	cfg.Commit.StoreRetryTimeout = time.Second
	var logs bytes.Buffer
	var hook clientHook
	s, err := newSink(cfg, objstore.WithMetrics(s3, reg), withKafkaOptions(kgo.WithHooks(&hook)),
		WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err)
	err = s.Run(context.Background())
	require.ErrorContains(t, err, "object store unreachable within commit.store_retry_timeout (1s)")
	require.False(t, objstore.IsConfigError(err))
	require.False(t, hook.created.Load())

	var warnings []string
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(line, "level=WARN") {
			warnings = append(warnings, line)
		}
	}
	require.NotEmpty(t, warnings)
	// One warning per retry: the first request is not a retry.
	require.Equal(t, float64(len(warnings)+1), listRequests(t, reg))
	for _, w := range warnings {
		require.Contains(t, w, `cause="dial tcp `+addr+`: connect: connection refused"`)
		require.NotContains(t, w, "operation error S3")
	}
}

// A stop requested while the start-up checks still run is graceful: Run
// returns nil, not an error blaming the brokers or the store. The broker
// address answers nothing, so only the cancellation can end the checks.
func TestSinkStopDuringStartIsGraceful(t *testing.T) {
	cfg := testConfig([]string{"127.0.0.1:1"}, "cdc")
	cfg.Kafka.ConnectTimeout = time.Hour
	s, err := newSink(cfg, objstore.NewMemory())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, s.Run(ctx))
}

// A topic_regex that matches the dead-letter topic does not make the sink
// consume its own output.
func TestSinkTopicRegexSkipsTheDeadLetterTopic(t *testing.T) {
	c := newCluster(t, 2, "cdc", "cdc.dlq")
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 2, 2, 200, 20, 5, 0, want)
	b := objstore.NewMemory()
	cfg := testConfig(c.ListenAddrs())
	cfg.Kafka.TopicRegex = "^cdc"
	cfg.Errors.Tolerance = "all"
	cfg.Errors.DLQTopic = "cdc.dlq"
	s, stop := runSink(t, cfg, b)
	waitCommitted(t, b, countGood(want), 60*time.Second)
	s.mu.Lock()
	var owned []string
	for tp := range s.parts {
		owned = append(owned, tp.topic)
	}
	s.mu.Unlock()
	require.NoError(t, stop())
	require.NotEmpty(t, owned)
	require.NotContains(t, owned, "cdc.dlq")
	requireExactlyOnce(t, b, want)
}
