package sink

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/sink/buffer"
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

// dedupeState is one table's deduplication state, guarded by its
// tableWriter's mu.
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
// are passed over. A file that cannot be read fails the call, which the
// caller's operation (a table load, a flush) retries as a whole.
func (w *tableWriter) absorbFiles(ctx context.Context, snap *committer.Snapshot, limit int) error {
	d := w.dedupe
	w.mu.Lock()
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
	w.mu.Unlock()
	sort.Slice(todo, func(i, j int) bool { return tablefile.MaxLSN(todo[i]) > tablefile.MaxLSN(todo[j]) })
	if limit > 0 && len(todo) > limit {
		w.mu.Lock()
		for _, add := range todo[limit:] {
			d.seen[add.Path] = true
		}
		w.mu.Unlock()
		todo = todo[:limit]
	}
	for _, add := range todo {
		_, changes, err := tablefile.ReadFile(ctx, w.env.bucket, w.path, add.Path)
		if err != nil {
			return inStep("dedupe-read", fmt.Errorf("deduplication: %w", err))
		}
		w.mu.Lock()
		for i := range changes {
			d.committed.add(d.keyOf(&changes[i]))
		}
		d.seen[add.Path] = true
		w.mu.Unlock()
	}
	return nil
}

// dropCommittedLSN takes out of batch the changes whose (LSN, key) the
// window holds, and returns how many it dropped.
func (w *tableWriter) dropCommittedLSN(batch buffer.Batch) (buffer.Batch, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	d := w.dedupe
	i := -1
	kept := batch.Filter(func(codec.RowMeta) bool {
		i++
		ch := batch.Rows.Change(i)
		return !d.committed.has(d.keyOf(&ch))
	})
	return kept, batch.Len() - kept.Len()
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
