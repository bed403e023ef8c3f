// Package sink is the consumer-group runtime: it polls CDC topics, decodes
// and routes each change into per-table buffers, flushes buffers into
// Parquet blocks committed to each table's Delta log, and only then lets the
// Kafka group offset move.
//
// Exactly-once rests on the table log, not on Kafka: every commit carries,
// for each source partition whose records the block holds, a txn action
// whose version is the last offset included, and the committer refuses a
// commit whose first offset from a partition is not above the table's txn
// version for it. So a replay (after a crash or rebalance) or a zombie
// (a member that lost its partitions but still flushes) can never write a
// record twice: the refused flush drops what is already durable and commits
// the rest. The Kafka group offset is only a hint of where to start reading;
// it is the lowest offset of the partition not yet durable in every table,
// so it never passes data that is not durable. Each commit also records the
// partition's topic ID next to its txn version, so the offsets of a topic
// deleted and re-created under the same name are never taken for offsets
// the table already holds: the sink stops instead (ErrOffsetsWentBack).
//
// The Sink is the group member: the poll loop (poll.go), routing of
// changes to tables (route.go), partition offsets (offsets.go), when tables
// flush and what a finished flush releases (schedule.go), the memory
// budget, the dead-letter topic and metrics. Each table is a tableWriter
// (writer.go) with its own lock: its buffer, schema, snapshot and dedupe
// window, and the flush steps that make a buffer durable (flush.go, over
// snapshot.go and dedupe.go). Calls go one way, from the Sink's files to
// the writer's and from the writer's entry points to its steps; retry.go
// says which layer retries which failure.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/codec/confluent"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/partitioner"
	"github.com/evodb/sink/sink/buffer"
)

// Option configures a Sink beyond its Config: the seams tests and the CLI use.
type Option func(*Sink)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Sink) { s.log = l } }

// WithRegisterer sets the Prometheus registerer metrics are registered on.
func WithRegisterer(r prometheus.Registerer) Option { return func(s *Sink) { s.reg = r } }

// WithCommitHook registers a function called after every durable table
// commit (the CLI prints progress with it).
func WithCommitHook(fn func(CommitEvent)) Option { return func(s *Sink) { s.onCommit = fn } }

// Sink is one consumer-group member. Create it with New and run it with Run.
type Sink struct {
	cfg      Config
	bucket   objstore.Bucket
	format   committer.Format
	log      *slog.Logger
	reg      prometheus.Registerer
	now      func() time.Time // time.Now; tests set another clock
	kopts    []kgo.Opt        // extra client options only tests set
	onCommit func(CommitEvent)
	metrics  *metrics
	router   *partitioner.Router
	routes   map[routeKey]*routeEntry // poll goroutine only
	// lastRoute is the route of the previous change: consecutive changes
	// mostly belong to the same table.
	lastRoute struct {
		key   routeKey
		entry *routeEntry
	}
	decoders map[string]cdc.Decoder
	// registry is the schema registry client, created with the first
	// decoder of a schema-registry format by the poll goroutine and
	// closed when the run ends, from another goroutine if the run is
	// cancelled, hence its lock.
	registry struct {
		mu     sync.Mutex
		client *confluent.Registry
	}
	instance string
	cl       *kgo.Client
	// dlq produces to errors.dlq_topic, sized to its max.message.bytes
	// (dlqMaxBytes); nil without a DLQ. Set before polling starts.
	dlq         *kgo.Client
	dlqMaxBytes int32
	// missingEvery is how often a missing topic of kafka.topics is
	// reported again (missingTopicsEvery; tests shorten it).
	missingEvery time.Duration
	// reachEvery is how often a start that cannot reach the brokers says
	// it is still trying (reachBrokersEvery; tests shorten it).
	reachEvery time.Duration

	// env is what the table writers share.
	env *writerEnv

	// mu guards the fields below it. A table writer's lock may be taken
	// while mu is held, never the other way round (tableWriter doc).
	mu sync.Mutex
	// flushDone is signalled when a flush finished and is recorded in its
	// writer and in the partitions' offsets, when partitions are dropped,
	// and at a fatal error: what the poll loop waits for when memory or a
	// table buffer is full, and what revoke and shutdown wait for.
	flushDone    *sync.Cond
	tables       map[string]*tableWriter
	parts        map[topicPartition]*partition
	buffered     int64
	peakBuffered int64
	// flushing is the part of buffered held by running flush jobs.
	flushing int64
	// ctrl decides when the memory budget pauses and resumes fetching.
	ctrl *buffer.Controller
	// hints size new tables' first batches from their topics' other
	// tables (hints.go).
	hints topicHints
	// due holds when the tables' age triggers fire (due.go).
	due dueQueue
	// visitDue is called with each table the poll visits for its age
	// trigger; a test seam (nil outside tests).
	visitDueHook func(w *tableWriter)
	fatal        error
	aborting     bool
	lastOffsetAt time.Time
	lastProgress time.Time
	// progress is what happened since the last progress line.
	progress progressInterval
	// revokedSince are the partitions revoked since the last rebalance
	// line.
	revokedSince map[string][]int32
	flushSem     chan struct{}
	flushes      sync.WaitGroup
	flushCtx     context.Context
	cancelFlush  context.CancelFunc

	joined  atomic.Bool
	storeOK atomic.Bool
}

