package mirror

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// Two schedulers (two sink instances) maintain one mirror: the lease
// gives it one maintainer at a time, the mirror follows the change log as
// it grows, and the metrics count the steps. Stopping them releases the
// lease.
func TestSchedulerFollowsChangeLog(t *testing.T) {
	f := newFixture(t, nil)
	f.commit(change(ins, 1, 10, "a"), change(ins, 2, 11, "b"))
	ref := TableRef{ChangeLog: logRoot, Mirror: mirrorRoot, Interval: 5 * time.Millisecond}
	ctx, cancel := context.WithCancel(f.ctx)
	var wg sync.WaitGroup
	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
	for i, reg := range regs {
		s := NewScheduler(f.b, f.format, SchedulerOptions{Instance: "sink-" + string(rune('a'+i)), Poll: 5 * time.Millisecond, Registerer: reg})
		wg.Go(func() { require.NoError(t, s.Run(ctx, func() []TableRef { return []TableRef{ref} })) })
	}
	caughtUp := func() bool {
		s, err := f.openMirror("r").Snapshot(f.ctx)
		if err != nil {
			return false
		}
		w, ok := s.Txns[AppID(mustLog(f).Metadata.ID)]
		return ok && w == mustLog(f).Version
	}
	require.Eventually(t, caughtUp, 10*time.Second, 5*time.Millisecond)
	for i := range int64(5) {
		f.commit(change(upd, 1, uint64(20+i), "a"), change(ins, 10+i, uint64(20+i), "n"))
	}
	f.commit(change(del, 2, 40, "b"))
	require.Eventually(t, caughtUp, 10*time.Second, 5*time.Millisecond)
	cancel()
	wg.Wait()
	f.check()

	steps := 0.0
	for _, reg := range regs {
		steps += stepsOf(t, reg, "applied") + stepsOf(t, reg, "rebuilt")
	}
	require.Positive(t, steps)

	// The lease was released: another owner takes it at once.
	s := NewScheduler(f.b, f.format, SchedulerOptions{Instance: "sink-c"})
	l, err := s.holdLease(f.ctx, nil, ref)
	require.NoError(t, err)
	require.NoError(t, l.Release(f.ctx))
}

// stepsOf returns the steps counted with result in reg.
func stepsOf(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "evodb_mirror_steps_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// A nudge makes the maintainer step at once: with an interval of an hour,
// only Nudge can bring the mirror up to date within the test. A nudge for
// a change log without a mirror here, or several at once, never blocks.
func TestSchedulerNudge(t *testing.T) {
	f := newFixture(t, nil)
	f.commit(change(ins, 1, 10, "a"))
	ref := TableRef{ChangeLog: logRoot, Mirror: mirrorRoot, Interval: time.Hour}
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	s := NewScheduler(f.b, f.format, SchedulerOptions{Instance: "sink-a", Poll: 5 * time.Millisecond, Registerer: prometheus.NewRegistry()})
	done := make(chan struct{})
	go func() {
		defer close(done)
		require.NoError(t, s.Run(ctx, func() []TableRef { return []TableRef{ref} }))
	}()
	holds := func(v int64) func() bool {
		return func() bool {
			snap, err := f.openMirror("r").Snapshot(f.ctx)
			if err != nil {
				return false
			}
			w, ok := snap.Txns[AppID(mustLog(f).Metadata.ID)]
			return ok && w == v
		}
	}
	// The first step runs when the maintainer starts.
	require.Eventually(t, holds(mustLog(f).Version), 10*time.Second, 5*time.Millisecond)
	for i := range int64(3) {
		f.commit(change(upd, 1, uint64(20+i), "a"))
		s.Nudge("no/such/table")
		s.Nudge(logRoot)
		s.Nudge(logRoot)
		require.Eventually(t, holds(mustLog(f).Version), 10*time.Second, 5*time.Millisecond, "commit %d", i)
	}
	cancel()
	<-done
	f.check()
}
