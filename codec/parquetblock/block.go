// Package parquetblock writes a table's changes as one Parquet file (a
// block) and reads blocks back: the schema's data columns after the
// metadata columns, each column typed as codec's Type maps to Parquet,
// with the statistics (codec.BlockStats) the table log records. EncodeRows
// is the flush's hot path (BenchmarkEncodeBlock).
//
// parquetblock knows no input format and no table format: it imports
// codec and parquet-go, nothing of codec/cdc or committer/ (codec's
// TestRowModelImports).
package parquetblock

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"slices"
	"unsafe"

	"github.com/evodb/sink/codec"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/snappy"
	"github.com/parquet-go/parquet-go/compress/uncompressed"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/format"
)

// Key-value metadata stored in every block so ReadBlock can restore the
// column order, JSON columns and the table name, which Parquet itself does
// not keep (parquet-go orders a group's columns by name). evodb.columns
// lists the data columns in order as [name, type] pairs, type being the
// Delta type name or "json": a fifth of the size of the whole Delta schema
// that blocks carried before (evodb.schema, still read), which a small
// block pays in every file.
const (
	metaColumnList = "evodb.columns"
	metaSchema     = "evodb.schema"
	metaDB         = "evodb.db"
	metaNS         = "evodb.namespace"
	metaTable      = "evodb.table"
)

// columnsJSON renders s's data columns as the evodb.columns metadata.
func columnsJSON(s *codec.Schema) (string, error) {
	pairs := make([][2]string, len(s.Columns()))
	for i, c := range s.Columns() {
		pairs[i] = [2]string{c.Name, c.Type.Name()}
	}
	b, err := json.Marshal(pairs)
	if err != nil {
		return "", fmt.Errorf("encode column list: %w", err)
	}
	return string(b), nil
}

