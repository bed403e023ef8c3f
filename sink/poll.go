package sink

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/codec/confluent"
	"github.com/evodb/sink/sink/buffer"
) // decoded is one polled record after decoding, before it is buffered.
type decoded struct {
	rec    *kgo.Record
	change codec.Change
	table  *tableWriter
	err    error
	skip   bool // tombstone
}

// decodeChunk is how many records are decoded before they are buffered:
// few enough that their decoded rows stay in the CPU cache, enough that
// taking the lock to buffer them costs nothing.
const decodeChunk = 256

// release drops what a poll's entries point at, the records and the rows
// that borrow their bytes, keeping each entry's row array for the next
// poll: otherwise the last records decoded into each entry, and the
// fetched batches they point into, stay alive while the loop waits for
// the next fetch. It covers the entries beyond the last chunk too, which
// still hold an earlier chunk's records.
func release(batch []decoded) {
	for i := range batch {
		row := batch[i].change.Row
		clear(row[:cap(row)])
		batch[i] = decoded{}
		batch[i].change.Row = row[:0]
	}
}

// poll is the consumer loop. Only this goroutine buffers records, under
// s.mu and each table writer's lock in turn; buffers are drained into
// flushes under the same locks (requestFlush), by this goroutine or by a
// flush goroutine that finished. Rebalances run between polls
// (BlockRebalanceOnPoll), so a revoke never races with buffering.
func (s *Sink) poll(ctx context.Context) error {
	var batch []decoded
	// lookedUp is when poll last asked the broker for a topic's ID after
	// a fetch of it failed with UNKNOWN_TOPIC_ID.
	lookedUp := map[string]time.Time{}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		fatal := s.fatal
		wait := s.nextDueLocked()
		s.mu.Unlock()
		if fatal != nil {
			return fatal
		}
		pctx, cancel := context.WithTimeout(ctx, wait)
		fetches := s.cl.PollRecords(pctx, s.cfg.Kafka.MaxPollRecords)
		cancel()
		if fetches.IsClientClosed() {
			return context.Canceled
		}
		for _, fe := range fetches.Errors() {
			if errors.Is(fe.Err, context.DeadlineExceeded) || errors.Is(fe.Err, context.Canceled) {
				continue
			}
			if errors.Is(fe.Err, kerr.UnknownTopicID) && s.now().Sub(lookedUp[fe.Topic]) >= time.Second {
				lookedUp[fe.Topic] = s.now()
				if err := s.checkRecreated(ctx, fe.Topic, fe.Partition); err != nil {
					return err
				}
			}
			s.log.Warn("fetch error", "topic", fe.Topic, "partition", fe.Partition, "err", fe.Err)
		}

		// Decode outside the lock: it is the hot path and flush
		// goroutines need the lock to finish.
		batch = batch[:0]
		var derr error
		eachPartition(fetches, func(p kgo.FetchTopicPartition, topicID [16]byte) {
			s.mu.Lock()
			if st := s.parts[topicPartition{p.Topic, p.Partition}]; st != nil {
				st.hwm = p.HighWatermark
				if err := st.learnTopicID(topicID, s.cfg.Kafka.Group); err != nil && derr == nil {
					derr = err
				}
			}
			s.mu.Unlock()
			if derr != nil || len(p.Records) == 0 {
				return
			}
			s.metrics.recordsIn.WithLabelValues(p.Topic).Add(float64(len(p.Records)))
			dec, err := s.decoder(p.Topic)
			if err != nil {
				derr = fmt.Errorf("topic %s: %w", p.Topic, err)
				return
			}
			for _, rec := range p.Records {
				if derr != nil {
					return
				}
				// Entries are reused from poll to poll: a borrowing
				// decoder appends the row to the last one's array.
				if len(batch) < cap(batch) {
					batch = batch[:len(batch)+1]
				} else {
					batch = append(batch, decoded{})
				}
				d := &batch[len(batch)-1]
				scratch := d.change.Row
				*d = decoded{rec: rec}
				d.change.Row = scratch
				if derr = s.decode(ctx, dec, d); derr != nil {
					return
				}
				// Buffer in small chunks, while the decoded rows are
				// still in the CPU cache.
				if len(batch) == decodeChunk {
					derr = s.bufferBatch(ctx, batch)
					batch = batch[:0]
				}
			}
		})
		if derr != nil {
			return derr
		}
		if err := s.bufferBatch(ctx, batch); err != nil {
			return err
		}
		release(batch[:cap(batch)])
		s.mu.Lock()
		s.flushReadyLocked()
		s.applyBackpressureLocked()
		var offsets map[string]map[int32]kgo.EpochOffset
		if now := s.now(); now.Sub(s.lastOffsetAt) >= s.cfg.Commit.OffsetCommitInterval {
			s.lastOffsetAt = now
			offsets = s.committableLocked(nil)
		}
		s.learnStartOffsetsLocked()
		s.updateLagLocked()
		s.logProgressLocked()
		s.mu.Unlock()
		if len(offsets) > 0 {
			s.cl.CommitOffsets(ctx, offsets, s.offsetsCommitted)
		}
		s.cl.AllowRebalance()
	}
}

