package buffer

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/partitioner"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// change builds a change whose size grows with len(payload).
func change(topic string, partition int32, offset int64, lsn uint64, payload string) codec.Change {
	return codec.Change{
		Topic: topic, Partition: partition, Offset: offset,
		Table: "users", Op: codec.OpInsert, LSN: lsn, TS: 1,
		Row: []codec.Field{{Name: "v", Value: codec.String(payload)}},
	}
}

func size(ch codec.Change) int64 { return int64(ch.Size()) }

func opts() Options {
	return Options{FlushThreshold: 100, FlushInterval: time.Minute, TargetBytes: 1 << 20, MaxBytes: 2 << 20}
}

func TestOptionsValidate(t *testing.T) {
	cases := []struct {
		name      string
		mutate    func(*Options)
		wantError string
	}{
		{name: "ok", mutate: func(*Options) {}},
		{name: "max equals target", mutate: func(o *Options) { o.MaxBytes = o.TargetBytes }},
		{name: "zero threshold", mutate: func(o *Options) { o.FlushThreshold = 0 }, wantError: "flush threshold 0"},
		{name: "negative threshold", mutate: func(o *Options) { o.FlushThreshold = -1 }, wantError: "flush threshold -1"},
		{name: "zero interval", mutate: func(o *Options) { o.FlushInterval = 0 }, wantError: "flush interval 0s"},
		{name: "negative interval", mutate: func(o *Options) { o.FlushInterval = -time.Second }, wantError: "flush interval -1s"},
		{name: "zero target", mutate: func(o *Options) { o.TargetBytes = 0 }, wantError: "target bytes 0"},
		{name: "negative target", mutate: func(o *Options) { o.TargetBytes = -5 }, wantError: "target bytes -5"},
		{name: "zero max", mutate: func(o *Options) { o.MaxBytes = 0 }, wantError: "max bytes 0"},
		{name: "negative max", mutate: func(o *Options) { o.MaxBytes = -1 }, wantError: "max bytes -1"},
		{name: "max below target", mutate: func(o *Options) { o.MaxBytes = o.TargetBytes - 1 }, wantError: "below target"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := opts()
			tc.mutate(&o)
			err := o.Validate()
			_, newErr := NewTable("users", o)
			if tc.wantError == "" {
				require.NoError(t, err)
				require.NoError(t, newErr)
				return
			}
			require.ErrorContains(t, err, tc.wantError)
			require.ErrorContains(t, newErr, tc.wantError)
		})
	}
}

func TestTableOverflowLeavesBufferUnchanged(t *testing.T) {
	a := change("cdc", 0, 10, 100, "a")
	b := change("cdc", 1, 20, 200, "b")
	o := opts()
	o.TargetBytes = size(a) + size(b)
	o.MaxBytes = o.TargetBytes
	tb, err := NewTable("users", o)
	require.NoError(t, err)

	require.NoError(t, tb.Add(a, t0))
	require.NoError(t, tb.Add(b, t0.Add(time.Second)))
	before := *tb
	before.rows = tb.rows.Filter(func(codec.RowMeta) bool { return true })
	before.sources = map[SourceKey]OffsetRange{}
	for k, v := range tb.sources {
		before.sources[k] = v
	}

	c := change("other", 2, 30, 50, "c")
	err = tb.Add(c, t0.Add(2*time.Second))
	require.ErrorIs(t, err, ErrOverflow)
	var oe *OverflowError
	require.True(t, errors.As(err, &oe))
	require.Equal(t, OverflowError{
		Table: "users", Topic: "other", Partition: 2, Offset: 30,
		RecordBytes: size(c), BufferedBytes: size(a) + size(b), MaxBytes: o.MaxBytes,
	}, *oe)
	require.Contains(t, err.Error(), "other/2@30")
	require.Equal(t, before, *tb, "a refused change leaves no trace")

	batch := tb.Drain()
	require.Len(t, changesOf(batch), 2)
	require.Equal(t, 0, tb.Len())
	require.Equal(t, int64(0), tb.Bytes())

	// After a drain the buffer accepts again, and its ranges start afresh.
	require.NoError(t, tb.Add(c, t0.Add(3*time.Second)))
	next := tb.Drain()
	require.Equal(t, uint64(50), next.MinLSN)
	require.Equal(t, uint64(50), next.MaxLSN)
	require.Equal(t, map[SourceKey]OffsetRange{{Topic: "other", Partition: 2}: {First: 30, Last: 30}}, next.Sources)
	require.Equal(t, t0.Add(3*time.Second), next.FirstAdded)
}

