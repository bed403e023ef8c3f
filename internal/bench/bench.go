// Package bench measures the sink against what a user would run instead,
// on the same records in the same run: a consumer that only polls (the
// floor any Kafka sink pays) and a decode + Parquet encode loop with no
// Kafka and no store (the floor of the format work). It reports throughput,
// records per CPU-second, peak RSS, store amplification, objects per GB and
// the produce-to-visible delay at half the measured maximum load. With
// Config.Peers it also runs what a user would run instead (a Python
// consumer writing with delta-rs, internal/bench/peer; kafka-delta-ingest)
// on the same records and compares both outputs value by value.
//
// The backlog is generated and produced before any clock starts. The sink
// runs in this process (its CPU is then the process's, which includes the
// in-process broker when there is one) or, with Config.SinkCommand, as a
// child process whose CPU time and peak RSS are its own.
package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/codec/confluent"
	"github.com/evodb/sink/internal/workload"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/sink"
)

// Config describes one benchmark scenario.
type Config struct {
	// Tables is the number of tables (8, 64 and 512 are the standard sizes).
	Tables int
	// Format is the input envelope; SchemaWrapper adds the Kafka Connect
	// schema wrapper to Debezium records. The schema-registry formats avro
	// and protobuf carry the evodb workload's changes (the same rows as
	// evodb with the same seed) as plain records in the Confluent wire
	// format, with schemas served by an in-process registry.
	Format        codec.Format
	SchemaWrapper bool
	// Records is the size of the backlog.
	Records int
	// Partitions of the topic; default 12.
	Partitions int32
	// Seed makes the records reproducible.
	Seed uint64
	// Brokers are the seed brokers of a real cluster; empty starts an
	// in-process kfake cluster.
	Brokers []string
	// StoreURL is where the sink writes (file://, s3://…); empty is a
	// temporary directory. S3 carries what the URL does not (credentials
	// come from the environment when empty).
	StoreURL string
	S3       objstore.S3Config
	// TableFormat is the tables' format: "delta" (default) or
	// TableFormatIceberg, whose tables live in the REST catalog at
	// CatalogURI and need SinkCommand and an s3:// store. An Iceberg run's
	// store requests are counted by proxies in front of the S3 server and
	// the catalog, so they include iceberg-go's manifest reads and writes
	// and the catalog requests.
	TableFormat string
	CatalogURI  string
	// FlushInterval, MemoryBudget and Mode are the sink's
	// tables.default.flush_interval, memory.budget_bytes and
	// tables.default.mode.
	FlushInterval time.Duration
	MemoryBudget  int64
	Mode          string
	// LatencyDuration is how long the paced producer runs at half the
	// measured maximum rate; 0 skips the latency measurement.
	LatencyDuration time.Duration
	// Warm, after the backlog is committed, measures the sink again on a
	// second backlog of as many records of the same tables (Result.Warm):
	// every table exists and is open, so the figures leave out what a
	// table's creation and opening cost, which the first pass has once
	// per table.
	Warm bool
	// SinkCommand, when set, runs the sink as a child process: the command
	// and its leading arguments, to which "-c <config file>" is appended
	// (e.g. the sink binary and "run").
	SinkCommand []string
	// TempDir holds the default store, the child's config and its log.
	TempDir string
	// Peers, when set (PeerPython, PeerKafkaDeltaIngest), also run what a
	// user would run instead of the sink on the same records, one after
	// the other after the sink's pass, and compare each output with the
	// sink's value by value. They need a filesystem store and
	// PeerInterpreter, a Python with confluent-kafka, deltalake and pyarrow
	// (the comparison uses it too); PeerKafkaDeltaIngest needs PeerBinary,
	// the kafka-delta-ingest binary, and a run of one evodb table.
	Peers           []string
	PeerInterpreter string
	PeerBinary      string
	// Log, when not nil, receives progress lines.
	Log func(format string, args ...any)
}

func (c *Config) applyDefaults() {
	if c.Tables <= 0 {
		c.Tables = workload.DefaultTables
	}
	if c.Format == "" {
		c.Format = cdc.FormatEvoDB
	}
	if c.Records <= 0 {
		c.Records = 200_000
	}
	if c.Partitions <= 0 {
		c.Partitions = workload.DefaultPartitions
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = 5 * time.Second
	}
	if c.MemoryBudget <= 0 {
		c.MemoryBudget = 128 << 20
	}
	if c.Mode == "" {
		c.Mode = "standard"
	}
	if c.Log == nil {
		c.Log = func(string, ...any) {}
	}
}

