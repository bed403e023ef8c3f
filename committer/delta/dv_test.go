package delta

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2/roaring64"
	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

// sparkDVRows are the rows Spark deleted from the first file of
// testdata/spark_dv: DELETE WHERE id % 100 = 7 at version 1, then an
// UPDATE of id < 5 at version 2, which moved those rows to a new file.
var (
	sparkDV1 = []int64{7, 107, 207, 307, 407, 507, 607, 707, 807, 907}
	sparkDV2 = []int64{0, 1, 2, 3, 4, 7, 107, 207, 307, 407, 507, 607, 707, 807, 907}
)

func TestZ85(t *testing.T) {
	for _, b := range [][]byte{{}, {0}, {1, 2, 3, 4}, {0xff, 0xff, 0xff, 0xff, 0x86, 0x4f, 0xd2, 0x6f}} {
		enc := z85Encode(b)
		dec, err := z85Decode(enc)
		require.NoError(t, err)
		padded := append(slices.Clone(b), make([]byte, (4-len(b)%4)%4)...)
		require.Equal(t, padded, dec, "z85 %q", enc)
	}
	// ZeroMQ RFC 32's test vector.
	require.Equal(t, "HelloWorld", z85Encode([]byte{0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B}))
	_, err := z85Decode("Hello")
	require.NoError(t, err)
	_, err = z85Decode("Hell~")
	require.ErrorContains(t, err, "outside the alphabet")
	_, err = z85Decode("Hell")
	require.ErrorContains(t, err, "multiple of 5")
}

// TestEncodeBitmapInline checks a vector's bytes against those Delta's
// reference implementation gives for rows {3, 4, 7, 11, 18, 29} in the
// portable format (the example in PROTOCOL.md is in the legacy format).
func TestEncodeBitmapInline(t *testing.T) {
	data, err := encodeBitmap(roaring64.BitmapOf(3, 4, 7, 11, 18, 29))
	require.NoError(t, err)
	require.Len(t, data, 44)
	require.Equal(t, "^Bg9^0rr910000000000iXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L", z85Encode(data))
	bm, err := decodeBitmap(data)
	require.NoError(t, err)
	require.Equal(t, []uint64{3, 4, 7, 11, 18, 29}, bm.ToArray())
}

func TestDecodeLegacyBitmapRefused(t *testing.T) {
	// PROTOCOL.md's inline example, in Delta's legacy native format.
	raw, err := z85Decode("wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L")
	require.NoError(t, err)
	_, err = decodeBitmap(raw)
	require.ErrorContains(t, err, "legacy native format")
}

// TestSparkDeletionVectorFiles decodes the deletion vector files Spark
// wrote, and encodes their vectors again byte for byte.
func TestSparkDeletionVectorFiles(t *testing.T) {
	b, err := objstore.NewFilesystem("testdata")
	require.NoError(t, err)
	ctx := context.Background()
	tbl := Open(b, "spark_dv", Options{})
	s, err := tbl.Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), s.Version)
	require.Len(t, s.Files, 2)
	var withDV int
	for _, a := range s.Files {
		if a.Deleted == nil {
			require.Equal(t, int64(5), a.Rows())
			continue
		}
		withDV++
		require.Equal(t, int64(1000), a.Rows())
		require.Equal(t, int64(len(sparkDV2)), a.Deleted.Count)
		require.Regexp(t, `^deletion_vector_[0-9a-f-]{36}\.bin$`, a.Deleted.Path)
		rows, err := tbl.DeletedRows(ctx, a)
		require.NoError(t, err)
		require.Equal(t, sparkDV2, rows)
		// The UPDATE removed the file with its first vector as it added it
		// with the second: the removal stays a tombstone beside the active
		// file, keeping the first vector's file.
		r, ok := tbl.Removed(s, a.Path)
		require.True(t, ok)
		require.NotNil(t, r.Deleted)
		require.NotEqual(t, a.Deleted.Path, r.Deleted.Path)
		old, err := tbl.DeletedRows(ctx, withAdd(a, r))
		require.NoError(t, err)
		require.Equal(t, sparkDV1, old)

		for _, d := range []DeletionVector{a.Deleted.Sys.(DeletionVector), r.Deleted.Sys.(DeletionVector)} {
			rel, err := d.relPath("spark_dv/")
			require.NoError(t, err)
			file, err := os.ReadFile(filepath.Join("testdata", "spark_dv", rel))
			require.NoError(t, err)
			data, err := dvFromFile(file, *d.Offset, d.SizeInBytes)
			require.NoError(t, err)
			bm, err := decodeBitmap(data)
			require.NoError(t, err)
			require.Equal(t, uint64(d.Cardinality), bm.GetCardinality())
			again, err := encodeBitmap(bm)
			require.NoError(t, err)
			require.Equal(t, data, again)
			var f dvFile
			require.Equal(t, *d.Offset, f.add(again))
			require.Equal(t, file, f.buf.Bytes())

			// A flipped bit is caught by the checksum.
			bad := slices.Clone(file)
			bad[*d.Offset+4+5] ^= 1
			_, err = dvFromFile(bad, *d.Offset, d.SizeInBytes)
			require.ErrorContains(t, err, "checksum")
			// So is a wrong size.
			_, err = dvFromFile(file, *d.Offset, d.SizeInBytes-1)
			require.ErrorContains(t, err, "size")
		}
	}
	require.Equal(t, 1, withDV)

	s, err = Open(b, "spark_dv_inline", Options{}).Snapshot(ctx)
	require.NoError(t, err)
	for _, a := range s.Files {
		require.NotNil(t, a.Deleted)
		require.Equal(t, int64(2), a.Deleted.Count)
	}
}

