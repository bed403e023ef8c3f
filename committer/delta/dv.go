package delta

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/url"
	"slices"
	"strings"

	"github.com/RoaringBitmap/roaring/v2/roaring64"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

// Deletion vectors (PROTOCOL.md "Deletion Vectors", "Deletion Vector
// Format"): the rows of a data file a table has deleted while keeping the
// file. A vector is a set of row positions serialized as a magic number
// followed by the portable 64-bit roaring format, and is kept inline in the
// log (storage type "i", Z85 text) or in a deletion vector file (storage
// type "u" for a file under the table root named by a UUID, "p" for an
// absolute path). Spark, DuckDB, Polars and delta-rs read them byte for
// byte as this package writes them.

// DeletionVector is a deletion vector descriptor as the log records it on
// an add or remove action.
type DeletionVector struct {
	// StorageType is "u" (a file under the table root, named by a UUID),
	// "i" (inline) or "p" (an absolute path).
	StorageType string `json:"storageType"`
	// PathOrInlineDv is, for "u", an optional random prefix followed by
	// the Z85 encoding of the file's UUID (20 characters); for "i", the
	// Z85 encoding of the serialized vector; for "p", the file's URI.
	PathOrInlineDv string `json:"pathOrInlineDv"`
	// Offset is where the vector starts in its file (at its size field);
	// nil for inline vectors.
	Offset *int32 `json:"offset,omitempty"`
	// SizeInBytes is the serialized vector's size, without the size and
	// checksum fields of a file.
	SizeInBytes int32 `json:"sizeInBytes"`
	// Cardinality is how many rows the vector deletes.
	Cardinality int64 `json:"cardinality"`
}

// Storage types of a deletion vector.
const (
	dvUUID   = "u"
	dvInline = "i"
	dvPath   = "p"
)

// dvMagic starts a serialized vector in the portable format; dvLegacyMagic
// (big-endian) starts Delta's older native format, which only old Spark
// versions write and which this package refuses.
const (
	dvMagic       = 1681511377
	dvLegacyMagic = 1681511376
)

// dvFileVersion is the first byte of a deletion vector file.
const dvFileVersion = 1

// id returns the vector's identity within its file's logical identity
// (path, id), as Delta reconciles actions by: storage type, path or inline
// data, and offset.
func (dv DeletionVector) id() string {
	if dv.Offset != nil {
		return fmt.Sprintf("%s%s@%d", dv.StorageType, dv.PathOrInlineDv, *dv.Offset)
	}
	return dv.StorageType + dv.PathOrInlineDv
}

// relPath returns the key, relative to the table root root (with its
// trailing slash, "" for a table at the bucket's root), of the file that
// holds the vector: "" for an inline vector.
func (dv DeletionVector) relPath(root string) (string, error) {
	switch dv.StorageType {
	case dvInline:
		return "", nil
	case dvUUID:
		p := dv.PathOrInlineDv
		if len(p) < 20 {
			return "", fmt.Errorf("deletion vector %q: a %q path needs 20 characters of Z85 UUID", p, dvUUID)
		}
		prefix, enc := p[:len(p)-20], p[len(p)-20:]
		raw, err := z85Decode(enc)
		if err != nil || len(raw) != 16 {
			return "", fmt.Errorf("deletion vector %q: its UUID is not Z85: %v", p, err)
		}
		name := "deletion_vector_" + formatUUID(raw) + ".bin"
		if prefix != "" {
			name = prefix + "/" + name
		}
		return name, nil
	case dvPath:
		u, err := url.Parse(dv.PathOrInlineDv)
		if err != nil {
			return "", fmt.Errorf("deletion vector path %q: %w", dv.PathOrInlineDv, err)
		}
		// The store is known by its keys, not by the URI engines name it
		// with: the part of the path after the table's root is taken as
		// the key under it. A path that does not pass through the root lies
		// outside the store as far as this table knows.
		full := "/" + strings.TrimPrefix(u.Path, "/")
		var key string
		switch i := strings.Index(full, "/"+root); {
		case root == "" && (u.Scheme == "s3" || u.Scheme == "s3a" || u.Scheme == "gs"):
			key = full[1:]
		case root != "" && i >= 0:
			key = full[i+1+len(root):]
		default:
			return "", fmt.Errorf("deletion vector file %s lies outside the table's root %q; copy it under the table", dv.PathOrInlineDv, root)
		}
		if key == "" || strings.Contains("/"+key+"/", "/../") {
			return "", fmt.Errorf("deletion vector file %s lies outside the table's root %q", dv.PathOrInlineDv, root)
		}
		return key, nil
	}
	return "", fmt.Errorf("deletion vector of storage type %q: unknown; this committer reads %q, %q and %q", dv.StorageType, dvUUID, dvInline, dvPath)
}

