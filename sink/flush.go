package sink

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/parquetblock"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/partitioner"
	"github.com/evodb/sink/sink/buffer"
	"github.com/evodb/sink/tablefile"
)

// The flush steps of a table writer: a drained buffer becomes one data file
// and one commit naming it. In order: drop what the table already holds
// (dropDurable, and with dedupe dropCommittedLSN), create the table if it
// does not exist, refuse changes that do not fit the committed schema
// (refuseMisfits), upload the block, commit it (with conflict handling in
// flush) and report what became durable. Nothing exists for readers until
// the commit names the block; a crash at any step leaves at most an orphan
// file, which vacuum removes.

// flushJob is one drained table buffer on its way to a commit. The flush
// goroutine running it owns batch, schema and pending; the rest is set
// before it starts and only read after. The Sink keys the offsets the job
// holds back (partition.inflight) by the job.
type flushJob struct {
	reason string
	// batch is what Drain computed, narrowed as changes are found to be
	// durable already, duplicates or misfits.
	batch buffer.Batch
	// sources are the source partitions and offset ranges of the drained
	// batch: what becomes durable when the job succeeds.
	sources map[buffer.SourceKey]buffer.OffsetRange
	// drained are the changes as drained, which the dedupe window's
	// buffered entries are released by.
	drained *codec.Rows
	schema  *codec.Schema
	// mem is the memory the job holds until it is done (Batch.Mem).
	mem     int64
	started time.Time
	// commitID identifies the job's commit in every attempt, so a commit
	// whose put landed unseen is found by the next attempt instead of
	// landing twice (committer.Commit.ID).
	commitID string
	// pending is the commit of an attempt that failed with its outcome
	// unknown (the committer gave up): the next attempt commits it again,
	// unchanged, before anything else.
	pending *preparedCommit
	// topicIDs is the topic ID of each source partition in the job, where
	// the broker gave one (partition.topicID). Set before the job runs.
	topicIDs map[topicPartition]string
}

func newFlushJob(reason string, batch buffer.Batch, schema *codec.Schema, now time.Time) *flushJob {
	return &flushJob{
		reason:   reason,
		batch:    dedupeOffsets(batch),
		sources:  maps.Clone(batch.Sources),
		drained:  batch.Rows,
		schema:   schema,
		mem:      batch.Mem,
		started:  now,
		commitID: newID(16),
		topicIDs: map[topicPartition]string{},
	}
}

// preparedCommit is an uploaded block and the commit that names it.
type preparedCommit struct {
	commit committer.Commit
	// create is the metadata of the table the commit creates, when the
	// writer found no table (committer.CreateCommit); nil otherwise.
	create *committer.Metadata
	add    committer.Add
	event  *CommitEvent
	rows   *codec.Rows
}

// flushResult is what a successful flush made durable.
type flushResult struct {
	// durable is, for each source partition of the job, the last offset
	// of it the table now holds: committed by this flush, or found
	// durable, duplicate or refused on the way.
	durable map[topicPartition]int64
	// event describes the commit; nil when nothing was left to commit.
	event *CommitEvent
}

// CommitEvent describes one durable table commit. It is what the
// notifications topic carries (the seed's edge-cache invalidation).
type CommitEvent struct {
	Table        string   `json:"table"`
	Version      int64    `json:"version"`
	FilesAdded   []string `json:"files_added"`
	FilesRemoved []string `json:"files_removed"`
	MinLSN       uint64   `json:"min_lsn,string"`
	MaxLSN       uint64   `json:"max_lsn,string"`
	Rows         int64    `json:"rows"`
	Bytes        int64    `json:"bytes"`
	CommittedAt  int64    `json:"committed_at_ms"`
	Instance     string   `json:"instance"`
}

// flush makes a job durable: it prepares a commit, commits it, and when
// the committer refuses it because the table moved (part of the job is
// already durable, or the schema changed), re-reads the table and prepares
// again from what is left. It makes one attempt: an error leaves the job
// as it stands, and calling flush again with it goes on from there,
// committing an unresolved commit again under the same id.
func (w *tableWriter) flush(ctx context.Context, job *flushJob) (flushResult, error) {
	for {
		if job.pending == nil {
			p, err := w.prepare(ctx, job)
			if err != nil {
				return flushResult{}, err
			}
			if p == nil {
				return w.report(job, nil, nil)
			}
			job.pending = p
		}
		res, err := w.commit(ctx, job.pending)
		if err == nil {
			return w.report(job, job.pending, res)
		}
		if !refused(err) {
			return flushResult{}, err
		}
		// The commit was refused, so it is not in the log: the next one
		// may carry other changes under the same id.
		job.pending = nil
		if err := w.reload(ctx); err != nil {
			return flushResult{}, err
		}
	}
}

