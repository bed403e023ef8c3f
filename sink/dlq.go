package sink

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/evodb/sink/codec/cdc"
)

// Sizes of a record batch on the wire beyond the record's own bytes, as a
// broker measures them against max.message.bytes: the batch header, and a
// bound on one record's length, delta and attribute varints and of each
// header's two length varints.
const (
	batchOverhead     = 61
	recordOverhead    = 24
	headerOverhead    = 10
	defaultDLQMax     = 1048588  // Kafka's default max.message.bytes
	maxDLQBatchBytes  = 64 << 20 // below franz-go's broker write limit
	maxDLQErrorHeader = 1 << 10
	maxDLQPointerKey  = 1 << 10
)

// prepareDLQ makes sure, at start, that the dead-letter topic exists and
// that this sink may write to it: a missing or read-only DLQ would
// otherwise be found only at the first bad record, possibly hours into a
// run, and stop the sink exactly when the DLQ is needed. A missing topic
// is created, as Kafka Connect does, with errors.dlq_topic_partitions and
// errors.dlq_topic_replication_factor (the cluster's defaults when unset).
func (s *Sink) prepareDLQ(ctx context.Context) error {
	topic := s.cfg.Errors.DLQTopic
	if s.cfg.Errors.Tolerance != "all" || topic == "" {
		return nil
	}
	md, err := s.describeDLQ(ctx)
	if err != nil {
		return err
	}
	if errors.Is(kerr.ErrorForCode(md.ErrorCode), kerr.UnknownTopicOrPartition) {
		if err := s.createDLQ(ctx); err != nil {
			return err
		}
		if md, err = s.awaitDLQ(ctx); err != nil {
			return err
		}
	}
	if err := kerr.ErrorForCode(md.ErrorCode); err != nil {
		return fmt.Errorf("errors.dlq_topic %s: %w: grant the sink's user DESCRIBE and WRITE on it", topic, err)
	}
	// A broker without an authorizer, or one that does not report
	// operations, sends math.MinInt32: nothing to check then.
	const write = 1<<int32(kmsg.ACLOperationWrite) | 1<<int32(kmsg.ACLOperationAll)
	if ops := md.AuthorizedOperations; ops != math.MinInt32 && ops&write == 0 {
		return fmt.Errorf("errors.dlq_topic %s: the sink's user may not write to it: grant it WRITE on the topic, or choose another errors.dlq_topic", topic)
	}
	s.dlqMaxBytes = s.dlqMessageMax(ctx)
	// The DLQ has its own producer, sized to the topic's limit rather than
	// franz-go's 1 MB default, and without compression so that what the
	// broker measures is what dlqRecord measured.
	opts, err := ClientOptions(s.cfg.Kafka)
	if err != nil {
		return err
	}
	s.dlq, err = kgo.NewClient(append(opts,
		kgo.ClientID(s.cfg.Kafka.ClientID),
		kgo.ProducerBatchMaxBytes(s.dlqMaxBytes),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	)...)
	if err != nil {
		return fmt.Errorf("errors.dlq_topic %s: create producer: %w", topic, err)
	}
	return nil
}

// dlqMessageMax returns the DLQ topic's max.message.bytes (its own or the
// broker's default), or Kafka's default when the configuration cannot be
// read.
func (s *Sink) dlqMessageMax(ctx context.Context) int32 {
	topic := s.cfg.Errors.DLQTopic
	res, err := kadm.NewClient(s.cl).DescribeTopicConfigs(ctx, topic)
	var rc kadm.ResourceConfig
	if err == nil {
		rc, err = res.On(topic, nil)
	}
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		s.log.Warn("cannot read the dead-letter topic's max.message.bytes; assuming Kafka's default", "topic", topic, "default", defaultDLQMax, "err", err)
		return defaultDLQMax
	}
	for _, c := range rc.Configs {
		if c.Key != "max.message.bytes" {
			continue
		}
		n, perr := strconv.ParseInt(c.MaybeValue(), 10, 32)
		if perr != nil || n < 1024 {
			break
		}
		return int32(min(n, maxDLQBatchBytes))
	}
	return defaultDLQMax
}