// eachPartition calls fn for each partition of fetches, as
// Fetches.EachPartition does, with the topic ID the fetch response gave
// for the partition's topic (zero when it gave none).
func eachPartition(fetches kgo.Fetches, fn func(p kgo.FetchTopicPartition, topicID [16]byte)) {
	for _, f := range fetches {
		for _, t := range f.Topics {
			for i := range t.Partitions {
				fn(kgo.FetchTopicPartition{Topic: t.Topic, FetchPartition: t.Partitions[i]}, t.TopicID)
			}
		}
	}
}

// learnTopicID records the topic ID a fetch response gave for p's topic.
// A zero ID (a broker without topic IDs) teaches nothing. An ID other than
// the one learnt before means the topic was re-created under p's name
// while it was being read.
func (p *partition) learnTopicID(raw [16]byte, group string) error {
	if raw == ([16]byte{}) {
		return nil
	}
	id := topicIDString(raw)
	switch p.topicID {
	case "":
		p.topicID = id
	case id:
	default:
		return fmt.Errorf("%w: partition %s/%d returned records of topic ID %s after records of topic ID %s; the topic was re-created: stop all sinks of group %q, then either use a new group (a new set of txn ids) or delete the tables' data for this topic",
			ErrOffsetsWentBack, p.tp.topic, p.tp.partition, id, p.topicID, group)
	}
	return nil
}

// errRecreatedWhileRead marks the ErrOffsetsWentBack of a topic re-created
// while the sink read it: what was read before is valid and is flushed,
// but no group offset may be committed, since under the topic's name it
// would count in the new topic.
var errRecreatedWhileRead = errors.New("the topic was re-created while the sink read it")

