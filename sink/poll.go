package sink

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/confluent"
	"github.com/evodb/sink/sink/buffer"
)

// decoded is one polled record after decoding, before it is buffered.
type decoded struct {
	rec    *kgo.Record
	change codec.Change
	table  *table
	err    error
	skip   bool // tombstone
}

// decodeChunk is how many records are decoded before they are buffered:
// few enough that their decoded rows stay in the CPU cache, enough that
// taking the lock to buffer them costs nothing.
const decodeChunk = 256

// poll is the consumer loop. Only this goroutine buffers records; flush
// goroutines drain buffers under s.mu. Rebalances run between polls
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
func (s *Sink) decode(ctx context.Context, dec codec.Decoder, d *decoded) error {
	rec := d.rec
	r := codec.Record{
		Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset,
		Key: rec.Key, Value: rec.Value, TimestampMs: rec.Timestamp.UnixMilli(),
	}
	// The change lives until bufferBatch copies it into its table's Rows,
	// so it may share the record's memory instead of copying it.
	var err error
	if bd, ok := dec.(codec.BorrowingDecoder); ok {
		err = bd.DecodeBorrowed(r, &d.change)
	} else {
		d.change.Row = nil
		err = dec.Decode(r, &d.change)
	}
	switch {
	case errors.Is(err, codec.ErrTombstone):
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

// recordError marks an error caused by one record's content (not by the
// sink or the store): it goes to the DLQ or stops the sink.
type recordErr struct{ err error }

func (e *recordErr) Error() string { return e.err.Error() }
func (e *recordErr) Unwrap() error { return e.err }

func isRecordError(err error) bool {
	var re *recordErr
	return errors.As(err, &re)
}

// addLocked buffers one decoded change, added at *now; a wait for memory
// or a flush sets *now to the time it ended.
func (s *Sink) addLocked(ctx context.Context, p *partition, d *decoded, now *time.Time) error {
	t := d.table
	rec := d.rec
	if st, ok := t.durable[p.appID]; ok {
		if other, ok := st.otherTopic(p.topicID); ok {
			return topicChangedError(t.path, st.version, p.tp, other, p.topicID, s.cfg.Kafka.Group)
		}
		if rec.Offset <= st.version {
			// Without topic IDs to compare (a table written before they
			// were recorded, or a broker without them), a table holding
			// offsets the partition does not have is the only sign of a
			// re-created topic.
			if p.hwm >= 0 && st.version >= p.hwm {
				return fmt.Errorf("%w: table %s holds offset %d of %s/%d but the partition ends at %d; if the topic was re-created, stop all sinks of group %q, then either use a new group or delete the table's data for this topic",
					ErrOffsetsWentBack, t.path, st.version, p.tp.topic, p.tp.partition, p.hwm, s.cfg.Kafka.Group)
			}
			s.metrics.durableSkipped.WithLabelValues(t.path).Inc()
			return nil
		}
	}
	if t.dedupe != nil && t.dedupe.isDup(&d.change) {
		s.metrics.dedupeDropped.WithLabelValues(t.path).Inc()
		return nil
	}
	// The budget counts the memory buffers hold (their arrays' capacity),
	// which grows now and then by more than one change. It holds: wait for
	// flushes until the growth fits (a record alone larger than the budget
	// is let in onto an empty sink).
	for s.ctrl.WouldExceed(s.buffered, t.buf.MemFor(&d.change)) {
		if err := s.waitForMemoryLocked(ctx); err != nil {
			return err
		}
		*now = s.now()
	}
	var grew int64
	for {
		// The schema the change needs is applied only once the buffer
		// has taken the change: a change refused (too large) or never
		// buffered (the run ends while it waits) must not evolve the
		// schema the next flush commits. A wait lets flushes adopt
		// commits that widen t.schema, so the evolution is computed
		// after the last one; from here to the Add s.mu is held.
		next, err := t.schema.Evolved(&d.change)
		if err != nil {
			return &recordErr{err}
		}
		before := t.buf.Mem()
		err = t.buf.Add(d.change, *now)
		if err == nil {
			if next != nil {
				t.schema = next
			}
			t.acceptedLocked(p.tp, &d.change, next != nil)
			grew = t.buf.Mem() - before
			break
		}
		if errors.Is(err, buffer.ErrRecordTooLarge) {
			return &recordErr{fmt.Errorf("change of %d bytes is larger than the table buffer limit (tables.*.max_buffer_bytes): %w", d.change.Size(), err)}
		}
		if !errors.Is(err, buffer.ErrOverflow) {
			return err
		}
		// The table buffer is full: flush it and wait.
		s.requestFlush(t, "overflow")
		if err := s.waitFlushLocked(ctx); err != nil {
			return err
		}
		*now = s.now()
	}
	if t.dedupe != nil {
		t.dedupe.record(p.tp, &d.change)
	}
	if t.pk == "" && len(d.change.Key) > 0 {
		names := make([]string, len(d.change.Key))
		for i, f := range d.change.Key {
			names[i] = f.Name
		}
		t.pk = strings.Clone(strings.Join(names, ","))
	}
	s.buffered += grew
	s.peakBuffered = max(s.peakBuffered, s.buffered)
	s.metrics.bufferedBytes.Set(float64(s.buffered))
	if _, ok := p.pending[t.path]; !ok {
		p.pending[t.path] = rec.Offset
	}
	if ok, reason := t.buf.ShouldFlush(*now); ok {
		s.requestFlush(t, reason)
	}
	return nil
}

// waitForMemoryLocked flushes the largest buffers and waits for a flush to
// finish.
func (s *Sink) waitForMemoryLocked(ctx context.Context) error {
	for _, t := range s.largestTablesLocked(2) {
		s.requestFlush(t, "memory")
	}
	return s.waitFlushLocked(ctx)
}

// waitFlushLocked waits until some flush finishes (or a fatal error).
func (s *Sink) waitFlushLocked(ctx context.Context) error {
	if s.fatal != nil {
		return s.fatal
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.flushDone.Wait()
	if s.fatal != nil {
		return s.fatal
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
// trigger is due.
func (s *Sink) nextDueLocked() time.Duration {
	wait := 500 * time.Millisecond
	now := s.now()
	for _, t := range s.tables {
		if d, ok := t.buf.DueIn(now); ok && d < wait {
			wait = d
		}
	}
	return max(wait, 5*time.Millisecond)
}

// flushReadyLocked starts a flush for every table whose trigger fired.
func (s *Sink) flushReadyLocked() {
	now := s.now()
	for _, t := range s.tables {
		if ok, reason := t.buf.ShouldFlush(now); ok {
			s.requestFlush(t, reason)
		}
	}
}

// applyBackpressureLocked pauses fetching above the high watermark and
// resumes below the low one: the budget controller's hysteresis,
// recomputed every poll and after every flush.
func (s *Sink) applyBackpressureLocked() {
	pause, changed := s.ctrl.Update(s.buffered)
	if b := s.ctrl.Budget(); pause || s.buffered > b.High {
		// Above the high watermark, and until fetching resumes below the
		// low one, flush the largest buffers. Flushes already running will
		// free s.flushing: start more only until what stays in open
		// buffers is below the low watermark. Flushing the largest few on
		// every poll until the running flushes finish would close nearly
		// every table's buffer, each into a small file.
		open := s.buffered - s.flushing
		for _, t := range s.largestTablesLocked(len(s.tables)) {
			if open < b.Low {
				break
			}
			if t.inflight == nil {
				// A table flushes one block at a time: one with a
				// flush running only notes the request and keeps its
				// buffer until then.
				open -= t.buf.Mem()
			}
			s.requestFlush(t, "memory")
		}
	}
	if !changed {
		return
	}
	if pause {
		s.cl.PauseFetchPartitions(s.ownedLocked())
		s.metrics.pausedPartitions.Set(1)
		s.metrics.pauses.Inc()
		s.log.Info("fetching paused: memory above high watermark", "buffered_bytes", s.buffered, "high", s.ctrl.Budget().High)
		return
	}
	s.cl.ResumeFetchPartitions(s.cl.PauseFetchPartitions(nil))
	s.metrics.pausedPartitions.Set(0)
	s.metrics.resumes.Inc()
	s.log.Info("fetching resumed: memory below low watermark", "buffered_bytes", s.buffered, "low", s.ctrl.Budget().Low)
}

func (s *Sink) ownedLocked() map[string][]int32 {
	m := map[string][]int32{}
	for tp := range s.parts {
		m[tp.topic] = append(m[tp.topic], tp.partition)
	}
	return m
}

// committableLocked returns the group offsets to commit for the given
// partitions (all owned ones when nil) that moved since the last commit.
func (s *Sink) committableLocked(only map[string][]int32) map[string]map[int32]kgo.EpochOffset {
	out := map[string]map[int32]kgo.EpochOffset{}
	add := func(p *partition) {
		o := p.durableFrom()
		if o <= p.committed {
			return
		}
		if out[p.tp.topic] == nil {
			out[p.tp.topic] = map[int32]kgo.EpochOffset{}
		}
		out[p.tp.topic][p.tp.partition] = kgo.EpochOffset{Epoch: -1, Offset: o}
	}
	if only == nil {
		for _, p := range s.parts {
			add(p)
		}
		return out
	}
	for topic, ps := range only {
		for _, n := range ps {
			if p := s.parts[topicPartition{topic, n}]; p != nil {
				add(p)
			}
		}
	}
	return out
}

func (s *Sink) offsetsCommitted(_ *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
	if err != nil {
		s.metrics.offsetCommits.WithLabelValues("error").Inc()
		s.log.Warn("group offset commit failed; it is retried with the next commit", "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, t := range resp.Topics {
		for j, p := range t.Partitions {
			if p.ErrorCode != 0 {
				s.metrics.offsetCommits.WithLabelValues("error").Inc()
				continue
			}
			s.metrics.offsetCommits.WithLabelValues("ok").Inc()
			if st := s.parts[topicPartition{t.Topic, p.Partition}]; st != nil && i < len(req.Topics) && j < len(req.Topics[i].Partitions) {
				st.committed = max(st.committed, req.Topics[i].Partitions[j].Offset)
			}
		}
	}
}

func (s *Sink) commitOffsetsSync(ctx context.Context, offsets map[string]map[int32]kgo.EpochOffset) {
	s.cl.CommitOffsetsSync(ctx, offsets, s.offsetsCommitted)
}

// learnStartOffsetsLocked sets, for partitions that returned no record
// since they were assigned, where this member starts: the group's committed
// offset. Without it a partition with nothing new would report no position.
func (s *Sink) learnStartOffsetsLocked() {
	var committed map[string]map[int32]kgo.EpochOffset
	for _, p := range s.parts {
		if p.next >= 0 {
			continue
		}
		if committed == nil {
			committed = s.cl.CommittedOffsets()
			if committed == nil {
				return
			}
		}
		if o, ok := committed[p.tp.topic][p.tp.partition]; ok && o.Offset >= 0 {
			p.next = o.Offset
			p.committed = max(p.committed, o.Offset)
		}
	}
}

// refreshEndOffsets keeps the owned partitions' high watermarks current
// even when they return no records, so lag and /status are right for idle
// and freshly assigned partitions. It runs until ctx ends.
func (s *Sink) refreshEndOffsets(ctx context.Context) {
	adm := kadm.NewClient(s.cl)
	tick := time.NewTicker(endOffsetsEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.mu.Lock()
		topics := make([]string, 0, len(s.parts))
		seen := map[string]bool{}
		for tp := range s.parts {
			if !seen[tp.topic] {
				seen[tp.topic] = true
				topics = append(topics, tp.topic)
			}
		}
		s.mu.Unlock()
		if len(topics) == 0 {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, endOffsetsEvery)
		ends, err := adm.ListEndOffsets(lctx, topics...)
		cancel()
		if err != nil {
			s.log.Debug("list end offsets", "err", err)
			continue
		}
		s.mu.Lock()
		ends.Each(func(o kadm.ListedOffset) {
			if p := s.parts[topicPartition{o.Topic, o.Partition}]; p != nil && o.Err == nil && o.Offset > p.hwm {
				p.hwm = o.Offset
			}
		})
		s.updateLagLocked()
		s.mu.Unlock()
	}
}

// missingTopicsEvery is how often a topic of kafka.topics that does not
// exist is reported again.
const missingTopicsEvery = time.Minute

// watchMissingTopics warns at start, and every s.missingEvery while it
// lasts, about each topic of kafka.topics that does not exist: the group
// gets no partition of it, and without the warning the sink would idle
// with partitions=0 and say nothing. It runs until ctx ends.
func (s *Sink) watchMissingTopics(ctx context.Context) {
	topics := s.cfg.Kafka.Topics
	if len(topics) == 0 {
		return
	}
	adm := kadm.NewClient(s.cl)
	missing := map[string]bool{}
	for {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		listed, err := adm.ListTopics(lctx, topics...)
		cancel()
		if err != nil && ctx.Err() == nil {
			s.log.Debug("list topics", "err", err)
		}
		for _, t := range topics {
			if err != nil {
				break
			}
			d, ok := listed[t]
			switch {
			case !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition):
				missing[t] = true
				s.log.Warn("topic in kafka.topics does not exist: nothing is consumed from it until it is created; check the name in kafka.topics or create the topic",
					"topic", t, "recheck_in", s.missingEvery)
			case d.Err != nil:
				missing[t] = true
				s.log.Warn("topic in kafka.topics cannot be described: nothing may be consumed from it; grant the sink's user DESCRIBE and READ on it",
					"topic", t, "err", d.Err, "recheck_in", s.missingEvery)
			case missing[t]:
				delete(missing, t)
				s.log.Info("topic in kafka.topics is available now", "topic", t)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.missingEvery):
		}
	}
}

// endOffsetsEvery is how often high watermarks are refreshed.
const endOffsetsEvery = 5 * time.Second

func (s *Sink) updateLagLocked() {
	for _, p := range s.parts {
		if p.hwm >= 0 {
			s.metrics.lag.WithLabelValues(p.tp.topic, strconv.Itoa(int(p.tp.partition))).Set(float64(max(0, p.hwm-p.durableFrom())))
		}
	}
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
	for _, t := range s.tables {
		t.stale = true
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
					if t := s.tables[path]; t != nil {
						s.requestFlush(t, "revoke")
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
	rebuild := map[*table]bool{}
	for topic, ps := range parts {
		for _, n := range ps {
			tp := topicPartition{topic, n}
			for _, t := range s.tables {
				before := t.buf.Mem()
				t.buf.DropPartition(topic, n)
				s.buffered -= before - t.buf.Mem()
				if t.dedupe != nil {
					t.dedupe.dropPartition(tp)
				}
				if t.evolvedBy[tp] {
					rebuild[t] = true
				}
				delete(t.evolvedBy, tp)
				delete(t.declared, tp)
				if t.lastDeclared.tp == tp {
					t.lastDeclared.cols = nil
				}
			}
			delete(s.parts, tp)
			s.metrics.lag.DeleteLabelValues(topic, strconv.Itoa(int(n)))
		}
	}
	for t := range rebuild {
		s.rebuildSchemaLocked(t)
	}
	s.metrics.bufferedBytes.Set(float64(s.buffered))
	s.flushDone.Broadcast()
}
