package sink

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/tablefile"
)

// What a table writer knows of its table's log, and the schema it derives
// from it. Both the writer's entry points (writer.go) and its flush steps
// (flush.go) keep it current; it calls neither.

// txnState is what a table holds from one source partition.
type txnState struct {
	// version is the table's txn version: the last offset of the
	// partition already in the table; -1 if none.
	version int64
	// topicIDs are the topic IDs the table's commits recorded with the
	// version (committer.LineageAppID), sorted: none for a table written
	// before topic IDs were recorded or from a broker without them, one
	// normally, more only if sinks raced on a re-created topic.
	topicIDs []string
}

// otherTopic returns a topic ID the table recorded for the partition that
// is not id, if there is one. It never finds one when id is empty (the
// broker gives no topic IDs) or when the table recorded none.
func (st txnState) otherTopic(id string) (string, bool) {
	if id == "" {
		return "", false
	}
	for _, t := range st.topicIDs {
		if t != id {
			return t, true
		}
	}
	return "", false
}

// appIDOf is the txn appId of a source partition: one per sink group,
// topic and partition, so two groups can feed one table independently.
func appIDOf(group string, tp topicPartition) string {
	return "evodb-sink/" + group + "/" + tp.topic + "/" + strconv.Itoa(int(tp.partition))
}

func versionOf(s *committer.Snapshot) int64 {
	if s == nil {
		return -1
	}
	return s.Version
}

// snapshot returns the latest snapshot the writer saw, nil before the
// table exists. Snapshots are never modified once made.
func (w *tableWriter) snapshot() *committer.Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.snap
}

// What a table costs while its buffer is empty, counted against the memory
// budget (buffer.Controller.AddState) so that buffers get less as tables
// open and the process stays within its budget at thousands of tables.
// They are estimates from heap profiles at 2,048 tables (BENCHMARKS.md,
// "Memory at 2,048 tables, again"): the writer, its schema, dedupe state
// and metrics series; each active file of its snapshot (the add, its tags
// and its statistics); each txn; and the ids of its recent commits, which
// a format remembers to recognise a retried commit (Delta: those of the
// last 128 versions).
const (
	tableStateBytes  = 12 << 10
	fileStateBytes   = 2 << 10
	txnStateBytes    = 128
	commitStateBytes = 64
	recentCommits    = 128
)

// stateBytes estimates the memory a table with snapshot snap (nil: not
// created yet) holds outside its buffer.
func stateBytes(snap *committer.Snapshot) int64 {
	n := int64(tableStateBytes)
	if snap != nil {
		n += int64(len(snap.Files))*fileStateBytes + int64(len(snap.Txns))*txnStateBytes
		n += min(snap.Version+1, recentCommits) * commitStateBytes
	}
	return n
}

// countStateLocked counts the table's state, as of its latest snapshot,
// against the memory budget in place of what was counted before.
func (w *tableWriter) countStateLocked() {
	n := stateBytes(w.mu.snap)
	if w.env.ctrl != nil {
		w.env.ctrl.AddState(n - w.mu.stateBytes)
	}
	w.env.metrics.tableStateBytes.Add(float64(n - w.mu.stateBytes))
	w.mu.stateBytes = n
}

// adoptSnapshotLocked takes a newer snapshot's txn versions and schema.
func (w *tableWriter) adoptSnapshotLocked(snap *committer.Snapshot) error {
	if snap == nil || (w.mu.snap != nil && snap.Version <= w.mu.snap.Version) {
		return nil
	}
	w.mu.snap = snap
	w.countStateLocked()
	for app, v := range snap.Txns {
		id, topicID, isTopicID := committer.SplitLineage(app)
		if !isTopicID {
			id = app
		}
		st, ok := w.mu.durable[id]
		if !ok {
			st.version = -1
		}
		if !isTopicID {
			st.version = max(st.version, v)
		} else if !slices.Contains(st.topicIDs, topicID) {
			st.topicIDs = append(st.topicIDs, topicID)
			slices.Sort(st.topicIDs)
		}
		w.mu.durable[id] = st
	}
	if pk := snap.Metadata.Configuration[primaryKeyConfig]; pk != "" && w.mu.pk == "" {
		w.mu.pk = pk
	}
	if snap.Metadata.HasSchema() {
		theirs, err := tablefile.TableSchema(snap)
		if err != nil {
			return fmt.Errorf("table %s: %w", w.path, err)
		}
		// The committed types win; buffered changes that no longer fit
		// are refused when their flush checks them.
		w.mu.schema.Rebase(theirs)
	}
	w.env.metrics.tableVersion.WithLabelValues(w.path).Set(float64(snap.Version))
	return nil
}

// rebuildSchemaLocked recomputes the schema after changes were dropped
// from the buffer: the committed schema of the latest snapshot, evolved by
// the declared column schemas and the values of the changes still
// buffered. The running flush's evolutions, if any, come back when its
// commit is adopted. If the remaining changes somehow do not fit the
// rebuilt schema, the schema is left as it was: wider than needed, never
// too narrow.
func (w *tableWriter) rebuildSchemaLocked() {
	next := codec.NewSchema()
	next.SetKafkaColumns(w.mu.schema.KafkaColumns())
	err := func() error {
		if snap := w.mu.snap; snap != nil && snap.Metadata.HasSchema() {
			theirs, err := tablefile.TableSchema(snap)
			if err != nil {
				return err
			}
			if err := next.Merge(theirs); err != nil {
				return err
			}
		}
		for _, ds := range w.mu.declared {
			for _, d := range ds {
				if _, err := next.Accept(&codec.Change{Table: w.name, Declared: d}); err != nil {
					return err
				}
			}
		}
		if rows := w.mu.buf.Rows(); rows != nil {
			for k := range rows.Len() {
				ch := rows.Change(k)
				if _, err := next.Accept(&ch); err != nil {
					return err
				}
			}
		}
		return nil
	}()
	if err != nil {
		w.env.log.Warn("keeping the table's schema after dropping buffered changes", "table", w.path, "err", err)
		return
	}
	w.mu.schema = next
}

// primaryKey returns the table's primary key columns, comma-separated, as
// learnt from record keys or the table's metaData; empty when unknown.
func (w *tableWriter) primaryKey() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.pk
}
