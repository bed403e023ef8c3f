package parquetblock

import (
	"runtime"

	kzstd "github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

// pageZstd compresses Parquet pages with encoders that live as long as
// the process. parquet-go's zstd codec keeps its encoders in a sync.Pool,
// which the collector empties every couple of cycles; each replacement
// allocates and clears a megabyte history window and its match tables
// again (2-3 % of the sink's CPU under load, plus the garbage). One
// klauspost Encoder is safe for concurrent EncodeAll calls and holds one
// encoder state per allowed concurrent call; a call beyond that waits for
// a free state. Decoding is parquet-go's.
type pageZstd struct {
	zstd.Codec
	enc *kzstd.Encoder
}

// pageZstdWindow is the encoders' window. Each encoder state keeps a
// history buffer of the window size (plus a block): at zstd's default 8 MiB
// window, four states held 33 MiB for as long as the process ran. Pages
// are cut at about DefaultPageBytes (1 MiB) of values, so a 1 MiB window
// loses no match but across the largest pages' ends.
const pageZstdWindow = 1 << 20

// pageZstdStates is how many encoder states the process's zstd encoder
// keeps: one per allowed concurrent call.
func pageZstdStates() int { return max(runtime.GOMAXPROCS(0), 4) }

// pageZstdStateBytes is what one encoder state holds once used, for the
// life of the process: its history of the window plus a block, and its
// match tables. Heap profiles of the sink showed 7-8.6 MiB for four.
const pageZstdStateBytes = 2 << 20

// ZstdEncoderBytes is what the zstd page encoders hold for the life of
// the process once every state has been used: memory the sink's budget
// sets aside, since it does not shrink with what is buffered.
func ZstdEncoderBytes() int64 { return int64(pageZstdStates()) * pageZstdStateBytes }

// newPageZstd returns the page codec at level; extra options (for
// benchmarks) come after the codec's own.
func newPageZstd(level kzstd.EncoderLevel, extra ...kzstd.EOption) *pageZstd {
	enc, err := kzstd.NewWriter(nil, append([]kzstd.EOption{
		kzstd.WithEncoderConcurrency(pageZstdStates()),
		kzstd.WithEncoderLevel(level),
		kzstd.WithZeroFrames(true),
		kzstd.WithEncoderCRC(false),
		kzstd.WithWindowSize(pageZstdWindow),
		kzstd.WithLowerEncoderMem(true),
	}, extra...)...)
	if err != nil {
		panic(err) // only for invalid options, which these are not
	}
	return &pageZstd{Codec: zstd.Codec{Level: level}, enc: enc}
}

// Encode compresses src into dst's storage.
func (c *pageZstd) Encode(dst, src []byte) ([]byte, error) {
	return c.enc.EncodeAll(src, dst[:0]), nil
}
