package parquetblock

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"sync"
	"unsafe"

	"github.com/evodb/sink/codec"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding/delta"
	"github.com/parquet-go/parquet-go/encoding/plain"
	"github.com/parquet-go/parquet-go/encoding/rle"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// The block writer. EncodeRows builds each column of a row group in a
// typed array (chunk) straight from the buffered cells and writes it as
// Parquet pages with parquet-go's own encoders, page, page index and
// footer types and thrift codec. parquet-go's Writer takes values only as
// parquet.Value (a 24-byte tagged value per cell), copies them into its
// column buffers, and walks every page once more for its bounds, which
// the encoder has already computed: 40 % of the encode's time on the
// benchmark's blocks (BENCHMARKS.md, "Third round: a typed page writer").
// The files have the layout parquet-go's Writer gave them: DATA_PAGE_V2;
// delta-encoded integers, dates and timestamps; plain doubles, booleans
// and wide decimals; dictionary-encoded _op and _topic; the same schema
// elements, column orders, chunk statistics and column and offset
// indexes. Byte array columns whose values repeat are dictionary-encoded
// too (see dictionary), the others keep their lengths delta-encoded.
// ReadBlock reads the files with parquet-go, TestBlockReaders with
// pyarrow and DuckDB, and the end-to-end suite's tables are read by
// delta-rs, pyarrow, DuckDB, Polars, PyIceberg and Spark.

// columnPlan is how a block column is stored: its physical type, the
// encoding of its data pages, and whether they index a dictionary.
type columnPlan struct {
	phys format.Type
	enc  format.Encoding
	dict bool
}

// Integer, date and timestamp columns, the metadata ones included, are
// delta-encoded: monotonic columns (_lsn, _offset) compress to almost
// nothing, and values of a narrow range or close to each other (ids,
// times, counters) bit-pack to a fraction of their 8 plain bytes, so zstd
// has that much less to scan, while wide random values cost no more than
// plain. On the benchmark workload's blocks: 4 % fewer bytes and about a
// tenth less CPU for the whole decode+encode (BENCHMARKS.md). Every
// reader the sink is tested with reads it (TestIntegerColumnsDeltaEncoded
// covers the wrapping deltas of extreme values).
func planOf(c *blockColumn) columnPlan {
	switch c.name {
	case codec.ColOp, codec.ColTopic:
		// A handful of distinct values per block.
		return columnPlan{phys: format.ByteArray, enc: format.RLEDictionary, dict: true}
	}
	switch c.typ.Kind {
	case codec.TypeLong, codec.TypeTimestamp:
		return columnPlan{phys: format.Int64, enc: format.DeltaBinaryPacked}
	case codec.TypeInteger, codec.TypeDate:
		return columnPlan{phys: format.Int32, enc: format.DeltaBinaryPacked}
	case codec.TypeDouble:
		return columnPlan{phys: format.Double, enc: format.Plain}
	case codec.TypeBoolean:
		return columnPlan{phys: format.Boolean, enc: format.Plain}
	case codec.TypeDecimal:
		switch {
		case c.flbaLen > 0:
			return columnPlan{phys: format.FixedLenByteArray, enc: format.Plain}
		case c.typ.Precision <= 9:
			return columnPlan{phys: format.Int32, enc: format.DeltaBinaryPacked}
		}
		return columnPlan{phys: format.Int64, enc: format.DeltaBinaryPacked}
	}
	// Strings, JSON and binary: the lengths delta-encoded, the bytes
	// contiguous, which zstd compresses better than interleaved lengths.
	return columnPlan{phys: format.ByteArray, enc: format.DeltaLengthByteArray}
}