// checkRecreated runs after a fetch of a partition failed with
// UNKNOWN_TOPIC_ID: franz-go keeps fetching a partition under the topic
// ID it started with, so the topic was deleted, and perhaps created again.
// A topic that is only gone is left to the group (its partitions are
// revoked); one that exists under another ID stops the sink. Lookups that
// fail teach nothing: the next failed fetch asks again.
func (s *Sink) checkRecreated(ctx context.Context, topic string, partition int32) error {
	s.mu.Lock()
	var readID string
	if p := s.parts[topicPartition{topic, partition}]; p != nil {
		readID = p.topicID
	}
	s.mu.Unlock()
	if readID == "" {
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	topics, err := kadm.NewClient(s.cl).ListTopics(lctx, topic)
	if err != nil {
		s.log.Debug("look up topic id", "topic", topic, "err", err)
		return nil
	}
	d, ok := topics[topic]
	if !ok || d.Err != nil || d.ID == (kadm.TopicID{}) {
		return nil
	}
	if id := topicIDString(d.ID); id != readID {
		return fmt.Errorf("%w: partition %s/%d was read under topic ID %s, but the topic now has ID %s: %w. What was read before is committed and no group offset is; stop all sinks of group %q, then either use a new group (a new set of txn ids) or delete the tables' data for this topic",
			ErrOffsetsWentBack, topic, partition, readID, id, errRecreatedWhileRead, s.cfg.Kafka.Group)
	}
	return nil
}

// topicIDString renders a topic ID as Kafka does (kafka-topics.sh
// --describe): unpadded URL-safe base64. It has no '@' or '/', as a
// committer lineage must not.
func topicIDString(id [16]byte) string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// decode decodes one record and resolves its table. A record that cannot
// be decoded is marked in d.err; a tombstone is marked skip.
func (s *Sink) decode(ctx context.Context, dec cdc.Decoder, d *decoded) error {
	rec := d.rec
	r := codec.Record{
		Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset,
		Key: rec.Key, Value: rec.Value, TimestampMs: rec.Timestamp.UnixMilli(),
	}
	// The change lives until bufferBatch copies it into its table's Rows,
	// so it may share the record's memory instead of copying it.
	var err error
	if bd, ok := dec.(cdc.BorrowingDecoder); ok {
		err = bd.DecodeBorrowed(r, &d.change)
	} else {
		d.change.Row = nil
		err = dec.Decode(r, &d.change)
	}
	switch {
	case errors.Is(err, cdc.ErrTombstone):
		d.skip = true
		s.metrics.tombstones.WithLabelValues(rec.Topic).Inc()
		return nil
	case errors.Is(err, confluent.ErrUnavailable):
		// The registry's outage, not the record's fault: stop rather
		// than skip or dead-letter it; the record is read again after
		// a restart.
		return err
	case err != nil:
		d.err = err
		return nil
	}
	d.table, err = s.tableFor(ctx, &d.change)
	if err != nil {
		var rerr *routeError
		if errors.As(err, &rerr) {
			d.err = err
			return nil
		}
		return err
	}
	return nil
}

// bufferBatch adds decoded records to their table buffers, waiting for
// flushes whenever the memory budget would be exceeded.
func (s *Sink) bufferBatch(ctx context.Context, batch []decoded) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// One clock read for the chunk (a record's age is only compared with
	// flush intervals of seconds); addLocked renews it after any wait.
	now := s.now()
	for i := range batch {
		d := &batch[i]
		tp := topicPartition{d.rec.Topic, d.rec.Partition}
		p := s.parts[tp]
		if p == nil {
			// Records of a partition revoked in this poll's rebalance.
			continue
		}
		if p.next >= 0 && d.rec.Offset < p.next {
			return fmt.Errorf("%w: partition %s/%d returned offset %d after %d; if the topic was re-created, stop all sinks of group %q, then either use a new group (a new set of txn ids) or delete the tables' data for this topic",
				ErrOffsetsWentBack, tp.topic, tp.partition, d.rec.Offset, p.next, s.cfg.Kafka.Group)
		}
		if d.skip {
			p.next = d.rec.Offset + 1
			continue
		}
		if d.err == nil {
			d.err = s.addLocked(ctx, p, d, &now)
			if d.err != nil && !isRecordError(d.err) {
				return d.err
			}
		}
		if d.err != nil {
			if err := s.badRecordLocked(ctx, d.rec, d.err); err != nil {
				return err
			}
		}
		p.next = d.rec.Offset + 1
	}
	return nil
}

