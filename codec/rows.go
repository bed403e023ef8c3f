package codec

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"unsafe"
)

// Rows holds the changes of one table in a compact, pointer-free layout:
// one fixed-size entry per change, one fixed-size cell per column value,
// and every string's bytes in a single arena. Buffers of decoded changes
// live in memory for seconds and can fill most of the memory budget; as
// []Change they are mostly pointers (a name and a value string per field),
// which the garbage collector scans on every cycle. Rows has a handful of
// pointers however many changes it holds, takes about half the memory, and
// EncodeRows reads it without touching field names.
//
// Bytes appended are never modified afterwards (appends only write past
// the end, and Filter builds a new Rows), so strings returned by Change and
// Meta stay valid for as long as they are referenced.
//
// A Rows is not safe for concurrent use.
type Rows struct {
	db, ns, table string
	topics        []string
	topicIdx      map[string]uint32
	names         []string
	nameIdx       map[string]uint32
	// posName is the name index last seen at each field position: changes
	// of a table nearly always list their fields in the same order, and a
	// string compare is cheaper than a map lookup.
	posName []uint32
	meta    []rowMeta
	cells   []cell
	arena   []byte
	// order is the row order of Sort, nil for insertion order.
	order []int32
	bytes int64
}

// rowMeta is one change's metadata and where its cells are.
type rowMeta struct {
	lsn       uint64
	ts        int64
	offset    int64
	partition int32
	topic     uint32
	cells     uint32 // first cell; Row's cells, then Key's
	nrow      uint32
	nkey      uint32
	op        Op
}

// cell is one column value in 16 bytes. data is the value's num, or, for
// a kind whose value is a string (strKinds), where its bytes are in the
// arena: offset << 32 | length. Invariant: a Value holds a number or a
// string, never both (its constructors set one; nothing else in codec
// writes them), so one word holds either; TestCellHoldsEveryKind round-trips
// every kind and shows a value with both would not.
type cell struct {
	data  uint64
	nk    uint32 // name index << 8 | kind
	scale int32
}

// strKinds are the kinds whose value is a string (Value.str): the cells of
// these kinds hold an arena span, the others a number.
const strKinds = 1<<KindString | 1<<KindBinary | 1<<KindDecimal | 1<<KindJSON

// isStrKind reports whether k is one of strKinds.
func isStrKind(k Kind) bool { return strKinds>>k&1 != 0 }

const (
	rowMetaBytes = int(unsafe.Sizeof(rowMeta{}))
	cellBytes    = int(unsafe.Sizeof(cell{}))
	maxNames     = 1 << 24
)

// RowMeta is a change's metadata, as Rows.Meta returns it.
type RowMeta struct {
	Topic     string
	Partition int32
	Offset    int64
	LSN       uint64
	TS        int64
	Op        Op
}

// RowsHint is the size of a Rows, so the next one can be allocated at
// once instead of growing through repeated copies.
type RowsHint struct {
	Rows, Cells, Bytes int
}

// Hint returns the size of r.
func (r *Rows) Hint() RowsHint {
	return RowsHint{Rows: len(r.meta), Cells: len(r.cells), Bytes: len(r.arena)}
}

// NewRows returns an empty Rows with room for h (the zero hint is fine).
func NewRows(h RowsHint) *Rows {
	r := &Rows{topicIdx: map[string]uint32{}, nameIdx: map[string]uint32{}}
	if h.Rows > 0 {
		r.meta = make([]rowMeta, 0, h.Rows)
	}
	if h.Cells > 0 {
		r.cells = make([]cell, 0, h.Cells)
	}
	if h.Bytes > 0 {
		r.arena = make([]byte, 0, h.Bytes)
	}
	return r
}

