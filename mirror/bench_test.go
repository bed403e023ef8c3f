package mirror

import (
	"testing"
	"time"

	"github.com/evodb/sink/codec"
)

// BenchmarkStep measures one maintenance step that applies 10,000 updates
// of random keys to a mirror of 1,000,000 rows (the change-log commit
// itself is not timed). The first step, a rebuild of the 1M rows, is
// reported as rebuild-s, and the key index's memory as index-B/row.
func BenchmarkStep(b *testing.B) {
	const rows, updates = 1_000_000, 10_000
	f := newFixture(b, nil)
	seed := make([]codec.Change, rows)
	for i := range seed {
		seed[i] = change(ins, int64(i), uint64(i+1), "seed")
	}
	f.commit(seed...)
	m, err := New(f.b, f.log, f.mirror, Options{})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if res, err := m.Step(f.ctx); err != nil || !res.Rebuilt {
		b.Fatal(res, err)
	}
	rebuild := time.Since(start)
	lsn := uint64(rows + 1)
	x := uint64(12345)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		batch := make([]codec.Change, updates)
		for j := range batch {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			batch[j] = change(upd, int64(x%rows), lsn, "update")
			lsn++
		}
		f.commit(batch...)
		b.StartTimer()
		res, err := m.Step(f.ctx)
		if err != nil {
			b.Fatal(err)
		}
		if res.Rebuilt {
			b.Fatal("unexpected rebuild")
		}
	}
	b.ReportMetric(rebuild.Seconds(), "rebuild-s")
	b.ReportMetric(float64(m.IndexBytes())/rows, "index-B/row")
}
