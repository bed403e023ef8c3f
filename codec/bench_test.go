package codec_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/internal/codectest"
)

// BenchmarkSchemaAccept fits decoded changes to a table schema that already
// holds their columns: the per-record check on the sink's hot path.
func BenchmarkSchemaAccept(b *testing.B) {
	changes, s, _ := codectest.AcceptedChanges(b, 1024)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Accept(&changes[i%len(changes)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkRowsAppend copies decoded changes into Rows: what buffering a
// record costs the poll loop.
func BenchmarkRowsAppend(b *testing.B) {
	changes, _, _ := codectest.AcceptedChanges(b, 10000)
	full, err := codec.RowsOf(changes)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var rows *codec.Rows
	for i := 0; b.Loop(); i++ {
		k := i % len(changes)
		if k == 0 {
			// Buffers are sized from the previous batch.
			rows = codec.NewRows(full.Hint())
		}
		if _, err := rows.Append(&changes[k]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkRowsSort sorts a flush's 10,000 changes by LSN as a table's
// buffer holds them: runs of 200 changes from each partition in turn, as
// fetches return them, each run in LSN order and the LSNs interleaved
// across the partitions (one database log spread over them by key); with
// one partition the changes arrive in order.
func BenchmarkRowsSort(b *testing.B) {
	for _, parts := range []int{12, 1} {
		b.Run(fmt.Sprintf("partitions=%d", parts), func(b *testing.B) {
			const n, run = 10000, 200
			rng := rand.New(rand.NewPCG(1, 1))
			byPart := make([][]codec.Change, parts)
			for lsn := range n {
				p := rng.IntN(parts)
				byPart[p] = append(byPart[p], codec.Change{Table: "t", Topic: "t", Partition: int32(p),
					Offset: int64(len(byPart[p])), LSN: uint64(lsn), Row: []codec.Field{{Name: "id", Value: codec.Int(int64(lsn))}}})
			}
			var changes []codec.Change
			for len(changes) < n {
				for p := range byPart {
					k := min(run, len(byPart[p]))
					changes = append(changes, byPart[p][:k]...)
					byPart[p] = byPart[p][k:]
				}
			}
			for b.Loop() {
				b.StopTimer()
				rows, err := codec.RowsOf(changes)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				rows.Sort()
			}
		})
	}
}