// reachBrokersEvery is how often checkKafka logs that it is still trying.
const reachBrokersEvery = 10 * time.Second

// New validates cfg and returns a sink writing data files to bucket and
// committing them to the tables format opens.
func New(cfg Config, bucket objstore.Bucket, format committer.Format, opts ...Option) (*Sink, error) {
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if format == nil {
		return nil, errors.New("no table format")
	}
	s := &Sink{
		cfg:    cfg,
		bucket: bucket,
		format: format,
		log:    slog.New(slog.DiscardHandler),
		reg:    prometheus.NewRegistry(),
		now:    time.Now,
		tables: map[string]*tableWriter{},
		parts:  map[topicPartition]*partition{},

		missingEvery: missingTopicsEvery,
		reachEvery:   reachBrokersEvery,
		revokedSince: map[string][]int32{},
	}
	for _, o := range opts {
		o(s)
	}
	s.flushDone = sync.NewCond(&s.mu)
	s.metrics = newMetrics(s.reg)
	s.metrics.initFixed()
	for _, topic := range cfg.Kafka.Topics {
		s.metrics.initTopic(topic)
	}
	s.flushSem = make(chan struct{}, cfg.Commit.MaxConcurrentFlushes)
	// Fetched data waiting to be polled is part of the budget: the
	// buffers share what the fetches' reserve leaves.
	budget, err := buffer.BudgetFromFractions(cfg.Memory.Budget-cfg.Kafka.FetchReserve(), cfg.Memory.HighWatermark, cfg.Memory.LowWatermark)
	if err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	if s.ctrl, err = buffer.NewController(budget); err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	// So are the encoders, which hold their memory whatever is buffered.
	s.ctrl.Reserve(encoderReserve(cfg.Commit.MaxConcurrentFlushes))
	s.instance = cfg.Instance
	if s.instance == "" {
		host, _ := os.Hostname()
		s.instance = host + "-" + strconv.Itoa(os.Getpid())
	}
	tmpl, err := partitioner.ParsePathTemplate(cfg.Tables.Default.Path)
	if err != nil {
		return nil, fmt.Errorf("tables.default.path: %w", err)
	}
	overrides := map[string]string{}
	for name, o := range cfg.Tables.Overrides {
		if o.Path != "" {
			overrides[name] = o.Path
		}
	}
	s.router, err = partitioner.NewRouter(tmpl, overrides)
	if err != nil {
		return nil, fmt.Errorf("tables.overrides: %w", err)
	}
	s.decoders = map[string]cdc.Decoder{}
	s.env = &writerEnv{
		bucket: bucket, group: cfg.Kafka.Group, instance: s.instance,
		now: s.now, log: s.log, metrics: s.metrics,
		format: format,
		refuse: s.refuseChanges,
		ctrl:   s.ctrl,
	}
	if cfg.Dedupe == "lsn" {
		s.env.dedupeWindow = cfg.DedupeWindow
	}
	return s, nil
}

