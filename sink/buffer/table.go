package buffer

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/partitioner"
)

// Flush reasons returned by ShouldFlush.
const (
	ReasonRecords = "records"
	ReasonBytes   = "bytes"
	ReasonAge     = "age"
)

// ErrOverflow is wrapped by an *OverflowError: adding the change would take
// the buffer past its MaxBytes. The caller flushes the buffer and adds the
// change again.
var ErrOverflow = errors.New("buffer full")

// ErrRecordTooLarge is wrapped by a *RecordTooLargeError: the change alone is
// larger than MaxBytes, so no flush makes room for it.
var ErrRecordTooLarge = errors.New("record larger than buffer maximum")

// OverflowError reports a change that did not fit; the buffer is unchanged.
type OverflowError struct {
	Table         string
	Topic         string
	Partition     int32
	Offset        int64
	RecordBytes   int64
	BufferedBytes int64
	MaxBytes      int64
}

func (e *OverflowError) Error() string {
	return fmt.Sprintf("buffer table %s: record %s/%d@%d of %d bytes does not fit (%d of %d bytes buffered): %v",
		e.Table, e.Topic, e.Partition, e.Offset, e.RecordBytes, e.BufferedBytes, e.MaxBytes, ErrOverflow)
}

// Unwrap makes errors.Is(err, ErrOverflow) hold.
func (e *OverflowError) Unwrap() error { return ErrOverflow }

// RecordTooLargeError names a change larger than the buffer's MaxBytes.
type RecordTooLargeError struct {
	Table       string
	Topic       string
	Partition   int32
	Offset      int64
	RecordBytes int64
	MaxBytes    int64
}

func (e *RecordTooLargeError) Error() string {
	return fmt.Sprintf("buffer table %s: record %s/%d@%d is %d bytes, more than the maximum of %d: %v",
		e.Table, e.Topic, e.Partition, e.Offset, e.RecordBytes, e.MaxBytes, ErrRecordTooLarge)
}

// Unwrap makes errors.Is(err, ErrRecordTooLarge) hold.
func (e *RecordTooLargeError) Unwrap() error { return ErrRecordTooLarge }

// Options configure a Table buffer. All fields are required.
type Options struct {
	// FlushThreshold flushes the buffer when it holds this many changes.
	FlushThreshold int `yaml:"flush_threshold"`
	// FlushInterval flushes the buffer when its oldest change was added
	// this long ago, bounding how stale a table can get.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// TargetBytes flushes the buffer when its estimated size reaches it;
	// normally the partition mode's block size.
	TargetBytes int64 `yaml:"target_bytes"`
	// MaxBytes is the hard limit: Add refuses a change that would exceed it.
	MaxBytes int64 `yaml:"max_bytes"`
}

// Validate rejects non-positive values and a maximum below the target, which
// would make the byte trigger unreachable.
func (o Options) Validate() error {
	switch {
	case o.FlushThreshold <= 0:
		return fmt.Errorf("buffer options: flush threshold %d must be positive", o.FlushThreshold)
	case o.FlushInterval <= 0:
		return fmt.Errorf("buffer options: flush interval %s must be positive", o.FlushInterval)
	case o.TargetBytes <= 0:
		return fmt.Errorf("buffer options: target bytes %d must be positive", o.TargetBytes)
	case o.MaxBytes <= 0:
		return fmt.Errorf("buffer options: max bytes %d must be positive", o.MaxBytes)
	case o.MaxBytes < o.TargetBytes:
		return fmt.Errorf("buffer options: max bytes %d is below target bytes %d", o.MaxBytes, o.TargetBytes)
	}
	return nil
}

// SourceKey names a Kafka topic-partition.
type SourceKey struct {
	Topic     string
	Partition int32
}

// OffsetRange is the first and last offset of one topic-partition's records
// in a batch.
type OffsetRange struct {
	First int64
	Last  int64
}

