package sink

import (
	"context"
	"fmt"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/objstore"
)

// TestTablesStateCountsAgainstBudget checks that each open table's own
// state is counted against the memory budget, so that buffers may use less
// as tables open, and that a table's count follows its snapshot as its
// commits add files and txns.
func TestTablesStateCountsAgainstBudget(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig([]string{"127.0.0.1:1"}, "cdc")
	s, err := newSink(cfg, objstore.NewMemory())
	require.NoError(t, err)
	s.flushCtx, s.cancelFlush = context.WithCancel(ctx)
	defer s.cancelFlush()
	s.onAssigned(ctx, nil, map[string][]int32{"cdc": {0}})
	p := s.parts[topicPartition{"cdc", 0}]

	empty := s.ctrl.Budget()
	require.Equal(t, s.ctrl.Configured().Limit-s.ctrl.Reserved(), empty.Limit, "no table open: the budget less the encoders'")
	var tables []*tableWriter
	for i := range 20 {
		name := fmt.Sprintf("t%02d", i)
		w, err := s.openTable(ctx, &routeEntry{key: routeKey{table: name, topic: "cdc"}, path: name, name: name})
		require.NoError(t, err)
		tables = append(tables, w)
	}
	require.Equal(t, int64(20*tableStateBytes), s.ctrl.State())
	opened := s.ctrl.Budget()
	require.Equal(t, empty.Limit-20*tableStateBytes, opened.Limit, "buffers may use what the tables leave")
	require.Less(t, opened.High, empty.High)
	require.Less(t, opened.Low, empty.Low)

	// A commit gives a table a file and a txn to hold.
	for i, w := range tables[:2] {
		d := &decoded{
			rec:    &kgo.Record{Topic: "cdc", Partition: 0, Offset: int64(i)},
			change: codec.Change{Topic: "cdc", Partition: 0, Offset: int64(i), Table: w.path, Op: codec.OpInsert, LSN: uint64(i + 1), TS: 1, Row: []codec.Field{field("id", codec.Int(int64(i)))}},
			table:  w,
		}
		at := s.now()
		s.mu.Lock()
		require.NoError(t, s.addLocked(ctx, p, d, &at))
		s.requestFlush(w, "test")
		s.mu.Unlock()
		s.flushes.Wait()
		require.Equal(t, int64(1), w.committedRows())
	}
	snap := tables[0].snapshot()
	require.Len(t, snap.Files, 1)
	require.Equal(t, int64(20*tableStateBytes+2*stateBytes(snap)-2*tableStateBytes), s.ctrl.State())
	require.Equal(t, stateBytes(snap), int64(tableStateBytes+fileStateBytes+len(snap.Txns)*txnStateBytes)+(snap.Version+1)*commitStateBytes)
	require.Less(t, s.ctrl.Budget().Limit, opened.Limit)
	var m dto.Metric
	require.NoError(t, s.metrics.tableStateBytes.Write(&m))
	require.Equal(t, float64(s.ctrl.State()), m.GetGauge().GetValue(), "the metric shows what is counted")
}
