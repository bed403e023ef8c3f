package parquetblock

import (
	"runtime"
	"sync"
	"testing"

	kzstd "github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

// ZstdEncoderBytes is what the sink's budget sets aside for the zstd
// states: once every state has compressed a page, what the encoder holds
// must be within it, and not far below it either, or the budget would give
// the buffers too little.
func TestZstdEncoderBytesBoundsStates(t *testing.T) {
	page := make([]byte, 256<<10)
	for i := range page {
		page[i] = byte(i * 7 % 251) // compressible, but not trivially
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	enc := newPageZstd(kzstd.SpeedFastest)
	// Enough concurrent calls, repeated, that every state is used.
	for range 4 {
		var wg sync.WaitGroup
		for range pageZstdStates() {
			wg.Go(func() {
				dst, err := enc.Encode(nil, page)
				if err == nil && len(dst) == 0 {
					t.Error("empty page")
				}
			})
		}
		wg.Wait()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	runtime.KeepAlive(enc)
	t.Logf("%d states hold %d bytes; ZstdEncoderBytes %d", pageZstdStates(), held, ZstdEncoderBytes())
	require.LessOrEqual(t, held, ZstdEncoderBytes())
	require.Greater(t, held, ZstdEncoderBytes()/2)
}
