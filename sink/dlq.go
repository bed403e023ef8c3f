package sink

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
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
		if md, err = s.describeDLQ(ctx); err != nil {
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
	return nil
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