// deleted returns dv as the format-neutral description of a file's
// deleted rows, for a table rooted at root.
func (dv DeletionVector) deleted(root string) *committer.DeletedRows {
	p, _ := dv.relPath(root)
	return &committer.DeletedRows{Count: dv.Cardinality, Path: p, Sys: dv}
}

// z85Chars is the Z85 alphabet (ZeroMQ RFC 32), which Delta's Base85Codec
// uses.
const z85Chars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"

// z85Encode encodes b, zero-padded to a multiple of four bytes as Delta
// pads inline vectors.
func z85Encode(b []byte) string {
	if len(b)%4 != 0 {
		b = append(slices.Clone(b), make([]byte, 4-len(b)%4)...)
	}
	out := make([]byte, 0, len(b)/4*5)
	for i := 0; i < len(b); i += 4 {
		v := binary.BigEndian.Uint32(b[i:])
		var blk [5]byte
		for j := 4; j >= 0; j-- {
			blk[j] = z85Chars[v%85]
			v /= 85
		}
		out = append(out, blk[:]...)
	}
	return string(out)
}

// z85Decode decodes s, whose length must be a multiple of five.
func z85Decode(s string) ([]byte, error) {
	if len(s)%5 != 0 {
		return nil, fmt.Errorf("z85 text of %d characters is not a multiple of 5", len(s))
	}
	out := make([]byte, 0, len(s)/5*4)
	for i := 0; i < len(s); i += 5 {
		var v uint64
		for j := range 5 {
			d := strings.IndexByte(z85Chars, s[i+j])
			if d < 0 {
				return nil, fmt.Errorf("z85 text has %q at %d, outside the alphabet", s[i+j], i+j)
			}
			v = v*85 + uint64(d)
		}
		if v > 0xffffffff {
			return nil, fmt.Errorf("z85 block at %d overflows 32 bits", i)
		}
		out = binary.BigEndian.AppendUint32(out, uint32(v))
	}
	return out, nil
}

// formatUUID renders 16 bytes as a UUID string.
func formatUUID(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// encodeBitmap serializes bm as a deletion vector: the magic, then the
// portable 64-bit roaring format, run-optimized as Spark writes it.
func encodeBitmap(bm *roaring64.Bitmap) ([]byte, error) {
	bm.RunOptimize()
	var buf bytes.Buffer
	buf.Grow(int(bm.GetSerializedSizeInBytes()) + 4)
	_ = binary.Write(&buf, binary.LittleEndian, uint32(dvMagic)) // A bytes.Buffer never fails.
	if _, err := bm.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("serialize deletion vector: %w", err)
	}
	return buf.Bytes(), nil
}

// decodeBitmap reads a serialized deletion vector.
func decodeBitmap(data []byte) (bm *roaring64.Bitmap, err error) {
	if len(data) < 4 {
		return nil, fmt.Errorf("deletion vector of %d bytes is too short", len(data))
	}
	switch {
	case binary.LittleEndian.Uint32(data) == dvMagic:
	case binary.BigEndian.Uint32(data) == dvLegacyMagic:
		return nil, errors.New("deletion vector in Delta's legacy native format, which this committer does not read; rewrite the table's vectors with a current engine (OPTIMIZE or REORG ... APPLY (PURGE))")
	default:
		return nil, fmt.Errorf("deletion vector starts with %x, not the magic number %d", data[:4], dvMagic)
	}
	// The roaring reader allocates as many buckets as the count says
	// before reading them, so a corrupt count would exhaust memory: every
	// bucket takes at least 12 bytes (its key and an empty 32-bit bitmap's
	// header), which bounds the count by the vector's size.
	if len(data) < 12 {
		return nil, fmt.Errorf("deletion vector of %d bytes is too short", len(data))
	}
	if n := binary.LittleEndian.Uint64(data[4:]); n > uint64(len(data)-12)/12 {
		return nil, fmt.Errorf("malformed deletion vector: %d buckets in %d bytes", n, len(data))
	}
	// The roaring reader panics on some malformed input; a bad vector is
	// an error, never a crash.
	defer func() {
		if p := recover(); p != nil {
			bm, err = nil, fmt.Errorf("malformed deletion vector: %v", p)
		}
	}()
	bm = roaring64.New()
	r := bytes.NewReader(data[4:])
	if _, err := bm.ReadFrom(r); err != nil {
		return nil, fmt.Errorf("malformed deletion vector: %w", err)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("deletion vector has %d bytes after its bitmap", r.Len())
	}
	// The reader does not check what it read (sorted keys, sorted and
	// distinct values in a container), and later operations on a bitmap
	// that breaks those rules panic.
	if err := bm.Validate(); err != nil {
		return nil, fmt.Errorf("malformed deletion vector: %w", err)
	}
	return bm, nil
}

