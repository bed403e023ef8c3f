package delta

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/RoaringBitmap/roaring/v2/roaring64"
)

// FuzzDeletionVectorFile checks that any bytes given as a deletion vector
// file, at any offset and size, are read without a panic, and that a
// vector that decodes encodes again into a vector with the same rows.
func FuzzDeletionVectorFile(f *testing.F) {
	for _, name := range []string{
		"deletion_vector_3acb73b3-d4b1-4a23-9f9f-852204c59ad4.bin",
		"deletion_vector_463cd209-d648-43be-b8c2-ae055d048571.bin",
	} {
		data, err := os.ReadFile(filepath.Join("testdata", "spark_dv", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, int32(1), int32(len(data)-9))
	}
	var df dvFile
	data, err := encodeBitmap(roaring64.BitmapOf(0, 1, 2, 70_000, 1<<33))
	if err != nil {
		f.Fatal(err)
	}
	df.add(data)
	f.Add(df.buf.Bytes(), int32(1), int32(len(data)))
	f.Fuzz(func(t *testing.T, file []byte, offset, size int32) {
		data, err := dvFromFile(file, offset, size)
		if err != nil {
			return
		}
		bm, err := decodeBitmap(data)
		if err != nil {
			return
		}
		again, err := encodeBitmap(bm.Clone())
		if err != nil {
			t.Fatalf("encode a decoded vector: %v", err)
		}
		back, err := decodeBitmap(again)
		if err != nil {
			t.Fatalf("decode an encoded vector: %v", err)
		}
		if !back.Equals(bm) {
			t.Fatalf("rows changed in a round trip: %v, then %v", bm.ToArray(), back.ToArray())
		}
	})
}

// FuzzDecodeBitmap feeds the bitmap decoder any bytes after the magic
// number (a file's checksum lets few mutations through to it): it returns
// an error or a bitmap that survives a round trip, and never panics.
func FuzzDecodeBitmap(f *testing.F) {
	for _, rows := range [][]uint64{{}, {3, 4, 7, 11, 18, 29}, {0, 1 << 16, 1 << 33}} {
		data, err := encodeBitmap(roaring64.BitmapOf(rows...))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data[4:])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		data := append(binary.LittleEndian.AppendUint32(nil, dvMagic), body...)
		bm, err := decodeBitmap(data)
		if err != nil {
			return
		}
		again, err := encodeBitmap(bm.Clone())
		if err != nil {
			t.Fatalf("encode a decoded vector: %v", err)
		}
		back, err := decodeBitmap(again)
		if err != nil || !back.Equals(bm) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