// chunk is one column's values of the row group being built. Optional
// columns have a definition level per row (1 present, 0 null) and a value
// per present row; required ones a value per row.
type chunk struct {
	rows  int
	nulls int64
	defs  []byte
	ints  []int64   // INT32 and INT64 columns
	f64   []float64 // DOUBLE
	data  []byte    // BYTE_ARRAY bytes, FIXED_LEN_BYTE_ARRAY values, BOOLEAN values (0 or 1)
	offs  []uint32  // BYTE_ARRAY: value k is data[offs[k]:offs[k+1]]
	dict  []string  // dictionary columns: the distinct values, in order seen
	idx   []int32   // dictionary columns: each value's index in dict

	// The chunk's statistics: the bounds of its values, of whichever
	// kind the column has.
	ib bounds[int64]
	fb bounds[float64]
	sb bounds[string]
	// Wide decimals' bounds, compared as decimals.
	glo, ghi codec.Value
	gseen    bool
}

func (ch *chunk) reset() {
	clear(ch.dict)
	*ch = chunk{defs: ch.defs[:0], ints: ch.ints[:0], f64: ch.f64[:0], data: ch.data[:0],
		offs: append(ch.offs[:0], 0), dict: ch.dict[:0], idx: ch.idx[:0]}
}

func (ch *chunk) null() {
	ch.defs = append(ch.defs, 0)
	ch.nulls++
}

// appendBytes adds a byte array value.
func (ch *chunk) appendBytes(s string) {
	ch.data = append(ch.data, s...)
	ch.offs = append(ch.offs, uint32(len(ch.data)))
}

// appendDict adds a value of a dictionary column.
func (ch *chunk) appendDict(s string) {
	i := slices.Index(ch.dict, s)
	if i < 0 {
		i = len(ch.dict)
		ch.dict = append(ch.dict, s)
	}
	ch.idx = append(ch.idx, int32(i))
}

func (b *bounds[T]) merge(o bounds[T]) {
	if o.seen {
		b.add(o.lo)
		b.add(o.hi)
	}
}

// fileWriter writes a block's Parquet file: the magic, row groups of
// column chunks, and the footer.
type fileWriter struct {
	w         *countingWriter
	comp      compress.Codec
	pageBytes int
	schema    []format.SchemaElement
	orders    []format.ColumnOrder
	groups    []format.RowGroup
	kv        []format.KeyValue
	// The page index of every chunk, by row group and leaf.
	colIdx [][]format.ColumnIndex
	offIdx [][]format.OffsetIndex

	// What an encode leaves for the next (see encoders): the row
	// group's chunks and the page buffers.
	chunks []chunk
	hdr    bytes.Buffer
	enc    *thrift.Encoder
	dictOf map[string]int32 // dictionary: the index of each value
	levels []byte
	vals   []byte
	packed []byte
	i32    []int32
}

var (
	levelEncoding = rle.Encoding{BitWidth: 1}
	deltaInts     delta.BinaryPackedEncoding
	deltaLengths  delta.LengthByteArrayEncoding
	dictIndexes   rle.DictionaryEncoding
	plainEncoding plain.Encoding
)

// encoders keeps finished encodes' arrays for the next: a row group's
// chunks and page buffers come to about twice its values' bytes, which
// every flush allocated anew without it (BenchmarkEncodeBlock: 6.7 MB
// per 10,000-row block without, 0.2 MB with). sync.Pool drops what stays
// unused through two collections, so an idle sink holds none of it.
var encoders = sync.Pool{New: func() any {
	fw := new(fileWriter)
	fw.enc = thrift.NewEncoder(new(thrift.CompactProtocol).NewWriter(&fw.hdr))
	return fw
}}

// newFileWriter returns a writer of a block of ncols columns to w; its
// chunks are ready for the first row group. release returns it to
// encoders.
func newFileWriter(w *countingWriter, ps *parquet.Schema, comp compress.Codec, kv []format.KeyValue, ncols int) *fileWriter {
	fw := encoders.Get().(*fileWriter)
	fw.w, fw.comp, fw.kv = w, comp, kv
	if cap(fw.chunks) < ncols {
		fw.chunks = append(fw.chunks[:cap(fw.chunks)], make([]chunk, ncols-cap(fw.chunks))...)
	}
	fw.chunks = fw.chunks[:ncols]
	for i := range fw.chunks {
		fw.chunks[i].reset()
	}
	fields := ps.Fields()
	fw.schema = make([]format.SchemaElement, 0, 1+len(fields))
	root := format.SchemaElement{Name: ps.Name()}
	root.NumChildren.Set(int32(len(fields)))
	fw.schema = append(fw.schema, root)
	fw.orders = make([]format.ColumnOrder, 0, len(fields))
	for _, f := range fields {
		fw.schema = append(fw.schema, schemaElement(f))
		fw.orders = append(fw.orders, *f.Type().ColumnOrder())
	}
	return fw
}

