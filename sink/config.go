package sink

import (
	"slices"
	"strings"
	"time"

	"github.com/evodb/sink/partitioner"
)

// Config is the sink runtime's configuration. Zero values take the defaults
// of DefaultConfig; Validate names the offending key of anything invalid.
type Config struct {
	// Instance names this sink process in commit logs; defaults to the host
	// name plus the process id.
	Instance string       `yaml:"instance"`
	Kafka    KafkaConfig  `yaml:"kafka"`
	Tables   TablesConfig `yaml:"tables"`
	Memory   MemoryConfig `yaml:"memory"`
	Errors   ErrorsConfig `yaml:"errors"`
	Commit   CommitConfig `yaml:"commit"`
	Notify   NotifyConfig `yaml:"notifications"`
	HTTP     HTTPConfig   `yaml:"http"`
	// SchemaRegistry is where the avro, protobuf and json-schema formats
	// find their schemas.
	SchemaRegistry SchemaRegistryConfig `yaml:"schema_registry"`
	// ShutdownTimeout bounds the final flush and commit on SIGTERM.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Dedupe is "none" (default) or "lsn": drop a change whose (table, LSN,
	// primary key) is already committed or buffered, for sources that
	// deliver at least once (Debezium after a connector restart).
	Dedupe string `yaml:"dedupe"`
	// DedupeWindow is how many recent (LSN, key) pairs per table the lsn
	// dedupe remembers.
	DedupeWindow int `yaml:"dedupe_window"`
}

// KafkaConfig selects the brokers, the consumer group and the topics.
type KafkaConfig struct {
	Brokers  []string `yaml:"brokers"`
	Group    string   `yaml:"group"`
	ClientID string   `yaml:"client_id"`
	// Topics lists the topics to consume; TopicRegex instead consumes every
	// topic matching a regular expression. Exactly one must be set.
	Topics     []string `yaml:"topics"`
	TopicRegex string   `yaml:"topic_regex"`
	// Format is the input format of every topic not named in Formats:
	// "evodb" or "debezium" (JSON), or "avro", "protobuf" or
	// "json-schema" (the Confluent wire format with schemas from
	// schema_registry).
	Format  string            `yaml:"format"`
	Formats map[string]string `yaml:"formats"`
	// KeyFormat is the record key format of every topic not named in
	// KeyFormats, for the schema-registry formats: "avro", "protobuf" or
	// "json-schema"; empty means the topic's value format. A key that is
	// not in the wire format is kept as opaque bytes.
	KeyFormat  string            `yaml:"key_format"`
	KeyFormats map[string]string `yaml:"key_formats"`
	// StartFrom is where a partition without a committed group offset
	// starts: "earliest" (default; a sink must not skip data) or "latest".
	StartFrom      string        `yaml:"start_from"`
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// ConnectTimeout is how long the sink tries to reach a broker at start
	// before it stops with an error.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// MaxPollRecords bounds one poll; smaller polls give finer-grained
	// memory control.
	MaxPollRecords int `yaml:"max_poll_records"`
	// FetchMaxBytes bounds what one fetch from a broker returns (Kafka's
	// fetch.max.bytes). Fetched batches wait in memory until polled; the
	// memory budget reserves half as much again as FetchMaxBytes for
	// each of MaxConcurrentFetches (FetchReserve).
	FetchMaxBytes int32 `yaml:"fetch_max_bytes"`
	// MaxConcurrentFetches bounds the fetches in flight or fetched and
	// not yet polled, across all brokers. Without a bound the client
	// keeps one per broker, so the memory fetched data takes would grow
	// with the size of the cluster.
	MaxConcurrentFetches int        `yaml:"max_concurrent_fetches"`
	TLS                  TLSConfig  `yaml:"tls"`
	SASL                 SASLConfig `yaml:"sasl"`
}

// FetchReserve is the part of memory.budget_bytes set aside for fetched
// data waiting to be polled: fetch_max_bytes for each concurrent fetch,
// times what a fetched byte costs once the client has decoded it
// (fetchLiveNum/fetchLiveDen). The table buffers share the rest.
func (k KafkaConfig) FetchReserve() int64 {
	return int64(k.FetchMaxBytes) * int64(k.MaxConcurrentFetches) * fetchLiveNum / fetchLiveDen
}