// Throughput is one measured pass over the backlog.
type Throughput struct {
	Records    int           `json:"records"`
	InputBytes int64         `json:"input_bytes"`
	Wall       time.Duration `json:"wall_ns"`
	CPU        time.Duration `json:"cpu_ns"`
	// RecordsPerSec and MBPerSec are over wall time (MB = 10^6 bytes of
	// Kafka record values); RecordsPerCPUSec over user+sys CPU time.
	RecordsPerSec    float64 `json:"records_per_sec"`
	MBPerSec         float64 `json:"mb_per_sec"`
	RecordsPerCPUSec float64 `json:"records_per_cpu_sec"`
}

func newThroughput(records int, input int64, wall, cpu time.Duration) Throughput {
	t := Throughput{Records: records, InputBytes: input, Wall: wall, CPU: cpu}
	if s := wall.Seconds(); s > 0 {
		t.RecordsPerSec = float64(records) / s
		t.MBPerSec = float64(input) / 1e6 / s
	}
	if s := cpu.Seconds(); s > 0 {
		t.RecordsPerCPUSec = float64(records) / s
	}
	return t
}

// Store is what the sink left on the store for the backlog.
type Store struct {
	Objects int `json:"objects"`
	// Commits counts the versions of the tables' logs, version 0 (each
	// table's creation, with its first data file) included.
	Commits   int   `json:"commits"`
	DataFiles int   `json:"data_files"`
	Bytes     int64 `json:"bytes"`
	DataBytes int64 `json:"data_bytes"`
	// BytesPerInputByte and BytesPerRecord count every object (data and
	// log); ObjectsPerGB is objects per 10^9 bytes of input.
	BytesPerInputByte float64 `json:"bytes_per_input_byte"`
	BytesPerRecord    float64 `json:"bytes_per_record"`
	ObjectsPerGB      float64 `json:"objects_per_gb"`
}

// PerCommit is what the sink spent per table log commit in the throughput
// pass: every store request it made from its start (table opens, data
// files, commits, checkpoints) and its CPU time, over Store.Commits.
type PerCommit struct {
	// Requests counts the sink's store requests by operation.
	Requests map[string]int64 `json:"requests"`
	// RequestsPerCommit is all requests over the commits.
	RequestsPerCommit float64 `json:"requests_per_commit"`
	// CPU is the sink's CPU time over the commits.
	CPU time.Duration `json:"cpu_ns"`
}

func newPerCommit(requests map[string]int64, commits int, cpu time.Duration) PerCommit {
	pc := PerCommit{Requests: requests}
	if commits > 0 {
		var n int64
		for _, v := range requests {
			n += v
		}
		pc.RequestsPerCommit = float64(n) / float64(commits)
		pc.CPU = cpu / time.Duration(commits)
	}
	return pc
}

// WarmPass is the sink on a second backlog of the same tables
// (Config.Warm): produced while the sink runs, timed from the first record
// sent until every record of it is committed, with the sink's CPU over the
// same interval. Commits, DataFiles and PerCommit count this pass alone.
type WarmPass struct {
	Sink Throughput `json:"sink"`
	// CPUVsEncode is the pass's records per CPU-second over
	// decode+encode-only's on the first backlog (the same workload).
	CPUVsEncode float64   `json:"cpu_vs_encode"`
	Commits     int       `json:"commits"`
	DataFiles   int       `json:"data_files"`
	PerCommit   PerCommit `json:"per_commit"`
}

// Latency is the produce-to-visible delay at half the maximum load.
type Latency struct {
	Rate     float64       `json:"rate"`
	Records  int           `json:"records"`
	Measured int           `json:"measured"`
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
	Max      time.Duration `json:"max_ns"`
}

// Ratios put the sink beside the baselines (higher is better for all but
// StoreVsEncode, where 1.0 is the format's own size).
type Ratios struct {
	// ThroughputVsConsume is sink records/s over consume-only records/s.
	ThroughputVsConsume float64 `json:"throughput_vs_consume"`
	// CPUVsEncode is sink records per CPU-second over decode+encode-only
	// records per CPU-second.
	CPUVsEncode float64 `json:"cpu_vs_encode"`
	// CPUVsConsume is sink records per CPU-second over consume-only
	// records per CPU-second.
	CPUVsConsume float64 `json:"cpu_vs_consume"`
	// StoreVsEncode is the sink's data bytes over the encode-only Parquet
	// bytes.
	StoreVsEncode float64 `json:"store_vs_encode"`
}

