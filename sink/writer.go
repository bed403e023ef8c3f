package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/partitioner"
	"github.com/evodb/sink/sink/buffer"
)

// tableWriter writes one table: it owns the table's buffer, its schema as
// the buffered changes evolve it, what the table log holds from each source
// partition (txn versions and topic IDs), the dedupe window, and the one
// flush at a time that takes the buffer through upload and commit
// (flush.go). It hands back what became durable (flushResult); the Sink
// decides what that means for partition offsets, the memory budget and the
// group, as kafka-delta-ingest's IngestProcessor does with its DataWriter.
//
// Locking. mu guards the fields inside it; a writer method whose name ends
// in Locked runs with it held (a Sink method so named, with Sink.mu held).
// The Sink's lock may be held while taking a writer's (the poll goroutine
// buffers changes, and a finished flush releases its partitions' offsets
// and the writer's state, each in one critical section under Sink.mu); a
// writer's lock is never held while taking Sink.mu, nor across store I/O. The flush goroutine
// takes only the writer's lock, for short sections, so a slow store never
// keeps the poll loop waiting on it. The poll loop waits on the Sink's one
// condition variable (Sink.flushDone): the Sink broadcasts it once a
// finished flush is recorded in both the writer and the Sink, so a waiter
// that wakes sees the writer and the Sink agree.
type tableWriter struct {
	path string
	name string // the routed table name the config overrides are keyed by
	cfg  TableConfig
	mode partitioner.Mode
	// log is safe for concurrent use.
	log committer.Table
	env *writerEnv
	// dedupe is the lsn deduplication state, nil unless `dedupe: lsn`.
	// The pointer is set before the writer is shared and never changes;
	// what it points to is guarded by mu.
	dedupe *dedupeState

	mu struct {
		sync.Mutex
		buf *buffer.Table
		// schema is the table's committed schema evolved by the changes
		// in the buffer and in the running flush; every buffered change
		// fits it. A change evolves it only once the buffer has taken
		// the change, and dropping changes from the buffer rebuilds it
		// (rebuildSchemaLocked), so a change that is refused or dropped
		// never reaches a commit's schema.
		schema *codec.Schema
		// evolvedBy holds the source partitions whose changes in the
		// buffer evolved schema, and declared the column schemas
		// (Change.Declared, shared between changes) each partition's
		// buffered changes carry: what rebuildSchemaLocked needs, since
		// the buffer keeps values but not declared types. Both are reset
		// when the buffer is drained.
		evolvedBy map[topicPartition]bool
		declared  map[topicPartition][][]codec.Column
		// lastDeclared is the Declared slice and partition recorded
		// last, so the common case (a partition's consecutive changes
		// share one) records nothing.
		lastDeclared struct {
			tp   topicPartition
			cols []codec.Column
		}
		// durable maps a txn appId to what the table holds from that
		// source partition.
		durable map[string]txnState
		// snap is the latest snapshot this writer saw, nil before the
		// table exists.
		snap *committer.Snapshot
		// stale asks for a snapshot refresh before the next record is
		// buffered (set when partitions are assigned).
		stale bool
		// inflight is the flush running for this table; at most one, so
		// commits of a table land in order.
		inflight *flushJob
		// flushWanted asks for another flush as soon as inflight
		// finishes.
		flushWanted string
		// pk is the primary key columns, comma-separated, from record
		// keys or the table's metaData.
		pk string

		lastCommit  time.Time
		newestTS    int64
		rowsWritten int64
		// stateBytes is what countStateLocked counted against the budget.
		stateBytes int64
	}
}

// writerEnv is what the writers of one sink share. It is set up by New
// and not changed after.
type writerEnv struct {
	bucket   objstore.Bucket
	group    string
	instance string
	now      func() time.Time
	log      *slog.Logger
	metrics  *metrics
	// format opens the writers' tables.
	format committer.Format
	// dedupeWindow is the size of a table's dedupe window, 0 without
	// `dedupe: lsn`.
	dedupeWindow int
	// refuse takes changes that do not fit the table's committed schema:
	// it sends them to the dead-letter topic, or returns the RecordError
	// that stops the sink, as errors.tolerance says.
	refuse func(ctx context.Context, table string, misfits []misfit) error
	// ctrl is the memory budget, which counts each table's own state;
	// nil in tests that build writers alone.
	ctrl *buffer.Controller
}