// fetchLiveNum/fetchLiveDen is what fetched data costs on the heap per byte a broker
// returned. A broker returns fetch_max_bytes of record batches as stored;
// the client decompresses them and gives each record a kgo.Record (about
// 170 bytes) that lives as long as the batch. At 2,048 tables a heap
// profile held 25 MB of fetched data for the 16 MiB of two fetches: 17.6
// MB of decompressed batches and 7.4 MB of records (BENCHMARKS.md,
// "Memory at 2,048 tables, a third time"). A topic whose batches
// compress better than that takes more; give it a larger budget or a
// smaller fetch_max_bytes.
const fetchLiveNum, fetchLiveDen = 3, 2

// TLSConfig enables TLS to the brokers.
type TLSConfig struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SchemaRegistryConfig reaches a Confluent-compatible Schema Registry.
type SchemaRegistryConfig struct {
	// URLs are the registry's base URLs, tried in order.
	URLs []string `yaml:"urls"`
	// Username and Password are HTTP basic auth; BearerToken instead
	// sends "Authorization: Bearer <token>".
	Username    string `yaml:"username"`
	Password    string `yaml:"password"`
	BearerToken string `yaml:"bearer_token"`
	// TLS: a CA for a private registry certificate, a client certificate
	// for mutual TLS. https URLs use TLS whether or not these are set.
	TLS TLSConfig `yaml:"tls"`
	// RequestTimeout bounds one request to the registry.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// RetryTimeout is how long a schema fetch retries an unavailable
	// registry before the sink stops with an error (records are never
	// skipped or dead-lettered for an outage).
	RetryTimeout time.Duration `yaml:"retry_timeout"`
	// CacheSize bounds the compiled schemas kept in memory.
	CacheSize int `yaml:"cache_size"`
	// JSONEnvelope is the envelope behind a json-schema header: "evodb"
	// (default) or "debezium".
	JSONEnvelope string `yaml:"json_envelope"`
	// Fields name the metadata fields of plain (not Debezium) Avro and
	// Protobuf records; defaults op, lsn, ts, table.
	Fields PlainFieldsConfig `yaml:"fields"`
}

// PlainFieldsConfig names the fields of a plain Avro or Protobuf record that carry
// the change's op, LSN, source time and table instead of a column.
type PlainFieldsConfig struct {
	Op    string `yaml:"op"`
	LSN   string `yaml:"lsn"`
	TS    string `yaml:"ts"`
	Table string `yaml:"table"`
}

// SASLConfig authenticates to the brokers.
type SASLConfig struct {
	// Mechanism is "", "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512".
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
}

// TableConfig is the per-table behaviour. TablesConfig.Default applies to
// every table; TablesConfig.Overrides replace individual keys per table.
type TableConfig struct {
	// Preset fills unset keys from a named preset: "example",
	// "edge-cache" or "enterprise" (see Presets).
	Preset string `yaml:"preset"`
	// Mode is the partition mode: "do-sqlite", "standard" or "enterprise".
	Mode string `yaml:"mode"`
	// FlushThreshold flushes a table buffer at this many records.
	FlushThreshold int `yaml:"flush_threshold"`
	// FlushInterval flushes a table buffer this long after its first record.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// Path is the table path template ({db}, {schema}, {table}, {topic}) or,
	// in an override, an explicit path such as "com/example/users".
	Path string `yaml:"path"`
	// MaxBufferBytes is the hard limit of one table buffer; defaults to four
	// times the mode's block size.
	MaxBufferBytes int64 `yaml:"max_buffer_bytes"`
	// Compression is "zstd" (default), "snappy" or "none".
	Compression string `yaml:"compression"`
	// KafkaColumns adds _topic, _partition and _offset to every row
	// (default true: they let `sink verify` prove exactly-once).
	KafkaColumns *bool `yaml:"kafka_columns"`
	// Format is the table format: "delta" (default, a Delta Lake log in
	// the store) or "iceberg" (an Iceberg table of the configured REST
	// catalog). The sink hands it to committer.Format.Open.
	Format string `yaml:"format"`
	// Mirror, if enabled, keeps a mirror table beside the change log: one
	// row per primary key, the key's latest change, deleted keys absent
	// (package mirror). An override's section inherits the keys it does
	// not set from the default section, except Enabled, which it states.
	Mirror *MirrorConfig `yaml:"mirror"`
}

