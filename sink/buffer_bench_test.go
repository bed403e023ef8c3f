package sink

import (
	"cmp"
	"context"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/internal/workload"
	"github.com/evodb/sink/objstore"
)

// BenchmarkBufferBatch buffers the 512-table workload's decoded changes in
// chunks, as the consumer loop does, with no flush: the per-change work of
// bufferBatch (admission, the memory check, the buffer's Add, scheduling)
// at many tables, without decoding or encoding. After each pass the
// buffers are drained and the partitions' offsets forgotten outside the
// timer, so the next pass buffers the same changes into buffers sized
// from the last, as in a running sink.
func BenchmarkBufferBatch(b *testing.B) {
	const (
		tables     = 512
		partitions = 12
		records    = 50_000
	)
	ctx := context.Background()
	cfg := testConfig([]string{"127.0.0.1:1"}, "bench")
	cfg.Tables.Default.FlushInterval = time.Hour
	cfg.Tables.Default.FlushThreshold = 1 << 30
	cfg.Tables.Default.Mode = "standard" // 4 MiB blocks: no table fills one
	s, err := newSink(cfg, objstore.NewMemory())
	if err != nil {
		b.Fatal(err)
	}
	s.flushCtx, s.cancelFlush = context.WithCancel(ctx)
	defer s.cancelFlush()
	ps := make([]int32, partitions)
	for i := range ps {
		ps[i] = int32(i)
	}
	s.onAssigned(ctx, nil, map[string][]int32{"bench": ps})
	dec, err := cdc.NewDecoder(cdc.FormatEvoDB)
	if err != nil {
		b.Fatal(err)
	}
	g := workload.New(workload.Config{Topic: "bench", Tables: tables, Partitions: partitions}, rand.New(rand.NewPCG(1, 2)))
	// In partition order, as fetches return them: a table's consecutive
	// changes mostly come from one partition.
	recs := make([]workload.Record, records)
	for i := range recs {
		recs[i] = g.Next()
	}
	slices.SortStableFunc(recs, func(a, b workload.Record) int { return cmp.Compare(a.Partition, b.Partition) })
	batch := make([]decoded, records)
	next := map[int32]int64{}
	for i, r := range recs {
		d := &batch[i]
		d.rec = &kgo.Record{Topic: r.Topic, Partition: r.Partition, Offset: next[r.Partition], Key: r.Key, Value: r.Value}
		next[r.Partition]++
		if err := s.decode(ctx, dec, d); err != nil {
			b.Fatal(err)
		}
	}
	empty := func() {
		s.flushes.Wait() // none is expected; the counter says if one ran
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, w := range s.tables {
			w.mu.Lock()
			w.mu.buf.Drain()
			w.mu.Unlock()
		}
		s.buffered = 0
		s.due = dueQueue{}
		for _, p := range s.parts {
			p.next = -1
			clear(p.pending)
		}
	}
	var cpu time.Duration
	for b.Loop() {
		cpu0 := processCPU()
		for i := 0; i < len(batch); i += decodeChunk {
			if err := s.bufferBatch(ctx, batch[i:min(i+decodeChunk, len(batch))]); err != nil {
				b.Fatal(err)
			}
		}
		cpu += processCPU() - cpu0
		b.StopTimer()
		empty()
		b.StartTimer()
	}
	// The process's CPU time says more than the wall time on a shared
	// machine.
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*records), "ns/change")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*records), "cpu-ns/change")
	b.ReportMetric(counterSum(s.metrics.flushes), "flushes")
}

// counterSum adds up a counter vector's series.
func counterSum(v *prometheus.CounterVec) float64 {
	ch := make(chan prometheus.Metric, 16)
	go func() { v.Collect(ch); close(ch) }()
	var sum float64
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) == nil {
			sum += d.GetCounter().GetValue()
		}
	}
	return sum
}

// processCPU is the CPU time the process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