func TestTableRecordTooLarge(t *testing.T) {
	big := change("cdc", 3, 7, 1, strings.Repeat("x", 1000))
	small := change("cdc", 3, 6, 1, "")
	o := opts()
	o.TargetBytes = size(big) - 1
	o.MaxBytes = size(big) - 1
	cases := []struct {
		name    string
		prefill bool
	}{
		{name: "empty buffer"},
		{name: "non-empty buffer", prefill: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb, err := NewTable("users", o)
			require.NoError(t, err)
			if tc.prefill {
				require.NoError(t, tb.Add(small, t0))
			}
			n, bytes := tb.Len(), tb.Bytes()
			err = tb.Add(big, t0)
			require.ErrorIs(t, err, ErrRecordTooLarge)
			require.NotErrorIs(t, err, ErrOverflow, "flushing would not help, so it is not an overflow")
			var te *RecordTooLargeError
			require.True(t, errors.As(err, &te))
			require.Equal(t, RecordTooLargeError{Table: "users", Topic: "cdc", Partition: 3, Offset: 7, RecordBytes: size(big), MaxBytes: o.MaxBytes}, *te)
			require.Contains(t, err.Error(), "cdc/3@7")
			require.Equal(t, n, tb.Len())
			require.Equal(t, bytes, tb.Bytes())
		})
	}
}

func TestTableShouldFlush(t *testing.T) {
	one := change("cdc", 0, 0, 1, "payload")
	cases := []struct {
		name       string
		opts       Options
		adds       int
		at         time.Duration // since the first add
		wantFlush  bool
		wantReason string
	}{
		{name: "empty", opts: opts(), adds: 0, at: time.Hour},
		{name: "below all", opts: opts(), adds: 3, at: 59 * time.Second},
		{name: "count", opts: Options{FlushThreshold: 3, FlushInterval: time.Minute, TargetBytes: 1 << 20, MaxBytes: 1 << 20}, adds: 3, wantFlush: true, wantReason: ReasonRecords},
		{name: "count not yet", opts: Options{FlushThreshold: 4, FlushInterval: time.Minute, TargetBytes: 1 << 20, MaxBytes: 1 << 20}, adds: 3},
		{name: "bytes", opts: Options{FlushThreshold: 100, FlushInterval: time.Minute, TargetBytes: 2 * size(one), MaxBytes: 1 << 20}, adds: 2, wantFlush: true, wantReason: ReasonBytes},
		{name: "bytes not yet", opts: Options{FlushThreshold: 100, FlushInterval: time.Minute, TargetBytes: 2*size(one) + 1, MaxBytes: 1 << 20}, adds: 2},
		{name: "bytes before count", opts: Options{FlushThreshold: 2, FlushInterval: time.Minute, TargetBytes: 2 * size(one), MaxBytes: 1 << 20}, adds: 2, wantFlush: true, wantReason: ReasonBytes},
		{name: "age exactly", opts: opts(), adds: 1, at: time.Minute, wantFlush: true, wantReason: ReasonAge},
		{name: "age later", opts: opts(), adds: 1, at: time.Hour, wantFlush: true, wantReason: ReasonAge},
		{name: "clock behind", opts: opts(), adds: 1, at: -time.Hour},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb, err := NewTable("users", tc.opts)
			require.NoError(t, err)
			for i := 0; i < tc.adds; i++ {
				// Later adds do not reset the age: it runs from the first.
				require.NoError(t, tb.Add(one, t0.Add(time.Duration(i)*time.Second)))
			}
			flush, reason := tb.ShouldFlush(t0.Add(tc.at))
			require.Equal(t, tc.wantFlush, flush)
			require.Equal(t, tc.wantReason, reason)
		})
	}
}

