package parquetblock

import (
	"io"
	"testing"

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
