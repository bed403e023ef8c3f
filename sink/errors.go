package sink

import (
	"errors"
	"fmt"

	"github.com/evodb/sink/codec"
)

// ErrOffsetsWentBack is returned (wrapped) when a partition's offsets are
// behind what a table already holds from it: the topic was deleted and
// re-created, or the cluster was replaced. The sink stops rather than
// silently filtering the new records as duplicates. It is detected exactly
// through the topic ID (KIP-516) each commit records with a partition's
// txn version; with a broker that returns no topic IDs, only when the
// table holds offsets at or past the partition's end.
var ErrOffsetsWentBack = errors.New("source offsets went backwards")

// ErrKilled is returned by Run after Kill.
var ErrKilled = errors.New("sink killed")

// topicChangedError is the ErrOffsetsWentBack of a table that recorded
// another topic ID for a partition than the one its records now come from.
func topicChangedError(table string, version int64, tp topicPartition, tableTopicID, topicID, group string) error {
	return fmt.Errorf("%w: table %s holds offsets through %d of %s/%d from topic ID %s, but the topic now has ID %s: it was deleted and re-created (or the cluster was replaced). Stop all sinks of group %q, then either use a new group (a new set of txn ids) or delete the table's data for this topic",
		ErrOffsetsWentBack, table, version, tp.topic, tp.partition, tableTopicID, topicID, group)
}

// RecordError is a record that could not be processed with
// errors.tolerance "none". It names the record and the reason.
type RecordError struct {
	Topic     string
	Partition int32
	Offset    int64
	Err       error
}

func (e *RecordError) Error() string {
	if hint := formatHint(e.Topic, e.Err); hint != "" {
		// A dead-letter topic would take every record of the topic.
		return fmt.Sprintf("record %s/%d@%d cannot be decoded: %s: %v", e.Topic, e.Partition, e.Offset, hint, e.Err)
	}
	return fmt.Sprintf("record %s/%d@%d cannot be processed (set errors.tolerance: all and errors.dlq_topic to divert such records and go on): %v",
		e.Topic, e.Partition, e.Offset, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// formatHint names the keys to set when a record failed to decode because
// it has another format's envelope, or returns "".
func formatHint(topic string, err error) string {
	var de *codec.DecodeError
	if !errors.As(err, &de) || de.LooksLike == "" {
		return ""
	}
	return fmt.Sprintf("this looks like %s: set kafka.format or kafka.formats.%s to %s", de.LooksLike.Envelope(), topic, de.LooksLike)
}

// routeError is a change whose table cannot be routed (a bad name for a
// path): a record error, not a sink error.
type routeError struct{ err error }

func (e *routeError) Error() string { return e.err.Error() }
func (e *routeError) Unwrap() error { return e.err }

// recordErr marks an error caused by one record's content (not by the
// sink or the store): it goes to the DLQ or stops the sink.
type recordErr struct{ err error }

func (e *recordErr) Error() string { return e.err.Error() }
func (e *recordErr) Unwrap() error { return e.err }

func isRecordError(err error) bool {
	var re *recordErr
	return errors.As(err, &re)
}
