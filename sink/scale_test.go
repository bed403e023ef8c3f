package sink

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/objstore"
)

// Partitions that come back to a member after a rebalance are consumed
// again: 1 → 3 → 1 members while a producer writes.
func TestSinkScaleOutAndIn(t *testing.T) {
	c := newCluster(t, 6, "cdc")
	want := &produced{recs: map[coord]producedRec{}}
	b := objstore.NewMemory()
	cfg := testConfig(c.ListenAddrs(), "cdc")
	cfg.Kafka.SessionTimeout = 10 * time.Second
	first, stop1 := runSink(t, cfg, b)
	produceEvoDB(t, c.ListenAddrs(), "cdc", 6, 4, 2000, 0, 21, 0, want)
	waitCommitted(t, b, 2000, 30*time.Second)
	_, stop2 := runSink(t, cfg, b)
	_, stop3 := runSink(t, cfg, b)
	produceEvoDB(t, c.ListenAddrs(), "cdc", 6, 4, 2000, 0, 22, 10_000, want)
	waitCommitted(t, b, 4000, 30*time.Second)
	produceEvoDB(t, c.ListenAddrs(), "cdc", 6, 4, 2000, 0, 23, 20_000, want)
	waitCommitted(t, b, 6000, 30*time.Second)
	// The partitions the leavers held come back with nothing new to read.
	require.NoError(t, stop2())
	require.NoError(t, stop3())
	// Every partition, those that came back with nothing new included,
	// reports its position: durable to its end.
	ends := map[int32]int64{}
	for k := range want.recs {
		ends[k.partition] = max(ends[k.partition], k.offset+1)
	}
	require.Eventually(t, func() bool {
		st := first.Status()
		if len(st.Partitions) != 6 {
			return false
		}
		for _, p := range st.Partitions {
			if p.DurableFrom != ends[p.Partition] || p.HighWater != ends[p.Partition] || p.Lag != 0 {
				return false
			}
		}
		return true
	}, 20*time.Second, 100*time.Millisecond, "status: %+v", first.Status().Partitions)
	require.NoError(t, stop1())
	requireExactlyOnce(t, b, want)
}