// MirrorConfig configures a table's mirror: a Delta table that holds the
// current state of the change log (the view of docs/current-state.md),
// maintained from the change log with deletion vectors.
type MirrorConfig struct {
	// Enabled turns the mirror on.
	Enabled bool `yaml:"enabled"`
	// Path is the mirror table's path; "{path}" stands for the change
	// log's path. Default "{path}_current".
	Path string `yaml:"path"`
	// Key lists the primary key columns. Empty takes the change log's
	// evodb.primaryKey (recorded from the Kafka record keys); a table with
	// neither cannot be mirrored.
	Key []string `yaml:"key"`
	// Interval is how often the maintainer looks for new change-log
	// versions. Default 1s.
	Interval time.Duration `yaml:"interval"`
	// MaxFiles compacts the mirror when it holds more files than this.
	// Default 16.
	MaxFiles int `yaml:"max_files"`
	// TargetFileRows is the row count of the files mirror compaction
	// writes. Default 131072.
	TargetFileRows int `yaml:"target_file_rows"`
}

// DefaultMirrorPath is MirrorConfig.Path's default.
const DefaultMirrorPath = "{path}_current"

// mirrorDefaults returns the MirrorConfig defaults.
func mirrorDefaults() *MirrorConfig {
	return &MirrorConfig{Path: DefaultMirrorPath, Interval: time.Second, MaxFiles: 16, TargetFileRows: 131072}
}

// TablePath returns the mirror's table path for the change log at
// changeLog.
func (m *MirrorConfig) TablePath(changeLog string) string {
	return strings.ReplaceAll(m.Path, "{path}", changeLog)
}

// MirrorEnabled reports whether the table has a mirror.
func (t TableConfig) MirrorEnabled() bool { return t.Mirror != nil && t.Mirror.Enabled }

// Table formats TableConfig.Format names.
const (
	FormatDelta   = "delta"
	FormatIceberg = "iceberg"
)

// TablesConfig holds the defaults and per-table overrides keyed by table
// name (as routed: "db.schema.table" for Debezium, the table name for evodb).
type TablesConfig struct {
	Default   TableConfig            `yaml:"default"`
	Overrides map[string]TableConfig `yaml:"overrides"`
}

// MemoryConfig bounds what all table buffers hold together.
type MemoryConfig struct {
	// Budget is the global byte budget of buffered changes, of fetched
	// data waiting to be polled (KafkaConfig.FetchReserve, set aside
	// first), of the encoders (encoderReserve) and of the open tables'
	// own state: each table's snapshot, schema and metrics series,
	// estimated from its files and txns and counted as it opens and
	// commits. The buffers get what the encoders and tables leave (at
	// least a quarter of what the fetches leave), so a process
	// buffers less as it opens more tables and its memory stays within
	// the budget plus the runtime's headroom. A process whose tables'
	// state takes more than three quarters goes over the budget by the
	// difference: give it a larger budget.
	Budget int64 `yaml:"budget_bytes"`
	// HighWatermark and LowWatermark are fractions of what the buffers
	// get: above high the largest buffers flush early and fetching pauses
	// until usage falls below low.
	HighWatermark float64 `yaml:"high_watermark"`
	LowWatermark  float64 `yaml:"low_watermark"`
}

// ErrorsConfig decides what happens to a record that cannot be decoded.
type ErrorsConfig struct {
	// Tolerance is "none" (stop with an error naming the record) or "all"
	// (send it to DLQTopic and go on).
	Tolerance string `yaml:"tolerance"`
	DLQTopic  string `yaml:"dlq_topic"`
	// DLQTopicPartitions and DLQTopicReplicationFactor are what the sink
	// creates a missing DLQTopic with at start; zero takes the cluster's
	// defaults.
	DLQTopicPartitions        int32 `yaml:"dlq_topic_partitions"`
	DLQTopicReplicationFactor int16 `yaml:"dlq_topic_replication_factor"`
}

// CommitConfig tunes flushing and committing.
type CommitConfig struct {
	// MaxConcurrentFlushes bounds flushes running at once across tables.
	MaxConcurrentFlushes int `yaml:"max_concurrent_flushes"`
	// StoreRetryTimeout is how long a failing flush is retried before the
	// sink stops with an error rather than buffering forever.
	StoreRetryTimeout time.Duration `yaml:"store_retry_timeout"`
	// CheckpointInterval writes a Delta checkpoint every N commits.
	CheckpointInterval int `yaml:"checkpoint_interval"`
	// OffsetCommitInterval is the most often the group offset is committed.
	OffsetCommitInterval time.Duration `yaml:"offset_commit_interval"`
	// RevokeTimeout bounds the flush of revoked partitions' records.
	RevokeTimeout time.Duration `yaml:"revoke_timeout"`
}