func TestTableAgeRestartsAfterDrain(t *testing.T) {
	tb, err := NewTable("users", opts())
	require.NoError(t, err)
	require.NoError(t, tb.Add(change("cdc", 0, 0, 1, ""), t0))
	tb.Drain()
	require.NoError(t, tb.Add(change("cdc", 0, 1, 2, ""), t0.Add(50*time.Second)))
	flush, _ := tb.ShouldFlush(t0.Add(time.Minute))
	require.False(t, flush, "age runs from the first change after the drain")
	flush, reason := tb.ShouldFlush(t0.Add(110 * time.Second))
	require.True(t, flush)
	require.Equal(t, ReasonAge, reason)
}

func TestTableDrainRanges(t *testing.T) {
	big1 := uint64(1)<<53 + 1 // not representable as float64
	cases := []struct {
		name        string
		changes     []codec.Change
		wantMin     uint64
		wantMax     uint64
		wantSources map[SourceKey]OffsetRange
	}{
		{
			name:        "single",
			changes:     []codec.Change{change("cdc", 0, 5, 42, "")},
			wantMin:     42,
			wantMax:     42,
			wantSources: map[SourceKey]OffsetRange{{"cdc", 0}: {5, 5}},
		},
		{
			name: "LSNs above 2^53 kept exact",
			changes: []codec.Change{
				change("cdc", 0, 1, big1+2, ""),
				change("cdc", 0, 2, big1, ""),
				change("cdc", 0, 3, big1+4, ""),
			},
			wantMin:     big1,
			wantMax:     big1 + 4,
			wantSources: map[SourceKey]OffsetRange{{"cdc", 0}: {1, 3}},
		},
		{
			name: "LSNs above 2^63",
			changes: []codec.Change{
				change("cdc", 0, 1, math.MaxUint64, ""),
				change("cdc", 0, 2, 1<<63, ""),
			},
			wantMin:     1 << 63,
			wantMax:     math.MaxUint64,
			wantSources: map[SourceKey]OffsetRange{{"cdc", 0}: {1, 2}},
		},
		{
			name: "several partitions and topics, offsets out of order",
			changes: []codec.Change{
				change("cdc", 0, 10, 1, ""),
				change("cdc", 1, 7, 2, ""),
				change("cdc", 0, 12, 3, ""),
				change("cdc", 0, 9, 4, ""),
				change("other", 0, 100, 5, ""),
			},
			wantMin: 1,
			wantMax: 5,
			wantSources: map[SourceKey]OffsetRange{
				{"cdc", 0}:   {9, 12},
				{"cdc", 1}:   {7, 7},
				{"other", 0}: {100, 100},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb, err := NewTable("users", opts())
			require.NoError(t, err)
			var bytes int64
			for _, ch := range tc.changes {
				require.NoError(t, tb.Add(ch, t0))
				bytes += size(ch)
			}
			b := tb.Drain()
			require.Equal(t, "users", b.Table)
			require.Equal(t, tc.changes, changesOf(b), "changes in the order added")
			require.Equal(t, tc.wantMin, b.MinLSN)
			require.Equal(t, tc.wantMax, b.MaxLSN)
			require.Equal(t, tc.wantSources, b.Sources)
			require.Equal(t, bytes, b.Bytes)
			require.Equal(t, t0, b.FirstAdded)

			id := b.BlockID()
			require.Equal(t, tc.wantMin, id.FirstLSN)
			require.Equal(t, tc.wantMax, id.LastLSN)
			require.NoError(t, id.Validate())
			require.Len(t, id.Sources, len(tc.wantSources))
		})
	}
}

