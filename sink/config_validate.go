package sink

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/codec/confluent"
	"github.com/evodb/sink/partitioner"
)

// Validate reports every invalid key, each named by its YAML path, with
// the allowed values.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	k := c.Kafka
	if len(k.Brokers) == 0 {
		bad("kafka.brokers", "at least one broker address is required")
	}
	for i, b := range k.Brokers {
		if strings.TrimSpace(b) == "" {
			bad(fmt.Sprintf("kafka.brokers[%d]", i), "empty address")
		}
	}
	if k.Group == "" {
		bad("kafka.group", "required")
	}
	switch {
	case len(k.Topics) == 0 && k.TopicRegex == "":
		bad("kafka.topics", "set kafka.topics or kafka.topic_regex")
	case len(k.Topics) > 0 && k.TopicRegex != "":
		bad("kafka.topic_regex", "set either kafka.topics or kafka.topic_regex, not both")
	case k.TopicRegex != "":
		if _, err := regexp.Compile(k.TopicRegex); err != nil {
			bad("kafka.topic_regex", "invalid regular expression: %v", err)
		}
	}
	for i, t := range k.Topics {
		switch t {
		case "":
		case c.Errors.DLQTopic:
			bad(fmt.Sprintf("kafka.topics[%d]", i), "%q is errors.dlq_topic: the sink must not consume its own dead letters", t)
		case c.Notify.Topic:
			bad(fmt.Sprintf("kafka.topics[%d]", i), "%q is notifications.topic: the sink must not consume its own commit events", t)
		}
	}
	if err := validFormat(k.Format); err != nil {
		bad("kafka.format", "%v", err)
	}
	for _, topic := range sortedKeys(k.Formats) {
		if err := validFormat(k.Formats[topic]); err != nil {
			bad("kafka.formats."+topic, "%v", err)
		}
	}
	if err := validKeyFormat(k.KeyFormat); err != nil {
		bad("kafka.key_format", "%v", err)
	}
	for _, topic := range sortedKeys(k.KeyFormats) {
		if err := validKeyFormat(k.KeyFormats[topic]); err != nil {
			bad("kafka.key_formats."+topic, "%v", err)
		}
	}
	c.validateSchemaRegistry(bad)
	if k.StartFrom != "earliest" && k.StartFrom != "latest" {
		bad("kafka.start_from", "%q is not one of earliest, latest", k.StartFrom)
	}
	if k.SessionTimeout < 0 {
		bad("kafka.session_timeout", "must be positive")
	}
	if k.ConnectTimeout < 0 {
		bad("kafka.connect_timeout", "must be positive")
	}
	if k.MaxPollRecords <= 0 {
		bad("kafka.max_poll_records", "must be positive")
	}
	if k.FetchMaxBytes < 1<<10 {
		bad("kafka.fetch_max_bytes", "must be at least 1024 (the default is 8 MiB)")
	}
	if k.MaxConcurrentFetches <= 0 {
		bad("kafka.max_concurrent_fetches", "must be positive")
	}
	switch k.SASL.Mechanism {
	case "":
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if k.SASL.Username == "" {
			bad("kafka.sasl.username", "required with kafka.sasl.mechanism %s", k.SASL.Mechanism)
		}
	default:
		bad("kafka.sasl.mechanism", "%q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", k.SASL.Mechanism)
	}
	if (k.TLS.CertFile == "") != (k.TLS.KeyFile == "") {
		bad("kafka.tls", "cert_file and key_file must be set together")
	}

	validTable := func(prefix string, t TableConfig) {
		if t.Preset != "" {
			if _, ok := presets[t.Preset]; !ok {
				bad(prefix+".preset", "%q is not one of %s", t.Preset, strings.Join(PresetNames(), ", "))
			}
		}
		if _, err := partitioner.ModeByName(t.Mode); err != nil {
			bad(prefix+".mode", "%v", err)
		}
		if t.FlushThreshold <= 0 {
			bad(prefix+".flush_threshold", "must be positive, got %d", t.FlushThreshold)
		}
		if t.FlushInterval <= 0 {
			bad(prefix+".flush_interval", "must be positive, got %s", t.FlushInterval)
		}
		if t.MaxBufferBytes < 0 {
			bad(prefix+".max_buffer_bytes", "must be positive")
		}
		if _, err := partitioner.ParsePathTemplate(t.Path); err != nil {
			bad(prefix+".path", "%v", err)
		}
		switch t.Compression {
		case "zstd", "snappy", "none":
		default:
			bad(prefix+".compression", "%q is not one of zstd, snappy, none", t.Compression)
		}
		switch t.Format {
		case FormatDelta, FormatIceberg:
		default:
			bad(prefix+".format", "%q is not one of delta, iceberg", t.Format)
		}
		if t.MirrorEnabled() {
			validMirror(prefix+".mirror", t, bad)
		}
	}
	validTable("tables.default", c.Tables.Default)
	for _, name := range sortedKeys(c.Tables.Overrides) {
		validTable("tables.overrides."+name, c.TableConfig(name))
	}

	m := c.Memory
	if m.Budget <= 0 {
		bad("memory.budget_bytes", "must be positive")
	} else if r := c.Kafka.FetchReserve(); r > 0 && r > m.Budget/2 {
		bad("memory.budget_bytes", "%d leaves too little for table buffers: kafka.fetch_max_bytes (%d) × kafka.max_concurrent_fetches (%d) × 1.5 (what fetched data costs once decompressed and decoded) = %d is reserved from it for fetched data, and may take at most half of it; raise the budget or lower kafka.fetch_max_bytes",
			m.Budget, c.Kafka.FetchMaxBytes, c.Kafka.MaxConcurrentFetches, r)
	}
	if !(m.LowWatermark > 0 && m.LowWatermark < m.HighWatermark && m.HighWatermark <= 1) || math.IsNaN(m.LowWatermark) || math.IsNaN(m.HighWatermark) {
		bad("memory", "need 0 < low_watermark < high_watermark <= 1, got %v and %v", m.LowWatermark, m.HighWatermark)
	}
	switch c.Errors.Tolerance {
	case "none":
	case "all":
		if c.Errors.DLQTopic == "" {
			bad("errors.dlq_topic", "required with errors.tolerance: all")
		}
	default:
		bad("errors.tolerance", "%q is not one of none, all", c.Errors.Tolerance)
	}
	if c.Errors.DLQTopicPartitions < 0 {
		bad("errors.dlq_topic_partitions", "must be positive, or 0 for the cluster's default")
	}
	if c.Errors.DLQTopicReplicationFactor < 0 {
		bad("errors.dlq_topic_replication_factor", "must be positive, or 0 for the cluster's default")
	}
	cc := c.Commit
	if cc.MaxConcurrentFlushes <= 0 {
		bad("commit.max_concurrent_flushes", "must be positive")
	}
	if cc.StoreRetryTimeout <= 0 {
		bad("commit.store_retry_timeout", "must be positive")
	}
	if cc.CheckpointInterval <= 0 {
		bad("commit.checkpoint_interval", "must be positive")
	}
	if cc.OffsetCommitInterval <= 0 {
		bad("commit.offset_commit_interval", "must be positive")
	}
	if cc.RevokeTimeout <= 0 {
		bad("commit.revoke_timeout", "must be positive")
	}
	if c.Dedupe != "none" && c.Dedupe != "lsn" {
		bad("dedupe", "%q is not one of none, lsn", c.Dedupe)
	}
	if c.DedupeWindow <= 0 {
		bad("dedupe_window", "must be positive")
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown_timeout", "must be positive")
	}
	return errors.Join(errs...)
}

