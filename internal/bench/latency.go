package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/internal/workload"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/tablefile"
)

// latencyRun is the paced phase after the throughput pass.
type latencyRun struct {
	cl *kgo.Client
	// next returns the next record to produce.
	next     func() workload.Record
	rate     float64
	duration time.Duration
	// already is the number of records committed before the phase.
	already int
	runner  sinkRunner
	events  *commitWatcher
	bucket  objstore.Bucket
	// wait bounds how long the phase waits for the last records.
	wait time.Duration
}

// acks collects the outcome of records produced asynchronously: wait
// returns, once every record is acknowledged, the first error any had.
type acks struct {
	wg  sync.WaitGroup
	mu  sync.Mutex
	err error
}

func (a *acks) produce(ctx context.Context, cl *kgo.Client, r *kgo.Record) {
	a.wg.Add(1)
	cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
		defer a.wg.Done()
		if err != nil {
			a.mu.Lock()
			if a.err == nil {
				a.err = err
			}
			a.mu.Unlock()
		}
	})
}

func (a *acks) wait() error {
	a.wg.Wait()
	return a.err
}

// tick is the pacing step: every tick the producer sends what the rate
// allows since the phase began, so it holds the rate on average without
// bursts larger than a tick's worth.
const tick = 10 * time.Millisecond

// measureLatency produces at l.rate for l.duration, noting when each
// record (by LSN) was sent, waits until the sink committed all of them,
// and matches every record to the commit of the block holding it: the
// commit notifications name each block, and each block's _lsn column names
// its records. The delay is commit time minus send time.
func measureLatency(ctx context.Context, l latencyRun) (Latency, error) {
	var (
		sent     []time.Time
		firstLSN uint64
		acks     acks
	)
	start := time.Now()
	t := time.NewTicker(tick)
	defer t.Stop()
	for now := start; now.Sub(start) < l.duration; now = <-t.C {
		want := int(l.rate * now.Sub(start).Seconds())
		for len(sent) < want {
			r := l.next()
			if len(sent) == 0 {
				firstLSN = r.LSN
			}
			sent = append(sent, time.Now())
			acks.produce(ctx, l.cl, &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value})
		}
	}
	if err := acks.wait(); err != nil {
		return Latency{}, fmt.Errorf("paced produce: %w", err)
	}
	total := l.already + len(sent)
	err := waitFor(ctx, l.wait, "paced records committed", func() (bool, error) {
		n, err := l.runner.committed()
		return n >= int64(total), err
	})
	if err != nil {
		return Latency{}, err
	}
	// Notifications follow each commit asynchronously: wait until they
	// account for every row.
	var events []eventRows
	err = waitFor(ctx, time.Minute, "commit notifications", func() (bool, error) {
		var rows int64
		events = events[:0]
		for _, ev := range l.events.snapshot() {
			if len(ev.FilesRemoved) > 0 {
				continue
			}
			rows += ev.Rows
			if ev.MaxLSN >= firstLSN {
				for _, f := range ev.FilesAdded {
					events = append(events, eventRows{table: ev.Table, file: f, at: time.UnixMilli(ev.CommittedAt)})
				}
			}
		}
		return rows >= int64(total), nil
	})
	if err != nil {
		return Latency{}, err
	}
	delays := make([]time.Duration, 0, len(sent))
	for _, ev := range events {
		lsns, err := blockLSNs(ctx, l.bucket, ev.table, ev.file)
		if err != nil {
			return Latency{}, err
		}
		for _, lsn := range lsns {
			if lsn < firstLSN || lsn-firstLSN >= uint64(len(sent)) {
				continue
			}
			delays = append(delays, ev.at.Sub(sent[lsn-firstLSN]))
		}
	}
	sortDurations(delays)
	lat := Latency{Rate: l.rate, Records: len(sent), Measured: len(delays)}
	if len(delays) > 0 {
		lat.P50, lat.P99, lat.Max = percentile(delays, 50), percentile(delays, 99), delays[len(delays)-1]
	}
	return lat, nil
}

type eventRows struct {
	table, file string
	at          time.Time
}

// blockLSNs reads the _lsn of every row of a block.
func blockLSNs(ctx context.Context, b objstore.Bucket, table, file string) ([]uint64, error) {
	_, changes, err := tablefile.ReadFile(ctx, b, table, file)
	if err != nil {
		return nil, err
	}
	lsns := make([]uint64, len(changes))
	for i := range changes {
		lsns[i] = changes[i].LSN
	}
	return lsns, nil
}