// addLocked buffers one decoded change, added at *now; a wait for memory
// or a flush sets *now to the time it ended.
func (s *Sink) addLocked(ctx context.Context, p *partition, d *decoded, now *time.Time) error {
	w := d.table
	rec := d.rec
	switch adm, err := w.admit(p.tp, p.appID, p.topicID, p.hwm, rec.Offset, &d.change); {
	case err != nil:
		return err
	case adm == skipDurable:
		s.metrics.durableSkipped.WithLabelValues(w.path).Inc()
		return nil
	case adm == skipDuplicate:
		s.metrics.dedupeDropped.WithLabelValues(w.path).Inc()
		return nil
	}
	// The budget counts the memory buffers hold (their arrays' capacity),
	// which grows now and then by more than one change. It holds: wait for
	// flushes until the growth fits (a record alone larger than the budget
	// is let in onto an empty sink).
	for s.ctrl.WouldExceed(s.buffered, w.memFor(&d.change)) {
		if err := s.waitForMemoryLocked(ctx); err != nil {
			return err
		}
		*now = s.now()
	}
	var grew int64
	for {
		var err error
		grew, err = w.add(p.tp, &d.change, *now)
		if err == nil {
			break
		}
		if !errors.Is(err, buffer.ErrOverflow) {
			return err
		}
		// The table buffer is full: flush it and wait.
		s.requestFlush(w, "overflow")
		if err := s.waitFlushLocked(ctx); err != nil {
			return err
		}
		*now = s.now()
	}
	s.buffered += grew
	s.peakBuffered = max(s.peakBuffered, s.buffered)
	s.metrics.bufferedBytes.Set(float64(s.buffered))
	if _, ok := p.pending[w.path]; !ok {
		p.pending[w.path] = rec.Offset
	}
	if ok, reason := w.shouldFlush(*now); ok {
		s.requestFlush(w, reason)
	} else {
		s.scheduleLocked(w, *now)
	}
	return nil
}

// badRecordLocked sends a record that cannot be processed to the DLQ, or
// stops the sink, as configured. Nothing is dropped without a metric and a
// log line.
func (s *Sink) badRecordLocked(ctx context.Context, rec *kgo.Record, cause error) error {
	s.metrics.decodeErrors.WithLabelValues(rec.Topic).Inc()
	if s.cfg.Errors.Tolerance != "all" {
		return &RecordError{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Err: cause}
	}
	// Synchronous: the record's offset may only pass into the group offset
	// once the DLQ holds it.
	pointer, err := s.sendDLQ(ctx, rec, cause)
	if err != nil {
		return fmt.Errorf("send record %s/%d@%d to dead-letter topic %s (errors.dlq_topic): %w", rec.Topic, rec.Partition, rec.Offset, s.cfg.Errors.DLQTopic, err)
	}
	if pointer {
		s.log.Warn("record too large for the dead-letter topic's max.message.bytes: sent a pointer with its coordinates and the start of its value",
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "size", len(rec.Value), "dlq", s.cfg.Errors.DLQTopic, "max_message_bytes", s.dlqMaxBytes)
	}
	s.metrics.dlqRecords.WithLabelValues(rec.Topic).Inc()
	attrs := []any{"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "dlq", s.cfg.Errors.DLQTopic, "err", cause}
	if hint := formatHint(rec.Topic, cause); hint != "" {
		// Every record of a topic read in the wrong format ends here.
		attrs = append(attrs, "hint", hint)
	}
	s.log.Warn("record sent to dead-letter topic", attrs...)
	return nil
}

// nextDueLocked is how long the poll may block before a buffer's age
// trigger is due: the due queue's earliest entry, which is never later
// than the trigger (dueQueue).
func (s *Sink) nextDueLocked() time.Duration {
	wait := 500 * time.Millisecond
	if at, ok := s.due.next(); ok {
		wait = min(wait, at.Sub(s.now()))
	}
	return max(wait, 5*time.Millisecond)
}

// onAssigned creates the bookkeeping of newly assigned partitions. It ends
// every rebalance (the client calls it even when nothing new is assigned),
// so it logs the rebalance as one line: what this member gained, what it
// gave up since the last rebalance line, and how many partitions it owns.
func (s *Sink) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	s.joined.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, ps := range assigned {
		s.metrics.initTopic(topic)
		for _, n := range ps {
			tp := topicPartition{topic, n}
			s.parts[tp] = &partition{tp: tp, appID: s.appID(tp), next: -1, hwm: -1, committed: -1,
				pending: map[string]int64{}, inflight: map[*flushJob]int64{}}
		}
	}
	s.log.Info("rebalance", "assigned", formatPartitions(assigned), "revoked", formatPartitions(s.revokedSince), "owned", len(s.parts))
	clear(s.revokedSince)
	// Another member may have committed to our tables while these
	// partitions were elsewhere: refresh txn versions before buffering.
	for _, w := range s.tables {
		w.markStale()
	}
	if s.ctrl.Paused() {
		s.cl.PauseFetchPartitions(assigned)
	}
}

