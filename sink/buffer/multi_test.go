package buffer

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
)

func newMulti(t testing.TB, perTable map[string]Options) *Multi {
	m, err := NewMulti(func(table string) Options {
		if o, ok := perTable[table]; ok {
			return o
		}
		return opts()
	})
	require.NoError(t, err)
	return m
}

func TestNewMultiRejectsNilOptions(t *testing.T) {
	_, err := NewMulti(nil)
	require.Error(t, err)
}

func TestMultiInvalidTableOptions(t *testing.T) {
	m := newMulti(t, map[string]Options{"bad": {}})
	err := m.Add("bad", change("cdc", 0, 0, 1, ""), t0)
	require.ErrorContains(t, err, "buffer table bad")
	require.Equal(t, Totals{}, m.Totals())
	require.NoError(t, m.Add("good", change("cdc", 0, 0, 1, ""), t0))
}

func TestMultiTotalsAndDrain(t *testing.T) {
	m := newMulti(t, nil)
	a1, a2, b1 := change("cdc", 0, 1, 1, "aa"), change("cdc", 0, 2, 2, "aaaa"), change("cdc", 1, 1, 3, "b")
	require.NoError(t, m.Add("a", a1, t0))
	require.NoError(t, m.Add("a", a2, t0))
	require.NoError(t, m.Add("b", b1, t0))
	require.Equal(t, Totals{Bytes: size(a1) + size(a2) + size(b1), Records: 3, Tables: 2}, m.Totals())
	require.Equal(t, size(a1)+size(a2)+size(b1), m.Bytes())

	batch, ok := m.Drain("a")
	require.True(t, ok)
	require.Equal(t, []codec.Change{a1, a2}, changesOf(batch))
	require.Equal(t, Totals{Bytes: size(b1), Records: 1, Tables: 1}, m.Totals())

	_, ok = m.Drain("a")
	require.False(t, ok, "a drained table has nothing left")
	_, ok = m.Drain("missing")
	require.False(t, ok)

	// A drained table accepts again.
	require.NoError(t, m.Add("a", a1, t0))
	require.Equal(t, Totals{Bytes: size(a1) + size(b1), Records: 2, Tables: 2}, m.Totals())
}

func TestMultiOverflowKeepsTotals(t *testing.T) {
	ch := change("cdc", 0, 1, 1, "x")
	small := Options{FlushThreshold: 10, FlushInterval: time.Minute, TargetBytes: size(ch), MaxBytes: size(ch)}
	m := newMulti(t, map[string]Options{"t": small})
	require.NoError(t, m.Add("t", ch, t0))
	before := m.Totals()
	err := m.Add("t", ch, t0)
	require.ErrorIs(t, err, ErrOverflow)
	require.Equal(t, before, m.Totals())

	big := change("cdc", 0, 2, 2, "far too large for the buffer")
	err = m.Add("fresh", big, t0)
	require.NoError(t, err, "other tables use the default options")
	m2 := newMulti(t, map[string]Options{"tiny": small})
	err = m2.Add("tiny", big, t0)
	require.ErrorIs(t, err, ErrRecordTooLarge)
	require.Equal(t, Totals{}, m2.Totals(), "a refused first change leaves no empty table behind")
}

func TestMultiReadyAndNextDue(t *testing.T) {
	fast := Options{FlushThreshold: 2, FlushInterval: 10 * time.Second, TargetBytes: 1 << 20, MaxBytes: 1 << 20}
	slow := Options{FlushThreshold: 100, FlushInterval: time.Minute, TargetBytes: 1 << 20, MaxBytes: 1 << 20}
	m := newMulti(t, map[string]Options{"fast": fast, "slow": slow, "count": fast})

	d, ok := m.NextDue(t0)
	require.False(t, ok, "nothing buffered, nothing to wait for")
	require.Zero(t, d)

	require.NoError(t, m.Add("slow", change("cdc", 0, 1, 1, ""), t0))
	require.NoError(t, m.Add("fast", change("cdc", 0, 2, 2, ""), t0.Add(5*time.Second)))

	cases := []struct {
		at        time.Duration
		wantReady []string
		wantDue   time.Duration
	}{
		{at: 0, wantReady: nil, wantDue: 15 * time.Second},
		{at: 10 * time.Second, wantReady: nil, wantDue: 5 * time.Second},
		{at: 15 * time.Second, wantReady: []string{"fast"}, wantDue: 0},
		{at: 60 * time.Second, wantReady: []string{"fast", "slow"}, wantDue: 0},
	}
	for _, tc := range cases {
		now := t0.Add(tc.at)
		require.Equal(t, tc.wantReady, m.Ready(now), "at %s", tc.at)
		d, ok := m.NextDue(now)
		require.True(t, ok)
		require.Equal(t, tc.wantDue, d, "at %s", tc.at)
	}

	// A table due by count makes NextDue zero regardless of ages.
	require.NoError(t, m.Add("count", change("cdc", 0, 3, 3, ""), t0))
	require.NoError(t, m.Add("count", change("cdc", 0, 4, 4, ""), t0))
	require.Equal(t, []string{"count"}, m.Ready(t0))
	d, ok = m.NextDue(t0)
	require.True(t, ok)
	require.Zero(t, d)
	flush, reason := m.ShouldFlush("count", t0)
	require.True(t, flush)
	require.Equal(t, ReasonRecords, reason)
	flush, _ = m.ShouldFlush("missing", t0)
	require.False(t, flush)
}

