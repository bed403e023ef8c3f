package sink

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/objstore"
)

// TestDueQueueVisitsOnlyDueTables buffers changes in a few of many tables
// on an injected clock and checks that each flushes when its age trigger
// fires, that the poll visits no idle table to find out, and that an entry
// a flush left behind fires early and is queued again rather than late
// (the dueQueue invariant).
func TestDueQueueVisitsOnlyDueTables(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := t0
	cfg := testConfig([]string{"127.0.0.1:1"}, "cdc")
	cfg.Tables.Default.FlushInterval = 2 * time.Second
	s, err := newSink(cfg, objstore.NewMemory(), withClock(func() time.Time { return now }))
	require.NoError(t, err)
	s.flushCtx, s.cancelFlush = context.WithCancel(ctx)
	defer s.cancelFlush()
	var visited []string
	s.visitDueHook = func(w *tableWriter) { visited = append(visited, w.path) }

	s.onAssigned(ctx, nil, map[string][]int32{"cdc": {0}})
	p := s.parts[topicPartition{"cdc", 0}]
	tables := map[string]*tableWriter{}
	for i := range 50 {
		name := fmt.Sprintf("t%02d", i)
		w, err := s.openTable(ctx, &routeEntry{key: routeKey{table: name, topic: "cdc"}, path: name, name: name})
		require.NoError(t, err)
		tables[name] = w
	}
	offset := int64(0)
	add := func(name string) {
		t.Helper()
		w := tables[name]
		d := &decoded{
			rec:    &kgo.Record{Topic: "cdc", Partition: 0, Offset: offset},
			change: codec.Change{Topic: "cdc", Partition: 0, Offset: offset, Table: name, Op: codec.OpInsert, LSN: uint64(offset + 1), TS: 1, Row: []codec.Field{field("id", codec.Int(offset))}},
			table:  w,
		}
		offset++
		at := now
		s.mu.Lock()
		defer s.mu.Unlock()
		require.NoError(t, s.addLocked(ctx, p, d, &at))
	}
	// poll runs what the poll loop runs after buffering, and returns how
	// long it would block next and which tables it visited.
	poll := func() (time.Duration, []string) {
		t.Helper()
		visited = nil
		s.mu.Lock()
		s.flushReadyLocked()
		wait := s.nextDueLocked()
		s.mu.Unlock()
		s.flushes.Wait()
		return wait, visited
	}
	committed := func(name string) int64 { return tables[name].committedRows() }

	add("t00")
	now = t0.Add(time.Second)
	wait, seen := poll()
	require.Empty(t, seen, "nothing is due: no table is visited")
	require.Equal(t, 500*time.Millisecond, wait)
	now = t0.Add(1900 * time.Millisecond)
	wait, seen = poll()
	require.Empty(t, seen)
	require.Equal(t, 100*time.Millisecond, wait, "the poll blocks until t00 is due")
	now = t0.Add(2 * time.Second)
	_, seen = poll()
	require.Equal(t, []string{"t00"}, seen, "only the due table is visited")
	require.EqualValues(t, 1, committed("t00"), "a due table flushes when its trigger fires")
	_, seen = poll()
	require.Empty(t, seen, "a flushed table leaves the queue")

	// t01's buffer is drained by another trigger before its age fires,
	// and refilled later: its entry fires early, finds it not due, and
	// is queued again at its own time.
	now = t0.Add(3 * time.Second)
	add("t01")
	s.mu.Lock()
	s.requestFlush(tables["t01"], "memory")
	s.mu.Unlock()
	s.flushes.Wait()
	require.EqualValues(t, 1, committed("t01"))
	now = t0.Add(4 * time.Second)
	add("t01")
	now = t0.Add(5 * time.Second)
	wait, seen = poll()
	require.Equal(t, []string{"t01"}, seen, "the entry the flush left behind fires early")
	require.EqualValues(t, 1, committed("t01"), "not due yet: t01's buffer is 1 s old")
	require.Equal(t, 500*time.Millisecond, wait)
	now = t0.Add(6 * time.Second)
	_, seen = poll()
	require.Equal(t, []string{"t01"}, seen)
	require.EqualValues(t, 2, committed("t01"), "flushed at its own due time, not later")

	// t02's entry fires while a flush of t02 runs and its buffer, which
	// took a change since the flush began, is not due: the entry must be
	// queued again, since the running flush, ending before that buffer is
	// due, starts no other.
	now = t0.Add(10 * time.Second)
	add("t02")
	for range cap(s.flushSem) {
		s.flushSem <- struct{}{} // flushes start but wait for a slot
	}
	now = t0.Add(10500 * time.Millisecond)
	s.mu.Lock()
	s.requestFlush(tables["t02"], "memory")
	s.mu.Unlock()
	require.True(t, tables["t02"].flushRunning())
	now = t0.Add(11 * time.Second)
	add("t02")
	now = t0.Add(12 * time.Second)
	visited = nil
	s.mu.Lock()
	s.flushReadyLocked()
	s.mu.Unlock()
	require.Equal(t, []string{"t02"}, visited, "the entry left by the first change fires")
	for range cap(s.flushSem) {
		<-s.flushSem
	}
	s.flushes.Wait()
	require.EqualValues(t, 1, committed("t02"), "the running flush held the first change only")
	now = t0.Add(13 * time.Second)
	_, seen = poll()
	require.Equal(t, []string{"t02"}, seen, "queued again although a flush ran when it fired")
	require.EqualValues(t, 2, committed("t02"), "the change buffered during the flush is flushed when due")

	for name := range tables {
		if name != "t00" && name != "t01" && name != "t02" {
			require.Zero(t, committed(name), name)
		}
	}
}