// misfit is a flushed change whose value does not fit the committed type
// of its column, and why.
type misfit struct {
	change codec.Change
	cause  error
}

// newTableWriter returns the writer of the table at path; open loads it.
func newTableWriter(env *writerEnv, path, name string, cfg TableConfig) (*tableWriter, error) {
	mode, err := partitioner.ModeByName(cfg.Mode)
	if err != nil {
		return nil, err
	}
	maxBytes := cfg.MaxBufferBytes
	if maxBytes == 0 {
		maxBytes = 4 * mode.BlockSize
	}
	buf, err := buffer.NewTable(path, buffer.Options{
		FlushThreshold: cfg.FlushThreshold,
		FlushInterval:  cfg.FlushInterval,
		TargetBytes:    mode.BlockSize,
		MaxBytes:       maxBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", path, err)
	}
	w := &tableWriter{
		path: path, name: name, cfg: cfg, mode: mode, env: env,
		log: env.format.Open(path, committer.Options{
			Format:   cfg.Format,
			Instance: env.instance,
			Now:      env.now,
			Logger:   env.log,
		}),
	}
	if env.dedupeWindow > 0 {
		w.dedupe = newDedupeState(env.dedupeWindow)
	}
	w.mu.buf = buf
	w.mu.schema = codec.NewSchema()
	w.mu.schema.SetKafkaColumns(cfg.KafkaColumns == nil || *cfg.KafkaColumns)
	w.mu.durable = map[string]txnState{}
	w.mu.evolvedBy = map[topicPartition]bool{}
	w.mu.declared = map[topicPartition][][]codec.Column{}
	return w, nil
}

// load reads the table's log; nil means no table yet. It tries once: the
// caller retries the whole table load.
func (w *tableWriter) load(ctx context.Context) (*committer.Snapshot, error) {
	snap, err := w.log.Snapshot(ctx)
	if errors.Is(err, committer.ErrNoTable) {
		return nil, nil
	}
	if err != nil {
		return nil, inStep("load", fmt.Errorf("load table %s: %w", w.path, err))
	}
	return snap, nil
}

// loadFindNested is load for a table being opened: when its format can
// (committer.NestedFinder), the listing that loads the table also looks
// for a table nested inside its path. checked says whether it looked;
// nested is the nested table's path, "" if none.
func (w *tableWriter) loadFindNested(ctx context.Context) (snap *committer.Snapshot, nested string, checked bool, err error) {
	nf, ok := w.log.(committer.NestedFinder)
	if !ok {
		snap, err = w.load(ctx)
		return snap, "", false, err
	}
	snap, nested, checked, err = nf.SnapshotFindNested(ctx)
	if errors.Is(err, committer.ErrNoTable) {
		return nil, nested, checked, nil
	}
	if err != nil {
		return nil, "", false, inStep("load", fmt.Errorf("load table %s: %w", w.path, err))
	}
	return snap, "", true, nil
}

// seedDedupe fills the dedupe window from the newest files of snap.
func (w *tableWriter) seedDedupe(ctx context.Context, snap *committer.Snapshot) error {
	if w.dedupe == nil || snap == nil {
		return nil
	}
	return w.absorbFiles(ctx, snap, dedupeSeedFiles)
}

// refresh reloads the txn versions of a table after an assignment.
func (w *tableWriter) refresh(ctx context.Context) error {
	snap, err := w.load(ctx)
	if err != nil {
		return err
	}
	return w.adopt(snap, false)
}

// adopt takes a newer snapshot's txn versions and schema; keepStale
// leaves a pending refresh asked for.
func (w *tableWriter) adopt(snap *committer.Snapshot, keepStale bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !keepStale {
		w.mu.stale = false
	}
	return w.adoptSnapshotLocked(snap)
}

// markStale asks for a snapshot refresh before the next change is
// buffered: another member may have committed meanwhile.
func (w *tableWriter) markStale() {
	w.mu.Lock()
	w.mu.stale = true
	w.mu.Unlock()
}

// isStale reports whether a refresh is due.
func (w *tableWriter) isStale() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.stale
}

