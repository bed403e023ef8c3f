package sink

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/partitioner"
	"github.com/evodb/sink/tablefile"
)

// Source-level deduplication (`dedupe: lsn`).
//
// Debezium delivers at least once: after a connector restart it re-sends
// changes it already sent, as new Kafka records with new offsets. Offsets
// cannot fence those, so with dedupe on the sink also drops a change whose
// (LSN, primary key) is already in the table or already buffered. LSNs are
// not monotonic in stream order (Postgres decodes transactions in commit
// order, so an earlier LSN can follow a later one), which is why the check
// is exact membership, not a watermark.
//
// The committed set is a bounded window of the most recent changes: it is
// seeded at table load from the newest files, extended with every block
// this sink commits, and with the files other members committed whenever a
// flush re-reads the log. Replays arrive within seconds of the originals,
// far inside the window. Changes without a record key are keyed by LSN
// alone. A record key without column names (see codec.OpaqueKey) is
// compared byte for byte; data files do not keep record keys, so such
// changes are matched against what this process buffered and committed,
// not against the files read at table load.

// primaryKeyConfig is the table metaData configuration key that records the
// primary key columns (from the Debezium record key), comma-separated.
const primaryKeyConfig = "evodb.primaryKey"

// dedupeSeedFiles is how many of a table's newest files seed the window.
const dedupeSeedFiles = 16

type lsnKey struct {
	lsn uint64
	key string
}

// lsnWindow is a bounded FIFO set of committed (LSN, key) pairs.
type lsnWindow struct {
	max   int
	set   map[lsnKey]struct{}
	order []lsnKey
	head  int
}

func newLSNWindow(max int) *lsnWindow {
	return &lsnWindow{max: max, set: map[lsnKey]struct{}{}}
}

func (w *lsnWindow) has(k lsnKey) bool {
	_, ok := w.set[k]
	return ok
}

func (w *lsnWindow) add(k lsnKey) {
	if _, ok := w.set[k]; ok {
		return
	}
	w.set[k] = struct{}{}
	if len(w.order) < w.max {
		w.order = append(w.order, k)
		return
	}
	delete(w.set, w.order[w.head])
	w.order[w.head] = k
	w.head = (w.head + 1) % w.max
}

// dedupeState is one table's deduplication state, guarded by Sink.mu.
type dedupeState struct {
	pk        []string
	committed *lsnWindow
	// buffered holds the keys of changes buffered or in flight, by source
	// partition, so a replay arriving before its original is durable is
	// dropped too, and a dropped partition forgets its entries.
	buffered map[topicPartition]map[lsnKey]struct{}
	// seen are the file paths whose rows are in committed.
	seen map[string]bool
}

func newDedupeState(window int) *dedupeState {
	return &dedupeState{committed: newLSNWindow(window), buffered: map[topicPartition]map[lsnKey]struct{}{}, seen: map[string]bool{}}
}

// keyOf returns the dedupe key of a change: its LSN and primary key values.
// An opaque record key is the one key field named codec.OpaqueKey, so it
// is compared by its bytes like a one-column key.
func (d *dedupeState) keyOf(ch *codec.Change) lsnKey {
	if len(d.pk) == 0 && len(ch.Key) > 0 {
		for _, f := range ch.Key {
			d.pk = append(d.pk, strings.Clone(f.Name))
		}
	}
	var b strings.Builder
	for i, name := range d.pk {
		if i > 0 {
			b.WriteByte(0)
		}
		v := ch.Get(name)
		for _, f := range ch.Key {
			if f.Name == name {
				v = f.Value
			}
		}
		b.WriteString(v.Text())
	}
	return lsnKey{ch.LSN, b.String()}
}

// release forgets buffered entries of changes that left the sink (committed
// or abandoned); committed ones are added to the window first.
func (d *dedupeState) release(rows *codec.Rows, committed bool) {
	for i := range rows.Len() {
		ch := rows.Change(i)
		k := d.keyOf(&ch)
		if committed {
			d.committed.add(k)
		}
		delete(d.buffered[topicPartition{ch.Topic, ch.Partition}], k)
	}
}