// Result is one scenario's measurements.
type Result struct {
	Machine Machine `json:"machine"`
	Tables  int     `json:"tables"`
	Format  string  `json:"format"`
	Broker  string  `json:"broker"`
	Store   string  `json:"store"`
	// TableFormat is "iceberg" for Iceberg tables, empty for Delta.
	TableFormat string `json:"table_format,omitempty"`
	Process     bool   `json:"process"`
	Budget      int64  `json:"memory_budget"`
	Flush       string `json:"flush_interval"`
	Sink        Throughput
	Consume     Throughput `json:"consume_only"`
	Encode      Throughput `json:"decode_encode_only"`
	// EncodeBytes is the Parquet bytes of the decode+encode baseline.
	EncodeBytes int64     `json:"encode_bytes"`
	Written     Store     `json:"store_written"`
	PeakRSS     int64     `json:"peak_rss"`
	PerCommit   PerCommit `json:"per_commit"`
	Latency     Latency   `json:"latency"`
	Ratios      Ratios    `json:"ratios"`
	// Peers are the peers' passes and comparisons, when Config.Peers is
	// set, in its order.
	Peers []*Peer `json:"peers,omitempty"`
	// Warm is the second pass of Config.Warm.
	Warm *WarmPass `json:"warm,omitempty"`
	// Notes name anything that qualifies the figures.
	Notes []string `json:"notes,omitempty"`
}