// admission is what a writer says of a change before it is buffered.
type admission int

const (
	admit admission = iota
	// skipDurable: the table holds the change's offset already.
	skipDurable
	// skipDuplicate: the dedupe window holds its (LSN, key).
	skipDuplicate
)

// admit checks a change read at offset from source partition tp (whose
// txn appId is appID, topic ID topicID, high watermark hwm) against what
// the table holds.
func (w *tableWriter) admit(tp topicPartition, appID, topicID string, hwm, offset int64, ch *codec.Change) (admission, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if st, ok := w.mu.durable[appID]; ok {
		if other, ok := st.otherTopic(topicID); ok {
			return admit, topicChangedError(w.path, st.version, tp, other, topicID, w.env.group)
		}
		if offset <= st.version {
			// Without topic IDs to compare (a table written before they
			// were recorded, or a broker without them), a table holding
			// offsets the partition does not have is the only sign of a
			// re-created topic.
			if hwm >= 0 && st.version >= hwm {
				return admit, fmt.Errorf("%w: table %s holds offset %d of %s/%d but the partition ends at %d; if the topic was re-created, stop all sinks of group %q, then either use a new group or delete the table's data for this topic",
					ErrOffsetsWentBack, w.path, st.version, tp.topic, tp.partition, hwm, w.env.group)
			}
			return skipDurable, nil
		}
	}
	if w.dedupe != nil && w.dedupe.isDup(ch) {
		return skipDuplicate, nil
	}
	return admit, nil
}

// memFor is how much the buffer's memory grows if it takes ch.
func (w *tableWriter) memFor(ch *codec.Change) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.buf.MemFor(ch)
}

// add buffers a change of source partition tp at now, and returns how much
// the buffer's memory grew. It fails with buffer.ErrOverflow when the
// buffer is full (flush it and try again), and with a recordErr when the
// change cannot be buffered at all.
func (w *tableWriter) add(tp topicPartition, ch *codec.Change, now time.Time) (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	// The schema the change needs is applied only once the buffer has
	// taken the change: a change refused (too large) or never buffered
	// (the run ends while it waits) must not evolve the schema the next
	// flush commits. A flush adopting a commit may widen the schema
	// meanwhile, so the evolution is computed under the same lock as the
	// Add.
	next, err := w.mu.schema.Evolved(ch)
	if err != nil {
		return 0, &recordErr{err}
	}
	before := w.mu.buf.Mem()
	if err := w.mu.buf.Add(*ch, now); err != nil {
		if errors.Is(err, buffer.ErrRecordTooLarge) {
			return 0, &recordErr{fmt.Errorf("change of %d bytes is larger than the table buffer limit (tables.*.max_buffer_bytes): %w", ch.Size(), err)}
		}
		return 0, err
	}
	if next != nil {
		w.mu.schema = next
	}
	w.acceptedLocked(tp, ch, next != nil)
	if w.dedupe != nil {
		w.dedupe.record(tp, ch)
	}
	if w.mu.pk == "" && len(ch.Key) > 0 {
		names := make([]string, len(ch.Key))
		for i, f := range ch.Key {
			names[i] = f.Name
		}
		w.mu.pk = strings.Clone(strings.Join(names, ","))
	}
	return w.mu.buf.Mem() - before, nil
}

// acceptedLocked records what rebuildSchemaLocked needs about a change
// the buffer took from source partition tp: whether it evolved the
// schema, and the column schema it declared.
func (w *tableWriter) acceptedLocked(tp topicPartition, ch *codec.Change, evolved bool) {
	if evolved {
		w.mu.evolvedBy[tp] = true
	}
	d := ch.Declared
	last := &w.mu.lastDeclared
	if len(d) == 0 || (last.tp == tp && len(last.cols) == len(d) && &last.cols[0] == &d[0]) {
		return
	}
	last.tp, last.cols = tp, d
	for _, seen := range w.mu.declared[tp] {
		if len(seen) == len(d) && &seen[0] == &d[0] {
			return
		}
	}
	w.mu.declared[tp] = append(w.mu.declared[tp], d)
}