// release returns fw to encoders, keeping its arrays and nothing of the
// block.
func (fw *fileWriter) release() {
	for i := range fw.chunks {
		fw.chunks[i].reset()
	}
	fw.w, fw.comp, fw.kv = nil, nil, nil
	fw.schema, fw.orders, fw.groups, fw.colIdx, fw.offIdx = nil, nil, nil, nil, nil
	encoders.Put(fw)
}

// schemaElement is a leaf's element in the footer's schema, as
// parquet-go's Writer builds it.
func schemaElement(f parquet.Field) format.SchemaElement {
	t := f.Type()
	e := format.SchemaElement{Name: f.Name(), FieldID: int32(f.ID())}
	if f.Optional() {
		e.RepetitionType.Set(format.Optional)
	} else {
		e.RepetitionType.Set(format.Required)
	}
	if lt := t.LogicalType(); lt != nil {
		e.LogicalType = *lt
		if d, ok := lt.Value.(*format.DecimalType); ok {
			e.Scale.Set(d.Scale)
			e.Precision.Set(d.Precision)
		}
	}
	if n := int32(t.Length()); n > 0 {
		e.TypeLength.Set(n)
	}
	if pt := t.PhysicalType(); pt != nil {
		e.Type.Set(*pt)
	}
	if ct := t.ConvertedType(); ct != nil {
		e.ConvertedType.Set(*ct)
	}
	return e
}

// writeFooter writes the file's metadata after its row groups.
func (fw *fileWriter) writeFooter() error {
	var rows int64
	for _, g := range fw.groups {
		rows += g.NumRows
	}
	// The page index, before the footer that points to it: every
	// chunk's column index, then every chunk's offset index.
	for g := range fw.groups {
		for j := range fw.colIdx[g] {
			c := &fw.groups[g].Columns[j]
			c.ColumnIndexOffset = fw.w.n
			if err := fw.writeStruct(&fw.colIdx[g][j]); err != nil {
				return err
			}
			c.ColumnIndexLength = int32(fw.w.n - c.ColumnIndexOffset)
		}
	}
	for g := range fw.groups {
		for j := range fw.offIdx[g] {
			c := &fw.groups[g].Columns[j]
			c.OffsetIndexOffset = fw.w.n
			if err := fw.writeStruct(&fw.offIdx[g][j]); err != nil {
				return err
			}
			c.OffsetIndexLength = int32(fw.w.n - c.OffsetIndexOffset)
		}
	}
	md := format.FileMetaData{
		Version:          2,
		Schema:           fw.schema,
		NumRows:          rows,
		RowGroups:        fw.groups,
		KeyValueMetadata: fw.kv,
		CreatedBy:        createdBy,
		ColumnOrders:     fw.orders,
	}
	fw.hdr.Reset()
	if err := fw.enc.Encode(&md); err != nil {
		return fmt.Errorf("encode footer: %w", err)
	}
	n := fw.hdr.Len()
	fw.hdr.Write(binary.LittleEndian.AppendUint32(nil, uint32(n)))
	fw.hdr.WriteString("PAR1")
	_, err := fw.w.Write(fw.hdr.Bytes())
	return err
}

// writeStruct writes v in thrift's compact encoding.
func (fw *fileWriter) writeStruct(v any) error {
	fw.hdr.Reset()
	if err := fw.enc.Encode(v); err != nil {
		return fmt.Errorf("encode page index: %w", err)
	}
	_, err := fw.w.Write(fw.hdr.Bytes())
	return err
}

// createdBy names the writer in every block's footer.
const createdBy = "evodb-sink"

func (fw *fileWriter) writeMagic() error {
	_, err := fw.w.Write([]byte("PAR1"))
	return err
}

