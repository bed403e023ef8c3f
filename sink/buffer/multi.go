package buffer

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/evodb/sink/codec"
)

// Totals summarises a Multi buffer.
type Totals struct {
	Bytes   int64
	Records int
	// Tables counts tables with buffered changes.
	Tables int
}

// Multi buffers changes for many tables, creating a Table buffer the first
// time a table is seen. Drained buffers are kept (empty) so each table's
// next batch is allocated at the size of its last one. It is safe for
// concurrent use: the poll loop adds while flushes drain.
type Multi struct {
	options func(table string) Options

	mu      sync.Mutex
	tables  map[string]*Table
	bytes   int64
	records int
	// nonEmpty counts tables with buffered changes.
	nonEmpty int
}

// NewMulti returns an empty buffer. options gives each table's Options; it
// is called when a table's buffer is created, so per-table settings (a
// table's partition mode, for one) apply from its first change.
func NewMulti(options func(table string) Options) (*Multi, error) {
	if options == nil {
		return nil, fmt.Errorf("new multi-table buffer: nil options function")
	}
	return &Multi{options: options, tables: make(map[string]*Table)}, nil
}

// Add buffers a change for table at now. Errors are those of Table.Add, and
// invalid options for a new table.
func (m *Multi) Add(table string, ch codec.Change, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tables[table]
	if !ok {
		var err error
		if t, err = NewTable(table, m.options(table)); err != nil {
			return err
		}
		m.tables[table] = t
	}
	before := t.bytes
	if err := t.Add(ch, now); err != nil {
		return err
	}
	if t.Len() == 1 {
		m.nonEmpty++
	}
	m.bytes += t.bytes - before
	m.records++
	return nil
}

// Ready returns the tables whose buffers are due at now, by name.
func (m *Multi) Ready(now time.Time) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ready []string
	for name, t := range m.tables {
		if ok, _ := t.ShouldFlush(now); ok {
			ready = append(ready, name)
		}
	}
	slices.Sort(ready)
	return ready
}

// ShouldFlush reports whether a table's buffer is due and why; an unknown
// table is not.
func (m *Multi) ShouldFlush(table string, now time.Time) (bool, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tables[table]
	if !ok {
		return false, ""
	}
	return t.ShouldFlush(now)
}

// NextDue returns how long until the next table is due by age: zero if one
// is due already (for any reason). ok is false when nothing is buffered, so
// there is nothing to wait for.
func (m *Multi) NextDue(now time.Time) (d time.Duration, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.tables {
		if t.Len() == 0 {
			continue
		}
		if due, _ := t.ShouldFlush(now); due {
			return 0, true
		}
		if td := t.due(now); !ok || td < d {
			d, ok = td, true
		}
	}
	return d, ok
}

// Totals returns the buffered bytes, records and non-empty tables.
func (m *Multi) Totals() Totals {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Totals{Bytes: m.bytes, Records: m.records, Tables: m.nonEmpty}
}

// Bytes returns the buffered bytes of all tables.
func (m *Multi) Bytes() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bytes
}

// Largest returns up to n tables, largest buffer first (ties by name).
func (m *Multi) Largest(n int) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.largest(n)
}

func (m *Multi) largest(n int) []string {
	if n <= 0 {
		return nil
	}
	names := make([]string, 0, m.nonEmpty)
	for name, t := range m.tables {
		if t.Len() > 0 {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(m.tables[b].bytes, m.tables[a].bytes), cmp.Compare(a, b))
	})
	return names[:min(n, len(names))]
}

// largestUntil returns the fewest largest tables whose draining leaves less
// than target bytes buffered.
func (m *Multi) largestUntil(target int64) []string {
	if m.bytes < target {
		return nil
	}
	remaining := m.bytes
	var out []string
	for _, name := range m.largest(m.nonEmpty) {
		out = append(out, name)
		remaining -= m.tables[name].bytes
		if remaining < target {
			break
		}
	}
	return out
}

// Drain empties a table's buffer and returns its batch; ok is false if the
// table has nothing buffered.
func (m *Multi) Drain(table string) (b Batch, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tables[table]
	if !ok || t.Len() == 0 {
		return Batch{}, false
	}
	m.nonEmpty--
	m.bytes -= t.bytes
	m.records -= t.Len()
	return t.Drain(), true
}

// DropPartition removes the changes of a revoked or lost topic-partition
// from every table and returns the bytes freed. Its new owner reads them
// again from the last durable offset.
func (m *Multi) DropPartition(topic string, partition int32) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var freed int64
	for _, t := range m.tables {
		n := t.Len()
		freed += t.DropPartition(topic, partition)
		m.records -= n - t.Len()
		if n > 0 && t.Len() == 0 {
			m.nonEmpty--
		}
	}
	m.bytes -= freed
	return freed
}