// NotifyConfig publishes one JSON event per table commit (for cache
// invalidation) when Topic is set.
type NotifyConfig struct {
	Topic string `yaml:"topic"`
}

// HTTPConfig serves /metrics, /healthz, /readyz and /status.
type HTTPConfig struct {
	Addr string `yaml:"addr"`
	// Pprof also serves the Go profiler under /debug/pprof/. It is off by
	// default: the endpoints have no authentication, and a profile or
	// trace shows the process's memory contents and costs CPU, so they are
	// for a trusted network or a loopback address only.
	Pprof bool `yaml:"pprof"`
}

// Presets are the seed writer's parent-DO variants as named table presets:
// createLakehouseParentDOClass({partitionMode, flushThreshold,
// flushIntervalMs}) with its Example, EdgeCache and Enterprise classes.
// EdgeCache's cache invalidation is the notifications topic, set separately.
var presets = map[string]TableConfig{
	"example":    {Mode: "standard", FlushThreshold: 10_000, FlushInterval: 30 * time.Second},
	"edge-cache": {Mode: "standard", FlushThreshold: 10_000, FlushInterval: 30 * time.Second},
	"enterprise": {Mode: "enterprise", FlushThreshold: 100_000, FlushInterval: 30 * time.Second},
}

// PresetNames lists the table presets in a stable order.
func PresetNames() []string { return []string{"example", "edge-cache", "enterprise"} }

// DefaultConfig returns the configuration every unset key falls back to.
func DefaultConfig() Config {
	kc := true
	return Config{
		Kafka: KafkaConfig{
			Group:          "evodb-sink",
			ClientID:       "evodb-sink",
			Format:         "evodb",
			StartFrom:      "earliest",
			SessionTimeout: 45 * time.Second,
			ConnectTimeout: time.Minute,
			MaxPollRecords: 5000,
			FetchMaxBytes:  8 << 20,
			// Two: one fetch being polled while the next is fetched.
			MaxConcurrentFetches: 2,
		},
		Tables: TablesConfig{Default: TableConfig{
			Mode:           "standard",
			FlushThreshold: 10_000,
			FlushInterval:  30 * time.Second,
			Path:           partitioner.DefaultPathTemplate,
			Compression:    "zstd",
			KafkaColumns:   &kc,
			Format:         FormatDelta,
			Mirror:         mirrorDefaults(),
		}},
		Memory: MemoryConfig{Budget: 512 << 20, HighWatermark: 0.8, LowWatermark: 0.5},
		Errors: ErrorsConfig{Tolerance: "none"},
		Commit: CommitConfig{
			MaxConcurrentFlushes: 4,
			StoreRetryTimeout:    5 * time.Minute,
			CheckpointInterval:   10,
			OffsetCommitInterval: time.Second,
			RevokeTimeout:        20 * time.Second,
		},
		SchemaRegistry: SchemaRegistryConfig{
			RequestTimeout: 10 * time.Second,
			RetryTimeout:   5 * time.Minute,
			CacheSize:      1000,
			JSONEnvelope:   "evodb",
			Fields:         PlainFieldsConfig{Op: "op", LSN: "lsn", TS: "ts", Table: "table"},
		},
		ShutdownTimeout: 30 * time.Second,
		Dedupe:          "none",
		DedupeWindow:    1_000_000,
	}
}