// Batch is what a drained buffer hands to the flush: the changes in the
// order they were added, their LSN range, and per-source offset ranges for
// the block's key and the table log's txn versions.
type Batch struct {
	Table string
	// Rows holds the changes; nil for an empty batch.
	Rows    *codec.Rows
	MinLSN  uint64
	MaxLSN  uint64
	Sources map[SourceKey]OffsetRange
	// Bytes is the size of the changes in Rows (Change.Size each); Mem is
	// the memory Rows holds (Rows.Mem), what a memory budget counts.
	Mem   int64
	Bytes int64
	// FirstAdded is when the oldest change entered the buffer.
	FirstAdded time.Time
}

// BatchOf describes rows of a table as a batch: their LSN range and the
// offset range of each source partition. Rows may be nil (an empty batch).
func BatchOf(table string, rows *codec.Rows, firstAdded time.Time) Batch {
	b := Batch{Table: table, Rows: rows, Sources: make(map[SourceKey]OffsetRange), FirstAdded: firstAdded}
	if rows == nil {
		return b
	}
	for i := range rows.Len() {
		widen(&b.MinLSN, &b.MaxLSN, b.Sources, rows.Meta(i), i == 0)
	}
	b.Bytes, b.Mem = rows.Bytes(), rows.Mem()
	return b
}

// widen extends an LSN range and the offset range of a change's source by
// the change; first starts the LSN range at it.
func widen(minLSN, maxLSN *uint64, sources map[SourceKey]OffsetRange, m codec.RowMeta, first bool) {
	if first {
		*minLSN, *maxLSN = m.LSN, m.LSN
	} else {
		*minLSN, *maxLSN = min(*minLSN, m.LSN), max(*maxLSN, m.LSN)
	}
	k := SourceKey{Topic: m.Topic, Partition: m.Partition}
	if r, ok := sources[k]; !ok {
		sources[k] = OffsetRange{First: m.Offset, Last: m.Offset}
	} else if m.Offset < r.First || m.Offset > r.Last {
		sources[k] = OffsetRange{First: min(r.First, m.Offset), Last: max(r.Last, m.Offset)}
	}
}

// Len returns the number of changes in the batch.
func (b Batch) Len() int {
	if b.Rows == nil {
		return 0
	}
	return b.Rows.Len()
}

// BlockID returns the coordinates that name the block written from the
// batch, sources sorted by topic and partition. It is the same for a retry
// of the same batch.
func (b Batch) BlockID() partitioner.BlockID {
	id := partitioner.BlockID{FirstLSN: b.MinLSN, LastLSN: b.MaxLSN}
	for k, r := range b.Sources {
		id.Sources = append(id.Sources, partitioner.SourceRange{
			Topic: k.Topic, Partition: k.Partition, FirstOffset: r.First, LastOffset: r.Last,
		})
	}
	slices.SortFunc(id.Sources, func(a, b partitioner.SourceRange) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return id
}

// Table buffers one table's changes. It is not safe for concurrent use: its
// owner holds a lock around every call.
type Table struct {
	name    string
	opts    Options
	rows    *codec.Rows
	bytes   int64
	minLSN  uint64
	maxLSN  uint64
	sources map[SourceKey]OffsetRange
	first   time.Time
	// hint is the size of the last drained batch, so the next batch's
	// memory is allocated once instead of growing through repeated copies;
	// a table gone quiet has small batches, so it does not keep allocating
	// a large buffer.
	hint codec.RowsHint
}

// NewTable returns an empty buffer for the named table.
func NewTable(name string, opts Options) (*Table, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("buffer table %s: %w", name, err)
	}
	return &Table{name: name, opts: opts, sources: make(map[SourceKey]OffsetRange)}, nil
}

// Name returns the table's name.
func (t *Table) Name() string { return t.name }

// Options returns the buffer's options.
func (t *Table) Options() Options { return t.opts }

// Len returns the number of buffered changes.
func (t *Table) Len() int {
	if t.rows == nil {
		return 0
	}
	return t.rows.Len()
}

// Mem returns the memory the buffer holds (Rows.Mem): its arrays'
// capacity, at least Bytes.
func (t *Table) Mem() int64 {
	if t.rows == nil {
		return 0
	}
	return t.rows.Mem()
}