func TestBatchBlockIDStableAcrossRetries(t *testing.T) {
	fill := func() Batch {
		tb, err := NewTable("users", opts())
		require.NoError(t, err)
		for p := int32(0); p < 8; p++ {
			require.NoError(t, tb.Add(change("cdc", p, int64(p)*10, uint64(p)+1, ""), t0))
		}
		return tb.Drain()
	}
	want := partitioner.DataFileKey(fill().BlockID())
	for i := 0; i < 20; i++ {
		require.Equal(t, want, partitioner.DataFileKey(fill().BlockID()), "map order must not leak into the key")
	}
}

func TestTableDropPartition(t *testing.T) {
	tb, err := NewTable("users", opts())
	require.NoError(t, err)
	keep1 := change("cdc", 1, 5, 20, "keep")
	drop1 := change("cdc", 0, 1, 10, "drop")
	drop2 := change("cdc", 0, 2, 40, "drop")
	keep2 := change("other", 0, 9, 30, "keep")
	for _, ch := range []codec.Change{drop1, keep1, drop2, keep2} {
		require.NoError(t, tb.Add(ch, t0))
	}
	require.Equal(t, int64(0), tb.DropPartition("cdc", 7), "unknown partition frees nothing")
	require.Equal(t, int64(0), tb.DropPartition("nope", 0))

	freed := tb.DropPartition("cdc", 0)
	require.Equal(t, size(drop1)+size(drop2), freed)
	require.Equal(t, size(keep1)+size(keep2), tb.Bytes())
	b := tb.Drain()
	require.Equal(t, []codec.Change{keep1, keep2}, changesOf(b))
	require.Equal(t, uint64(20), b.MinLSN)
	require.Equal(t, uint64(30), b.MaxLSN)
	require.Equal(t, map[SourceKey]OffsetRange{{"cdc", 1}: {5, 5}, {"other", 0}: {9, 9}}, b.Sources)

	// Dropping everything empties the buffer, which then starts afresh.
	require.NoError(t, tb.Add(drop1, t0))
	require.Equal(t, size(drop1), tb.DropPartition("cdc", 0))
	require.Equal(t, 0, tb.Len())
	flush, _ := tb.ShouldFlush(t0.Add(time.Hour))
	require.False(t, flush)
	require.NoError(t, tb.Add(keep1, t0.Add(time.Hour)))
	require.Equal(t, t0.Add(time.Hour), tb.Drain().FirstAdded)
}

func BenchmarkBufferAdd(b *testing.B) {
	row := []codec.Field{
		{Name: "id", Value: codec.Int(1)},
		{Name: "name", Value: codec.String("Ada Lovelace")},
		{Name: "email", Value: codec.String("ada@example.com")},
		{Name: "score", Value: codec.Float(9.5)},
	}
	ch := codec.Change{Topic: "cdc", Partition: 3, Table: "users", Op: codec.OpInsert, Row: row}
	o := Options{FlushThreshold: 1 << 30, FlushInterval: time.Hour, TargetBytes: 1 << 40, MaxBytes: 1 << 40}
	tb, err := NewTable("users", o)
	require.NoError(b, err)
	const perBatch = 10_000
	b.ReportAllocs()
	b.SetBytes(size(ch))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ch.Offset = int64(i)
		ch.LSN = uint64(i)
		if err := tb.Add(ch, t0); err != nil {
			b.Fatal(err)
		}
		if tb.Len() == perBatch {
			tb.Drain()
		}
	}
}