// dlqRecord builds the dead-letter record of rec. One that would not fit
// in the DLQ topic's max.message.bytes becomes a pointer record instead:
// the evodb headers naming the source record and the error, the original
// value's size, and as much of the value as fits (valueMax further caps
// it; negative for no cap). The source partition then always moves on, and
// the record itself stays readable at its source offset until retention.
func (s *Sink) dlqRecord(rec *kgo.Record, cause error, valueMax int) (dlq *kgo.Record, pointer bool) {
	errText := cause.Error()
	evodb := []kgo.RecordHeader{
		{Key: "evodb.source.topic", Value: []byte(rec.Topic)},
		{Key: "evodb.source.partition", Value: []byte(strconv.Itoa(int(rec.Partition)))},
		{Key: "evodb.source.offset", Value: []byte(strconv.FormatInt(rec.Offset, 10))},
	}
	dlq = &kgo.Record{
		Topic:   s.cfg.Errors.DLQTopic,
		Key:     rec.Key,
		Value:   rec.Value,
		Headers: append(append(append([]kgo.RecordHeader(nil), rec.Headers...), kgo.RecordHeader{Key: "evodb.error", Value: []byte(errText)}), evodb...),
	}
	if valueMax < 0 && wireSize(dlq) <= int(s.dlqMaxBytes) {
		return dlq, false
	}
	if len(errText) > maxDLQErrorHeader {
		errText = errText[:maxDLQErrorHeader]
	}
	p := &kgo.Record{
		Topic: s.cfg.Errors.DLQTopic,
		Headers: append([]kgo.RecordHeader{
			{Key: "evodb.error", Value: []byte(errText)},
			{Key: "evodb.truncated", Value: []byte("true")},
			{Key: "evodb.original.size", Value: []byte(strconv.Itoa(len(rec.Value)))},
			{Key: "evodb.original.key.size", Value: []byte(strconv.Itoa(len(rec.Key)))},
		}, evodb...),
	}
	if len(rec.Key) <= maxDLQPointerKey {
		p.Key = rec.Key
	}
	room := max(0, int(s.dlqMaxBytes)-wireSize(p))
	if valueMax >= 0 {
		room = min(room, valueMax)
	}
	p.Value = rec.Value[:min(room, len(rec.Value))]
	return p, true
}

// wireSize bounds what a record takes alone in a batch on the wire.
func wireSize(r *kgo.Record) int {
	n := batchOverhead + recordOverhead + len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += headerOverhead + len(h.Key) + len(h.Value)
	}
	return n
}

// sendDLQ writes the dead-letter record of rec synchronously. When the
// broker still finds it too large (a topic limit lowered since start), it
// sends a pointer with a smaller and finally an empty value, so that no
// record can stop the sink on every restart.
func (s *Sink) sendDLQ(ctx context.Context, rec *kgo.Record, cause error) (pointer bool, err error) {
	for _, valueMax := range []int{-1, 1 << 10, 0} {
		var dlq *kgo.Record
		dlq, pointer = s.dlqRecord(rec, cause, valueMax)
		err = s.dlq.ProduceSync(ctx, dlq).FirstErr()
		if !errors.Is(err, kerr.MessageTooLarge) && !errors.Is(err, kerr.RecordListTooLarge) {
			return pointer, err
		}
	}
	return pointer, err
}

// describeDLQ returns the DLQ topic's metadata with the operations this
// client is authorized for.
func (s *Sink) describeDLQ(ctx context.Context) (kmsg.MetadataResponseTopic, error) {
	topic := s.cfg.Errors.DLQTopic
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	req.AllowAutoTopicCreation = false
	req.IncludeTopicAuthorizedOperations = true
	resp, err := req.RequestWith(ctx, s.cl)
	if err != nil {
		return kmsg.MetadataResponseTopic{}, fmt.Errorf("errors.dlq_topic %s: describe: %w", topic, err)
	}
	for _, t := range resp.Topics {
		if t.Topic != nil && *t.Topic == topic {
			return t, nil
		}
	}
	return kmsg.MetadataResponseTopic{}, fmt.Errorf("errors.dlq_topic %s: the broker's metadata answer does not list it", topic)
}