// prepare narrows the job to what the table does not hold yet and uploads
// it as a block. It returns nil when nothing is left to commit.
func (w *tableWriter) prepare(ctx context.Context, job *flushJob) (*preparedCommit, error) {
	snap := w.snapshot()
	if snap == nil {
		return w.prepareFirst(ctx, job)
	}
	// Before anything is filtered as already durable: offsets of another
	// topic ID say nothing about these records.
	if err := w.checkTopicIDs(snap, job.topicIDs); err != nil {
		return nil, permanent(err)
	}
	if err := w.dropDurable(ctx, job, snap); err != nil {
		return nil, err
	}
	if job.batch.Len() == 0 {
		return nil, nil
	}
	if snap.Metadata.HasSchema() {
		if err := w.refuseMisfits(ctx, job, snap); err != nil {
			return nil, err
		}
		if job.batch.Len() == 0 {
			return nil, nil
		}
	}
	ids := snap.Metadata.FieldIDsFor(job.schema)
	add, ev, err := w.upload(ctx, job.schema, job.batch, ids)
	if err != nil {
		return nil, inStep("upload", err)
	}
	c, err := w.newCommit(job, snap, add)
	if err != nil {
		return nil, permanent(err)
	}
	c.FieldIDs = ids
	return &preparedCommit{commit: c, add: add, event: ev, rows: job.batch.Rows}, nil
}

// dropDurable takes out of the job the changes the table holds already:
// offsets at or below the table's txn version for their partition, and
// with dedupe, (LSN, key) pairs the window holds.
func (w *tableWriter) dropDurable(ctx context.Context, job *flushJob, snap *committer.Snapshot) error {
	kept, dropped := filterDurable(job.batch, snap, w.env.group)
	if dropped > 0 {
		w.env.metrics.durableSkipped.WithLabelValues(w.path).Add(float64(dropped))
		w.env.log.Info("dropping records already durable in table", "table", w.path, "records", dropped, "version", snap.Version)
	}
	job.batch = kept
	if w.dedupe == nil {
		return nil
	}
	// Other members may have committed the originals of replays this job
	// holds: learn their files before filtering.
	if err := w.absorbFiles(ctx, snap, 0); err != nil {
		return err
	}
	kept, dropped = w.dropCommittedLSN(job.batch)
	if dropped > 0 {
		w.env.metrics.dedupeDropped.WithLabelValues(w.path).Add(float64(dropped))
		job.batch = kept
	}
	return nil
}

// refuseMisfits rebases the job's schema onto the committed one and takes
// out of the job the changes whose values do not fit it (another member
// committed a column first, with a type these values cannot take). They
// are record errors like those refused at decode, handed to env.refuse
// before the commit lets their offsets pass.
//
// When the rebase leaves the type of every column of the job's schema as
// it was, no change is checked: the job's changes fit the schema they were
// buffered under, since buffers accept a change only into a schema its
// values fit (codec.Schema.Accept), and Check asks no more than that. This
// is what every flush of a table whose schema another member did not
// change meets, and the check had turned each change back into a Change.
// TestWriterMisfitCheckSkipped gives a job a change that does not fit its
// own schema, and sees the upload refuse it instead.
func (w *tableWriter) refuseMisfits(ctx context.Context, job *flushJob, snap *committer.Snapshot) error {
	theirs, err := tablefile.TableSchema(snap)
	if err != nil {
		return permanent(err)
	}
	// The committed type wins over the one this job's changes gave a
	// column.
	before := slices.Clone(job.schema.Columns())
	job.schema.Rebase(theirs)
	if sameTypes(before, job.schema) {
		return nil
	}
	var out []misfit
	i := -1
	kept := job.batch.Filter(func(codec.RowMeta) bool {
		i++
		ch := job.batch.Rows.Change(i)
		if cause := job.schema.Check(&ch); cause != nil {
			out = append(out, misfit{change: ch, cause: cause})
			return false
		}
		return true
	})
	if len(out) == 0 {
		return nil
	}
	if err := w.env.refuse(ctx, w.path, out); err != nil {
		return permanent(err)
	}
	job.batch = kept
	return nil
}

// sameTypes reports whether every column of cols has the same type in s.
func sameTypes(cols []codec.Column, s *codec.Schema) bool {
	for _, c := range cols {
		if now, ok := s.Column(c.Name); !ok || now.Type != c.Type {
			return false
		}
	}
	return true
}