// writeGroup writes a row group of the chunks, leaf is the block column
// of each Parquet leaf in order.
func (fw *fileWriter) writeGroup(cols []blockColumn, chunks []chunk, leaf []int) error {
	if chunks[0].rows == 0 {
		return nil
	}
	rg := format.RowGroup{NumRows: int64(chunks[0].rows), FileOffset: fw.w.n, Ordinal: int16(len(fw.groups))}
	rg.Columns = make([]format.ColumnChunk, len(leaf))
	ci, oi := make([]format.ColumnIndex, len(leaf)), make([]format.OffsetIndex, len(leaf))
	for j, i := range leaf {
		md, err := fw.writeChunk(&cols[i], &chunks[i], &ci[j], &oi[j])
		if err != nil {
			return fmt.Errorf("column %q: %w", cols[i].name, err)
		}
		rg.Columns[j].MetaData = md
		rg.TotalByteSize += md.TotalUncompressedSize
		rg.TotalCompressedSize += md.TotalCompressedSize
	}
	fw.groups = append(fw.groups, rg)
	fw.colIdx = append(fw.colIdx, ci)
	fw.offIdx = append(fw.offIdx, oi)
	return nil
}

// writeChunk writes a column chunk's pages and returns its metadata,
// setting ci and oi to its page index.
func (fw *fileWriter) writeChunk(c *blockColumn, ch *chunk, ci *format.ColumnIndex, oi *format.OffsetIndex) (format.ColumnMetaData, error) {
	p := planOf(c)
	if p.phys == format.ByteArray && !p.dict && fw.dictionary(ch) {
		p.enc, p.dict = format.RLEDictionary, true
	}
	md := format.ColumnMetaData{Type: p.phys, PathInSchema: []string{c.name}, Codec: fw.comp.CompressionCodec()}
	if p.dict {
		md.DictionaryPageOffset = fw.w.n
		fw.vals = fw.vals[:0]
		for _, s := range ch.dict {
			fw.vals = plain.AppendByteArray(fw.vals, bytesOf(s))
		}
		h := format.PageHeader{Type: format.DictionaryPage}
		h.DictionaryPageHeader = thrift.New(format.DictionaryPageHeader{NumValues: int32(len(ch.dict)), Encoding: format.Plain})
		if err := fw.writePage(&h, &md, nil); err != nil {
			return md, err
		}
		md.Encoding = append(md.Encoding, format.Plain)
		md.EncodingStats = append(md.EncodingStats, format.PageEncodingStats{PageType: format.DictionaryPage, Encoding: format.Plain, Count: 1})
	}
	md.DataPageOffset = fw.w.n
	lo, hi := chunkBounds(c, p, ch)
	ci.BoundaryOrder = format.Unordered
	var pages int32
	for r0, v0 := 0, 0; r0 < ch.rows; pages++ {
		r1, v1 := cut(c, p, ch, r0, v0, fw.pageBytes)
		// A page's bounds: the chunk's when it is the only page, which
		// saves a second pass over its values. Invariant: the chunk's
		// bounds (ch.ib, fb, sb, glo/ghi, kept while the columns were
		// filled) are exactly its values' bounds, so they are the page's
		// only when the page holds every value. TestManyPagesAndGroups
		// writes no chunk of one page and checks every page's bounds
		// against its values; TestChunkStatistics checks the chunk's.
		plo, phi := lo, hi
		if r0 > 0 || r1 < ch.rows {
			plo, phi = pageBounds(c, p, ch, v0, v1)
		}
		ci.NullPages = append(ci.NullPages, v1 == v0)
		ci.NullCounts = append(ci.NullCounts, int64((r1-r0)-(v1-v0)))
		ci.MinValues = append(ci.MinValues, indexMin(p, plo))
		ci.MaxValues = append(ci.MaxValues, indexMax(p, phi))
		at := fw.w.n
		if err := fw.encodeValues(c, p, ch, v0, v1); err != nil {
			return md, err
		}
		var defs []byte
		if c.optional {
			var err error
			if fw.levels, err = levelEncoding.EncodeLevels(fw.levels[:0], ch.defs[r0:r1]); err != nil {
				return md, err
			}
			defs = fw.levels
		}
		h := format.PageHeader{Type: format.DataPageV2}
		h.DataPageHeaderV2 = thrift.New(format.DataPageHeaderV2{
			NumValues:                  int32(r1 - r0),
			NumNulls:                   int32((r1 - r0) - (v1 - v0)),
			NumRows:                    int32(r1 - r0),
			Encoding:                   p.enc,
			DefinitionLevelsByteLength: int32(len(defs)),
			IsCompressed:               thrift.New(fw.comp.CompressionCodec() != format.Uncompressed),
		})
		if err := fw.writePage(&h, &md, defs); err != nil {
			return md, err
		}
		oi.PageLocations = append(oi.PageLocations, format.PageLocation{Offset: at, CompressedPageSize: int32(fw.w.n - at), FirstRowIndex: int64(r0)})
		md.NumValues += int64(r1 - r0)
		r0, v0 = r1, v1
	}
	if c.optional {
		md.Encoding = append(md.Encoding, format.RLE)
	}
	md.Encoding = append(md.Encoding, p.enc)
	slices.Sort(md.Encoding)
	md.EncodingStats = append(md.EncodingStats, format.PageEncodingStats{PageType: format.DataPageV2, Encoding: p.enc, Count: pages})
	md.Statistics.NullCount = ch.nulls
	md.Statistics.MinValue, md.Statistics.MaxValue = lo, hi
	return md, nil
}