// ApplyDefaults fills every unset key from DefaultConfig.
func (c *Config) ApplyDefaults() {
	d := DefaultConfig()
	setString(&c.Kafka.Group, d.Kafka.Group)
	setString(&c.Kafka.ClientID, d.Kafka.ClientID)
	setString(&c.Kafka.Format, d.Kafka.Format)
	setString(&c.Kafka.StartFrom, d.Kafka.StartFrom)
	sr, dsr := &c.SchemaRegistry, d.SchemaRegistry
	setDuration(&sr.RequestTimeout, dsr.RequestTimeout)
	setDuration(&sr.RetryTimeout, dsr.RetryTimeout)
	if sr.CacheSize == 0 {
		sr.CacheSize = dsr.CacheSize
	}
	setString(&sr.JSONEnvelope, dsr.JSONEnvelope)
	setString(&sr.Fields.Op, dsr.Fields.Op)
	setString(&sr.Fields.LSN, dsr.Fields.LSN)
	setString(&sr.Fields.TS, dsr.Fields.TS)
	setString(&sr.Fields.Table, dsr.Fields.Table)
	setDuration(&c.Kafka.SessionTimeout, d.Kafka.SessionTimeout)
	setDuration(&c.Kafka.ConnectTimeout, d.Kafka.ConnectTimeout)
	if c.Kafka.MaxPollRecords == 0 {
		c.Kafka.MaxPollRecords = d.Kafka.MaxPollRecords
	}
	if c.Kafka.FetchMaxBytes == 0 {
		c.Kafka.FetchMaxBytes = d.Kafka.FetchMaxBytes
	}
	if c.Kafka.MaxConcurrentFetches == 0 {
		c.Kafka.MaxConcurrentFetches = d.Kafka.MaxConcurrentFetches
	}
	c.Tables.Default = c.Tables.Default.withPreset().merge(d.Tables.Default)
	if c.Memory.Budget == 0 {
		c.Memory.Budget = d.Memory.Budget
	}
	if c.Memory.HighWatermark == 0 {
		c.Memory.HighWatermark = d.Memory.HighWatermark
	}
	if c.Memory.LowWatermark == 0 {
		c.Memory.LowWatermark = d.Memory.LowWatermark
	}
	setString(&c.Errors.Tolerance, d.Errors.Tolerance)
	if c.Commit.MaxConcurrentFlushes == 0 {
		c.Commit.MaxConcurrentFlushes = d.Commit.MaxConcurrentFlushes
	}
	setDuration(&c.Commit.StoreRetryTimeout, d.Commit.StoreRetryTimeout)
	if c.Commit.CheckpointInterval == 0 {
		c.Commit.CheckpointInterval = d.Commit.CheckpointInterval
	}
	setDuration(&c.Commit.OffsetCommitInterval, d.Commit.OffsetCommitInterval)
	setDuration(&c.Commit.RevokeTimeout, d.Commit.RevokeTimeout)
	setDuration(&c.ShutdownTimeout, d.ShutdownTimeout)
	setString(&c.Dedupe, d.Dedupe)
	if c.DedupeWindow == 0 {
		c.DedupeWindow = d.DedupeWindow
	}
}

// TableConfig returns the effective configuration of one table: its
// override (with its preset) over the defaults.
func (c *Config) TableConfig(table string) TableConfig {
	o, ok := c.Tables.Overrides[table]
	if !ok {
		return c.Tables.Default
	}
	return o.withPreset().merge(c.Tables.Default)
}

// withPreset fills unset keys from the named preset.
func (t TableConfig) withPreset() TableConfig {
	p, ok := presets[t.Preset]
	if !ok {
		return t
	}
	return t.merge(p)
}

// merge fills t's unset keys from d.
func (t TableConfig) merge(d TableConfig) TableConfig {
	setString(&t.Mode, d.Mode)
	if t.FlushThreshold == 0 {
		t.FlushThreshold = d.FlushThreshold
	}
	setDuration(&t.FlushInterval, d.FlushInterval)
	setString(&t.Path, d.Path)
	if t.MaxBufferBytes == 0 {
		t.MaxBufferBytes = d.MaxBufferBytes
	}
	setString(&t.Compression, d.Compression)
	setString(&t.Format, d.Format)
	if t.KafkaColumns == nil {
		t.KafkaColumns = d.KafkaColumns
	}
	t.Mirror = t.Mirror.merge(d.Mirror)
	return t
}

// merge returns a copy of m with its unset keys filled from d, then from
// the defaults; nil if both are nil. An override's mirror section thus
// inherits the default section's keys it does not set.
func (m *MirrorConfig) merge(d *MirrorConfig) *MirrorConfig {
	if m == nil && d == nil {
		return nil
	}
	var out MirrorConfig
	if m != nil {
		out = *m
	} else {
		out = *d
	}
	for _, src := range []*MirrorConfig{d, mirrorDefaults()} {
		if src == nil {
			continue
		}
		setString(&out.Path, src.Path)
		if out.Key == nil {
			out.Key = src.Key
		}
		setDuration(&out.Interval, src.Interval)
		if out.MaxFiles == 0 {
			out.MaxFiles = src.MaxFiles
		}
		if out.TargetFileRows == 0 {
			out.TargetFileRows = src.TargetFileRows
		}
	}
	out.Key = slices.Clone(out.Key)
	if len(out.Key) == 0 {
		out.Key = nil
	}
	return &out
}

func setString(dst *string, def string) {
	if *dst == "" {
		*dst = def
	}
}

func setDuration(dst *time.Duration, def time.Duration) {
	if *dst == 0 {
		*dst = def
	}
}