// Run measures one scenario: it produces the backlog, runs both baselines
// and the sink over it, then the paced latency phase.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.applyDefaults()
	res := &Result{
		Machine: ThisMachine(), Tables: cfg.Tables, Format: string(cfg.Format), Process: len(cfg.SinkCommand) > 0,
		Budget: cfg.MemoryBudget, Flush: cfg.FlushInterval.String(), Broker: "kfake (in-process)", Store: "filesystem (temporary)",
	}
	if cfg.SchemaWrapper {
		res.Format += "+schema"
	}
	if cfg.TableFormat == TableFormatIceberg {
		res.TableFormat = TableFormatIceberg
	}
	brokers := cfg.Brokers
	if len(brokers) == 0 {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
		if err != nil {
			return nil, fmt.Errorf("start in-process broker: %w", err)
		}
		defer cluster.Close()
		brokers = cluster.ListenAddrs()
		if !res.Process {
			res.Notes = append(res.Notes, "sink CPU and RSS are the whole process's, including the in-process broker serving fetches")
		}
	} else {
		res.Broker = strings.Join(brokers, ",")
	}
	storeURL := cfg.StoreURL
	if storeURL == "" {
		storeURL = "file://" + cfg.TempDir + "/store"
	} else {
		res.Store = redact(storeURL)
	}
	// The peers are checked before anything is made for the run.
	peers, err := checkPeers(cfg, storeURL)
	if err != nil {
		return nil, err
	}
	bucket, err := objstore.Open(ctx, storeURL, cfg.S3)
	if err != nil {
		return nil, err
	}

	// Names unique to this run, so runs against one broker or bucket never
	// see each other's data or offsets.
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	topic := "bench-" + id
	notifyTopic := topic + "-commits"
	prefix := "bench-" + id
	genFormat := cfg.Format
	var reg *registryFormat
	if confluent.IsEncodable(cfg.Format) {
		if len(cfg.Peers) > 0 {
			return nil, fmt.Errorf("peers %q read JSON only, not %s", cfg.Peers, cfg.Format)
		}
		if reg, err = newRegistryFormat(cfg.Format, topic); err != nil {
			return nil, err
		}
		defer reg.close()
		genFormat = cdc.FormatEvoDB
		res.Notes = append(res.Notes, "schemas served by an in-process registry; the sink fetches each schema ID once")
	}
	g := workload.New(workload.Config{
		Format: genFormat, SchemaWrapper: cfg.SchemaWrapper, Topic: topic,
		Partitions: cfg.Partitions, Tables: cfg.Tables,
	}, rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0xbe7c4)))
	// next is the generator, re-encoding for a registry format; genErr
	// holds its first error, checked after each phase that produces.
	next := g.Next
	var genErr error
	if reg != nil {
		next = func() workload.Record {
			r := g.Next()
			if genErr == nil {
				genErr = reg.transform(ctx, &r)
			}
			return r
		}
	}

	recs, input := backlog(next, cfg.Records)
	if genErr != nil {
		return nil, genErr
	}
	cl, err := kgo.NewClient(append(workload.ProducerOptions(), kgo.SeedBrokers(brokers...),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(5*time.Millisecond))...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, t := range []string{topic, notifyTopic} {
		if err := createTopic(ctx, adm, t, cfg.Partitions); err != nil {
			return nil, err
		}
	}
	cfg.Log("producing the backlog: %d records, %.1f MB, %d tables, %s", len(recs), float64(input)/1e6, cfg.Tables, res.Format)
	if err := produceAll(ctx, cl, recs); err != nil {
		return nil, err
	}

	cfg.Log("baseline: consume only")
	if res.Consume, err = ConsumeOnly(ctx, brokers, topic, len(recs), input); err != nil {
		return nil, err
	}
	cfg.Log("baseline: decode and encode only")
	ec := EncodeConfig{Format: cfg.Format, Mode: cfg.Mode}
	if reg != nil {
		ec.Decoder = reg.dec
	}
	enc, err := DecodeEncode(recs, ec)
	if err != nil {
		return nil, err
	}
	res.Encode, res.EncodeBytes = enc.Throughput, enc.Bytes

	cfg.Log("sink: %d records", len(recs))
	sc := sinkConfig(cfg, brokers, topic, notifyTopic, prefix)
	if reg != nil {
		sc.SchemaRegistry.URLs = []string{reg.fake.URL()}
	}
	var runner sinkRunner
	var ice *icebergRun
	if cfg.TableFormat == TableFormatIceberg {
		if ice, err = startIceberg(cfg, storeURL, prefix); err != nil {
			return nil, err
		}
		defer ice.close()
		sc.Tables.Default.Format = sink.FormatIceberg
		runner, err = startChild(ctx, cfg, sc, ice.storeURL, prefix, ice)
	} else if res.Process {
		runner, err = startChild(ctx, cfg, sc, storeURL, prefix, nil)
	} else {
		runner, err = startInProcess(ctx, sc, objstore.Prefixed(bucket, prefix))
	}
	if err != nil {
		return nil, err
	}
	defer runner.stop()
	events, err := watchCommits(ctx, brokers, notifyTopic)
	if err != nil {
		return nil, err
	}
	defer events.close()

	sinkTP, rss, err := runner.measure(ctx, len(recs), input)
	if err != nil {
		return nil, err
	}
	res.Sink, res.PeakRSS = sinkTP, rss
	requests, err := runner.storeRequests(ctx)
	if err != nil {
		return nil, err
	}
	if ice != nil {
		requests = ice.requests()
	}
	if res.Written, err = storeStats(ctx, objstore.Prefixed(bucket, prefix), len(recs), input); err != nil {
		return nil, err
	}
	if ice != nil {
		if res.Written.Commits, err = ice.commits(ctx); err != nil {
			return nil, err
		}
	}
	res.PerCommit = newPerCommit(requests, res.Written.Commits, res.Sink.CPU)
	if len(cfg.Peers) > 0 {
		// Before the paced phase, whose records the peers would not read:
		// both sides then hold exactly the backlog.
		if res.Peers, err = runPeers(ctx, cfg, peers, brokers, topic, prefix, g.TableNames()[0], len(recs), input); err != nil {
			return nil, err
		}
		for _, p := range res.Peers {
			p.CPUVsPeer = ratio(res.Sink.RecordsPerCPUSec, p.Throughput.RecordsPerCPUSec)
			cfg.Log("sink %.0f, %s %.0f records per CPU-second (%.2f×); check: %d differences in %d values",
				res.Sink.RecordsPerCPUSec, p.Name, p.Throughput.RecordsPerCPUSec, p.CPUVsPeer,
				p.Check.DifferencesTotal, p.Check.Values)
		}
	}

	already := len(recs)
	if cfg.Warm {
		more, moreInput := backlog(next, len(recs))
		if genErr != nil {
			return nil, genErr
		}
		cfg.Log("sink, warm: %d more records of the same tables", len(more))
		count := func() (map[string]int64, Store, error) {
			req, err := runner.storeRequests(ctx)
			if err != nil {
				return nil, Store{}, err
			}
			st, err := storeStats(ctx, objstore.Prefixed(bucket, prefix), len(recs), input)
			if err != nil {
				return nil, Store{}, err
			}
			if ice != nil {
				req = ice.requests()
				if st.Commits, err = ice.commits(ctx); err != nil {
					return nil, Store{}, err
				}
			}
			return req, st, nil
		}
		req0, st0, err := count()
		if err != nil {
			return nil, err
		}
		tp, err := runner.measureMore(ctx, func() error { return produceAll(ctx, cl, more) }, already+len(more), len(more), moreInput)
		if err != nil {
			return nil, err
		}
		req1, st1, err := count()
		if err != nil {
			return nil, err
		}
		for op, n := range req0 {
			req1[op] -= n
		}
		w := &WarmPass{Sink: tp, Commits: st1.Commits - st0.Commits, DataFiles: st1.DataFiles - st0.DataFiles}
		w.PerCommit = newPerCommit(req1, w.Commits, tp.CPU)
		w.CPUVsEncode = ratio(tp.RecordsPerCPUSec, res.Encode.RecordsPerCPUSec)
		res.Warm = w
		already += len(more)
	}

	if cfg.LatencyDuration > 0 {
		rate := res.Sink.RecordsPerSec / 2
		cfg.Log("latency: %.0f records/s for %s", rate, cfg.LatencyDuration)
		res.Latency, err = measureLatency(ctx, latencyRun{
			cl: cl, next: next, rate: rate, duration: cfg.LatencyDuration, already: already,
			runner: runner, events: events, bucket: objstore.Prefixed(bucket, prefix),
			wait: 3*cfg.FlushInterval + 30*time.Second,
		})
		if genErr != nil {
			return nil, genErr
		}
		if err != nil {
			return nil, err
		}
	}
	if err := runner.stop(); err != nil {
		return nil, err
	}
	res.Ratios = Ratios{
		ThroughputVsConsume: ratio(res.Sink.RecordsPerSec, res.Consume.RecordsPerSec),
		CPUVsEncode:         ratio(res.Sink.RecordsPerCPUSec, res.Encode.RecordsPerCPUSec),
		CPUVsConsume:        ratio(res.Sink.RecordsPerCPUSec, res.Consume.RecordsPerCPUSec),
		StoreVsEncode:       ratio(float64(res.Written.DataBytes), float64(res.EncodeBytes)),
	}
	return res, nil
}