// prepareFirst uploads the job as the first block of a table the writer
// found absent, and prepares the commit that creates the table with it
// (committer.CreateCommit): for Delta, version 0 holds the table's
// metadata and the block, one log write instead of two. Nothing of the
// job can be durable yet, so nothing is dropped, and every change fits the
// job's schema, which becomes the table's. If another creator wins the
// table meanwhile, the commit lands after its version 0 when the schemas
// are the same, and is otherwise refused with ErrMetadataChanged, on which
// flush reads the table and prepares the job again against it, as after
// any concurrent schema change.
func (w *tableWriter) prepareFirst(ctx context.Context, job *flushJob) (*preparedCommit, error) {
	if job.batch.Len() == 0 {
		return nil, nil
	}
	// A format with field IDs says which IDs the table it creates gives
	// the job's columns; the commit refuses them if the table that
	// exists by then has others.
	var ids map[string]int
	if ft, ok := w.log.(committer.FieldIDTable); ok {
		ids = ft.NewFieldIDs(job.schema)
	}
	add, ev, err := w.upload(ctx, job.schema, job.batch, ids)
	if err != nil {
		return nil, inStep("upload", err)
	}
	cfg := map[string]string{partitioner.ModeConfigKey: w.mode.Name}
	if pk := w.primaryKey(); pk != "" {
		cfg[primaryKeyConfig] = pk
	}
	md := &committer.Metadata{
		ID:            newID(16),
		Name:          w.name,
		Schema:        job.schema.Clone(),
		CreatedTime:   w.env.now().UnixMilli(),
		Configuration: cfg,
	}
	c := committer.Commit{
		ID:          job.commitID,
		Operation:   committer.OpStreamingUpdate,
		Adds:        []committer.Add{add},
		Txns:        txnConditions(job.batch.Sources, job.topicIDs, w.env.group),
		ReadVersion: -1,
		FieldIDs:    ids,
		Info: map[string]string{
			"group":  w.env.group,
			"reason": job.reason,
		},
	}
	return &preparedCommit{commit: c, create: md, add: add, event: ev, rows: job.batch.Rows}, nil
}

// upload encodes a batch into a Parquet block, with the field IDs ids
// (nil: none), and writes it create-only, once: the bucket retries its own
// transient errors. The block is invisible to readers until a commit
// names it.
func (w *tableWriter) upload(ctx context.Context, schema *codec.Schema, batch buffer.Batch, ids map[string]int) (committer.Add, *CommitEvent, error) {
	rows := batch.Rows
	// Blocks hold rows in LSN order (then source offset) so readers can
	// skip by _lsn and compaction merges sorted runs.
	rows.Sort()
	id := batch.BlockID()
	wr, err := tablefile.WriteBlock(ctx, w.env.bucket, w.path, tablefile.Block{
		Schema: schema,
		Rows:   rows,
		Encode: parquetblock.EncodeOptions{
			Compression:   w.cfg.Compression,
			RowGroupBytes: w.mode.BlockSize,
			KafkaColumns:  schema.KafkaColumns(),
			FieldIDs:      ids,
		},
		Name: func(_ codec.BlockStats, attempt int) string {
			if attempt == 0 {
				return partitioner.DataFileKey(id)
			}
			return strings.TrimSuffix(partitioner.DataFileKey(id), ".parquet") + "-" + newID(4) + ".parquet"
		},
		Level:      0,
		Sources:    tablefile.FormatSources(id.Sources),
		DataChange: true,
		ModTime:    w.env.now(),
	})
	if errors.Is(err, tablefile.ErrEncode) {
		// Rows that do not fit their schema fail the same way every
		// time: stop with the record named rather than retry.
		return committer.Add{}, nil, permanent(err)
	}
	if err != nil {
		return committer.Add{}, nil, err
	}
	w.env.metrics.blockBytes.Observe(float64(wr.Add.Size))
	ev := &CommitEvent{
		Table: w.path, FilesAdded: []string{wr.Add.Path}, FilesRemoved: []string{},
		MinLSN: wr.Stats.MinLSN, MaxLSN: wr.Stats.MaxLSN, Rows: wr.Stats.Rows, Bytes: wr.Add.Size,
		Instance: w.env.instance,
	}
	return wr.Add, ev, nil
}