// Dictionary encoding of byte array columns. A column whose values
// repeat (statuses, countries, enums, short JSON documents) is written as
// a dictionary page of its distinct values and data pages of their
// indexes, RLE/bit-packed: what zstd then compresses is a fraction of the
// values' bytes, and readers decode each distinct value once. Whether a
// chunk is worth it is decided on its values: not when the first
// dictSample values are more than half distinct, nor when the whole
// dictionary comes to more than dictMaxBytes or to more than half the
// plain encoding's bytes (then the chunk is written with the lengths
// delta-encoded, as without a dictionary).
const (
	dictSample   = 1024
	dictMaxBytes = 1 << 20
)

// dictionary builds ch's dictionary (ch.dict, ch.idx) from its byte
// array values and reports whether the chunk should use it.
func (fw *fileWriter) dictionary(ch *chunk) bool {
	n := len(ch.offs) - 1
	if n < 2 {
		return false
	}
	if fw.dictOf == nil {
		fw.dictOf = make(map[string]int32)
	}
	defer clear(fw.dictOf)
	ch.dict, ch.idx = ch.dict[:0], slices.Grow(ch.idx[:0], n)
	var dictBytes int
	for k := range n {
		v := unsafe.String(unsafe.SliceData(ch.data[ch.offs[k]:]), ch.offs[k+1]-ch.offs[k])
		i, ok := fw.dictOf[v]
		if !ok {
			i = int32(len(ch.dict))
			fw.dictOf[v] = i
			ch.dict = append(ch.dict, v)
			dictBytes += 4 + len(v)
			if k < dictSample && len(ch.dict) > dictSample/2 || dictBytes > dictMaxBytes {
				return false
			}
		}
		ch.idx = append(ch.idx, i)
	}
	plainBytes := 4*n + int(ch.offs[n]-ch.offs[0])
	return 2*(dictBytes+n) <= plainBytes
}

// cut returns the end of the page that starts at row r0 and value v0:
// rows up to r1 and values up to v1, about pageBytes of values.
func cut(c *blockColumn, p columnPlan, ch *chunk, r0, v0, pageBytes int) (r1, v1 int) {
	width := 0
	switch p.phys {
	case format.Int32:
		width = 4
	case format.Int64, format.Double:
		width = 8
	case format.Boolean:
		width = 1
	case format.FixedLenByteArray:
		width = c.flbaLen
	}
	if p.dict {
		width = 4
	}
	if width > 0 && !c.optional {
		r1 = min(ch.rows, r0+max(1, pageBytes/width))
		return r1, r1
	}
	size := 0
	v1 = v0
	for r1 = r0; r1 < ch.rows && size < pageBytes; r1++ {
		if c.optional && ch.defs[r1] == 0 {
			continue
		}
		if width > 0 {
			size += width
		} else {
			size += 4 + int(ch.offs[v1+1]-ch.offs[v1])
		}
		v1++
	}
	return r1, v1
}

