package sink

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/compaction"
	"github.com/evodb/sink/objstore"
)

// TestSinkVacuumLogUnderStaleMember: a member keeps a table's snapshot
// while another writer commits past several checkpoints and sink vacuum
// -log deletes the versions below the newest one. When the member flushes
// again, more than the log retention later by its clock, its commit must
// land after the latest version, where readers see it, and not at its
// snapshot's successor (free again after the cleanup, below the checkpoint,
// so invisible although the member's offsets would move past it).
func TestSinkVacuumLogUnderStaleMember(t *testing.T) {
	c := newCluster(t, 2, "a", "b")
	want := &produced{recs: map[coord]producedRec{}}
	b := objstore.NewMemory()
	var skew atomic.Int64
	staleClock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }

	cfgA := testConfig(c.ListenAddrs(), "a")
	cfgA.Kafka.Group = "group-a"
	produceEvoDB(t, c.ListenAddrs(), "a", 2, 1, 200, 0, 21, 0, want)
	_, stopA := runSink(t, cfgA, b, withClock(staleClock))
	waitCommitted(t, b, 200, 30*time.Second)

	cfgB := testConfig(c.ListenAddrs(), "b")
	cfgB.Kafka.Group = "group-b"
	cfgB.Commit.CheckpointInterval = 3
	_, stopB := runSink(t, cfgB, b)
	for i := range 8 {
		produceEvoDB(t, c.ListenAddrs(), "b", 2, 1, 20, 0, uint64(30+i), uint64(1000+100*i), want)
		waitCommitted(t, b, 200+20*(i+1), 30*time.Second)
	}
	require.NoError(t, stopB())

	ctx := context.Background()
	roots, err := delta.ListTables(ctx, b)
	require.NoError(t, err)
	require.Len(t, roots, 1)
	later := time.Now().Add(2 * delta.MinLogRetention)
	lv, err := compaction.VacuumLog(ctx, delta.NewFormat(b, delta.Options{}), roots[0], delta.MinLogRetention, false, later)
	require.NoError(t, err)
	require.NotEmpty(t, lv.Deleted)

	skew.Store(int64(2 * delta.MinLogRetention))
	produceEvoDB(t, c.ListenAddrs(), "a", 2, 1, 200, 0, 40, 5000, want)
	waitCommitted(t, b, 560, 30*time.Second)
	require.NoError(t, stopA())
	requireExactlyOnce(t, b, want)
}

// TestSinkStopsWhenTableDeleted: a table's prefix is deleted while the sink
// writes to it. The sink's next commit must not leave a log no engine can
// load (a version above 0 with no version 0): the sink stops with an error
// saying what happened, and on restart it creates the table again and
// writes the records whose offsets never moved.
func TestSinkStopsWhenTableDeleted(t *testing.T) {
	c := newCluster(t, 1, "cdc")
	first := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 1, 1, 100, 0, 51, 0, first)
	b := objstore.NewMemory()
	cfg := testConfig(c.ListenAddrs(), "cdc")
	s, err := newSink(cfg, b)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitCommitted(t, b, 100, 30*time.Second)

	var keys []string
	require.NoError(t, b.List(ctx, "", func(o objstore.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	}))
	for _, k := range keys {
		require.NoError(t, b.Delete(ctx, k))
	}
	second := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 1, 1, 100, 0, 52, 1000, second)
	err = <-done
	require.ErrorIs(t, err, committer.ErrTableReplaced)
	require.ErrorContains(t, err, "restart the sink")
	roots, err := delta.ListTables(ctx, b)
	require.NoError(t, err)
	require.Empty(t, roots)

	_, stop := runSink(t, cfg, b)
	waitCommitted(t, b, 100, 30*time.Second)
	require.NoError(t, stop())
	requireExactlyOnce(t, b, second)
}