// MemFor returns how much Mem grows when ch is added: the first change
// allocates the buffer, later ones grow it now and then.
func (t *Table) MemFor(ch *codec.Change) int64 {
	if t.rows == nil {
		return t.hint.MemFor(ch)
	}
	return t.rows.MemFor(ch)
}

// Rows returns the buffered changes, nil when there are none. The caller
// must not modify them; they are valid until the next Add, Drain or
// DropPartition.
func (t *Table) Rows() *codec.Rows { return t.rows }

// Bytes returns the size of the buffered changes (Change.Size each).
func (t *Table) Bytes() int64 { return t.bytes }

// Add appends a change added at now. If the change would take the buffer
// past MaxBytes it returns an *OverflowError and leaves the buffer exactly as
// it was; if the change alone exceeds MaxBytes (so no flush could make room)
// it returns a *RecordTooLargeError instead.
func (t *Table) Add(ch codec.Change, now time.Time) error {
	size := int64(ch.Size())
	if size < 0 {
		return fmt.Errorf("buffer table %s: record %s/%d@%d has negative size %d", t.name, ch.Topic, ch.Partition, ch.Offset, size)
	}
	if size > t.opts.MaxBytes {
		return &RecordTooLargeError{
			Table: t.name, Topic: ch.Topic, Partition: ch.Partition, Offset: ch.Offset,
			RecordBytes: size, MaxBytes: t.opts.MaxBytes,
		}
	}
	if t.bytes+size > t.opts.MaxBytes {
		return &OverflowError{
			Table: t.name, Topic: ch.Topic, Partition: ch.Partition, Offset: ch.Offset,
			RecordBytes: size, BufferedBytes: t.bytes, MaxBytes: t.opts.MaxBytes,
		}
	}
	if t.rows == nil {
		t.rows = codec.NewRows(t.hint)
	}
	if _, err := t.rows.Append(&ch); err != nil {
		return fmt.Errorf("buffer table %s: %w", t.name, err)
	}
	if t.rows.Len() == 1 {
		t.first = now
	}
	widen(&t.minLSN, &t.maxLSN, t.sources,
		codec.RowMeta{Topic: ch.Topic, Partition: ch.Partition, Offset: ch.Offset, LSN: ch.LSN}, t.rows.Len() == 1)
	t.bytes += size
	return nil
}

// ShouldFlush reports whether the buffer is due and why: its size reached
// TargetBytes, it holds FlushThreshold changes, or its oldest change is
// FlushInterval old. An empty buffer is never due.
func (t *Table) ShouldFlush(now time.Time) (bool, string) {
	switch {
	case t.Len() == 0:
		return false, ""
	case t.bytes >= t.opts.TargetBytes:
		return true, ReasonBytes
	case t.Len() >= t.opts.FlushThreshold:
		return true, ReasonRecords
	case now.Sub(t.first) >= t.opts.FlushInterval:
		return true, ReasonAge
	}
	return false, ""
}

// due returns how long until the age trigger fires, zero if it has.
func (t *Table) due(now time.Time) time.Duration {
	return max(t.first.Add(t.opts.FlushInterval).Sub(now), 0)
}

// Drain hands the buffered changes over and empties the buffer, which then
// accepts changes again. The batch owns its slices and map.
func (t *Table) Drain() Batch {
	b := Batch{
		Table:      t.name,
		Rows:       t.rows,
		MinLSN:     t.minLSN,
		MaxLSN:     t.maxLSN,
		Sources:    t.sources,
		Bytes:      t.bytes,
		Mem:        t.Mem(),
		FirstAdded: t.first,
	}
	t.hint = codec.RowsHint{}
	if t.rows != nil && t.rows.Len() > 0 {
		// The size of the last batch, so a steady table never grows
		// its arrays (each growth allocates, clears and copies them:
		// four times for a batch of 300 changes, as at 512 tables with
		// buffers closed by age, since arrays start at 64 entries);
		// the memory budget counts the allocation as soon as the first
		// change arrives. A batch that overflowed past the target
		// counts as the target. A sixteenth more room: batches cut at
		// the same record count still differ a little in cells and
		// string bytes, and one that outgrew its exact predecessor
		// copied all of its arrays once, near the end (3-4 % of the
		// sink's CPU on the 8-table benchmark).
		f := 17.0 / 16
		if t.bytes > t.opts.TargetBytes {
			f *= float64(t.opts.TargetBytes) / float64(t.bytes)
		}
		h := t.rows.Hint()
		t.hint = codec.RowsHint{Rows: int(float64(h.Rows) * f), Cells: int(float64(h.Cells) * f), Bytes: int(float64(h.Bytes) * f)}
	}
	t.reset()
	return b
}

