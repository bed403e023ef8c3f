package codec_test

import (
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