// encodeValues sets fw.vals to values [v0, v1) of the chunk, encoded.
func (fw *fileWriter) encodeValues(c *blockColumn, p columnPlan, ch *chunk, v0, v1 int) error {
	var err error
	switch {
	case p.dict:
		fw.vals, err = dictIndexes.EncodeInt32(fw.vals[:0], ch.idx[v0:v1])
	case p.phys == format.Int64:
		fw.vals, err = deltaInts.EncodeInt64(fw.vals[:0], ch.ints[v0:v1])
	case p.phys == format.Int32:
		fw.i32 = fw.i32[:0]
		for _, x := range ch.ints[v0:v1] {
			fw.i32 = append(fw.i32, int32(x))
		}
		fw.vals, err = deltaInts.EncodeInt32(fw.vals[:0], fw.i32)
	case p.phys == format.Double:
		fw.vals, err = plainEncoding.EncodeDouble(fw.vals[:0], ch.f64[v0:v1])
	case p.phys == format.Boolean:
		// PLAIN booleans are bit-packed, the first value in the lowest bit.
		fw.vals = slices.Grow(fw.vals[:0], (v1-v0+7)/8)[:(v1-v0+7)/8]
		clear(fw.vals)
		for k, b := range ch.data[v0:v1] {
			fw.vals[k/8] |= b << (k % 8)
		}
	case p.phys == format.FixedLenByteArray:
		fw.vals, err = plainEncoding.EncodeFixedLenByteArray(fw.vals[:0], ch.data[v0*c.flbaLen:v1*c.flbaLen], c.flbaLen)
	default:
		fw.vals, err = deltaLengths.EncodeByteArray(fw.vals[:0], ch.data[ch.offs[v0]:ch.offs[v1]], ch.offs[v0:v1+1])
	}
	return err
}

// writePage compresses fw.vals and writes the page: its header, the
// definition levels defs (data pages v2 keep them out of the compressed
// part) and the values; it adds the page's bytes to md's totals.
func (fw *fileWriter) writePage(h *format.PageHeader, md *format.ColumnMetaData, defs []byte) error {
	body := fw.vals
	if fw.comp.CompressionCodec() != format.Uncompressed {
		var err error
		if fw.packed, err = fw.comp.Encode(fw.packed[:0], fw.vals); err != nil {
			return fmt.Errorf("compress page: %w", err)
		}
		body = fw.packed
	}
	h.UncompressedPageSize = int32(len(defs) + len(fw.vals))
	h.CompressedPageSize = int32(len(defs) + len(body))
	h.CRC = int32(crc32.Update(crc32.ChecksumIEEE(defs), crc32.IEEETable, body))
	fw.hdr.Reset()
	if err := fw.enc.Encode(h); err != nil {
		return fmt.Errorf("encode page header: %w", err)
	}
	hn := int64(fw.hdr.Len())
	for _, b := range [][]byte{fw.hdr.Bytes(), defs, body} {
		if _, err := fw.w.Write(b); err != nil {
			return err
		}
	}
	md.TotalUncompressedSize += hn + int64(h.UncompressedPageSize)
	md.TotalCompressedSize += hn + int64(h.CompressedPageSize)
	return nil
}