// backlog returns the next n records of the generator and their value
// bytes.
func backlog(next func() workload.Record, n int) ([]workload.Record, int64) {
	recs := make([]workload.Record, n)
	var input int64
	for i := range recs {
		recs[i] = next()
		input += int64(len(recs[i].Value))
	}
	return recs, input
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// redact drops the query (endpoints) and any user info from a store URL.
func redact(u string) string {
	if i := strings.IndexAny(u, "?"); i >= 0 {
		u = u[:i]
	}
	return u
}

// sinkConfig is the sink's configuration for a run.
func sinkConfig(cfg Config, brokers []string, topic, notifyTopic, prefix string) sink.Config {
	return sink.Config{
		Instance: "bench",
		Kafka: sink.KafkaConfig{
			Brokers: brokers,
			Group:   prefix,
			Topics:  []string{topic},
			Format:  string(cfg.Format),
		},
		Tables: sink.TablesConfig{Default: sink.TableConfig{
			Mode:          cfg.Mode,
			FlushInterval: cfg.FlushInterval,
		}},
		Memory: sink.MemoryConfig{Budget: cfg.MemoryBudget},
		Notify: sink.NotifyConfig{Topic: notifyTopic},
	}
}

// createTopic creates topic unless it exists.
func createTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32) error {
	resp, err := adm.CreateTopic(ctx, partitions, -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// produceAll produces recs and waits until all are acknowledged.
func produceAll(ctx context.Context, cl *kgo.Client, recs []workload.Record) error {
	const batch = 10_000
	krs := make([]*kgo.Record, 0, batch)
	for start := 0; start < len(recs); start += batch {
		krs = krs[:0]
		for _, r := range recs[start:min(start+batch, len(recs))] {
			krs = append(krs, &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value})
		}
		if err := cl.ProduceSync(ctx, krs...).FirstErr(); err != nil {
			return fmt.Errorf("produce backlog: %w", err)
		}
	}
	return nil
}

// ConsumeOnly is baseline (a): a franz-go consumer polling the topic from
// the start until it has n records, decoding nothing. It uses the sink's
// fetch settings (read-committed) without a group, so it is the least any
// Kafka consumer pays for these records.
func ConsumeOnly(ctx context.Context, brokers []string, topic string, n int, input int64) (Throughput, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return Throughput{}, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	start, cpu0 := time.Now(), selfCPU()
	got := 0
	for got < n {
		fs := cl.PollRecords(ctx, 5000)
		if err := ctx.Err(); err != nil {
			return Throughput{}, err
		}
		for _, fe := range fs.Errors() {
			return Throughput{}, fmt.Errorf("consume %s/%d: %w", fe.Topic, fe.Partition, fe.Err)
		}
		got += fs.NumRecords()
	}
	return newThroughput(n, input, time.Since(start), selfCPU()-cpu0), nil
}

// percentile returns the p-th percentile (0–100) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

func sortDurations(d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
}