// TestInlineDeletionVector reads an inline vector, whose Z85 text is padded
// to four bytes.
func TestInlineDeletionVector(t *testing.T) {
	bm := roaring64.BitmapOf(1, 5, 1<<33)
	data, err := encodeBitmap(bm)
	require.NoError(t, err)
	dv := DeletionVector{StorageType: dvInline, PathOrInlineDv: z85Encode(data), SizeInBytes: int32(len(data)), Cardinality: 3}
	got, err := readDV(context.Background(), objstore.NewMemory(), "", dv)
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 5, 1 << 33}, got.ToArray())
	dv.Cardinality = 4
	_, err = readDV(context.Background(), objstore.NewMemory(), "", dv)
	require.ErrorContains(t, err, "descriptor says 4")
}

func TestDeletionVectorPaths(t *testing.T) {
	uuid := []byte{0x3a, 0xcb, 0x73, 0xb3, 0xd4, 0xb1, 0x4a, 0x23, 0x9f, 0x9f, 0x85, 0x22, 0x04, 0xc5, 0x9a, 0xd4}
	for _, tc := range []struct {
		name string
		dv   DeletionVector
		root string
		want string
		err  string
	}{
		{"uuid", DeletionVector{StorageType: dvUUID, PathOrInlineDv: z85Encode(uuid)}, "t/", "deletion_vector_3acb73b3-d4b1-4a23-9f9f-852204c59ad4.bin", ""},
		{"uuid with prefix", DeletionVector{StorageType: dvUUID, PathOrInlineDv: "ab" + z85Encode(uuid)}, "t/", "ab/deletion_vector_3acb73b3-d4b1-4a23-9f9f-852204c59ad4.bin", ""},
		{"inline", DeletionVector{StorageType: dvInline, PathOrInlineDv: "00000"}, "t/", "", ""},
		{"absolute under root", DeletionVector{StorageType: dvPath, PathOrInlineDv: "s3://bucket/sales/orders/dv/x.bin"}, "sales/orders/", "dv/x.bin", ""},
		{"absolute elsewhere", DeletionVector{StorageType: dvPath, PathOrInlineDv: "s3://bucket/other/x.bin"}, "sales/orders/", "", "outside the table's root"},
		{"unknown type", DeletionVector{StorageType: "q"}, "t/", "", "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.dv.relPath(tc.root)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestDecodeBitmapMalformed(t *testing.T) {
	data, err := encodeBitmap(roaring64.BitmapOf(1, 2, 3))
	require.NoError(t, err)
	for i := 4; i < len(data); i++ {
		_, _ = decodeBitmap(data[:i]) // Must not panic.
	}
	bad := binary.LittleEndian.AppendUint32(nil, 7)
	_, err = decodeBitmap(bytes.Clone(bad))
	require.ErrorContains(t, err, "magic")
}

// withAdd returns a with the deleted rows r was removed with.
func withAdd(a committer.Add, r committer.Remove) committer.Add {
	a.Deleted = r.Deleted
	return a
}

// TestReadsSparkCheckpointWithDeletionVectors reads a checkpoint Spark
// wrote of a table with deletion vectors (three DELETEs, checkpoint
// interval 3): the same state as a replay of the JSON commits.
func TestReadsSparkCheckpointWithDeletionVectors(t *testing.T) {
	ctx := context.Background()
	b, err := objstore.NewFilesystem("testdata")
	require.NoError(t, err)
	// The table's clock is the time of its last commit, so that no
	// tombstone has expired.
	tbl := Open(b, "spark_dv_checkpoint", Options{Now: func() time.Time { return time.UnixMilli(1796610009961) }})
	cp, err := tbl.readCheckpoint(ctx, 3)
	require.NoError(t, err)
	require.Equal(t, []string{"deletionVectors"}, ProtocolOf(cp).ReaderFeatures)
	require.Contains(t, ProtocolOf(cp).WriterFeatures, "deletionVectors")
	want, err := tbl.update(ctx, emptySnapshot())
	require.NoError(t, err)
	require.Equal(t, int64(3), want.Version)
	// Spark writes the removals of a checkpoint with dataChange false.
	tombs := func(s *committer.Snapshot) map[string]committer.Remove {
		out := exportedState(s).Tombstones
		for k, r := range out {
			r.DataChange = false
			out[k] = r
		}
		return out
	}
	require.Equal(t, tombs(want), tombs(cp))
	require.Len(t, cp.Files, 1)
	for p, a := range cp.Files {
		require.Equal(t, want.Files[p].Deleted, a.Deleted)
		require.Equal(t, int64(1000), a.Rows())
		rows, err := tbl.DeletedRows(ctx, a)
		require.NoError(t, err)
		require.Equal(t, []int64{0, 1, 2, 7, 107, 207, 307, 407, 500, 507, 607, 707, 807, 907}, rows)
	}
	// The tombstones keep the file's earlier vectors.
	require.Equal(t, 3, NumTombstones(cp))
}