func TestBatchWithoutDurable(t *testing.T) {
	a0 := change("cdc", 0, 10, 5, "a")
	a1 := change("cdc", 0, 11, 6, "b")
	a2 := change("cdc", 0, 12, 7, "c")
	b0 := change("cdc", 1, 3, 1, "d")
	c0 := change("other", 0, 8, 9, "e")
	all := []codec.Change{a0, b0, a1, a2, c0}
	cases := []struct {
		name        string
		durable     map[SourceKey]int64
		want        []codec.Change
		wantMin     uint64
		wantMax     uint64
		wantSources map[SourceKey]OffsetRange
	}{
		{
			name: "nothing durable", durable: nil, want: all, wantMin: 1, wantMax: 9,
			wantSources: map[SourceKey]OffsetRange{{"cdc", 0}: {10, 12}, {"cdc", 1}: {3, 3}, {"other", 0}: {8, 8}},
		},
		{
			name: "prefix of one partition", durable: map[SourceKey]int64{{"cdc", 0}: 11}, want: []codec.Change{b0, a2, c0}, wantMin: 1, wantMax: 9,
			wantSources: map[SourceKey]OffsetRange{{"cdc", 0}: {12, 12}, {"cdc", 1}: {3, 3}, {"other", 0}: {8, 8}},
		},
		{
			name: "whole partitions", durable: map[SourceKey]int64{{"cdc", 1}: 100, {"other", 0}: 8}, want: []codec.Change{a0, a1, a2}, wantMin: 5, wantMax: 7,
			wantSources: map[SourceKey]OffsetRange{{"cdc", 0}: {10, 12}},
		},
		{
			name: "below the batch", durable: map[SourceKey]int64{{"cdc", 0}: 9}, want: all, wantMin: 1, wantMax: 9,
			wantSources: map[SourceKey]OffsetRange{{"cdc", 0}: {10, 12}, {"cdc", 1}: {3, 3}, {"other", 0}: {8, 8}},
		},
		{
			name: "everything", durable: map[SourceKey]int64{{"cdc", 0}: 12, {"cdc", 1}: 3, {"other", 0}: 8},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb, err := NewTable("users", opts())
			require.NoError(t, err)
			for _, ch := range all {
				require.NoError(t, tb.Add(ch, t0))
			}
			b := tb.Drain()
			orig := slices.Clone(changesOf(b))
			rest, ok := b.WithoutDurable(tc.durable)
			require.Equal(t, orig, changesOf(b), "the batch itself is not modified")
			if tc.want == nil {
				require.False(t, ok)
				return
			}
			require.True(t, ok)
			require.Equal(t, tc.want, changesOf(rest))
			require.Equal(t, tc.wantMin, rest.MinLSN)
			require.Equal(t, tc.wantMax, rest.MaxLSN)
			require.Equal(t, tc.wantSources, rest.Sources)
			var bytes int64
			for _, ch := range tc.want {
				bytes += size(ch)
			}
			require.Equal(t, bytes, rest.Bytes)
			require.Equal(t, "users", rest.Table)
			require.Equal(t, t0, rest.FirstAdded)
		})
	}
}

// MemFor predicts what Add allocates, first without a hint, then after a
// batch from that batch's size, so the next batch of about the same size
// never grows; after a small batch the hint is small again.
func TestTableMemFor(t *testing.T) {
	tb, err := NewTable("users", opts())
	require.NoError(t, err)
	fill := func(n int) {
		for i := range n {
			ch := change("cdc", 0, int64(i), uint64(i), "payload")
			want := tb.Mem() + tb.MemFor(&ch)
			require.NoError(t, tb.Add(ch, t0))
			require.Equal(t, want, tb.Mem(), "change %d", i)
			require.GreaterOrEqual(t, tb.Mem(), tb.Bytes())
		}
	}
	fill(80) // hot: 80 of a threshold of 100
	first := tb.Drain()
	require.Equal(t, first.Mem, first.Rows.Mem())

	ch := change("cdc", 0, 100, 100, "payload")
	hinted := tb.MemFor(&ch)
	require.Greater(t, hinted, int64(0))
	fill(84)
	require.Equal(t, hinted, tb.Mem(), "a batch like the last one, or a little larger, never grows its arrays")
	tb.Drain()

	fill(10) // quiet
	tb.Drain()
	require.Less(t, tb.MemFor(&ch), hinted, "a small hint after a small batch")

	// Batches far below the flush threshold (closed by age) are sized
	// from their predecessor too.
	o := opts()
	o.FlushThreshold = 10_000
	tb, err = NewTable("users", o)
	require.NoError(t, err)
	fill(300)
	tb.Drain()
	small := tb.MemFor(&ch)
	fill(300)
	require.Equal(t, small, tb.Mem(), "a batch like the last one never grows its arrays")
}

