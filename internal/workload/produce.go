package workload

import (
	"context"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// maxInFlight bounds the records produced but not yet acknowledged, so a
// large workload does not sit in memory while the brokers catch up.
const maxInFlight = 4096

// progressEvery is how many acknowledged records lie between progress calls.
const progressEvery = 1000

// ProducerOptions are the client options Produce needs: the manual
// partitioner, so each record goes to the partition its key hashed to.
func ProducerOptions() []kgo.Opt {
	return []kgo.Opt{kgo.RecordPartitioner(kgo.ManualPartitioner())}
}

// Produce writes the next n records of g through cl asynchronously, at
// most maxInFlight unacknowledged at once, and returns once all are
// acknowledged. Like ProduceSync it returns the first error; it stops
// producing at the first failure and waits for what is in flight. progress,
// when not nil, is called with the number of acknowledged records every
// thousand records and once at the end; calls are serialised.
//
// cl should be built with ProducerOptions; with another partitioner the
// client chooses the partitions.
func Produce(ctx context.Context, cl *kgo.Client, g *Generator, n int, progress func(done int)) error {
	return ProduceTransformed(ctx, cl, g, n, nil, progress)
}

// ProduceTransformed is Produce with each generated record passed through
// transform first (nil: none), e.g. to re-encode it in another format.
// An error of transform stops producing and is returned.
func ProduceTransformed(ctx context.Context, cl *kgo.Client, g *Generator, n int, transform func(*Record) error, progress func(done int)) error {
	var (
		mu       sync.Mutex
		firstErr error
		done     int
		wg       sync.WaitGroup
		slots    = make(chan struct{}, maxInFlight)
	)
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return firstErr != nil
	}
	for i := 0; i < n && !failed(); i++ {
		rec := g.Next()
		if transform != nil {
			if err := transform(&rec); err != nil {
				wg.Wait()
				return err
			}
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return fmt.Errorf("produce workload: %w", ctx.Err())
		}
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Topic: rec.Topic, Partition: rec.Partition, Key: rec.Key, Value: rec.Value},
			func(r *kgo.Record, err error) {
				defer wg.Done()
				defer func() { <-slots }()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if firstErr == nil {
						firstErr = fmt.Errorf("produce to %s/%d: %w", r.Topic, r.Partition, err)
					}
					return
				}
				done++
				if progress != nil && done%progressEvery == 0 {
					progress(done)
				}
			})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		return firstErr
	}
	if progress != nil && done%progressEvery != 0 {
		progress(done)
	}
	return nil
}