// dropPartition forgets the buffered entries of a partition.
func (d *dedupeState) dropPartition(tp topicPartition) { delete(d.buffered, tp) }

// absorbFiles adds the rows of snapshot files not yet seen to the window,
// newest first, at most limit files (0: all). Files the sink did not write
// are passed over.
func (s *Sink) absorbFiles(ctx context.Context, t *table, snap *committer.Snapshot, limit int) error {
	s.mu.Lock()
	d := t.dedupe
	if pk := snap.Metadata.Configuration[primaryKeyConfig]; pk != "" && len(d.pk) == 0 {
		d.pk = strings.Split(pk, ",")
	}
	var todo []committer.Add
	for path, add := range snap.Files {
		switch {
		case d.seen[path]:
		case !tablefile.WrittenBySink(add):
			// Another writer (a Spark or delta-rs job) appended it: it
			// holds no changes this sink could be sent again, and has
			// no evodb metadata to read it by.
			d.seen[path] = true
		default:
			todo = append(todo, add)
		}
	}
	s.mu.Unlock()
	sort.Slice(todo, func(i, j int) bool { return tablefile.MaxLSN(todo[i]) > tablefile.MaxLSN(todo[j]) })
	if limit > 0 && len(todo) > limit {
		for _, add := range todo[limit:] {
			s.mu.Lock()
			d.seen[add.Path] = true
			s.mu.Unlock()
		}
		todo = todo[:limit]
	}
	for _, add := range todo {
		var changes []codec.Change
		err := s.retry(ctx, "dedupe-read", func() error {
			var err error
			_, changes, err = tablefile.ReadFile(ctx, s.bucket, t.path, add.Path)
			return err
		})
		if err != nil {
			return fmt.Errorf("deduplication: %w", err)
		}
		s.mu.Lock()
		for i := range changes {
			d.committed.add(d.keyOf(&changes[i]))
		}
		d.seen[add.Path] = true
		s.mu.Unlock()
	}
	return nil
}

// filterCommittedLSN drops changes whose (LSN, key) the window holds.
func (s *Sink) filterCommittedLSN(t *table, rows *codec.Rows) (*codec.Rows, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dup := make([]bool, rows.Len())
	n := 0
	for i := range rows.Len() {
		ch := rows.Change(i)
		if t.dedupe.committed.has(t.dedupe.keyOf(&ch)) {
			dup[i] = true
			n++
		}
	}
	if n == 0 {
		return rows, 0
	}
	i := -1
	return rows.Filter(func(codec.RowMeta) bool { i++; return !dup[i] }), n
}

// isDup reports whether a change's (LSN, key) is committed or buffered.
func (d *dedupeState) isDup(ch *codec.Change) bool {
	k := d.keyOf(ch)
	if d.committed.has(k) {
		return true
	}
	for _, m := range d.buffered {
		if _, ok := m[k]; ok {
			return true
		}
	}
	return false
}

// record notes a buffered change.
func (d *dedupeState) record(tp topicPartition, ch *codec.Change) {
	m := d.buffered[tp]
	if m == nil {
		m = map[lsnKey]struct{}{}
		d.buffered[tp] = m
	}
	m[d.keyOf(ch)] = struct{}{}
}

// primaryKey returns the table's primary key columns, comma-separated, as
// learnt from record keys; empty when unknown.
func (s *Sink) primaryKey(t *table) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return t.pk
}

// createConfiguration is the metaData configuration of a new table.
func (s *Sink) createConfiguration(t *table) map[string]string {
	cfg := map[string]string{partitioner.ModeConfigKey: t.mode.Name}
	if pk := s.primaryKey(t); pk != "" {
		cfg[primaryKeyConfig] = pk
	}
	return cfg
}
