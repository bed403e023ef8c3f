package parquetblock

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	kzstd "github.com/klauspost/compress/zstd"
)

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
			{"noentropy", newPageZstdOpts(kzstd.WithNoEntropyCompression(true))},
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

func newPageZstdOpts(extra ...kzstd.EOption) *pageZstd {
	opts := append([]kzstd.EOption{
		kzstd.WithEncoderConcurrency(pageZstdStates()),
		kzstd.WithEncoderLevel(kzstd.SpeedFastest),
		kzstd.WithZeroFrames(true),
		kzstd.WithEncoderCRC(false),
		kzstd.WithWindowSize(pageZstdWindow),
		kzstd.WithLowerEncoderMem(true),
	}, extra...)
	enc, err := kzstd.NewWriter(nil, opts...)
	if err != nil {
		panic(err)
	}
	return &pageZstd{enc: enc}
}