// chunkBounds returns the chunk statistics' minimum and maximum, PLAIN
// encoded, nil when the chunk has no value with an order (only nulls, or
// only NaNs).
func chunkBounds(c *blockColumn, p columnPlan, ch *chunk) (lo, hi []byte) {
	switch p.phys {
	case format.Int64:
		if ch.ib.seen {
			return binary.LittleEndian.AppendUint64(nil, uint64(ch.ib.lo)), binary.LittleEndian.AppendUint64(nil, uint64(ch.ib.hi))
		}
	case format.Int32:
		if ch.ib.seen {
			return binary.LittleEndian.AppendUint32(nil, uint32(ch.ib.lo)), binary.LittleEndian.AppendUint32(nil, uint32(ch.ib.hi))
		}
	case format.Boolean:
		if ch.ib.seen {
			return []byte{byte(ch.ib.lo)}, []byte{byte(ch.ib.hi)}
		}
	case format.Double:
		if ch.fb.seen {
			// A zero bound is written as -0 for the minimum and +0 for
			// the maximum, as the format asks, so a reader comparing
			// either zero against them finds it inside.
			l, h := ch.fb.lo, ch.fb.hi
			if l == 0 {
				l = math.Copysign(0, -1)
			}
			if h == 0 {
				h = 0
			}
			return binary.LittleEndian.AppendUint64(nil, math.Float64bits(l)), binary.LittleEndian.AppendUint64(nil, math.Float64bits(h))
		}
	case format.FixedLenByteArray:
		if ch.gseen {
			lo, hi = make([]byte, c.flbaLen), make([]byte, c.flbaLen)
			ch.glo.PutUnscaled(lo)
			ch.ghi.PutUnscaled(hi)
			return lo, hi
		}
	case format.ByteArray:
		if ch.sb.seen {
			return []byte(ch.sb.lo), []byte(ch.sb.hi)
		}
	}
	return nil, nil
}

// pageBounds returns the bounds of values [v0, v1) of a chunk, PLAIN
// encoded as chunkBounds does, nil when none has an order.
func pageBounds(c *blockColumn, p columnPlan, ch *chunk, v0, v1 int) (lo, hi []byte) {
	var page chunk
	switch {
	case p.dict:
		for _, k := range ch.idx[v0:v1] {
			page.sb.add(ch.dict[k])
		}
	case p.phys == format.Int64 || p.phys == format.Int32:
		for _, x := range ch.ints[v0:v1] {
			page.ib.add(x)
		}
	case p.phys == format.Double:
		for _, x := range ch.f64[v0:v1] {
			if x == x {
				page.fb.add(x)
			}
		}
	case p.phys == format.Boolean:
		for _, b := range ch.data[v0:v1] {
			page.ib.add(int64(b))
		}
	case p.phys == format.FixedLenByteArray:
		n := c.flbaLen
		for k := v0; k < v1; k++ {
			v := ch.data[k*n : (k+1)*n]
			if lo == nil || cmpTwos(v, lo) < 0 {
				lo = v
			}
			if hi == nil || cmpTwos(v, hi) > 0 {
				hi = v
			}
		}
		return slices.Clone(lo), slices.Clone(hi)
	default:
		for k := v0; k < v1; k++ {
			page.sb.add(unsafe.String(unsafe.SliceData(ch.data[ch.offs[k]:]), ch.offs[k+1]-ch.offs[k]))
		}
	}
	return chunkBounds(c, p, &page)
}

// cmpTwos orders two big-endian two's complement integers of one length.
func cmpTwos(a, b []byte) int {
	if sa, sb := a[0]&0x80, b[0]&0x80; sa != sb {
		if sa != 0 {
			return -1
		}
		return 1
	}
	return bytes.Compare(a, b)
}

// columnIndexBytes bounds a byte array's bounds in the column index, as
// parquet-go's default does: a page's bounds need only contain its
// values, so a long minimum is cut to a prefix and a long maximum to a
// prefix with its last byte raised.
const columnIndexBytes = 16

func indexMin(p columnPlan, lo []byte) []byte {
	if p.phys == format.ByteArray && len(lo) > columnIndexBytes {
		return lo[:columnIndexBytes]
	}
	return lo
}

func indexMax(p columnPlan, hi []byte) []byte {
	if p.phys != format.ByteArray || len(hi) <= columnIndexBytes {
		return hi
	}
	up := slices.Clone(hi[:columnIndexBytes])
	for i := len(up) - 1; i >= 0; i-- {
		if up[i] != 0xff {
			up[i]++
			return up[:i+1]
		}
	}
	return hi // all 0xff: no shorter bound
}