// dropPartition removes the buffered changes of a source partition this
// sink no longer owns and returns the memory freed. If they evolved the
// schema, it is rebuilt from what the buffer still holds.
func (w *tableWriter) dropPartition(tp topicPartition) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	before := w.mu.buf.Mem()
	w.mu.buf.DropPartition(tp.topic, tp.partition)
	if w.dedupe != nil {
		w.dedupe.dropPartition(tp)
	}
	rebuild := w.mu.evolvedBy[tp]
	delete(w.mu.evolvedBy, tp)
	delete(w.mu.declared, tp)
	if w.mu.lastDeclared.tp == tp {
		w.mu.lastDeclared.cols = nil
	}
	if rebuild {
		w.rebuildSchemaLocked()
	}
	return before - w.mu.buf.Mem()
}

// takeFlush drains the buffer into a flush job, or, while a flush runs,
// notes that another is wanted after it. It returns nil when there is
// nothing to flush, a flush runs, or start is false (the sink is
// stopping).
func (w *tableWriter) takeFlush(reason string, start bool) *flushJob {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.buf.Len() == 0 {
		return nil
	}
	if w.mu.inflight != nil {
		if w.mu.flushWanted == "" {
			w.mu.flushWanted = reason
		}
		return nil
	}
	if !start {
		return nil
	}
	batch := w.mu.buf.Drain()
	if batch.Len() == 0 {
		return nil
	}
	job := newFlushJob(reason, batch, w.mu.schema.Clone(), w.env.now())
	// The buffer's changes are in the job now, and their evolutions in
	// its schema.
	clear(w.mu.evolvedBy)
	clear(w.mu.declared)
	w.mu.lastDeclared.tp, w.mu.lastDeclared.cols = topicPartition{}, nil
	w.mu.inflight = job
	w.mu.flushWanted = ""
	return job
}

// finishFlush records that job ended (err nil: durable) and returns why
// the table should flush again at once, or "".
func (w *tableWriter) finishFlush(job *flushJob, err error, now time.Time) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.mu.inflight = nil
	if w.dedupe != nil {
		w.dedupe.release(job.drained, err == nil)
	}
	if w.mu.flushWanted != "" {
		return w.mu.flushWanted
	}
	if ok, reason := w.mu.buf.ShouldFlush(now); ok {
		return reason
	}
	return ""
}

// nextHint is the size the buffer's next batch is allocated at.
func (w *tableWriter) nextHint() codec.RowsHint {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.buf.NextHint()
}

// seedHint sizes the first batch of a table never flushed (SeedHint).
func (w *tableWriter) seedHint(h codec.RowsHint) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.mu.buf.SeedHint(h)
}

// shouldFlush reports whether a flush trigger fired, and which.
func (w *tableWriter) shouldFlush(now time.Time) (bool, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.buf.ShouldFlush(now)
}

// dueIn is how long until the buffer's age trigger fires.
func (w *tableWriter) dueIn(now time.Time) (time.Duration, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.buf.DueIn(now)
}

// mem is the memory the buffer holds.
func (w *tableWriter) mem() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.buf.Mem()
}

// busy reports whether the table holds changes not yet durable: buffered
// or in a running flush.
func (w *tableWriter) busy() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.inflight != nil || w.mu.buf.Len() > 0
}

// flushRunning reports whether a flush of the table runs.
func (w *tableWriter) flushRunning() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.inflight != nil
}

// committedRows is how many rows this writer committed.
func (w *tableWriter) committedRows() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.rowsWritten
}

// status is the table's /status entry.
func (w *tableWriter) status(now time.Time) TableStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	ts := TableStatus{
		Table: w.path, Format: w.cfg.Format, Version: versionOf(w.mu.snap), LastCommit: w.mu.lastCommit,
		BufferedBytes: w.mu.buf.Bytes(), BufferedRecords: w.mu.buf.Len(),
		RowsWritten: w.mu.rowsWritten, Flushing: w.mu.inflight != nil,
	}
	if w.mu.newestTS > 0 {
		ts.FreshnessSeconds = max(0, float64(now.UnixMilli()-w.mu.newestTS)/1000)
	}
	return ts
}