// parseLegacySchema reads the schema that blocks written before
// metaColumnList existed carry under metaSchema: a struct type as JSON
// ({"type":"struct","fields":[{"name","type","nullable","metadata"}]}),
// metadata columns first, JSON columns marked by an "evodb.type" of "json"
// in their field metadata.
func parseLegacySchema(text string) (*codec.Schema, error) {
	var st struct {
		Type   string `json:"type"`
		Fields []struct {
			Name     string         `json:"name"`
			Type     any            `json:"type"`
			Nullable bool           `json:"nullable"`
			Metadata map[string]any `json:"metadata"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(text), &st); err != nil {
		return nil, fmt.Errorf("parse %s: %w", metaSchema, err)
	}
	if st.Type != "struct" {
		return nil, fmt.Errorf("parse %s: type %q, want struct", metaSchema, st.Type)
	}
	s := codec.NewSchema()
	for _, f := range st.Fields {
		if codec.IsReserved(f.Name) {
			if f.Name == codec.ColTopic {
				s.SetKafkaColumns(true)
			}
			continue
		}
		name, ok := f.Type.(string)
		if !ok {
			return nil, fmt.Errorf("parse %s: column %q: nested types are not supported", metaSchema, f.Name)
		}
		t, err := codec.ParseType(name)
		if err != nil {
			return nil, fmt.Errorf("parse %s: column %q: %w", metaSchema, f.Name, err)
		}
		if t.Kind == codec.TypeString && f.Metadata["evodb.type"] == "json" {
			t.Kind = codec.TypeJSON
		}
		if err := s.AddColumn(codec.Column{Name: f.Name, Type: t, Nullable: f.Nullable}); err != nil {
			return nil, fmt.Errorf("parse %s: %w", metaSchema, err)
		}
	}
	return s, nil
}

// parseColumnsJSON is the inverse of columnsJSON.
func parseColumnsJSON(text string) (*codec.Schema, error) {
	var pairs [][2]string
	if err := json.Unmarshal([]byte(text), &pairs); err != nil {
		return nil, fmt.Errorf("parse %s: %w", metaColumnList, err)
	}
	s := codec.NewSchema()
	for _, p := range pairs {
		t := codec.Type{Kind: codec.TypeJSON}
		if p[1] != "json" {
			var err error
			if t, err = codec.ParseType(p[1]); err != nil {
				return nil, fmt.Errorf("parse %s: column %q: %w", metaColumnList, p[0], err)
			}
		}
		if codec.IsReserved(p[0]) {
			return nil, fmt.Errorf("parse %s: column %q is reserved", metaColumnList, p[0])
		}
		if err := s.AddColumn(codec.Column{Name: p[0], Type: t, Nullable: true}); err != nil {
			return nil, fmt.Errorf("parse %s: %w", metaColumnList, err)
		}
	}
	return s, nil
}

// DefaultRowGroupBytes bounds a row group when EncodeOptions leaves it 0.
const DefaultRowGroupBytes = 8 << 20

// DefaultPageBytes bounds a data page when EncodeOptions leaves it 0.
const DefaultPageBytes = 1 << 20

// EncodeOptions configures EncodeBlock.
type EncodeOptions struct {
	// Compression is "zstd" (the default when empty), "snappy" or "none".
	Compression string
	// RowGroupBytes bounds the estimated uncompressed bytes of a row group.
	RowGroupBytes int64
	// PageBytes bounds the estimated bytes of a data page's values before
	// compression (DefaultPageBytes when 0).
	PageBytes int
	// KafkaColumns adds _topic, _partition and _offset.
	KafkaColumns bool
	// FieldIDs, if not nil, gives every column of the block (metadata
	// columns included) the field ID it maps to, written into the Parquet
	// schema: Iceberg readers find a file's columns by field ID, so a
	// column renamed in the table still reads. A column it has no ID for
	// fails the encode, since a file with some IDs has its other columns
	// ignored by readers that resolve by ID.
	FieldIDs map[string]int
}

// The compression codecs are shared by every EncodeBlock call. A new zstd
// encoder allocates and clears its match tables and history window
// (megabytes) before compressing anything, so a codec created per block
// paid that on every flush: about a fifth of the CPU of small blocks; the
// zstd codec keeps its encoders for the life of the process (pageZstd).
// The codecs hold no other state and are safe for concurrent use.
//
// zstd runs at its fastest level: Parquet pages are already dictionary-,
// delta- and RLE-encoded, so higher levels find little more to remove.
// BenchmarkEncodeLevels: level 1 (fastest) 50.8 kB in 12.7 ms, level 2
// (default) 52.1 kB in 15.0 ms, level 3 (better) 52.1 kB in 17.2 ms;
// snappy 10.0 ms but 213 kB.
var (
	zstdCodec   = newPageZstd(zstd.SpeedFastest)
	snappyCodec = &snappy.Codec{}
	noCodec     = &uncompressed.Codec{}
)

func (o EncodeOptions) codec() (compress.Codec, error) {
	switch o.Compression {
	case "", "zstd":
		return zstdCodec, nil
	case "snappy":
		return snappyCodec, nil
	case "none":
		return noCodec, nil
	}
	return nil, fmt.Errorf("unknown compression %q (want zstd, snappy or none)", o.Compression)
}

// blockColumn is one column of a block as the encoder sees it.
type blockColumn struct {
	name     string
	typ      codec.Type
	optional bool
	leaf     int // column index in the Parquet schema
	flbaLen  int // fixed length of a wide decimal
}

// decimalBytes is the fixed length that holds any unscaled value of a
// precision: the smallest n with 2^(8n-1) > 10^p.
func decimalBytes(precision int32) int {
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(precision)), nil)
	for n := 1; ; n++ {
		if new(big.Int).Lsh(big.NewInt(1), uint(8*n-1)).Cmp(limit) >= 0 {
			return n
		}
	}
}

// parquetNode maps a column type to its Parquet leaf: strings and JSON as
// BYTE_ARRAY with the String logical type, dates as DATE, timestamps as
// TIMESTAMP(isAdjustedToUTC=true, MILLIS), decimals as DECIMAL over INT32
// (p ≤ 9), INT64 (p ≤ 18) or FIXED_LEN_BYTE_ARRAY. How each is encoded
// is the writer's choice (planOf).
func parquetNode(c *blockColumn) parquet.Node {
	var n parquet.Node
	switch c.typ.Kind {
	case codec.TypeLong:
		n = parquet.Leaf(parquet.Int64Type)
	case codec.TypeInteger:
		n = parquet.Leaf(parquet.Int32Type)
	case codec.TypeDouble:
		n = parquet.Leaf(parquet.DoubleType)
	case codec.TypeBoolean:
		n = parquet.Leaf(parquet.BooleanType)
	case codec.TypeString, codec.TypeJSON:
		n = parquet.String()
	case codec.TypeBinary:
		n = parquet.Leaf(parquet.ByteArrayType)
	case codec.TypeDate:
		n = parquet.Date()
	case codec.TypeTimestamp:
		n = parquet.Timestamp(parquet.Millisecond)
	case codec.TypeDecimal:
		p, s := int(c.typ.Precision), int(c.typ.Scale)
		switch {
		case p <= 9:
			n = parquet.Decimal(s, p, parquet.Int32Type)
		case p <= 18:
			n = parquet.Decimal(s, p, parquet.Int64Type)
		default:
			c.flbaLen = decimalBytes(c.typ.Precision)
			n = parquet.Decimal(s, p, parquet.FixedLenByteArrayType(c.flbaLen))
		}
	}
	if c.optional {
		return parquet.Optional(n)
	}
	return parquet.Required(n)
}

// blockLayout builds the Parquet schema and column list of a block, with
// the field IDs of ids when it is not nil (see EncodeOptions.FieldIDs).
func blockLayout(s *codec.Schema, kafka bool, ids map[string]int) (*parquet.Schema, []blockColumn, error) {
	var cols []blockColumn
	for _, c := range codec.MetaColumns(kafka) {
		cols = append(cols, blockColumn{name: c.Name, typ: c.Type})
	}
	for _, c := range s.Columns() {
		cols = append(cols, blockColumn{name: c.Name, typ: c.Type, optional: true})
	}
	group := make(parquet.Group, len(cols))
	for i := range cols {
		n := parquetNode(&cols[i])
		if ids != nil {
			id, ok := ids[cols[i].name]
			if !ok || id <= 0 {
				return nil, nil, fmt.Errorf("column %q has no field ID", cols[i].name)
			}
			n = parquet.FieldID(n, id)
		}
		group[cols[i].name] = n
	}
	ps := parquet.NewSchema("evodb", group)
	for i := range cols {
		leaf, _ := ps.Lookup(cols[i].name)
		cols[i].leaf = leaf.ColumnIndex
	}
	return ps, cols, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// bytesOf views a string as bytes without copying; the Parquet writer
// copies values into its own buffers and never modifies them.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// batchRows is how many rows are indexed (rowsEncoder.gather) and added
// to the row group's columns at once; row groups are cut between batches.
const batchRows = 256

// EncodeBlock writes changes as one Parquet file: the schema's data
// columns plus the metadata columns, rows in the order given. All changes
// must belong to one table and fit s (see Schema.Accept); values are
// coerced to their column's type (an int in a double column is written as
// a double). Row groups are cut when their estimated size reaches
// opts.RowGroupBytes.
func EncodeBlock(w io.Writer, s *codec.Schema, changes []codec.Change, opts EncodeOptions) (codec.BlockStats, error) {
	rows, err := codec.RowsOf(changes)
	if err != nil {
		return codec.BlockStats{}, fmt.Errorf("encode block: %w", err)
	}
	return EncodeRows(w, s, rows, opts)
}

// EncodeRows is EncodeBlock for changes held in Rows, written in the
// Rows' current order (see Rows.Sort).
func EncodeRows(w io.Writer, s *codec.Schema, rows *codec.Rows, opts EncodeOptions) (codec.BlockStats, error) {
	comp, err := opts.codec()
	if err != nil {
		return codec.BlockStats{}, fmt.Errorf("encode block: %w", err)
	}
	rgBytes := opts.RowGroupBytes
	if rgBytes <= 0 {
		rgBytes = DefaultRowGroupBytes
	}
	colsJSON, err := columnsJSON(s)
	if err != nil {
		return codec.BlockStats{}, fmt.Errorf("encode block: %w", err)
	}
	db, ns, table := rows.Table()
	ps, cols, err := blockLayout(s, opts.KafkaColumns, opts.FieldIDs)
	if err != nil {
		return codec.BlockStats{}, fmt.Errorf("encode block: %w", err)
	}
	nmeta := len(codec.MetaColumns(opts.KafkaColumns))
	// colOf maps the Rows' column names to block columns (-1: not in
	// the schema), once per block instead of once per value.
	colOf := make([]int, rows.NumNames())
	for i := range colOf {
		colOf[i] = -1
	}
	for ci := range cols {
		if ni, ok := rows.NameIndex(cols[ci].name); ok {
			colOf[ni] = ci
		}
	}
	// leaf lists the block columns in the Parquet schema's order.
	leaf := make([]int, len(cols))
	for i := range cols {
		leaf[cols[i].leaf] = i
	}

	cw := &countingWriter{w: w}
	// Sorted by key, as parquet-go's Writer wrote them.
	fw := newFileWriter(cw, ps, comp, []format.KeyValue{
		{Key: metaColumnList, Value: colsJSON},
		{Key: metaDB, Value: db},
		{Key: metaNS, Value: ns},
		{Key: metaTable, Value: table},
	}, len(cols))
	defer fw.release()
	fw.pageBytes = opts.PageBytes
	if fw.pageBytes <= 0 {
		fw.pageBytes = DefaultPageBytes
	}
	if err := fw.writeMagic(); err != nil {
		return codec.BlockStats{}, fmt.Errorf("encode block: %w", err)
	}

	n := rows.Len()
	// metas is sized once: a RowMeta is a few words, and growing the
	// slice by appends cost a handful of allocations per block.
	e := rowsEncoder{rows: rows, cols: cols, nmeta: nmeta, colOf: colOf, st: newStatsBuilder(cols),
		metas: make([]codec.RowMeta, 0, min(n, batchRows)), chunks: fw.chunks}
	var groupBytes int64
	for start := 0; start < n; start += batchRows {
		end := min(start+batchRows, n)
		if err := e.gather(start, end); err != nil {
			return codec.BlockStats{}, fmt.Errorf("encode block: %w", err)
		}
		for i := range cols {
			if err := e.column(i); err != nil {
				return codec.BlockStats{}, fmt.Errorf("encode block: %w", err)
			}
		}
		groupBytes += e.bytes
		e.bytes = 0
		if groupBytes >= rgBytes || end == n {
			groupBytes = 0
			if err := fw.writeGroup(cols, e.chunks, leaf); err != nil {
				return codec.BlockStats{}, fmt.Errorf("encode block: %w", err)
			}
			for i := range e.chunks {
				e.chunks[i].reset()
			}
		}
	}
	if err := fw.writeFooter(); err != nil {
		return codec.BlockStats{}, fmt.Errorf("encode block: %w", err)
	}
	stats := e.st.finish(int64(n))
	stats.Bytes = cw.n
	return stats, nil
}

// rowsEncoder turns a batch of rows into the row group's typed column
// arrays a column at a time: each column's loop is specialised to its
// type and keeps its minimum and maximum in locals, instead of converting
// and comparing every value through the generic Value paths
// (BenchmarkEncodeBlock).
type rowsEncoder struct {
	rows  *codec.Rows
	cols  []blockColumn
	nmeta int
	colOf []int
	st    *statsBuilder
	// metas are the metadata of the batch's rows; cellAt[k*ndata+j] is
	// 1 + the index of row k's cell for data column nmeta+j, 0 when the
	// row has none.
	metas  []codec.RowMeta
	cellAt []uint32
	chunks []chunk // the row group's columns
	bytes  int64   // estimated uncompressed bytes of the batch
}

// gather indexes rows [start, end): their metadata and which cell holds
// each data column.
func (e *rowsEncoder) gather(start, end int) error {
	rows, ndata := e.rows, len(e.cols)-e.nmeta
	e.metas = e.metas[:0]
	e.cellAt = slices.Grow(e.cellAt[:0], (end-start)*ndata)[:(end-start)*ndata]
	clear(e.cellAt)
	for k := start; k < end; k++ {
		m := rows.Meta(k)
		if m.LSN > math.MaxInt64 {
			return fmt.Errorf("change at %s/%d@%d: lsn %d above 2^63-1", m.Topic, m.Partition, m.Offset, m.LSN)
		}
		at := e.cellAt[(k-start)*ndata : (k-start+1)*ndata]
		lo, hi := rows.RowCells(k)
		for ri := lo; ri < hi; ri++ {
			name := rows.CellName(ri)
			i := e.colOf[name]
			if i < e.nmeta {
				if i < 0 && rows.CellValue(ri).IsNull() {
					continue // a column only ever null is not in the schema yet
				}
				return fmt.Errorf("change at %s/%d@%d: column %q is not in the schema", m.Topic, m.Partition, m.Offset, rows.Name(name))
			}
			at[i-e.nmeta] = uint32(ri + 1)
		}
		e.metas = append(e.metas, m)
	}
	return nil
}

// column appends column i's values of the gathered rows to its chunk and
// adds them to the statistics. Values are read from the Rows' cells (the
// metadata columns from the rows' metadata, see metaColumn) and stored in
// the chunk's typed array in one pass per column, with no intermediate
// slice of values for the common types.
func (e *rowsEncoder) column(i int) error {
	rows, c, ch := e.rows, &e.cols[i], &e.chunks[i]
	nrows := len(e.metas)
	if i < e.nmeta {
		e.metaColumn(i)
		return nil
	}
	ch.rows += nrows
	// cell returns row k's value of this column: its cell, null when the
	// row has none.
	ndata, j := len(e.cols)-e.nmeta, i-e.nmeta
	cell := func(k int) codec.Value {
		if ci := e.cellAt[k*ndata+j]; ci != 0 {
			return rows.CellValue(int(ci - 1))
		}
		return codec.Value{}
	}
	cs := &e.st.stats[i]
	var strBytes int64
	mismatch := func(k int, v codec.Value) error {
		m := e.metas[k]
		return fmt.Errorf("change at %s/%d@%d: column %q: expected %s, got %s",
			m.Topic, m.Partition, m.Offset, c.name, c.typ.Name(), v.Kind())
	}
	// Data columns are optional: every row has a definition level.
	switch c.typ.Kind {
	case codec.TypeLong, codec.TypeTimestamp, codec.TypeInteger, codec.TypeDate:
		want, narrow := codec.KindInt, c.typ.Kind == codec.TypeInteger || c.typ.Kind == codec.TypeDate
		switch c.typ.Kind {
		case codec.TypeTimestamp:
			want = codec.KindTimestamp
		case codec.TypeDate:
			want = codec.KindDate
		}
		var b bounds[int64]
		for k := range nrows {
			v := cell(k)
			if v.IsNull() {
				cs.NullCount++
				ch.null()
				continue
			}
			x := v.Int()
			if v.Kind() != want || (narrow && (x < math.MinInt32 || x > math.MaxInt32)) {
				return mismatch(k, v)
			}
			b.add(x)
			ch.defs = append(ch.defs, 1)
			ch.ints = append(ch.ints, x)
		}
		if b.seen {
			e.st.add(i, intValue(want, b.lo))
			e.st.add(i, intValue(want, b.hi))
		}
		ch.ib.merge(b)
	case codec.TypeDouble:
		var b bounds[float64]
		for k := range nrows {
			v := cell(k)
			var x float64
			switch v.Kind() {
			case codec.KindNull:
				cs.NullCount++
				ch.null()
				continue
			case codec.KindFloat:
				x = v.Float()
			case codec.KindInt:
				x = float64(v.Int())
			default:
				return mismatch(k, v)
			}
			if x == x { // NaN has no order and stays out of the statistics
				b.add(x)
			}
			ch.defs = append(ch.defs, 1)
			ch.f64 = append(ch.f64, x)
		}
		if b.seen {
			e.st.add(i, codec.Float(b.lo))
			e.st.add(i, codec.Float(b.hi))
		}
		ch.fb.merge(b)
	case codec.TypeString:
		var b bounds[string]
		for k := range nrows {
			v := cell(k)
			switch v.Kind() {
			case codec.KindNull:
				cs.NullCount++
				ch.null()
				continue
			case codec.KindString:
			default:
				v = codec.String(v.Text())
			}
			str := v.Str()
			b.add(str)
			strBytes += int64(len(str))
			ch.defs = append(ch.defs, 1)
			ch.appendBytes(str)
		}
		if b.seen {
			e.st.add(i, codec.String(b.lo))
			e.st.add(i, codec.String(b.hi))
		}
		ch.sb.merge(b)
	case codec.TypeBoolean:
		var b bounds[int64]
		for k := range nrows {
			v := cell(k)
			switch v.Kind() {
			case codec.KindNull:
				cs.NullCount++
				ch.null()
			case codec.KindBool:
				var x byte
				if v.Bool() {
					x = 1
				}
				b.add(int64(x))
				ch.defs = append(ch.defs, 1)
				ch.data = append(ch.data, x)
			default:
				return mismatch(k, v)
			}
		}
		ch.ib.merge(b)
	default: // decimal, JSON, binary: rare enough for the generic path
		for k := range nrows {
			v, ok := codec.Coerce(cell(k), c.typ)
			if !ok {
				return mismatch(k, cell(k))
			}
			e.st.add(i, v)
			if v.IsNull() {
				ch.null()
				continue
			}
			strBytes += int64(len(v.Str()))
			ch.defs = append(ch.defs, 1)
			e.appendGeneric(c, ch, v)
		}
	}
	e.bytes += int64(8*nrows) + strBytes
	return nil
}

// appendGeneric adds a present value of a decimal, JSON or binary column
// to its chunk, and to the chunk's bounds.
func (e *rowsEncoder) appendGeneric(c *blockColumn, ch *chunk, v codec.Value) {
	if c.typ.Kind != codec.TypeDecimal {
		ch.appendBytes(v.Str())
		ch.sb.add(v.Str())
		return
	}
	if c.flbaLen == 0 {
		x, _ := v.UnscaledInt64()
		ch.ints = append(ch.ints, x)
		ch.ib.add(x)
		return
	}
	at := len(ch.data)
	ch.data = slices.Grow(ch.data, c.flbaLen)[:at+c.flbaLen]
	v.PutUnscaled(ch.data[at:])
	// Big-endian two's complement does not order as bytes do: the
	// bounds of wide decimals are kept as decimals.
	if !ch.gseen || v.Compare(ch.glo) < 0 {
		ch.glo = v
	}
	if !ch.gseen || v.Compare(ch.ghi) > 0 {
		ch.ghi = v
	}
	ch.gseen = true
}

// metaColumn appends metadata column i's values of the gathered rows to
// its chunk and adds them to the statistics, straight from the rows'
// metadata: a metadata column is required and always of its type, so no
// value is checked, and which field a column reads is decided once per
// column, not per row.
func (e *rowsEncoder) metaColumn(i int) {
	c, ch := &e.cols[i], &e.chunks[i]
	ch.rows += len(e.metas)
	var strBytes int64
	ints := func(kind codec.Kind, x func(*codec.RowMeta) int64) {
		var b bounds[int64]
		for k := range e.metas {
			v := x(&e.metas[k])
			b.add(v)
			ch.ints = append(ch.ints, v)
		}
		if b.seen {
			e.st.add(i, intValue(kind, b.lo))
			e.st.add(i, intValue(kind, b.hi))
		}
		ch.ib.merge(b)
	}
	strs := func(x func(*codec.RowMeta) string) {
		var b bounds[string]
		for k := range e.metas {
			s := x(&e.metas[k])
			b.add(s)
			strBytes += int64(len(s))
			ch.appendDict(s)
		}
		if b.seen {
			e.st.add(i, codec.String(b.lo))
			e.st.add(i, codec.String(b.hi))
		}
		ch.sb.merge(b)
	}
	switch c.name {
	case codec.ColOp:
		strs(func(m *codec.RowMeta) string { return m.Op.String() })
	case codec.ColLSN:
		ints(codec.KindInt, func(m *codec.RowMeta) int64 { return int64(m.LSN) })
	case codec.ColTS:
		ints(codec.KindTimestamp, func(m *codec.RowMeta) int64 { return m.TS })
	case codec.ColTopic:
		strs(func(m *codec.RowMeta) string { return m.Topic })
	case codec.ColPartition:
		ints(codec.KindInt, func(m *codec.RowMeta) int64 { return int64(m.Partition) })
	case codec.ColOffset:
		ints(codec.KindInt, func(m *codec.RowMeta) int64 { return m.Offset })
	}
	e.bytes += int64(8*len(e.metas)) + strBytes
}

// bounds tracks the minimum and maximum of a column's values in a batch;
// on ties the first value seen stays, as in statsBuilder.
type bounds[T cmp.Ordered] struct {
	lo, hi T
	seen   bool
}

func (b *bounds[T]) add(x T) {
	if !b.seen || x < b.lo {
		b.lo = x
	}
	if !b.seen || x > b.hi {
		b.hi = x
	}
	b.seen = true
}

// intValue is the value of an integer kind (int, date or timestamp) x.
func intValue(k codec.Kind, x int64) codec.Value {
	switch k {
	case codec.KindDate:
		return codec.Date(int32(x))
	case codec.KindTimestamp:
		return codec.Timestamp(x)
	}
	return codec.Int(x)
}

// fromParquet converts a Parquet value back to a Value of a column type.
func fromParquet(c *blockColumn, pv parquet.Value) codec.Value {
	if pv.IsNull() {
		return codec.Value{}
	}
	switch c.typ.Kind {
	case codec.TypeLong:
		return codec.Int(pv.Int64())
	case codec.TypeInteger:
		return codec.Int(int64(pv.Int32()))
	case codec.TypeTimestamp:
		return codec.Timestamp(pv.Int64())
	case codec.TypeDate:
		return codec.Date(pv.Int32())
	case codec.TypeDouble:
		return codec.Float(pv.Double())
	case codec.TypeBoolean:
		return codec.Bool(pv.Boolean())
	case codec.TypeString:
		return codec.String(string(pv.ByteArray()))
	case codec.TypeJSON:
		return codec.JSON(string(pv.ByteArray()))
	case codec.TypeBinary:
		return codec.Binary(pv.ByteArray())
	case codec.TypeDecimal:
		switch {
		case c.flbaLen > 0:
			return codec.Decimal(pv.ByteArray(), c.typ.Scale)
		case c.typ.Precision <= 9:
			return codec.DecimalFromInt64(int64(pv.Int32()), c.typ.Scale)
		default:
			return codec.DecimalFromInt64(pv.Int64(), c.typ.Scale)
		}
	}
	return codec.Value{}
}

// ReadBlock reads a block written by EncodeBlock: its schema and its
// changes, in order. Each change's Row lists every schema column (nulls
// included) in schema order; Key and Declared are not stored in blocks.
func ReadBlock(r io.ReaderAt, size int64) (*codec.Schema, []codec.Change, error) {
	f, err := parquet.OpenFile(r, size)
	if err != nil {
		return nil, nil, fmt.Errorf("read block: %w", err)
	}
	var s *codec.Schema
	if text, ok := f.Lookup(metaColumnList); ok {
		s, err = parseColumnsJSON(text)
		if err == nil {
			_, hasTopic := f.Schema().Lookup(codec.ColTopic)
			s.SetKafkaColumns(hasTopic)
		}
	} else if text, ok := f.Lookup(metaSchema); ok {
		s, err = parseLegacySchema(text)
	} else {
		err = errors.New("no " + metaColumnList + " metadata")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read block: %w", err)
	}
	db, _ := f.Lookup(metaDB)
	ns, _ := f.Lookup(metaNS)
	table, _ := f.Lookup(metaTable)
	_, hasTopic := f.Schema().Lookup(codec.ColTopic)
	ps, cols, _ := blockLayout(s, hasTopic, nil) // without IDs, it cannot fail
	if !parquet.SameNodes(ps, f.Schema()) {
		return nil, nil, fmt.Errorf("read block: file schema does not match its %s metadata", metaColumnList)
	}
	nmeta := len(codec.MetaColumns(hasTopic))
	changes := make([]codec.Change, 0, f.NumRows())
	buf := make([]parquet.Row, batchRows)
	for _, rg := range f.RowGroups() {
		rows := rg.Rows()
		for {
			n, err := rows.ReadRows(buf)
			for _, row := range buf[:n] {
				ch, err := rowToChange(row, cols, nmeta, hasTopic)
				if err != nil {
					rows.Close()
					return nil, nil, fmt.Errorf("read block: row %d: %w", len(changes), err)
				}
				ch.DB, ch.Schema, ch.Table = db, ns, table
				changes = append(changes, ch)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				rows.Close()
				return nil, nil, fmt.Errorf("read block: %w", err)
			}
		}
		if err := rows.Close(); err != nil {
			return nil, nil, fmt.Errorf("read block: %w", err)
		}
	}
	return s, changes, nil
}

func rowToChange(row parquet.Row, cols []blockColumn, nmeta int, kafka bool) (codec.Change, error) {
	var ch codec.Change
	if len(row) != len(cols) {
		return ch, fmt.Errorf("%d values, want %d", len(row), len(cols))
	}
	at := func(i int) codec.Value { return fromParquet(&cols[i], row[cols[i].leaf]) }
	op, ok := parseOp(at(0).Str())
	if !ok {
		return ch, fmt.Errorf("unknown _op %q", at(0).Str())
	}
	ch.Op, ch.LSN, ch.TS = op, uint64(at(1).Int()), at(2).Millis()
	if kafka {
		ch.Topic, ch.Partition, ch.Offset = at(3).Str(), int32(at(4).Int()), at(5).Int()
	}
	ch.Row = make([]codec.Field, 0, len(cols)-nmeta)
	for i := nmeta; i < len(cols); i++ {
		ch.Row = append(ch.Row, codec.Field{Name: cols[i].name, Value: at(i)})
	}
	return ch, nil
}

func parseOp(s string) (codec.Op, bool) {
	for _, op := range []codec.Op{codec.OpInsert, codec.OpUpdate, codec.OpDelete, codec.OpSnapshot} {
		if op.String() == s {
			return op, true
		}
	}
	return 0, false
}

// statsBuilder accumulates BlockStats while rows are encoded.
type statsBuilder struct {
	cols  []blockColumn
	stats []codec.ColumnStats
}

func newStatsBuilder(cols []blockColumn) *statsBuilder {
	st := &statsBuilder{cols: cols, stats: make([]codec.ColumnStats, len(cols))}
	for i := range cols {
		st.stats[i].Type = cols[i].typ
	}
	return st
}

func (b *statsBuilder) add(i int, v codec.Value) {
	cs := &b.stats[i]
	if v.IsNull() {
		cs.NullCount++
		return
	}
	switch cs.Type.Kind {
	case codec.TypeBinary, codec.TypeJSON, codec.TypeBoolean:
		return
	case codec.TypeDouble:
		if math.IsNaN(v.Float()) {
			return
		}
	}
	if cs.Min.IsNull() || v.Compare(cs.Min) < 0 {
		cs.Min = v
	}
	if cs.Max.IsNull() || v.Compare(cs.Max) > 0 {
		cs.Max = v
	}
}

func (b *statsBuilder) finish(rows int64) codec.BlockStats {
	out := codec.BlockStats{Rows: rows, Columns: make(map[string]codec.ColumnStats, len(b.cols))}
	for i := range b.cols {
		out.Columns[b.cols[i].name] = b.stats[i]
	}
	if rows > 0 {
		out.MinLSN, out.MaxLSN = uint64(b.stats[1].Min.Int()), uint64(b.stats[1].Max.Int())
		out.MinTS, out.MaxTS = b.stats[2].Min.Millis(), b.stats[2].Max.Millis()
	}
	return out
}