func (s *Sink) kafkaOptions() ([]kgo.Opt, error) {
	k := s.cfg.Kafka
	opts := []kgo.Opt{
		kgo.SeedBrokers(k.Brokers...),
		kgo.ClientID(k.ClientID),
		kgo.ConsumerGroup(k.Group),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(k.SessionTimeout),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxBytes(k.FetchMaxBytes),
		kgo.MaxConcurrentFetches(k.MaxConcurrentFetches),
		kgo.OnPartitionsAssigned(s.onAssigned),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
		kgo.ProducerBatchCompression(kgo.ZstdCompression(), kgo.NoCompression()),
	}
	if k.StartFrom == "latest" {
		opts = append(opts, kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
	} else {
		opts = append(opts, kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	}
	if k.TopicRegex != "" {
		if _, err := regexp.Compile(k.TopicRegex); err != nil {
			return nil, err
		}
		opts = append(opts, kgo.ConsumeTopics(k.TopicRegex), kgo.ConsumeRegex())
		// The DLQ and notification topics must never be consumed as input:
		// a regex such as cdc\..* also matches cdc.dlq, and the sink would
		// read its own dead letters (and fail on them again) and its own
		// commit events.
		if excl := s.ownTopics(); len(excl) > 0 {
			opts = append(opts, kgo.ConsumeExcludeTopics(excl...))
		}
	} else {
		opts = append(opts, kgo.ConsumeTopics(k.Topics...))
	}
	sec, err := securityOptions(k)
	if err != nil {
		return nil, err
	}
	opts = append(opts, sec...)
	return append(opts, s.kopts...), nil
}

// ownTopics returns the topics the sink writes (dead letters and commit
// notifications) as anchored, quoted regular expressions, for
// kgo.ConsumeExcludeTopics.
func (s *Sink) ownTopics() []string {
	var out []string
	for _, t := range []string{s.cfg.Errors.DLQTopic, s.cfg.Notify.Topic} {
		if t != "" {
			out = append(out, "^"+regexp.QuoteMeta(t)+"$")
		}
	}
	return out
}

// Run consumes until ctx ends, by cancellation or deadline (then it shuts
// down gracefully: flush, commit, leave the group, and returns nil), or a
// fatal error occurs.
func (s *Sink) Run(ctx context.Context) error {
	opts, err := s.kafkaOptions()
	if err != nil {
		return err
	}
	opts = append(opts, kgo.WithHooks(newKafkaMetrics(s.reg)))
	// The store is probed before the Kafka client exists: the client joins
	// the group as soon as it is created, and a member that cannot write
	// must never take partitions from healthy ones.
	//
	// A run whose ctx ends while it still checks its store and brokers
	// stops as asked, with nothing read and nothing to flush: that is no
	// failure to reach them.
	if err := s.checkStore(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("create kafka client: %w", err)
	}
	s.cl = cl
	s.flushCtx, s.cancelFlush = context.WithCancel(context.WithoutCancel(ctx))
	defer s.cancelFlush()

	if err := s.checkKafka(ctx); err != nil {
		cl.Close()
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := s.prepareDLQ(ctx); err != nil {
		cl.Close()
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if s.dlq != nil {
		// Run returns only after the poll loop, its only user, ended.
		defer s.dlq.Close()
	}
	// Wake the poll loop if it waits for memory when the run is cancelled.
	stopWake := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.flushDone.Broadcast()
		s.mu.Unlock()
	})
	defer stopWake()
	// A decode that waits out a registry outage would hold a cancelled run
	// for up to schema_registry.retry_timeout: closing the client ends
	// its retries, with an error that wraps the cancellation, so the run
	// shuts down gracefully as for any stop.
	stopRegistry := context.AfterFunc(ctx, s.closeRegistry)
	defer func() {
		stopRegistry()
		s.closeRegistry()
	}()
	endsCtx, stopEnds := context.WithCancel(ctx)
	endsDone := make(chan struct{})
	go func() {
		defer close(endsDone)
		s.refreshEndOffsets(endsCtx)
	}()
	topicsDone := make(chan struct{})
	go func() {
		defer close(topicsDone)
		s.watchMissingTopics(endsCtx)
	}()
	defer func() {
		stopEnds()
		<-endsDone
		<-topicsDone
	}()
	s.mu.Lock()
	s.lastProgress = s.now()
	s.progress.reset(s.lastProgress)
	s.mu.Unlock()
	s.log.Info("sink started", "instance", s.instance, "group", s.cfg.Kafka.Group)
	runErr := s.poll(ctx)
	if errors.Is(runErr, ErrKilled) {
		s.abort()
		return runErr
	}
	if errors.Is(runErr, errRecreatedWhileRead) {
		// Everything buffered was read from the topic before it was
		// deleted: flush it, for it cannot be read again.
		s.log.Error("sink stopping", "err", runErr)
		if err := s.shutdown(false); err != nil {
			return fmt.Errorf("%w (and flushing what was read before: %v)", runErr, err)
		}
		return runErr
	}
	// Any end of ctx, a deadline as much as a cancellation, is the caller
	// asking for a stop: the error it surfaces as (from a poll, a wait for
	// memory or a dead-letter produce) is the stop, not a failure.
	stopped := ctx.Err() != nil && errors.Is(runErr, ctx.Err())
	if runErr != nil && !stopped && !errors.Is(runErr, context.Canceled) {
		s.log.Error("sink stopping", "err", runErr)
		s.abort()
		return runErr
	}
	return s.shutdown(true)
}

// checkStore makes one request to the store so a wrong URL or missing
// credentials fail at start, not at the first flush. A configuration error
// (objstore.ConfigError) fails at once; anything else is retried until
// commit.store_retry_timeout, since a store that is down may come back.
func (s *Sink) checkStore(ctx context.Context) error {
	err := s.retry(ctx, "probe", func() error {
		return s.bucket.List(ctx, "_evodb_probe/", func(objstore.ObjectInfo) error { return nil })
	})
	switch {
	case err == nil:
	case objstore.IsConfigError(err):
		return fmt.Errorf("probe object store: %w", err)
	default:
		return fmt.Errorf("object store unreachable within commit.store_retry_timeout (%s): %w", s.cfg.Commit.StoreRetryTimeout, err)
	}
	s.storeOK.Store(true)
	return nil
}

// checkKafka reaches a broker before joining the group, so wrong brokers,
// TLS or credentials fail at start with a clear error instead of a sink that
// polls nothing. Errors no wait can fix (an untrusted certificate, TLS on
// one side only, refused credentials) are not retried.
func (s *Sink) checkKafka(ctx context.Context) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 200 * time.Millisecond
	b.MaxElapsedTime = s.cfg.Kafka.ConnectTimeout
	var last error
	start := s.now()
	reported := start
	err := backoff.RetryNotify(func() error {
		pctx, cancel := context.WithTimeout(ctx, min(10*time.Second, s.cfg.Kafka.ConnectTimeout))
		defer cancel()
		err := s.cl.Ping(pctx)
		if err != nil && pctx.Err() == nil {
			last = err
		}
		if _, permanent := connectProblem(err); permanent {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(b, ctx), func(err error, _ time.Duration) {
		// Without this a sink that cannot reach its brokers would say
		// nothing until kafka.connect_timeout ends.
		if now := s.now(); now.Sub(reported) >= s.reachEvery {
			reported = now
			if last != nil {
				err = last
			}
			s.log.Warn("still trying to reach the kafka brokers", "brokers", s.cfg.Kafka.Brokers,
				"elapsed", now.Sub(start).Round(time.Second), "connect_timeout", s.cfg.Kafka.ConnectTimeout, "err", err)
		}
	})
	if err == nil {
		return nil
	}
	if last != nil && !errors.Is(err, last) {
		err = fmt.Errorf("%w (last error from a broker: %v)", err, last)
	}
	if hint, permanent := connectProblem(last); permanent {
		return fmt.Errorf("kafka brokers %v: %s: %w", s.cfg.Kafka.Brokers, hint, err)
	} else if hint != "" {
		return fmt.Errorf("kafka brokers %v unreachable within kafka.connect_timeout (%s; %s): %w", s.cfg.Kafka.Brokers, s.cfg.Kafka.ConnectTimeout, hint, err)
	}
	return fmt.Errorf("kafka brokers %v unreachable within kafka.connect_timeout (%s; check kafka.brokers, kafka.tls and kafka.sasl): %w", s.cfg.Kafka.Brokers, s.cfg.Kafka.ConnectTimeout, err)
}

// Abort stops at once without flushing: what is buffered is lost and will be
// re-read by the partitions' next owners. It simulates a crash in tests and
// serves the second signal in the CLI.
func (s *Sink) abort() {
	s.mu.Lock()
	s.aborting = true
	s.mu.Unlock()
	s.cancelFlush()
	s.cl.CloseAllowingRebalance()
	s.flushes.Wait()
}

// shutdown flushes everything, waits for in-flight flushes, commits the
// group offsets (if commitOffsets) and leaves the group, all within the
// shutdown timeout.
func (s *Sink) shutdown(commitOffsets bool) error {
	deadline := time.AfterFunc(s.cfg.ShutdownTimeout, func() {
		s.log.Warn("shutdown timeout reached, abandoning in-flight flushes")
		s.cancelFlush()
	})
	defer deadline.Stop()
	s.mu.Lock()
	for _, w := range s.tables {
		s.requestFlush(w, "shutdown")
	}
	for s.busyTablesLocked() > 0 && s.fatal == nil && s.flushCtx.Err() == nil {
		s.flushDone.Wait()
	}
	fatal := s.fatal
	offsets := s.committableLocked(nil)
	s.mu.Unlock()
	if len(offsets) > 0 && fatal == nil && commitOffsets {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s.commitOffsetsSync(ctx, offsets)
		cancel()
	}
	s.mu.Lock()
	s.aborting = true // the final revoke must not flush again
	s.mu.Unlock()
	s.cl.CloseAllowingRebalance()
	s.flushes.Wait()
	s.log.Info("sink stopped", "instance", s.instance)
	return fatal
}

// Kill stops the sink at once, as a crash would: nothing more is flushed or
// committed, in-flight flushes are abandoned wherever they are, and the
// buffered records are left for the partitions' next owners to re-read.
// The CLI uses it for a second signal; tests use it to crash members.
func (s *Sink) Kill() {
	s.mu.Lock()
	s.setFatal(ErrKilled)
	s.mu.Unlock()
}