// dvFile builds one deletion vector file: the version byte, then per
// vector its size (big-endian uint32), its bytes and their CRC-32 (IEEE,
// big-endian).
type dvFile struct {
	buf bytes.Buffer
}

// add appends a serialized vector and returns its offset.
func (f *dvFile) add(data []byte) int32 {
	if f.buf.Len() == 0 {
		f.buf.WriteByte(dvFileVersion)
	}
	off := int32(f.buf.Len())
	_ = binary.Write(&f.buf, binary.BigEndian, uint32(len(data)))
	f.buf.Write(data)
	_ = binary.Write(&f.buf, binary.BigEndian, crc32.ChecksumIEEE(data))
	return off
}

// dvFromFile returns the serialized vector at offset of a deletion vector
// file, of size bytes, after checking its size field and checksum.
func dvFromFile(file []byte, offset, size int32) ([]byte, error) {
	if len(file) == 0 || file[0] != dvFileVersion {
		return nil, fmt.Errorf("deletion vector file does not start with version byte %d", dvFileVersion)
	}
	end := int64(offset) + 4 + int64(size) + 4
	if offset < 1 || size < 0 || end > int64(len(file)) {
		return nil, fmt.Errorf("deletion vector at offset %d, %d bytes, lies outside the file of %d bytes", offset, size, len(file))
	}
	if got := binary.BigEndian.Uint32(file[offset:]); got != uint32(size) {
		return nil, fmt.Errorf("deletion vector at offset %d has size %d, its descriptor says %d", offset, got, size)
	}
	data := file[offset+4 : offset+4+size]
	want := binary.BigEndian.Uint32(file[offset+4+size:])
	if got := crc32.ChecksumIEEE(data); got != want {
		return nil, fmt.Errorf("deletion vector at offset %d: checksum %08x, the file records %08x: the file is corrupt", offset, got, want)
	}
	return data, nil
}

// readDV reads the vector dv of the table at root (with its trailing
// slash) in b.
func readDV(ctx context.Context, b objstore.Bucket, root string, dv DeletionVector) (*roaring64.Bitmap, error) {
	var data []byte
	switch dv.StorageType {
	case dvInline:
		raw, err := z85Decode(dv.PathOrInlineDv)
		if err != nil {
			return nil, fmt.Errorf("inline deletion vector: %w", err)
		}
		if int(dv.SizeInBytes) > len(raw) || dv.SizeInBytes < 0 {
			return nil, fmt.Errorf("inline deletion vector of %d bytes, its descriptor says %d", len(raw), dv.SizeInBytes)
		}
		data = raw[:dv.SizeInBytes]
	default:
		rel, err := dv.relPath(root)
		if err != nil {
			return nil, err
		}
		key := root + rel
		rc, err := b.Get(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("read deletion vector file %s: %w", key, err)
		}
		file, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("read deletion vector file %s: %w", key, err)
		}
		off := int32(1)
		if dv.Offset != nil {
			off = *dv.Offset
		}
		if data, err = dvFromFile(file, off, dv.SizeInBytes); err != nil {
			return nil, fmt.Errorf("deletion vector file %s: %w", key, err)
		}
	}
	bm, err := decodeBitmap(data)
	if err != nil {
		return nil, err
	}
	if int64(bm.GetCardinality()) != dv.Cardinality {
		return nil, fmt.Errorf("deletion vector %s holds %d rows, its descriptor says %d", dv.id(), bm.GetCardinality(), dv.Cardinality)
	}
	return bm, nil
}

// DeletedRows returns the positions of a's deleted rows, sorted ascending,
// read from its deletion vector (inline, or the file it names); nil when a
// has none.
func (t *Table) DeletedRows(ctx context.Context, a committer.Add) ([]int64, error) {
	if a.Deleted == nil {
		return nil, nil
	}
	dv, ok := a.Deleted.Sys.(DeletionVector)
	if !ok {
		return nil, fmt.Errorf("table %s: deleted rows of %s were not read from a Delta log", t.Root(), a.Path)
	}
	bm, err := readDV(ctx, t.bucket, t.root, dv)
	if err != nil {
		return nil, fmt.Errorf("table %s: deleted rows of %s: %w", t.Root(), a.Path, err)
	}
	out := make([]int64, 0, bm.GetCardinality())
	it := bm.Iterator()
	for it.HasNext() {
		out = append(out, int64(it.Next()))
	}
	return out, nil
}