// onRevoked flushes and commits what the revoked partitions buffered,
// within commit.revoke_timeout, then forgets them.
func (s *Sink) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	s.mu.Lock()
	if s.aborting {
		// Leaving the group: no rebalance line follows, so say it here.
		if len(revoked) > 0 {
			s.log.Info("partitions revoked on leaving the group", "revoked", formatPartitions(revoked))
		}
		s.dropLocked(revoked)
		s.mu.Unlock()
		return
	}
	// The rebalance's line, logged by onAssigned, names these.
	addPartitions(s.revokedSince, revoked)
	timer := time.AfterFunc(s.cfg.Commit.RevokeTimeout, func() {
		s.mu.Lock()
		s.flushDone.Broadcast()
		s.mu.Unlock()
	})
	deadline := s.now().Add(s.cfg.Commit.RevokeTimeout)
	for {
		busy := false
		for topic, ps := range revoked {
			for _, n := range ps {
				p := s.parts[topicPartition{topic, n}]
				if p == nil {
					continue
				}
				for path := range p.pending {
					busy = true
					if w := s.tables[path]; w != nil {
						s.requestFlush(w, "revoke")
					}
				}
				if len(p.inflight) > 0 {
					busy = true
				}
			}
		}
		if !busy || s.fatal != nil || !s.now().Before(deadline) {
			break
		}
		s.flushDone.Wait()
	}
	timer.Stop()
	offsets := s.committableLocked(revoked)
	s.dropLocked(revoked)
	s.mu.Unlock()
	if len(offsets) > 0 {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		cl.CommitOffsetsSync(cctx, offsets, s.offsetsCommitted)
		cancel()
	}
}

// onLost forgets lost partitions at once: their new owner re-reads them and
// the table log's txn versions fence anything this member still commits.
func (s *Sink) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log.Warn("partitions lost", "lost", formatPartitions(lost))
	s.dropLocked(lost)
}

// dropLocked removes the buffered changes and bookkeeping of partitions.
// A table whose schema the dropped changes evolved gets its schema rebuilt
// from what it still holds.
func (s *Sink) dropLocked(parts map[string][]int32) {
	for topic, ps := range parts {
		for _, n := range ps {
			tp := topicPartition{topic, n}
			for _, w := range s.tables {
				s.buffered -= w.dropPartition(tp)
			}
			delete(s.parts, tp)
			s.metrics.lag.DeleteLabelValues(topic, strconv.Itoa(int(n)))
		}
	}
	s.metrics.bufferedBytes.Set(float64(s.buffered))
	s.flushDone.Broadcast()
}

// decoder returns the decoder of a topic's format (and, for the
// schema-registry formats, key format).
func (s *Sink) decoder(topic string) (cdc.Decoder, error) {
	f := s.cfg.Kafka.Format
	if tf, ok := s.cfg.Kafka.Formats[topic]; ok {
		f = tf
	}
	var key string
	if confluent.IsFormat(codec.Format(f)) {
		key = s.cfg.Kafka.KeyFormat
		if kf, ok := s.cfg.Kafka.KeyFormats[topic]; ok {
			key = kf
		}
	}
	name := f + "/" + key
	if d, ok := s.decoders[name]; ok {
		return d, nil
	}
	var d cdc.Decoder
	var err error
	if confluent.IsFormat(codec.Format(f)) {
		d, err = s.registryDecoder(f, key)
	} else {
		d, err = cdc.NewDecoder(codec.Format(f))
	}
	if err != nil {
		return nil, err
	}
	s.decoders[name] = d
	return d, nil
}

// appID is the txn appId of a source partition: one per sink group, topic
// and partition, so two groups can feed one table independently.
func (s *Sink) appID(tp topicPartition) string { return appIDOf(s.cfg.Kafka.Group, tp) }