func validFormat(f string) error {
	switch codec.Format(f) {
	case cdc.FormatEvoDB, cdc.FormatDebezium, confluent.FormatAvro, confluent.FormatProtobuf, confluent.FormatJSONSchema:
		return nil
	}
	return fmt.Errorf("%q is not one of evodb, debezium, avro, protobuf, json-schema", f)
}

func validKeyFormat(f string) error {
	switch codec.Format(f) {
	case "", confluent.FormatAvro, confluent.FormatProtobuf, confluent.FormatJSONSchema:
		return nil
	}
	return fmt.Errorf("%q is not one of avro, protobuf, json-schema (or empty: the value format)", f)
}

// usesSchemaRegistry reports whether any topic's format reads schemas
// from the registry.
func (k *KafkaConfig) usesSchemaRegistry() bool {
	if confluent.IsFormat(codec.Format(k.Format)) {
		return true
	}
	for _, f := range k.Formats {
		if confluent.IsFormat(codec.Format(f)) {
			return true
		}
	}
	return false
}

func (c *Config) validateSchemaRegistry(bad func(key, format string, args ...any)) {
	r := c.SchemaRegistry
	if len(r.URLs) == 0 {
		if c.Kafka.usesSchemaRegistry() {
			bad("schema_registry.urls", "required: a topic's format (kafka.format or kafka.formats) is avro, protobuf or json-schema")
		}
		return
	}
	for i, raw := range r.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(fmt.Sprintf("schema_registry.urls[%d]", i), "%q is not an http:// or https:// URL", raw)
		}
	}
	if r.Password != "" && r.Username == "" {
		bad("schema_registry.username", "required with schema_registry.password")
	}
	if r.BearerToken != "" && r.Username != "" {
		bad("schema_registry.bearer_token", "set either schema_registry.bearer_token or schema_registry.username/password, not both")
	}
	if (r.TLS.CertFile == "") != (r.TLS.KeyFile == "") {
		bad("schema_registry.tls.cert_file", "schema_registry.tls.cert_file and key_file go together")
	}
	if r.RequestTimeout <= 0 {
		bad("schema_registry.request_timeout", "must be positive")
	}
	if r.RetryTimeout <= 0 {
		bad("schema_registry.retry_timeout", "must be positive")
	}
	if r.CacheSize <= 0 {
		bad("schema_registry.cache_size", "must be positive")
	}
	switch codec.Format(r.JSONEnvelope) {
	case cdc.FormatEvoDB, cdc.FormatDebezium:
	default:
		bad("schema_registry.json_envelope", "%q is not one of evodb, debezium", r.JSONEnvelope)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// validMirror checks an enabled mirror section of table configuration t.
func validMirror(prefix string, t TableConfig, bad func(key, format string, args ...any)) {
	m := t.Mirror
	if t.Format == FormatIceberg {
		bad(prefix, "mirror tables need format: delta (they keep deleted rows in Delta deletion vectors); an Iceberg mirror is not supported yet")
	}
	if m.Path == "" || m.TablePath("x") == "x" || m.TablePath(t.Path) == t.Path {
		bad(prefix+".path", "%q names the change log itself; use a path such as %q", m.Path, DefaultMirrorPath)
	} else if _, err := partitioner.ParsePathTemplate(m.TablePath(t.Path)); err != nil {
		bad(prefix+".path", "%v", err)
	} else if p := m.TablePath("a/b"); partitioner.Nested(p, "a/b") || partitioner.Nested("a/b", p) {
		bad(prefix+".path", "%q puts the mirror inside its change log (or the change log inside the mirror): one table's path may not lie inside another's; use a sibling path such as %q", m.Path, DefaultMirrorPath)
	}
	for i, k := range m.Key {
		if strings.TrimSpace(k) == "" || strings.Contains(k, ",") {
			bad(fmt.Sprintf("%s.key[%d]", prefix, i), "%q is not a column name", k)
		}
	}
	if m.Interval <= 0 {
		bad(prefix+".interval", "must be positive, got %s", m.Interval)
	}
	if m.MaxFiles < 2 {
		bad(prefix+".max_files", "must be at least 2, got %d", m.MaxFiles)
	}
	if m.TargetFileRows <= 0 {
		bad(prefix+".target_file_rows", "must be positive, got %d", m.TargetFileRows)
	}
}