// newCommit builds the commit of an uploaded block: conditional on the
// txn versions of the job's partitions, under the job's commit id, with
// the table's metadata if the job's schema widens it or the primary key
// is new.
func (w *tableWriter) newCommit(job *flushJob, snap *committer.Snapshot, add committer.Add) (committer.Commit, error) {
	c := committer.Commit{
		ID:          job.commitID,
		Operation:   committer.OpStreamingUpdate,
		Adds:        []committer.Add{add},
		Txns:        txnConditions(job.batch.Sources, job.topicIDs, w.env.group),
		ReadVersion: snap.Version,
		Info: map[string]string{
			"group":  w.env.group,
			"reason": job.reason,
		},
	}
	// The job's schema is rebased onto the table's: it holds every
	// committed column with its committed type.
	md, err := tablefile.SchemaMetadata(snap, job.schema)
	if err != nil {
		return c, err
	}
	if pk := w.primaryKey(); pk != "" && snap.Metadata.Configuration[primaryKeyConfig] != pk {
		if md == nil {
			m := snap.Metadata
			md = &m
		}
		md.Configuration = maps.Clone(md.Configuration)
		if md.Configuration == nil {
			md.Configuration = map[string]string{}
		}
		md.Configuration[primaryKeyConfig] = pk
	}
	c.Metadata = md
	return c, nil
}

// commit puts a prepared commit. The committer resolves lost races and
// puts of unknown outcome by itself; an error it gives up with is
// returned for the caller to run the flush again.
func (w *tableWriter) commit(ctx context.Context, p *preparedCommit) (*committer.CommitResult, error) {
	start := time.Now()
	var (
		res *committer.CommitResult
		err error
	)
	if p.create != nil {
		res, err = committer.CreateCommit(ctx, w.log, *p.create, p.commit)
	} else {
		res, err = w.log.Commit(ctx, p.commit)
	}
	w.env.metrics.commitDuration.Observe(time.Since(start).Seconds())
	switch {
	case err == nil:
		if p.create != nil && res.Snapshot.Metadata.ID == p.create.ID {
			w.env.log.Info("table created", "table", w.path, "version", res.Version)
		}
		return res, nil
	case refused(err):
		// A lineage conflict (another sink committed records of another
		// topic ID meanwhile) is reported by checkTopicIDs once the
		// table is read again.
		w.env.metrics.commitConflicts.WithLabelValues(w.path).Inc()
		w.env.log.Info("commit refused, re-reading the table", "table", w.path, "err", err)
		return nil, err
	case errors.Is(err, committer.ErrNoTable), errors.Is(err, committer.ErrTableReplaced):
		// The table was deleted under this sink. Its records are not
		// durable and their offsets have not moved; a restarted sink
		// reads the table as it now is and writes them again.
		return nil, permanent(fmt.Errorf("commit block %s: %w: the table was deleted while this sink was writing to it; restart the sink to create it again from the group's committed offsets", p.add.Path, err))
	default:
		return nil, inStep("commit", fmt.Errorf("commit block %s: %w", p.add.Path, err))
	}
}

// refused reports whether the committer refused a commit because the
// table moved in a way a re-read resolves: txn versions or lineages now
// overlap the commit's, or the schema changed.
func refused(err error) bool {
	var conflict *committer.TxnConflictError
	var changed *committer.LineageConflictError
	return errors.As(err, &conflict) || errors.As(err, &changed) || errors.Is(err, committer.ErrMetadataChanged)
}

