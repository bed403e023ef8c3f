package sink

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/partitioner"
	"github.com/evodb/sink/sink/buffer"
	"github.com/evodb/sink/tablefile"
)

// flushJob is one drained table buffer on its way to a commit.
type flushJob struct {
	table   *table
	reason  string
	rows    *codec.Rows
	schema  *codec.Schema
	bytes   int64 // the memory the job holds until it is done (Batch.Mem)
	started time.Time
	// firsts is the first offset of each source partition in the job, the
	// entries this job holds in partition.inflight.
	firsts map[topicPartition]int64
	// topicIDs is the topic ID of each source partition in the job, where
	// the broker gave one (partition.topicID).
	topicIDs map[topicPartition]string
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

// startFlushLocked drains t's buffer into a job and runs it.
func (s *Sink) startFlushLocked(t *table, reason string) {
	batch := t.buf.Drain()
	if batch.Rows == nil || batch.Rows.Len() == 0 {
		return
	}
	job := &flushJob{
		table:    t,
		reason:   reason,
		rows:     batch.Rows,
		schema:   t.schema.Clone(),
		bytes:    batch.Mem,
		started:  s.now(),
		firsts:   map[topicPartition]int64{},
		topicIDs: map[topicPartition]string{},
	}
	for _, p := range s.parts {
		if first, ok := p.pending[t.path]; ok {
			job.firsts[p.tp] = first
			if p.topicID != "" {
				job.topicIDs[p.tp] = p.topicID
			}
			p.inflight[job] = first
			delete(p.pending, t.path)
		}
	}
	t.drainedLocked()
	t.inflight = job
	t.flushWanted = ""
	s.flushing += job.bytes
	s.metrics.flushes.WithLabelValues(reason).Inc()
	s.noteFlushLocked(reason)
	s.flushes.Add(1)
	go s.runFlush(job)
}

// runFlush makes a job durable, then releases its bookkeeping.
func (s *Sink) runFlush(job *flushJob) {
	defer s.flushes.Done()
	ctx := s.flushCtx
	select {
	case s.flushSem <- struct{}{}:
	case <-ctx.Done():
	}
	var ev *CommitEvent
	err := ctx.Err()
	if err == nil {
		ev, err = s.flush(ctx, job)
		<-s.flushSem
	}
	t := job.table

	s.mu.Lock()
	defer s.mu.Unlock()
	t.inflight = nil
	if t.dedupe != nil {
		t.dedupe.release(job.rows, err == nil)
	}
	s.buffered -= job.bytes
	s.flushing -= job.bytes
	s.metrics.bufferedBytes.Set(float64(s.buffered))
	// Flushes recompute the budget as they finish, so a paused poll wakes
	// as soon as memory frees rather than at its next timeout.
	s.applyBackpressureLocked()
	switch {
	case err == nil:
		// Durable: release the job's hold on its partitions' offsets.
		for tp := range job.firsts {
			if p := s.parts[tp]; p != nil {
				delete(p.inflight, job)
			}
		}
		s.metrics.flushDuration.Observe(s.now().Sub(job.started).Seconds())
	case s.aborting || errors.Is(err, context.Canceled):
		// Abandoned: the partitions' offsets never passed these records,
		// so their next owner re-reads them.
	default:
		s.setFatal(fmt.Errorf("flush table %s: %w", t.path, err))
	}
	s.flushDone.Broadcast()
	if ev != nil && s.onCommit != nil {
		s.onCommit(*ev)
	}
	if s.fatal == nil && !s.aborting {
		if t.flushWanted != "" {
			s.requestFlush(t, t.flushWanted)
		} else if ok, reason := t.buf.ShouldFlush(s.now()); ok {
			s.requestFlush(t, reason)
		}
	}
}

// flush encodes, uploads and commits a job, retrying store errors with
// backoff until commit.store_retry_timeout. When the committer refuses the
// commit because part of the job is already durable (a replay or a zombie),
// it drops the durable records and commits the rest.
func (s *Sink) flush(ctx context.Context, job *flushJob) (*CommitEvent, error) {
	t := job.table
	batch := buffer.BatchOf(t.path, dedupeOffsets(job.rows), job.started)
	schema := job.schema
	var snap *committer.Snapshot
	s.mu.Lock()
	snap = t.snap
	s.mu.Unlock()

	for attempt := 0; ; attempt++ {
		if snap == nil {
			created, err := s.createTable(ctx, t, schema)
			if err != nil {
				return nil, err
			}
			snap = created
		}
		// Before anything is filtered as already durable: offsets of
		// another topic ID say nothing about these records.
		if err := s.checkTopicIDs(t, snap, job.topicIDs); err != nil {
			return nil, err
		}
		kept, dropped := s.filterDurable(batch, snap)
		if dropped > 0 {
			s.metrics.durableSkipped.WithLabelValues(t.path).Add(float64(dropped))
			s.log.Info("dropping records already durable in table", "table", t.path, "records", dropped, "version", snap.Version)
		}
		batch = kept
		if t.dedupe != nil {
			// Other members may have committed the originals of replays
			// this job holds: learn their files before filtering.
			if err := s.absorbFiles(ctx, t, snap, 0); err != nil {
				return nil, err
			}
			rows, dropped := s.filterCommittedLSN(t, batch.Rows)
			if dropped > 0 {
				s.metrics.dedupeDropped.WithLabelValues(t.path).Add(float64(dropped))
				batch = buffer.BatchOf(t.path, rows, batch.FirstAdded)
			}
		}
		if batch.Len() == 0 {
			s.mu.Lock()
			err := s.adoptSnapshotLocked(t, snap)
			s.mu.Unlock()
			return nil, err
		}
		if snap.Metadata.HasSchema() {
			theirs, err := tablefile.TableSchema(snap)
			if err != nil {
				return nil, err
			}
			// Another member may have committed a column with another
			// type than this job's changes gave it: the committed type
			// wins, and changes that do not fit it are record errors.
			schema.Rebase(theirs)
			if batch, err = s.refuseMisfits(ctx, t, schema, batch); err != nil {
				return nil, err
			}
			if batch.Len() == 0 {
				s.mu.Lock()
				err := s.adoptSnapshotLocked(t, snap)
				s.mu.Unlock()
				return nil, err
			}
		}

		add, ev, err := s.upload(ctx, t, schema, batch)
		if err != nil {
			return nil, err
		}
		c := committer.Commit{
			Operation:   committer.OpStreamingUpdate,
			Adds:        []committer.Add{add},
			Txns:        s.txnConditions(batch.Sources, job.topicIDs),
			ReadVersion: snap.Version,
			Info: map[string]string{
				"group":  s.cfg.Kafka.Group,
				"reason": job.reason,
			},
		}
		// The job's schema is rebased onto the table's: it holds every
		// committed column with its committed type.
		md, err := tablefile.SchemaMetadata(snap, schema)
		if err != nil {
			return nil, err
		}
		if pk := s.primaryKey(t); pk != "" && snap.Metadata.Configuration[primaryKeyConfig] != pk {
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
		var res *committer.CommitResult
		start := time.Now()
		err = s.retry(ctx, "commit", func() error {
			var cerr error
			res, cerr = t.log.Commit(ctx, c)
			var conflict *committer.TxnConflictError
			var changed *committer.LineageConflictError
			if errors.As(cerr, &conflict) || errors.As(cerr, &changed) || errors.Is(cerr, committer.ErrMetadataChanged) ||
				errors.Is(cerr, committer.ErrNoTable) || errors.Is(cerr, committer.ErrTableReplaced) {
				return backoff.Permanent(cerr)
			}
			return cerr
		})
		s.metrics.commitDuration.Observe(time.Since(start).Seconds())
		var conflict *committer.TxnConflictError
		var changed *committer.LineageConflictError
		switch {
		case err == nil:
		case errors.As(err, &conflict), errors.As(err, &changed), errors.Is(err, committer.ErrMetadataChanged):
			// A lineage conflict (another sink committed records of
			// another topic ID meanwhile) is reported by checkTopicIDs
			// once the table is read again.
			s.metrics.commitConflicts.WithLabelValues(t.path).Inc()
			s.log.Info("commit refused, re-reading the table", "table", t.path, "err", err, "attempt", attempt)
			if err := s.retry(ctx, "load", func() error {
				var lerr error
				snap, lerr = t.log.Update(ctx, snap)
				return lerr
			}); err != nil {
				return nil, fmt.Errorf("reload table: %w", err)
			}
			continue
		case errors.Is(err, committer.ErrNoTable), errors.Is(err, committer.ErrTableReplaced):
			// The table was deleted under this sink. Its records are not
			// durable and their offsets have not moved; a restarted sink
			// reads the table as it now is and writes them again.
			return nil, fmt.Errorf("commit block %s: %w: the table was deleted while this sink was writing to it; restart the sink to create it again from the group's committed offsets", add.Path, err)
		default:
			return nil, fmt.Errorf("commit block %s: %w", add.Path, err)
		}

		ev.Version = res.Version
		ev.CommittedAt = s.now().UnixMilli()
		s.mu.Lock()
		if t.dedupe != nil {
			t.dedupe.seen[add.Path] = true
		}
		err = s.adoptSnapshotLocked(t, res.Snapshot)
		t.lastCommit = s.now()
		t.rowsWritten += int64(batch.Len())
		s.noteCommitLocked(t.path, batch.Len(), ev.Bytes)
		for i := range batch.Len() {
			t.newestTS = max(t.newestTS, batch.Rows.Meta(i).TS)
		}
		s.metrics.freshness.WithLabelValues(t.path).Set(max(0, float64(s.now().UnixMilli()-t.newestTS)/1000))
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		s.metrics.rowsCommitted.WithLabelValues(t.path).Add(float64(batch.Len()))
		s.log.Debug("block committed", "table", t.path, "version", res.Version, "rows", batch.Len(), "bytes", ev.Bytes)
		s.notify(ctx, ev)
		return ev, nil
	}
}

// refuseMisfits takes out of batch the changes whose values do not fit the
// job's schema once it is rebased onto the committed one (another member
// committed a column first, with a type these values cannot take). They
// are record errors like those refused at decode: with errors.tolerance
// all they go to the dead-letter topic, rendered as evodb records (the
// original record is no longer at hand; the headers name it), before the
// commit lets their offsets pass; otherwise the first stops the sink.
func (s *Sink) refuseMisfits(ctx context.Context, t *table, schema *codec.Schema, batch buffer.Batch) (buffer.Batch, error) {
	var misfit []bool
	var dlq []*kgo.Record
	for i := range batch.Len() {
		ch := batch.Rows.Change(i)
		cause := schema.Check(&ch)
		if cause == nil {
			continue
		}
		s.metrics.decodeErrors.WithLabelValues(ch.Topic).Inc()
		if s.cfg.Errors.Tolerance != "all" {
			return batch, &RecordError{Topic: ch.Topic, Partition: ch.Partition, Offset: ch.Offset, Err: cause}
		}
		if misfit == nil {
			misfit = make([]bool, batch.Len())
		}
		misfit[i] = true
		dlq = append(dlq, &kgo.Record{
			Topic: s.cfg.Errors.DLQTopic,
			Value: codec.AppendEvoDB(nil, &ch),
			Headers: []kgo.RecordHeader{
				{Key: "evodb.error", Value: []byte(cause.Error())},
				{Key: "evodb.source.topic", Value: []byte(ch.Topic)},
				{Key: "evodb.source.partition", Value: []byte(strconv.Itoa(int(ch.Partition)))},
				{Key: "evodb.source.offset", Value: []byte(strconv.FormatInt(ch.Offset, 10))},
				{Key: "evodb.format", Value: []byte(codec.FormatEvoDB)},
			},
		})
	}
	if len(dlq) == 0 {
		return batch, nil
	}
	if err := s.cl.ProduceSync(ctx, dlq...).FirstErr(); err != nil {
		return batch, fmt.Errorf("send %d changes of table %s to dead-letter topic %s: %w", len(dlq), t.path, s.cfg.Errors.DLQTopic, err)
	}
	for _, r := range dlq {
		topic := string(r.Headers[1].Value)
		s.metrics.dlqRecords.WithLabelValues(topic).Inc()
		s.log.Warn("change sent to dead-letter topic", "table", t.path, "topic", topic, "partition", string(r.Headers[2].Value), "offset", string(r.Headers[3].Value), "dlq", s.cfg.Errors.DLQTopic, "err", string(r.Headers[0].Value))
	}
	i := -1
	rows := batch.Rows.Filter(func(codec.RowMeta) bool { i++; return !misfit[i] })
	return buffer.BatchOf(t.path, rows, batch.FirstAdded), nil
}

// createTable writes version 0 of a new table; concurrent creators converge.
func (s *Sink) createTable(ctx context.Context, t *table, schema *codec.Schema) (*committer.Snapshot, error) {
	var snap *committer.Snapshot
	err := s.retry(ctx, "create", func() error {
		var cerr error
		snap, cerr = t.log.Create(ctx, committer.Metadata{
			ID:            newID(16),
			Name:          t.name,
			Schema:        schema.Clone(),
			CreatedTime:   s.now().UnixMilli(),
			Configuration: s.createConfiguration(t),
		})
		return cerr
	})
	if err != nil {
		return nil, fmt.Errorf("create table %s: %w", t.path, err)
	}
	s.log.Info("table created", "table", t.path, "version", snap.Version)
	return snap, nil
}

// filterDurable drops changes whose offset is at or below the table's txn
// version for their source partition.
func (s *Sink) filterDurable(b buffer.Batch, snap *committer.Snapshot) (buffer.Batch, int) {
	durable := map[buffer.SourceKey]int64{}
	overlap := false
	for k, r := range b.Sources {
		if v, ok := snap.Txns[s.appID(topicPartition{k.Topic, k.Partition})]; ok {
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
		rest = buffer.BatchOf(b.Table, nil, b.FirstAdded)
	}
	return rest, b.Len() - rest.Len()
}

// dedupeOffsets removes a repeated (topic, partition, offset) within one
// job, keeping the first. A job never should hold one, but a block must
// never carry a record twice even if bookkeeping went wrong.
func dedupeOffsets(rows *codec.Rows) *codec.Rows {
	// Buffers append in poll order, so each partition's offsets normally
	// increase strictly through a job: check that cheaply first.
	last := map[topicPartition]int64{}
	increasing := true
	for i := range rows.Len() {
		m := rows.Meta(i)
		tp := topicPartition{m.Topic, m.Partition}
		if prev, ok := last[tp]; ok && m.Offset <= prev {
			increasing = false
			break
		}
		last[tp] = m.Offset
	}
	if increasing {
		return rows
	}
	type key struct {
		tp     topicPartition
		offset int64
	}
	seen := make(map[key]struct{}, rows.Len())
	return rows.Filter(func(m codec.RowMeta) bool {
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
func (s *Sink) checkTopicIDs(t *table, snap *committer.Snapshot, topicIDs map[topicPartition]string) error {
	if len(topicIDs) == 0 {
		return nil
	}
	byApp := make(map[string]topicPartition, len(topicIDs))
	for tp := range topicIDs {
		byApp[s.appID(tp)] = tp
	}
	for app := range snap.Txns {
		id, topicID, ok := committer.SplitLineage(app)
		if !ok {
			continue
		}
		if tp, ok := byApp[id]; ok && topicIDs[tp] != topicID {
			return topicChangedError(t.path, snap.Txns[id], tp, topicID, topicIDs[tp], s.cfg.Kafka.Group)
		}
	}
	return nil
}

// txnConditions builds one txn condition per source partition, sorted by
// app id, with the partition's topic ID as its lineage where it is known.
func (s *Sink) txnConditions(sources map[buffer.SourceKey]buffer.OffsetRange, topicIDs map[topicPartition]string) []committer.TxnCondition {
	out := make([]committer.TxnCondition, 0, len(sources))
	for k, r := range sources {
		tp := topicPartition{k.Topic, k.Partition}
		out = append(out, committer.TxnCondition{
			AppID: s.appID(tp), FirstOffset: r.First, LastOffset: r.Last, Lineage: topicIDs[tp],
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].AppID < out[j].AppID })
	return out
}

// upload encodes a batch into a Parquet block and writes it create-only.
// The block is invisible to readers until a commit names it.
func (s *Sink) upload(ctx context.Context, t *table, schema *codec.Schema, batch buffer.Batch) (committer.Add, *CommitEvent, error) {
	rows := batch.Rows
	// Blocks hold rows in LSN order (then source offset) so readers can
	// skip by _lsn and compaction merges sorted runs.
	rows.Sort()
	id := batch.BlockID()
	w, err := tablefile.WriteBlock(ctx, s.bucket, t.path, tablefile.Block{
		Schema: schema,
		Rows:   rows,
		Encode: codec.EncodeOptions{
			Compression:   t.cfg.Compression,
			RowGroupBytes: t.mode.BlockSize,
			KafkaColumns:  schema.KafkaColumns(),
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
		ModTime:    s.now(),
		Retry: func(ctx context.Context, op func() error) error {
			return s.retry(ctx, "upload", op)
		},
	})
	if err != nil {
		return committer.Add{}, nil, err
	}
	s.metrics.blockBytes.Observe(float64(w.Add.Size))
	ev := &CommitEvent{
		Table: t.path, FilesAdded: []string{w.Add.Path}, FilesRemoved: []string{},
		MinLSN: w.Stats.MinLSN, MaxLSN: w.Stats.MaxLSN, Rows: w.Stats.Rows, Bytes: w.Add.Size,
		Instance: s.instance,
	}
	return w.Add, ev, nil
}

// retry runs op with exponential backoff until it succeeds, returns a
// permanent error, or commit.store_retry_timeout passes. A store
// configuration error (objstore.ConfigError: refused credentials, a missing
// bucket) is permanent: no wait makes it go away, and stopping with it says
// what to fix. Each retry logs one warning with the gist of the error; the
// store's full answer is in the error finally returned.
func (s *Sink) retry(ctx context.Context, step string, op func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = 10 * time.Second
	b.MaxElapsedTime = s.cfg.Commit.StoreRetryTimeout
	attempt := 0
	return backoff.RetryNotify(func() error {
		err := op()
		if objstore.IsConfigError(err) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(b, ctx), func(err error, d time.Duration) {
		attempt++
		s.metrics.storeRetries.WithLabelValues(step).Inc()
		if !errors.Is(err, objstore.ErrPreconditionFailed) {
			s.log.Warn("store operation failed, retrying", "step", step, "attempt", attempt, "cause", objstore.Cause(err), "in", d.Round(time.Millisecond))
		}
	})
}

// notify publishes a commit event to the notifications topic, if set.
// Delivery is best-effort: the data is already durable.
func (s *Sink) notify(ctx context.Context, ev *CommitEvent) {
	if s.cfg.Notify.Topic == "" {
		return
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	s.cl.Produce(ctx, &kgo.Record{Topic: s.cfg.Notify.Topic, Key: []byte(ev.Table), Value: b}, func(_ *kgo.Record, err error) {
		if err != nil {
			s.log.Warn("publish commit notification", "table", ev.Table, "version", ev.Version, "err", err)
		}
	})
}

func newID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
