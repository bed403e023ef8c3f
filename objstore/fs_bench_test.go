package objstore

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFilesystemPut puts create-only objects the way the sink does at
// many tables once they exist: each table a directory of data files and a
// log directory (created before the timer starts), every object a new key.
// Besides wall time per put it reports the process's CPU per put
// (cpu-ns/op), which is what compares on a shared machine.
func BenchmarkFilesystemPut(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			ctx := context.Background()
			bkt, err := NewFilesystem(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			body := bytes.Repeat([]byte("x"), size)
			const tables = 512
			for table := range tables {
				for _, key := range []string{
					fmt.Sprintf("bench/t%04d/data/first.parquet", table),
					fmt.Sprintf("bench/t%04d/_delta_log/first.json", table),
				} {
					if _, err := bkt.Put(ctx, key, bytes.NewReader(body), int64(size), PutOptions{IfNoneMatch: true}); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			b.ResetTimer()
			for i := range b.N {
				table, n := i%tables, i/tables
				key := fmt.Sprintf("bench/t%04d/data/%08d.parquet", table, n)
				if n%2 == 1 {
					key = fmt.Sprintf("bench/t%04d/_delta_log/%020d.json", table, n)
				}
				if _, err := bkt.Put(ctx, key, bytes.NewReader(body), int64(size), PutOptions{IfNoneMatch: true}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the process's user and system CPU so far: a put's cost is
// mostly system calls and waiting for the disk, and only the CPU compares
// across runs on a shared machine.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFilesystemPutNewTables puts what a table's first flush puts,
// from two goroutines as two flushes run at once: each iteration a new
// table's first data file and its log's version 0, so each put creates
// its directory (and the first the table's). It reports CPU per put.
func BenchmarkFilesystemPutNewTables(b *testing.B) {
	ctx := context.Background()
	bkt, err := NewFilesystem(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 16<<10)
	var next atomic.Int64
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	b.SetParallelism(1)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			table := next.Add(1)
			for _, key := range []string{
				fmt.Sprintf("bench/t%06d/data/first.parquet", table),
				fmt.Sprintf("bench/t%06d/_delta_log/%020d.json", table, 0),
			} {
				if _, err := bkt.Put(ctx, key, bytes.NewReader(body), int64(len(body)), PutOptions{IfNoneMatch: true}); err != nil {
					b.Error(err)
					return
				}
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(2*b.N), "cpu-ns/put")
}
