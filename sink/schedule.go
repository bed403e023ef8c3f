package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// When tables flush, and what a finished flush releases: the Sink's side of
// the table writers' flushes. It decides when a writer drains its buffer
// (triggers, memory, revoke, shutdown), runs each flush on its own
// goroutine with the one retry of whole flushes, and, once a flush ends,
// moves the partitions' offsets, frees the memory budget and wakes the
// poll loop.

// requestFlush starts a flush of w, or asks for one after the running one.
// Sink.mu is held.
func (s *Sink) requestFlush(w *tableWriter, reason string) {
	job := w.takeFlush(reason, !s.aborting && s.fatal == nil)
	if job == nil {
		return
	}
	for _, p := range s.parts {
		if first, ok := p.pending[w.path]; ok {
			if p.topicID != "" {
				job.topicIDs[p.tp] = p.topicID
			}
			p.inflight[job] = first
			delete(p.pending, w.path)
		}
	}
	s.noteHintLocked(w, job)
	s.flushing += job.mem
	s.metrics.flushes.WithLabelValues(reason).Inc()
	s.noteFlushLocked(reason)
	s.flushes.Add(1)
	go s.runFlush(w, job)
}

// noteHintLocked records the size w's next batch starts at under the
// topics job drained changes of, for new tables of those topics.
func (s *Sink) noteHintLocked(w *tableWriter, job *flushJob) {
	var topics []string
	for k := range job.sources {
		if !slices.Contains(topics, k.Topic) {
			topics = append(topics, k.Topic)
		}
	}
	s.hints.note(w.path, topics, w.nextHint())
}

// runFlush makes a job durable, running the whole flush again with backoff
// while it fails in a way a wait may fix (retry.go), then releases its
// bookkeeping.
func (s *Sink) runFlush(w *tableWriter, job *flushJob) {
	defer s.flushes.Done()
	ctx := s.flushCtx
	select {
	case s.flushSem <- struct{}{}:
	case <-ctx.Done():
	}
	var res flushResult
	err := ctx.Err()
	if err == nil {
		err = s.retry(ctx, "flush", func() error {
			var ferr error
			res, ferr = w.flush(ctx, job)
			return ferr
		})
		<-s.flushSem
	}
	if err == nil && res.event != nil {
		s.notify(ctx, res.event)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	next := w.finishFlush(job, err, s.now())
	s.buffered -= job.mem
	s.flushing -= job.mem
	s.metrics.bufferedBytes.Set(float64(s.buffered))
	// Flushes recompute the budget as they finish, so a paused poll wakes
	// as soon as memory frees rather than at its next timeout.
	s.applyBackpressureLocked()
	switch {
	case err == nil:
		// Durable: release the job's hold on its partitions' offsets.
		for tp := range res.durable {
			if p := s.parts[tp]; p != nil {
				delete(p.inflight, job)
			}
		}
		if ev := res.event; ev != nil {
			s.noteCommitLocked(ev.Table, int(ev.Rows), ev.Bytes)
		}
		s.metrics.flushDuration.Observe(s.now().Sub(job.started).Seconds())
	case s.aborting || errors.Is(err, context.Canceled):
		// Abandoned: the partitions' offsets never passed these records,
		// so their next owner re-reads them.
	default:
		s.setFatal(fmt.Errorf("flush table %s: %w", w.path, err))
	}
	s.flushDone.Broadcast()
	if res.event != nil && s.onCommit != nil {
		s.onCommit(*res.event)
	}
	if s.fatal == nil && !s.aborting && next != "" {
		s.requestFlush(w, next)
	}
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

// setFatal records the first fatal error and wakes everyone waiting.
func (s *Sink) setFatal(err error) {
	if s.fatal == nil {
		s.fatal = err
	}
	s.flushDone.Broadcast()
}

// busyTablesLocked counts the tables holding changes not yet durable.
func (s *Sink) busyTablesLocked() int {
	n := 0
	for _, w := range s.tables {
		if w.busy() {
			n++
		}
	}
	return n
}

// largestTablesLocked returns up to n tables holding the most memory.
func (s *Sink) largestTablesLocked(n int) []*tableWriter {
	type sized struct {
		w   *tableWriter
		mem int64
	}
	ts := make([]sized, 0, len(s.tables))
	for _, w := range s.tables {
		if m := w.mem(); m > 0 {
			ts = append(ts, sized{w, m})
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].mem > ts[j].mem })
	if len(ts) > n {
		ts = ts[:n]
	}
	out := make([]*tableWriter, len(ts))
	for i, t := range ts {
		out[i] = t.w
	}
	return out
}

// waitForMemoryLocked flushes the largest buffers and waits for a flush to
// finish.
func (s *Sink) waitForMemoryLocked(ctx context.Context) error {
	for _, w := range s.largestTablesLocked(2) {
		s.requestFlush(w, "memory")
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

// flushReadyLocked starts a flush for every table whose age trigger fired,
// visiting only the tables the due queue says are due (dueQueue).
func (s *Sink) flushReadyLocked() {
	now := s.now()
	var again []*tableWriter
	defer func() {
		// Queued after the loop: a table that is due and could not
		// start a flush (the sink is stopping) would be popped again
		// at once.
		for _, w := range again {
			if d, ok := w.dueIn(now); ok {
				s.due.push(w, now.Add(d))
			}
		}
	}()
	for {
		w, ok := s.due.popDue(now)
		if !ok {
			return
		}
		s.visitDue(w)
		if ok, reason := w.shouldFlush(now); ok {
			s.requestFlush(w, reason)
			if w.flushRunning() {
				// Its buffer is draining now, or drains when the
				// running flush ends (flushWanted, finishFlush).
				continue
			}
		}
		// Not due yet (a flush may be running: its buffer took changes
		// since), or the sink is stopping: queued again at its own time.
		again = append(again, w)
	}
}

// scheduleLocked queues w's age trigger after a change was buffered in it,
// unless it is queued already (dueQueue).
func (s *Sink) scheduleLocked(w *tableWriter, now time.Time) {
	if s.due.queued[w] {
		return
	}
	if d, ok := w.dueIn(now); ok {
		s.due.push(w, now.Add(d))
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
		for _, w := range s.largestTablesLocked(len(s.tables)) {
			if open < b.Low {
				break
			}
			if !w.flushRunning() {
				// A table flushes one block at a time: one with a
				// flush running only notes the request and keeps its
				// buffer until then.
				open -= w.mem()
			}
			s.requestFlush(w, "memory")
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