// Filter keeps a batch whose changes it all accepts as it is (same rows,
// same block), and otherwise narrows ranges and bytes to what is left.
func TestBatchFilter(t *testing.T) {
	a0 := change("cdc", 0, 10, 5, "a")
	a1 := change("cdc", 0, 11, 6, "bb")
	b0 := change("cdc", 1, 3, 1, "d")
	all := []codec.Change{a0, b0, a1}
	cases := []struct {
		name string
		drop map[int64]bool // offsets dropped
		want []codec.Change
	}{
		{"keep all", nil, all},
		{"drop one", map[int64]bool{3: true}, []codec.Change{a0, a1}},
		{"drop all", map[int64]bool{3: true, 10: true, 11: true}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb, err := NewTable("users", opts())
			require.NoError(t, err)
			for _, ch := range all {
				require.NoError(t, tb.Add(ch, t0))
			}
			b := tb.Drain()
			var seen []int64
			got := b.Filter(func(m codec.RowMeta) bool {
				seen = append(seen, m.Offset)
				return !tc.drop[m.Offset]
			})
			require.Equal(t, []int64{10, 3, 11}, seen, "called once per change, in order")
			if tc.drop == nil {
				require.Same(t, b.Rows, got.Rows)
				require.Equal(t, b.BlockID(), got.BlockID())
				return
			}
			require.Equal(t, len(tc.want), got.Len())
			if len(tc.want) == 0 {
				return
			}
			require.Equal(t, tc.want, changesOf(got))
			require.Equal(t, map[SourceKey]OffsetRange{{"cdc", 0}: {10, 11}}, got.Sources)
			require.Equal(t, uint64(5), got.MinLSN)
			require.Equal(t, size(a0)+size(a1), got.Bytes)
		})
	}
}

// TestTableSeedHint: a seeded hint sizes only the first batch of a buffer
// never drained; the buffer's own last batch wins after that.
func TestTableSeedHint(t *testing.T) {
	ch := change("t", 0, 1, 1, "abc")
	seed := codec.RowsHint{Rows: 300, Cells: 900, Bytes: 9000}

	fresh, err := NewTable("users", opts())
	require.NoError(t, err)
	unseeded := fresh.MemFor(&ch)
	fresh.SeedHint(seed)
	require.Equal(t, seed, fresh.NextHint())
	require.Equal(t, seed.MemFor(&ch), fresh.MemFor(&ch))
	require.Greater(t, fresh.MemFor(&ch), unseeded, "the first change allocates the seeded size")
	require.NoError(t, fresh.Add(ch, t0))
	require.Equal(t, fresh.MemFor(&ch), fresh.MemFor(&ch))
	require.Equal(t, seed.MemFor(&ch), fresh.Mem(), "the batch was allocated at the seeded size")

	b := fresh.Drain()
	require.Equal(t, 1, b.Len())
	own := fresh.NextHint()
	require.NotEqual(t, seed, own)
	fresh.SeedHint(seed)
	require.Equal(t, own, fresh.NextHint(), "a drained buffer keeps its own last batch's size")

	holding, err := NewTable("users", opts())
	require.NoError(t, err)
	require.NoError(t, holding.Add(ch, t0))
	holding.SeedHint(seed)
	require.Equal(t, codec.RowsHint{}, holding.NextHint(), "a buffer already holding changes is not seeded")

	empty, err := NewTable("users", opts())
	require.NoError(t, err)
	empty.SeedHint(codec.RowsHint{})
	require.Equal(t, codec.RowsHint{}, empty.NextHint())
}
