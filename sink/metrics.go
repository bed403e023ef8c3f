package sink

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the sink runtime's Prometheus metrics, registered on the
// registerer the caller passes in (never the global one).
type metrics struct {
	recordsIn        *prometheus.CounterVec
	rowsCommitted    *prometheus.CounterVec
	decodeErrors     *prometheus.CounterVec
	dlqRecords       *prometheus.CounterVec
	tombstones       *prometheus.CounterVec
	durableSkipped   *prometheus.CounterVec
	dedupeDropped    *prometheus.CounterVec
	bufferedBytes    prometheus.Gauge
	tableStateBytes  prometheus.Gauge
	flushes          *prometheus.CounterVec
	flushDuration    prometheus.Histogram
	blockBytes       prometheus.Histogram
	commitConflicts  *prometheus.CounterVec
	commitDuration   prometheus.Histogram
	storeRetries     *prometheus.CounterVec
	lag              *prometheus.GaugeVec
	freshness        *prometheus.GaugeVec
	tableVersion     *prometheus.GaugeVec
	pausedPartitions prometheus.Gauge
	pauses           prometheus.Counter
	resumes          prometheus.Counter
	offsetCommits    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		recordsIn: f.NewCounterVec(prometheus.CounterOpts{
			Name: "evodb_sink_records_in_total", Help: "Kafka records polled, by topic.",
		}, []string{"topic"}),
		rowsCommitted: f.NewCounterVec(prometheus.CounterOpts{
			Name: "evodb_sink_rows_committed_total", Help: "Rows made durable in table commits, by table.",
		}, []string{"table"}),
		decodeErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "evodb_sink_decode_errors_total", Help: "Records that could not be decoded or did not fit their table's schema, by topic.",
		}, []string{"topic"}),
		dlqRecords: f.NewCounterVec(prometheus.CounterOpts{
			Name: "evodb_sink_dlq_records_total", Help: "Records sent to the dead-letter topic, by source topic.",
		}, []string{"topic"}),
		tombstones: f.NewCounterVec(prometheus.CounterOpts{
			Name: "evodb_sink_tombstones_total", Help: "Tombstone records skipped, by topic.",
		}, []string{"topic"}),
		durableSkipped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "evodb_sink_records_already_durable_total", Help: "Records dropped because the table log already holds them (replays, zombies), by table.",
		}, []string{"table"}),
		dedupeDropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "evodb_sink_source_duplicates_dropped_total", Help: "Changes dropped by `dedupe: lsn` because their (LSN, key) was already committed or buffered, by table.",
		}, []string{"table"}),
		bufferedBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "evodb_sink_buffered_bytes", Help: "Bytes of changes buffered or being flushed.",
		}),
		tableStateBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "evodb_sink_table_state_bytes", Help: "Estimated bytes the open tables hold besides their buffers (snapshots, schemas, metrics), counted against the memory budget.",
		}),
		flushes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "evodb_sink_flushes_total", Help: "Table buffer flushes started, by reason.",
		}, []string{"reason"}),
		flushDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name: "evodb_sink_flush_duration_seconds", Help: "Time from drain to durable commit of one flush.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		blockBytes: f.NewHistogram(prometheus.HistogramOpts{
			Name: "evodb_sink_block_bytes", Help: "Size of uploaded Parquet blocks.",
			Buckets: prometheus.ExponentialBuckets(4096, 4, 10),
		}),
		commitConflicts: f.NewCounterVec(prometheus.CounterOpts{
			Name: "evodb_sink_commit_conflicts_total", Help: "Commits refused because part of the block was already durable, by table.",
		}, []string{"table"}),
		commitDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name: "evodb_sink_commit_duration_seconds", Help: "Latency of table log commits.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14),
		}),
		storeRetries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "evodb_sink_store_retries_total", Help: "Flush steps retried after a store error, by step.",
		}, []string{"step"}),
		lag: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "evodb_sink_kafka_lag_records", Help: "High watermark minus the lowest offset not yet durable, by partition.",
		}, []string{"topic", "partition"}),
		freshness: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "evodb_sink_table_freshness_seconds", Help: "Now minus the newest committed source timestamp, by table.",
		}, []string{"table"}),
		tableVersion: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "evodb_sink_table_version", Help: "Latest table log version this sink committed or read, by table.",
		}, []string{"table"}),
		pausedPartitions: f.NewGauge(prometheus.GaugeOpts{
			Name: "evodb_sink_paused", Help: "1 while fetching is paused by the memory budget.",
		}),
		pauses: f.NewCounter(prometheus.CounterOpts{
			Name: "evodb_sink_fetch_pauses_total", Help: "Times fetching was paused by the memory budget.",
		}),
		resumes: f.NewCounter(prometheus.CounterOpts{
			Name: "evodb_sink_fetch_resumes_total", Help: "Times fetching resumed below the low watermark.",
		}),
		offsetCommits: f.NewCounterVec(prometheus.CounterOpts{
			Name: "evodb_sink_offset_commits_total", Help: "Group offset commits, by result.",
		}, []string{"result"}),
	}
}

// storeSteps are the steps Sink.retry names in evodb_sink_store_retries_total:
// the failed step of a flush or table load run again (retry.go).
var storeSteps = []string{"probe", "load", "create", "upload", "commit", "dedupe-read"}

// flushReasons are the reasons a flush starts for.
var flushReasons = []string{"records", "bytes", "age", "memory", "overflow", "revoke", "shutdown"}

// initFixed exports the counters whose labels are known in advance at 0.
// A counter vector exports a series only once a label set was used, and
// an alert on rate() or increase() of a series that does not exist yet
// never fires on the first error; so every series the sink may increment
// exists from the start.
func (m *metrics) initFixed() {
	for _, step := range storeSteps {
		m.storeRetries.WithLabelValues(step)
	}
	for _, reason := range flushReasons {
		m.flushes.WithLabelValues(reason)
	}
	for _, result := range []string{"ok", "error"} {
		m.offsetCommits.WithLabelValues(result)
	}
}

// initTopic exports the per-topic counters of topic at 0 (see initFixed);
// topics are known from the configuration or, with a topic regex, when
// their partitions are assigned.
func (m *metrics) initTopic(topic string) {
	m.recordsIn.WithLabelValues(topic)
	m.decodeErrors.WithLabelValues(topic)
	m.dlqRecords.WithLabelValues(topic)
	m.tombstones.WithLabelValues(topic)
}

// initTable exports the per-table counters of a table at 0 when the sink
// opens it (see initFixed); the deduplication counter only if the table
// deduplicates.
func (m *metrics) initTable(path string, dedupe bool) {
	m.rowsCommitted.WithLabelValues(path)
	m.durableSkipped.WithLabelValues(path)
	m.commitConflicts.WithLabelValues(path)
	if dedupe {
		m.dedupeDropped.WithLabelValues(path)
	}
}