// reload reads the table's log past the latest snapshot and adopts it.
func (w *tableWriter) reload(ctx context.Context) error {
	snap, err := w.log.Update(ctx, w.snapshot())
	if err != nil {
		return inStep("load", fmt.Errorf("reload table %s: %w", w.path, err))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return permanent(w.adoptSnapshotLocked(snap))
}

// report records a flush's commit (nil p: nothing was left to commit) and
// returns what the flush made durable. It fails only if the committed
// table's schema cannot be read, which no retry changes.
func (w *tableWriter) report(job *flushJob, p *preparedCommit, res *committer.CommitResult) (flushResult, error) {
	out := flushResult{durable: make(map[topicPartition]int64, len(job.sources))}
	for k, r := range job.sources {
		out.durable[topicPartition{k.Topic, k.Partition}] = r.Last
	}
	now := w.env.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if p == nil {
		return out, nil
	}
	ev := *p.event
	ev.Version = res.Version
	ev.CommittedAt = now.UnixMilli()
	out.event = &ev
	if w.dedupe != nil {
		w.dedupe.seen[p.add.Path] = true
	}
	if err := w.adoptSnapshotLocked(res.Snapshot); err != nil {
		return flushResult{}, permanent(err)
	}
	rows := p.rows.Len()
	w.mu.lastCommit = now
	w.mu.rowsWritten += int64(rows)
	for i := range rows {
		w.mu.newestTS = max(w.mu.newestTS, p.rows.Meta(i).TS)
	}
	w.env.metrics.freshness.WithLabelValues(w.path).Set(max(0, float64(now.UnixMilli()-w.mu.newestTS)/1000))
	w.env.metrics.rowsCommitted.WithLabelValues(w.path).Add(float64(rows))
	w.env.log.Debug("block committed", "table", w.path, "version", res.Version, "rows", rows, "bytes", ev.Bytes)
	return out, nil
}

// filterDurable drops changes whose offset is at or below the table's txn
// version for their source partition.
func filterDurable(b buffer.Batch, snap *committer.Snapshot, group string) (buffer.Batch, int) {
	durable := map[buffer.SourceKey]int64{}
	overlap := false
	for k, r := range b.Sources {
		if v, ok := snap.Txns[appIDOf(group, topicPartition{k.Topic, k.Partition})]; ok {
			durable[k] = v
			overlap = overlap || v >= r.First
		}
	}
	if !overlap {
		// The common case: nothing is durable yet, no copy.
		return b, 0
	}
	rest, ok := b.WithoutDurable(durable)
	if !ok {
		rest = buffer.Batch{Table: b.Table, FirstAdded: b.FirstAdded}
	}
	return rest, b.Len() - rest.Len()
}

// dedupeOffsets removes a repeated (topic, partition, offset) within one
// batch, keeping the first. A batch never should hold one, but a block
// must never carry a record twice even if bookkeeping went wrong.
func dedupeOffsets(b buffer.Batch) buffer.Batch {
	// Buffers append in poll order, so each partition's offsets normally
	// increase strictly through a batch: check that cheaply first.
	last := map[topicPartition]int64{}
	increasing := true
	for i := range b.Len() {
		m := b.Rows.Meta(i)
		tp := topicPartition{m.Topic, m.Partition}
		if prev, ok := last[tp]; ok && m.Offset <= prev {
			increasing = false
			break
		}
		last[tp] = m.Offset
	}
	if increasing {
		return b
	}
	type key struct {
		tp     topicPartition
		offset int64
	}
	seen := make(map[key]struct{}, b.Len())
	return b.Filter(func(m codec.RowMeta) bool {
		k := key{topicPartition{m.Topic, m.Partition}, m.Offset}
		if _, dup := seen[k]; dup {
			return false
		}
		seen[k] = struct{}{}
		return true
	})
}

// checkTopicIDs returns ErrOffsetsWentBack (wrapped) if snap recorded,
// for a source partition of a flush, another topic ID than the one the
// flush's records were read from. It reads every txn of the table once.
func (w *tableWriter) checkTopicIDs(snap *committer.Snapshot, topicIDs map[topicPartition]string) error {
	if len(topicIDs) == 0 {
		return nil
	}
	byApp := make(map[string]topicPartition, len(topicIDs))
	for tp := range topicIDs {
		byApp[appIDOf(w.env.group, tp)] = tp
	}
	for app := range snap.Txns {
		id, topicID, ok := committer.SplitLineage(app)
		if !ok {
			continue
		}
		if tp, ok := byApp[id]; ok && topicIDs[tp] != topicID {
			return topicChangedError(w.path, snap.Txns[id], tp, topicID, topicIDs[tp], w.env.group)
		}
	}
	return nil
}

// txnConditions builds one txn condition per source partition, sorted by
// app id, with the partition's topic ID as its lineage where it is known.
func txnConditions(sources map[buffer.SourceKey]buffer.OffsetRange, topicIDs map[topicPartition]string, group string) []committer.TxnCondition {
	out := make([]committer.TxnCondition, 0, len(sources))
	for k, r := range sources {
		tp := topicPartition{k.Topic, k.Partition}
		out = append(out, committer.TxnCondition{
			AppID: appIDOf(group, tp), FirstOffset: r.First, LastOffset: r.Last, Lineage: topicIDs[tp],
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].AppID < out[j].AppID })
	return out
}

func newID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// flushEncoderBytes is what one flush's Parquet writer holds while it
// encodes a block: its column page buffers, the pages compressed, the
// statistics. The heap profiles at 2,048 tables held 14 MB of encoders,
// of which 7-8.6 MiB were the zstd states; the rest was up to four
// flushes' writers.
const flushEncoderBytes = 3 << 19 // 1.5 MiB

// encoderReserve is what encoding holds against the memory budget however
// little is buffered: the zstd states kept for the life of the process and
// a Parquet writer for each of maxFlushes concurrent flushes. The flushes'
// writers are transient, but at 2,048 tables all of them run at once often
// enough that the peak includes them.
func encoderReserve(maxFlushes int) int64 {
	return parquetblock.ZstdEncoderBytes() + int64(maxFlushes)*flushEncoderBytes
}