// awaitDLQ describes the DLQ topic until the broker knows it. A broker
// answers CreateTopics before every broker's metadata holds the new topic
// (KRaft propagates it asynchronously), so a describe right after creation
// may still say UNKNOWN_TOPIC_OR_PARTITION; it is asked again until
// kafka.connect_timeout.
func (s *Sink) awaitDLQ(ctx context.Context) (kmsg.MetadataResponseTopic, error) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 50 * time.Millisecond
	b.MaxInterval = time.Second
	b.MaxElapsedTime = s.cfg.Kafka.ConnectTimeout
	var md kmsg.MetadataResponseTopic
	err := backoff.Retry(func() error {
		var err error
		md, err = s.describeDLQ(ctx)
		if err != nil {
			return backoff.Permanent(err)
		}
		if err := kerr.ErrorForCode(md.ErrorCode); errors.Is(err, kerr.UnknownTopicOrPartition) {
			return err
		}
		return nil
	}, backoff.WithContext(b, ctx))
	if err != nil {
		return md, fmt.Errorf("errors.dlq_topic %s: created, but the brokers do not list it within kafka.connect_timeout (%s): %w", s.cfg.Errors.DLQTopic, s.cfg.Kafka.ConnectTimeout, err)
	}
	return md, nil
}

// createDLQ creates the DLQ topic; one created meanwhile by another member
// is fine.
func (s *Sink) createDLQ(ctx context.Context) error {
	e := s.cfg.Errors
	partitions, replicas := int32(-1), int16(-1)
	if e.DLQTopicPartitions > 0 {
		partitions = e.DLQTopicPartitions
	}
	if e.DLQTopicReplicationFactor > 0 {
		replicas = e.DLQTopicReplicationFactor
	}
	resp, err := kadm.NewClient(s.cl).CreateTopic(ctx, partitions, replicas, nil, e.DLQTopic)
	if err == nil {
		err = resp.Err
	}
	switch {
	case err == nil:
		s.log.Info("created dead-letter topic", "topic", e.DLQTopic, "partitions", resp.NumPartitions, "replication_factor", resp.ReplicationFactor)
		return nil
	case errors.Is(err, kerr.TopicAlreadyExists):
		return nil
	}
	return fmt.Errorf("errors.dlq_topic %s does not exist and cannot be created: %w (create it, or grant the sink's user CREATE on it; errors.dlq_topic_partitions and errors.dlq_topic_replication_factor set how the sink creates it)", e.DLQTopic, err)
}

// refuseChanges handles the changes of a flush of table that do not fit
// the types committed meanwhile (another member committed a column first,
// with a type these values cannot take). They are record errors like
// those refused at decode: with errors.tolerance all they go to the
// dead-letter topic, rendered as evodb records (the original record is no
// longer at hand; the headers name it), before the commit lets their
// offsets pass; otherwise the first stops the sink.
func (s *Sink) refuseChanges(ctx context.Context, table string, misfits []misfit) error {
	dlq := make([]*kgo.Record, 0, len(misfits))
	for _, m := range misfits {
		ch := &m.change
		s.metrics.decodeErrors.WithLabelValues(ch.Topic).Inc()
		if s.cfg.Errors.Tolerance != "all" {
			return &RecordError{Topic: ch.Topic, Partition: ch.Partition, Offset: ch.Offset, Err: m.cause}
		}
		dlq = append(dlq, &kgo.Record{
			Topic: s.cfg.Errors.DLQTopic,
			Value: cdc.AppendEvoDB(nil, ch),
			Headers: []kgo.RecordHeader{
				{Key: "evodb.error", Value: []byte(m.cause.Error())},
				{Key: "evodb.source.topic", Value: []byte(ch.Topic)},
				{Key: "evodb.source.partition", Value: []byte(strconv.Itoa(int(ch.Partition)))},
				{Key: "evodb.source.offset", Value: []byte(strconv.FormatInt(ch.Offset, 10))},
				{Key: "evodb.format", Value: []byte(cdc.FormatEvoDB)},
			},
		})
	}
	if err := s.cl.ProduceSync(ctx, dlq...).FirstErr(); err != nil {
		return fmt.Errorf("send %d changes of table %s to dead-letter topic %s: %w", len(dlq), table, s.cfg.Errors.DLQTopic, err)
	}
	for _, m := range misfits {
		ch := &m.change
		s.metrics.dlqRecords.WithLabelValues(ch.Topic).Inc()
		s.log.Warn("change sent to dead-letter topic", "table", table, "topic", ch.Topic, "partition", strconv.Itoa(int(ch.Partition)), "offset", strconv.FormatInt(ch.Offset, 10), "dlq", s.cfg.Errors.DLQTopic, "err", m.cause.Error())
	}
	return nil
}