// NextHint is the size the buffer's next batch is allocated at: its last
// batch's (see Drain), or what SeedHint gave a buffer never drained; zero
// before either.
func (t *Table) NextHint() codec.RowsHint { return t.hint }

// SeedHint sizes the first batch of a buffer that has never been drained
// and holds nothing yet, from what other tables' batches looked like; it
// does nothing otherwise, since a table's own last batch says more about its
// next one than other tables do.
func (t *Table) SeedHint(h codec.RowsHint) {
	if t.rows != nil || t.hint != (codec.RowsHint{}) || h.Rows <= 0 {
		return
	}
	t.hint = h
}

func (t *Table) reset() {
	t.rows = nil
	t.bytes = 0
	t.minLSN, t.maxLSN = 0, 0
	t.sources = make(map[SourceKey]OffsetRange)
	t.first = time.Time{}
}

// DropPartition removes the changes read from a topic-partition, for a
// partition this instance no longer owns: its new owner reads them again.
// It returns the bytes freed. The age of what remains is still measured from
// the oldest change added, which can only make the next flush earlier.
func (t *Table) DropPartition(topic string, partition int32) int64 {
	k := SourceKey{Topic: topic, Partition: partition}
	if _, ok := t.sources[k]; !ok {
		return 0
	}
	delete(t.sources, k)
	before := t.bytes
	kept := t.rows.Filter(func(m codec.RowMeta) bool { return m.Topic != topic || m.Partition != partition })
	if kept.Len() == 0 {
		t.reset()
		return before
	}
	b := BatchOf(t.name, kept, t.first)
	t.rows, t.bytes, t.minLSN, t.maxLSN = kept, b.Bytes, b.MinLSN, b.MaxLSN
	return before - t.bytes
}

// WithoutDurable returns the batch minus the changes that are already durable:
// those whose offset is at or below durable[their topic-partition] (the
// table log's txn version for that partition). The committer refuses a block
// that overlaps durable data; the sink commits what this leaves. The LSN
// range, offset ranges and bytes are recomputed, so the result names a
// different block. The receiver is not modified; ok is false when nothing is
// left.
func (b Batch) WithoutDurable(durable map[SourceKey]int64) (rest Batch, ok bool) {
	if b.Len() == 0 {
		return Batch{}, false
	}
	rest = b.Filter(func(m codec.RowMeta) bool {
		last, ok := durable[SourceKey{Topic: m.Topic, Partition: m.Partition}]
		return !ok || m.Offset > last
	})
	if rest.Len() == 0 {
		return Batch{}, false
	}
	return rest, true
}

// Filter returns the batch with only the changes keep accepts. keep is
// called once per change, in order. When it accepts all, the batch itself
// is returned (same Rows, ranges and key); otherwise the LSN range, offset
// ranges, bytes and memory are those of the changes left, so the result
// names a different block. The receiver is not modified.
func (b Batch) Filter(keep func(codec.RowMeta) bool) Batch {
	n := b.Len()
	if n == 0 {
		return b
	}
	var drop []bool
	for i := range n {
		if !keep(b.Rows.Meta(i)) {
			if drop == nil {
				drop = make([]bool, n)
			}
			drop[i] = true
		}
	}
	if drop == nil {
		return b
	}
	i := -1
	rows := b.Rows.Filter(func(codec.RowMeta) bool { i++; return !drop[i] })
	return BatchOf(b.Table, rows, b.FirstAdded)
}