// RowsOf copies changes into a new Rows.
func RowsOf(changes []Change) (*Rows, error) {
	h := RowsHint{Rows: len(changes)}
	for i := range changes {
		ch := &changes[i]
		h.Cells += len(ch.Row) + len(ch.Key)
		h.Bytes += ch.Size() - rowMetaBytes - (len(ch.Row)+len(ch.Key))*cellBytes
	}
	r := NewRows(h)
	for i := range changes {
		if _, err := r.Append(&changes[i]); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Len returns the number of changes.
func (r *Rows) Len() int { return len(r.meta) }

// Bytes returns the memory the changes take, as Change.Size counts it.
func (r *Rows) Bytes() int64 { return r.bytes }

// Table returns the namespace of the changes (all empty before the first).
func (r *Rows) Table() (db, schema, table string) { return r.db, r.ns, r.table }

// Append copies a change in and returns the bytes it added (its Size). A
// change of another table than the first one appended is refused.
func (r *Rows) Append(ch *Change) (int64, error) {
	if len(r.meta) == 0 {
		r.db, r.ns, r.table = strings.Clone(ch.DB), strings.Clone(ch.Schema), strings.Clone(ch.Table)
	} else if ch.Table != r.table || ch.DB != r.db || ch.Schema != r.ns {
		return 0, fmt.Errorf("change at %s/%d@%d belongs to table %s, these rows to %s",
			ch.Topic, ch.Partition, ch.Offset, ch.TableName(), (&Change{DB: r.db, Schema: r.ns, Table: r.table}).TableName())
	}
	var strBytes int
	for i := range ch.Row {
		strBytes += len(ch.Row[i].Value.str)
	}
	for i := range ch.Key {
		strBytes += len(ch.Key[i].Value.str)
	}
	if len(r.arena)+strBytes > math.MaxUint32 || len(r.cells)+len(ch.Row)+len(ch.Key) > math.MaxUint32 {
		return 0, fmt.Errorf("change at %s/%d@%d: buffer of table %s is full (4 GiB)", ch.Topic, ch.Partition, ch.Offset, ch.TableName())
	}
	r.reserve(1, len(ch.Row)+len(ch.Key), strBytes)
	// A table's changes nearly always come from one topic: comparing with
	// the last change's topic is cheaper than hashing it.
	var topic uint32
	if n := len(r.meta); n > 0 && r.topics[r.meta[n-1].topic] == ch.Topic {
		topic = r.meta[n-1].topic
	} else {
		var ok bool
		if topic, ok = r.topicIdx[ch.Topic]; !ok {
			topic = uint32(len(r.topics))
			r.topics = append(r.topics, strings.Clone(ch.Topic))
			r.topicIdx[r.topics[topic]] = topic
		}
	}
	m := rowMeta{
		lsn: ch.LSN, ts: ch.TS, offset: ch.Offset, partition: ch.Partition, topic: topic, op: ch.Op,
		cells: uint32(len(r.cells)), nrow: uint32(len(ch.Row)), nkey: uint32(len(ch.Key)),
	}
	// The cells and string bytes are written in place into the room
	// reserved above, and the arrays' lengths set once at the end: an
	// append per cell stored the slice back into r every time.
	cells := r.cells[len(r.cells) : len(r.cells)+len(ch.Row)+len(ch.Key)]
	arena := r.arena[: len(r.arena)+strBytes : len(r.arena)+strBytes]
	off := len(r.arena)
	for i := range ch.Row {
		f := &ch.Row[i]
		var name uint32
		if i < len(r.posName) && r.names[r.posName[i]] == f.Name {
			name = r.posName[i]
		} else if err := r.nameSlow(f, i, &name); err != nil {
			return 0, fmt.Errorf("change at %s/%d@%d: %w", ch.Topic, ch.Partition, ch.Offset, err)
		}
		off = putCell(&cells[i], arena, off, name, &f.Value)
	}
	for i := range ch.Key {
		f := &ch.Key[i]
		var name uint32
		if err := r.nameSlow(f, -1, &name); err != nil {
			return 0, fmt.Errorf("change at %s/%d@%d: %w", ch.Topic, ch.Partition, ch.Offset, err)
		}
		off = putCell(&cells[len(ch.Row)+i], arena, off, name, &f.Value)
	}
	r.cells = r.cells[:len(r.cells)+len(cells)]
	r.arena = r.arena[:off]
	r.meta = append(r.meta, m)
	if r.order != nil {
		r.order = append(r.order, int32(len(r.meta)-1))
	}
	// ch.Size, from the string bytes counted above.
	size := int64(rowMetaBytes + (len(ch.Row)+len(ch.Key))*cellBytes + strBytes)
	r.bytes += size
	return size, nil
}

// putCell writes v as the cell c with column name index name, its string
// bytes into arena at off, and returns the offset after them. arena has
// room for every string of the change (Append reserved it).
func putCell(c *cell, arena []byte, off int, name uint32, v *Value) int {
	*c = cell{data: v.num, nk: name<<8 | uint32(v.kind), scale: v.scale}
	if isStrKind(v.kind) {
		c.data = uint64(off)<<32 | uint64(len(v.str))
		off += copy(arena[off:], v.str)
	}
	return off
}

// nameSlow finds or adds the index of f's name when the field is not at
// the position where its name was last seen, and remembers it there.
func (r *Rows) nameSlow(f *Field, pos int, out *uint32) error {
	name, ok := r.nameIdx[f.Name]
	if !ok {
		if len(r.names) >= maxNames {
			return fmt.Errorf("more than %d distinct column names", maxNames)
		}
		name = uint32(len(r.names))
		r.names = append(r.names, strings.Clone(f.Name))
		r.nameIdx[r.names[name]] = name
	}
	if pos >= 0 {
		for len(r.posName) <= pos {
			r.posName = append(r.posName, 0)
		}
		r.posName[pos] = name
	}
	*out = name
	return nil
}

// Mem returns the bytes r's arrays hold: their capacity, which is what a
// memory budget must count, not only what is used.
func (r *Rows) Mem() int64 {
	return int64(cap(r.meta)*rowMetaBytes + cap(r.cells)*cellBytes + cap(r.arena) + cap(r.order)*4)
}

// MemFor returns how much Mem grows when ch is appended: zero while the
// arrays have room, the capacity added when one must grow.
func (r *Rows) MemFor(ch *Change) int64 {
	n := memGrowth(len(r.meta), cap(r.meta), len(r.cells), cap(r.cells), len(r.arena), cap(r.arena), ch)
	if r.order != nil {
		n += int64(growTo(len(r.order), cap(r.order), 1)-cap(r.order)) * 4
	}
	return n
}

// MemFor returns the Mem of NewRows(h) once ch is appended to it, without
// allocating it.
func (h RowsHint) MemFor(ch *Change) int64 {
	return int64(h.Rows*rowMetaBytes+h.Cells*cellBytes+h.Bytes) + memGrowth(0, h.Rows, 0, h.Cells, 0, h.Bytes, ch)
}

func memGrowth(nMeta, cMeta, nCells, cCells, nArena, cArena int, ch *Change) int64 {
	cells, strBytes := len(ch.Row)+len(ch.Key), 0
	for i := range ch.Row {
		strBytes += len(ch.Row[i].Value.str)
	}
	for i := range ch.Key {
		strBytes += len(ch.Key[i].Value.str)
	}
	n := (growTo(nMeta, cMeta, 1) - cMeta) * rowMetaBytes
	n += (growTo(nCells, cCells, cells) - cCells) * cellBytes
	n += growTo(nArena, cArena, strBytes) - cArena
	return int64(n)
}

// growTo returns the capacity an array of length n and capacity c grows
// to for need more elements: c when they fit, else half as much again as
// needed (at least 64 more), so growth is predictable (MemFor), copies
// each element about twice, and the unused tail stays within a third.
func growTo(n, c, need int) int {
	if n+need <= c {
		return c
	}
	return n + need + max((n+need)/2, 64)
}

// grown returns s with room for need more elements, grown as growTo says.
func grown[T any](s []T, need int) []T {
	c := growTo(len(s), cap(s), need)
	if c == cap(s) {
		return s
	}
	ns := make([]T, len(s), c)
	copy(ns, s)
	return ns
}

// reserve makes room for rows more changes with cells cells and bytes
// string bytes.
func (r *Rows) reserve(rows, cells, bytes int) {
	r.meta = grown(r.meta, rows)
	r.cells = grown(r.cells, cells)
	r.arena = grown(r.arena, bytes)
	if r.order != nil {
		r.order = grown(r.order, rows)
	}
}

// at returns the index of the k-th row in the current order.
func (r *Rows) at(k int) int {
	if r.order == nil {
		return k
	}
	return int(r.order[k])
}

// Meta returns the metadata of the k-th change.
func (r *Rows) Meta(k int) RowMeta {
	m := &r.meta[r.at(k)]
	return RowMeta{Topic: r.topics[m.topic], Partition: m.partition, Offset: m.offset, LSN: m.lsn, TS: m.ts, Op: m.op}
}

// NumNames returns how many distinct column names the cells refer to.
func (r *Rows) NumNames() int { return len(r.names) }

// Name returns the column name with index i (see CellName).
func (r *Rows) Name(i int) string { return r.names[i] }

// NameIndex returns the index of a column name, if any cell has it.
func (r *Rows) NameIndex(name string) (int, bool) {
	i, ok := r.nameIdx[name]
	return int(i), ok
}

// RowCells returns the cells of the k-th change's Row, in the current
// order: lo to hi-1. Reading cells (CellName, CellValue) instead of Change
// lets an encoder go through the values without building Fields.
func (r *Rows) RowCells(k int) (lo, hi int) {
	m := &r.meta[r.at(k)]
	return int(m.cells), int(m.cells + m.nrow)
}

// CellName returns the index of cell i's column name (see Name).
func (r *Rows) CellName(i int) int { return int(r.cells[i].nk >> 8) }

// CellValue returns cell i's value; its string shares the Rows' memory.
func (r *Rows) CellValue(i int) Value { return r.value(&r.cells[i]) }

// value returns a cell's value; its string aliases the arena.
func (r *Rows) value(c *cell) Value {
	v := Value{kind: Kind(c.nk & 0xff), scale: c.scale}
	switch {
	case !isStrKind(v.kind):
		v.num = c.data
	case uint32(c.data) > 0:
		v.str = unsafe.String(&r.arena[c.data>>32], int(uint32(c.data)))
	}
	return v
}

// Change returns the k-th change. Its strings share the Rows' memory;
// Declared is nil.
func (r *Rows) Change(k int) Change {
	m := &r.meta[r.at(k)]
	ch := Change{
		Topic: r.topics[m.topic], Partition: m.partition, Offset: m.offset,
		DB: r.db, Schema: r.ns, Table: r.table, Op: m.op, LSN: m.lsn, TS: m.ts,
	}
	fields := func(cs []cell) []Field {
		if len(cs) == 0 {
			return nil
		}
		out := make([]Field, len(cs))
		for i := range cs {
			out[i] = Field{Name: r.names[cs[i].nk>>8], Value: r.value(&cs[i])}
		}
		return out
	}
	ch.Row = fields(r.cells[m.cells : m.cells+m.nrow])
	ch.Key = fields(r.cells[m.cells+m.nrow : m.cells+m.nrow+m.nkey])
	return ch
}

// Filter returns a new Rows with the changes, in the current order, for
// which keep is true; r is unchanged. keep is called once per change, in
// that order.
func (r *Rows) Filter(keep func(RowMeta) bool) *Rows {
	out := NewRows(RowsHint{})
	out.db, out.ns, out.table = r.db, r.ns, r.table
	for k := range r.meta {
		if !keep(r.Meta(k)) {
			continue
		}
		ch := r.Change(k)
		// Same table and no limit can be passed: r held the change.
		_, _ = out.Append(&ch)
	}
	return out
}

// Sort orders the changes by LSN, then by source offset, keeping the
// order of equal ones. It sorts an index, not the changes.
//
// Changes that are in that order already, as a table read from one
// partition appends them, get no index, so encoding reads them in place.
// That relies on Rows without an index being read in insertion order
// (at), and on sorted comparing every neighbouring pair as the sort
// does; TestRowsSortStable fails when sorted says "in order" for changes
// that are not.
func (r *Rows) Sort() {
	if r.order == nil {
		if r.sorted() {
			return
		}
		r.order = make([]int32, len(r.meta))
		for i := range r.order {
			r.order[i] = int32(i)
		}
	}
	slices.SortStableFunc(r.order, func(a, b int32) int {
		ma, mb := &r.meta[a], &r.meta[b]
		if c := cmp.Compare(ma.lsn, mb.lsn); c != 0 {
			return c
		}
		return cmp.Compare(ma.offset, mb.offset)
	})
}

// sorted reports whether the changes, in insertion order, are in Sort's
// order. It spells out Sort's comparison rather than calling cmp.Compare,
// which took twice as long (BenchmarkRowsSort/partitions=1); the two must
// agree.
func (r *Rows) sorted() bool {
	for i := 1; i < len(r.meta); i++ {
		a, b := &r.meta[i-1], &r.meta[i]
		if a.lsn > b.lsn || a.lsn == b.lsn && a.offset > b.offset {
			return false
		}
	}
	return true
}
