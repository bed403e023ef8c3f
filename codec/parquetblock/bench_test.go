package parquetblock

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	kzstd "github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/internal/codectest"
)

// BenchmarkEncodeBlock encodes a 10,000-row block from Rows, as a flush
// does.
func BenchmarkEncodeBlock(b *testing.B) {
	changes, s, raw := codectest.AcceptedChanges(b, 10000)
	rows, err := codec.RowsOf(changes)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(raw)
	b.ReportAllocs()
	var out int64
	for b.Loop() {
		st, err := EncodeRows(io.Discard, s, rows, EncodeOptions{RowGroupBytes: 4 << 20})
		if err != nil {
			b.Fatal(err)
		}
		out = st.Bytes
	}
	b.ReportMetric(float64(b.N*len(changes))/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(out), "block-bytes")
}

// BenchmarkEncodeSmallBlock encodes blocks of 500 rows: the per-block cost
// (writer, page buffers, compressor set-up) that many lightly used tables
// pay on every flush.
func BenchmarkEncodeSmallBlock(b *testing.B) {
	changes, s, _ := codectest.AcceptedChanges(b, 500)
	rows, err := codec.RowsOf(changes)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeRows(io.Discard, s, rows, EncodeOptions{RowGroupBytes: 4 << 20}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(changes))/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkEncodeLevels encodes the 10,000-row block with each zstd level
// and with snappy, reporting the block's bytes: the measurement behind the
// choice of zstd's fastest level.
func BenchmarkEncodeLevels(b *testing.B) {
	changes, s, _ := codectest.AcceptedChanges(b, 10000)
	rows, err := codec.RowsOf(changes)
	if err != nil {
		b.Fatal(err)
	}
	shared := zstdCodec
	defer func() { zstdCodec = shared }()
	for _, tc := range []struct {
		name  string
		codec *pageZstd
		comp  string
	}{
		{"zstd-fastest", newPageZstd(zstd.SpeedFastest), "zstd"},
		{"zstd-default", newPageZstd(zstd.SpeedDefault), "zstd"},
		{"zstd-better", newPageZstd(zstd.SpeedBetterCompression), "zstd"},
		{"snappy", shared, "snappy"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			zstdCodec = tc.codec
			var out int64
			for b.Loop() {
				st, err := EncodeRows(io.Discard, s, rows, EncodeOptions{RowGroupBytes: 4 << 20, Compression: tc.comp})
				if err != nil {
					b.Fatal(err)
				}
				out = st.Bytes
			}
			b.ReportMetric(float64(out), "block-bytes")
		})
	}
}

// BenchmarkPageZstd compresses pages like the sink's (plain int64s that
// mostly grow, and short strings) of 2 KiB to 256 KiB with the process's
// page encoder: at the sizes of many tables' small files, the call's
// fixed work shows as a lower MB/s.
func BenchmarkPageZstd(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	page := func(n int) []byte {
		out := make([]byte, 0, n)
		v := uint64(1_700_000_000_000)
		for len(out) < n/2 {
			v += uint64(rng.IntN(1000))
			out = binary.LittleEndian.AppendUint64(out, v)
		}
		for len(out) < n {
			out = fmt.Appendf(out, "user-%05d@example.org", rng.IntN(20000))
		}
		return out[:n]
	}
	for _, n := range []int{2 << 10, 8 << 10, 32 << 10, 256 << 10} {
		src := page(n)
		for _, tc := range []struct {
			name string
			c    interface {
				Encode(dst, src []byte) ([]byte, error)
			}
		}{
			{"sink", zstdCodec},
			{"noentropy", newPageZstd(kzstd.SpeedFastest, kzstd.WithNoEntropyCompression(true))},
		} {
			b.Run(fmt.Sprintf("%s/%dKiB", tc.name, n>>10), func(b *testing.B) {
				var dst []byte
				b.SetBytes(int64(n))
				for b.Loop() {
					dst, _ = tc.c.Encode(dst[:0], src)
				}
				b.ReportMetric(float64(len(dst))/float64(n), "ratio")
			})
		}
	}
}
