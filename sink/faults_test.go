package sink

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/objstore"
)

// Store errors, ambiguous writes (the write happened, the caller saw an
// error) and commit conflicts between two members: every change still lands
// exactly once.
func TestSinkStoreFaults(t *testing.T) {
	c := newCluster(t, 4, "cdc")
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 4, 6, 4000, 0, 5, 0, want)
	b := objstore.NewMemory()
	faulty := objstore.NewFaulty(b, 9)
	faulty.Add(objstore.Fault{Op: objstore.OpPut, KeySuffix: ".parquet", Rate: 0.1})
	faulty.Add(objstore.Fault{Op: objstore.OpPut, KeySuffix: ".parquet", Rate: 0.1, Ambiguous: true})
	faulty.Add(objstore.Fault{Op: objstore.OpPut, KeySuffix: ".json", Rate: 0.1})
	faulty.Add(objstore.Fault{Op: objstore.OpPut, KeySuffix: ".json", Rate: 0.15, Ambiguous: true})
	faulty.Add(objstore.Fault{Op: objstore.OpGet, Rate: 0.05})
	faulty.Add(objstore.Fault{Op: objstore.OpList, Rate: 0.05})
	cfg := testConfig(c.ListenAddrs(), "cdc")
	cfg.Tables.Default.FlushThreshold = 300
	// Two members commit to the same tables, so commits also conflict.
	_, stop1 := runSink(t, cfg, faulty)
	_, stop2 := runSink(t, cfg, faulty)
	waitCommitted(t, b, 4000, 90*time.Second)
	require.NoError(t, stop1())
	require.NoError(t, stop2())
	require.NotZero(t, faulty.InjectedTotal())
	requireExactlyOnce(t, b, want)
}

// A burst far larger than the memory budget: buffered bytes never exceed
// the budget by more than one record, fetching pauses and resumes, and
// nothing is lost.
func TestSinkMemoryBudget(t *testing.T) {
	c := newCluster(t, 4, "cdc")
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 4, 8, 8000, 0, 6, 0, want)
	b := objstore.NewMemory()
	slow := objstore.NewFaulty(b, 1)
	slow.Add(objstore.Fault{Op: objstore.OpPut, Latency: 5 * time.Millisecond})
	cfg := testConfig(c.ListenAddrs(), "cdc")
	cfg.Memory.Budget = 256 << 10
	// The fetches' reserve comes out of the budget (1.5 × 64 KiB) and the
	// encoders' would take the rest: the buffers keep a quarter of the
	// 160 KiB the fetches leave.
	cfg.Kafka.FetchMaxBytes = 32 << 10
	cfg.Kafka.MaxConcurrentFetches = 2
	cfg.Tables.Default.Mode = "standard"
	cfg.Tables.Default.FlushThreshold = 100_000
	cfg.Tables.Default.FlushInterval = 2 * time.Second
	cfg.Kafka.MaxPollRecords = 500
	s, stop := runSink(t, cfg, slow)
	waitCommitted(t, b, 8000, 120*time.Second)
	require.NoError(t, stop())
	requireExactlyOnce(t, b, want)
	s.mu.Lock()
	peak := s.peakBuffered
	s.mu.Unlock()
	// Never above the buffers' share of the budget by more than one record.
	require.Equal(t, (cfg.Memory.Budget-cfg.Kafka.FetchReserve())/4, s.ctrl.Budget().Limit, "the buffers' floor")
	require.LessOrEqual(t, peak, s.ctrl.Budget().Limit+4096, "peak buffered bytes")
	require.Positive(t, peak)
	require.Positive(t, counterValue(t, s.metrics.flushes.WithLabelValues("memory")), "early flushes under memory pressure")
	require.Positive(t, counterValue(t, s.metrics.pauses), "fetching paused")
	require.Equal(t, counterValue(t, s.metrics.pauses), counterValue(t, s.metrics.resumes), "every pause resumed")
}

// A store that keeps failing: the sink retries for commit.store_retry_timeout,
// then stops with an error naming the flush, and the group offset never
// passes data that is not durable.
func TestSinkStopsWhenStoreKeepsFailing(t *testing.T) {
	c := newCluster(t, 2, "cdc")
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 2, 2, 500, 0, 14, 0, want)
	b := objstore.NewMemory()
	broken := objstore.NewFaulty(b, 3)
	broken.Add(objstore.Fault{Op: objstore.OpPut, KeySuffix: ".parquet", Rate: 1})
	cfg := testConfig(c.ListenAddrs(), "cdc")
	cfg.Commit.StoreRetryTimeout = 2 * time.Second
	s, err := newSink(cfg, broken)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = s.Run(ctx)
	require.Error(t, err)
	require.Contains(t, err.Error(), "flush table")
	require.Contains(t, err.Error(), "upload block")
	require.NoError(t, ctx.Err(), "stopped by the retry timeout, not the test deadline")
	for p, o := range fetchGroupOffsets(t, c.ListenAddrs(), cfg.Kafka.Group, "cdc") {
		require.LessOrEqual(t, o, int64(0), "partition %d committed past non-durable data", p)
	}
}