func TestMultiLargest(t *testing.T) {
	m := newMulti(t, nil)
	add := func(table, payload string) {
		require.NoError(t, m.Add(table, change("cdc", 0, 0, 0, payload), t0))
	}
	add("small", "")
	add("big", "xxxxxxxxxxxxxxxxxxxxxxxx")
	add("mid", "xxxxxxxx")
	add("mid2", "xxxxxxxx")
	cases := []struct {
		n    int
		want []string
	}{
		{n: 0, want: nil},
		{n: -1, want: nil},
		{n: 1, want: []string{"big"}},
		{n: 3, want: []string{"big", "mid", "mid2"}},
		{n: 10, want: []string{"big", "mid", "mid2", "small"}},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, m.Largest(tc.n), "n=%d", tc.n)
	}
}

func TestMultiDropPartition(t *testing.T) {
	m := newMulti(t, nil)
	lost := []codec.Change{change("cdc", 2, 1, 1, "a"), change("cdc", 2, 2, 2, "bb")}
	kept := change("cdc", 3, 1, 3, "c")
	require.NoError(t, m.Add("only-lost", lost[0], t0))
	require.NoError(t, m.Add("mixed", lost[1], t0))
	require.NoError(t, m.Add("mixed", kept, t0))

	require.Equal(t, int64(0), m.DropPartition("cdc", 9))
	freed := m.DropPartition("cdc", 2)
	require.Equal(t, size(lost[0])+size(lost[1]), freed)
	require.Equal(t, Totals{Bytes: size(kept), Records: 1, Tables: 1}, m.Totals())
	_, ok := m.Drain("only-lost")
	require.False(t, ok, "a table left empty is removed")
	b, ok := m.Drain("mixed")
	require.True(t, ok)
	require.Equal(t, []codec.Change{kept}, changesOf(b))
	require.Equal(t, map[SourceKey]OffsetRange{{"cdc", 3}: {1, 1}}, b.Sources)
}

func TestMultiConcurrentAddAndDrain(t *testing.T) {
	m := newMulti(t, nil)
	const writers, perWriter = 4, 500
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				err := m.Add("t", change("cdc", int32(w), int64(i), uint64(i), ""), t0)
				if errors.Is(err, ErrOverflow) {
					t.Error(err)
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		for {
			if b, ok := m.Drain("t"); ok {
				n += len(changesOf(b))
			}
			select {
			case <-stop:
				if b, ok := m.Drain("t"); ok {
					n += len(changesOf(b))
				}
				done <- n
				return
			default:
			}
		}
	}()
	wg.Wait()
	close(stop)
	require.Equal(t, writers*perWriter, <-done)
	require.Equal(t, Totals{}, m.Totals())
}

func TestMultiNextDueIgnoresDrainedTables(t *testing.T) {
	m := newMulti(t, nil)
	require.NoError(t, m.Add("a", change("cdc", 0, 1, 1, ""), t0))
	require.NoError(t, m.Add("b", change("cdc", 0, 2, 2, ""), t0.Add(10*time.Second)))
	_, ok := m.Drain("a")
	require.True(t, ok)
	d, ok := m.NextDue(t0.Add(10 * time.Second))
	require.True(t, ok)
	require.Equal(t, time.Minute, d, "only b counts; a is empty")
	require.Equal(t, []string{"b"}, m.Largest(5))
	_, ok = m.Drain("b")
	require.True(t, ok)
	_, ok = m.NextDue(t0)
	require.False(t, ok)
	require.Nil(t, m.Ready(t0.Add(time.Hour)))
}

func BenchmarkMultiAdd(b *testing.B) {
	o := Options{FlushThreshold: 10_000, FlushInterval: time.Hour, TargetBytes: 1 << 40, MaxBytes: 1 << 40}
	m, err := NewMulti(func(string) Options { return o })
	require.NoError(b, err)
	tables := []string{"a", "b", "c", "d"}
	ch := change("cdc", 0, 0, 0, "Ada Lovelace")
	b.ReportAllocs()
	b.SetBytes(size(ch))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		table := tables[i%len(tables)]
		ch.Offset, ch.LSN = int64(i), uint64(i)
		if err := m.Add(table, ch, t0); err != nil {
			b.Fatal(err)
		}
		if due, _ := m.ShouldFlush(table, t0); due {
			m.Drain(table)
		}
	}
}
