package sink

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Partition offsets: what each assigned partition has read, buffered and
// made durable, and the group offsets that follow from it.

type topicPartition struct {
	topic     string
	partition int32
}

// partition is the offset bookkeeping of one assigned partition.
type partition struct {
	tp topicPartition
	// appID is the txn app id of the partition (Sink.appID).
	appID string
	// topicID is the topic's ID (KIP-516) in Kafka's text form, as this
	// assignment's fetch responses carry it; empty while unknown or when
	// the broker returns none (before Kafka 3.1). franz-go keeps a
	// partition's topic ID for as long as it consumes it, so it names the
	// topic every record of this assignment was read from.
	topicID string
	// next is the offset after the last record processed.
	next int64
	// hwm is the partition's high watermark as of the last fetch, -1 if unknown.
	hwm int64
	// pending maps a table path to the first offset of this partition's
	// records in that table's open buffer.
	pending map[string]int64
	// inflight maps a flush to the first offset of this partition's records in it.
	inflight map[*flushJob]int64
	// committed is the last group offset committed.
	committed int64
}

// durableFrom is the lowest offset of this partition not yet durable: the
// group offset to commit.
func (p *partition) durableFrom() int64 {
	low := p.next
	for _, o := range p.pending {
		low = min(low, o)
	}
	for _, o := range p.inflight {
		low = min(low, o)
	}
	return low
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
