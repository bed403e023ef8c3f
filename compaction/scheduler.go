package compaction

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/partitioner"
)

// TableRef names a table to compact and how its files are sized.
type TableRef struct {
	// Path is the table root in the bucket.
	Path string
	// Mode is the configured partition mode, for a table whose metadata
	// records none; a recorded mode wins (partitioner.TableMode).
	Mode partitioner.Mode
	// Compression of compacted files: "zstd" (default), "snappy", "none".
	Compression string
}

// Result summarises one CompactOnce.
type Result struct {
	Table                   string
	FilesBefore, FilesAfter int
	BytesBefore, BytesAfter int64
	// Jobs is how many merges were committed.
	Jobs int
	// Aborted is how many merges were refused because an input was removed
	// meanwhile (their outputs are orphans for Vacuum).
	Aborted int
	// Version is the table version after the last commit seen.
	Version int64
}

// maxRounds bounds the plan-and-merge rounds of one CompactOnce. Each round
// at least halves the small files (jobs merge two or more), so a table
// converges in far fewer rounds than this.
const maxRounds = 32

// Failure backoff: after backoffAfter consecutive failures a table waits
// 2^failures minutes, at most maxBackoff, before it is tried again.
const (
	backoffAfter = 3
	maxBackoff   = 2 * time.Hour
)

// Option configures a Scheduler.
type Option func(*Scheduler)

// WithLogger sets the logger; default discards.
func WithLogger(l *slog.Logger) Option { return func(s *Scheduler) { s.log = l } }

// WithRegisterer registers the scheduler's metrics with r.
func WithRegisterer(r prometheus.Registerer) Option { return func(s *Scheduler) { s.reg = r } }

// WithInstance names this compactor in leases and commits; default the host
// name and process id. It must differ between sink instances.
func WithInstance(name string) Option { return func(s *Scheduler) { s.instance = name } }

// WithYield sets a function called before every merge job, which may block
// until ingestion has room (for example while flushes are queued) or fail
// when ctx is done. It is how the scheduler yields to ingestion.
func WithYield(fn func(ctx context.Context) error) Option {
	return func(s *Scheduler) { s.yield = fn }
}

// Scheduler compacts tables in the background and on demand.
type Scheduler struct {
	b        objstore.Bucket
	format   committer.Format
	cfg      Config
	log      *slog.Logger
	reg      prometheus.Registerer
	now      func() time.Time
	instance string
	yield    func(ctx context.Context) error
	metrics  *metrics

	mu     sync.Mutex
	tables map[string]*tableState
}

// tableState is a table's failure count and when it may be tried again.
type tableState struct {
	failures int
	next     time.Time
}

type metrics struct {
	jobs         *prometheus.CounterVec
	inputFiles   prometheus.Counter
	bytesRead    prometheus.Counter
	bytesWritten prometheus.Counter
	duration     prometheus.Histogram
	backoffs     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		jobs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "evodb_compaction_jobs_total",
			Help: "Compaction jobs by result: committed, aborted (an input was removed meanwhile) or failed.",
		}, []string{"result"}),
		inputFiles: f.NewCounter(prometheus.CounterOpts{
			Name: "evodb_compaction_input_files_total",
			Help: "Files merged away by committed compactions.",
		}),
		bytesRead: f.NewCounter(prometheus.CounterOpts{
			Name: "evodb_compaction_read_bytes_total",
			Help: "Input bytes of committed compactions.",
		}),
		bytesWritten: f.NewCounter(prometheus.CounterOpts{
			Name: "evodb_compaction_written_bytes_total",
			Help: "Output bytes of committed compactions.",
		}),
		duration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "evodb_compaction_job_duration_seconds",
			Help:    "Duration of compaction jobs, read to commit.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
		backoffs: f.NewCounter(prometheus.CounterOpts{
			Name: "evodb_compaction_backoffs_total",
			Help: "Times a table was set aside after repeated compaction failures.",
		}),
	}
}

// NewScheduler returns a scheduler over the tables f opens, whose data
// files lie in b. cfg's zero keys take their defaults.
func NewScheduler(b objstore.Bucket, f committer.Format, cfg Config, opts ...Option) *Scheduler {
	cfg.ApplyDefaults()
	s := &Scheduler{b: b, format: f, cfg: cfg, now: time.Now, tables: map[string]*tableState{}}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	if s.instance == "" {
		host, _ := os.Hostname()
		s.instance = host + "-" + strconv.Itoa(os.Getpid())
	}
	s.metrics = newMetrics(s.reg)
	return s
}

// Run compacts the tables that tables returns, every cfg.Interval, until ctx
// is done; then it returns nil once the jobs in flight have stopped. At most
// cfg.Concurrency tables are compacted at once. A table that failed three
// times in a row waits 2^failures minutes (at most two hours) before the
// next try; a table whose lease another instance holds is simply skipped.
func (s *Scheduler) Run(ctx context.Context, tables func() []TableRef) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		s.round(ctx, tables())
		timer.Reset(s.cfg.Interval)
	}
}

// round compacts every due table once, with bounded concurrency.
func (s *Scheduler) round(ctx context.Context, tables []TableRef) {
	sem := make(chan struct{}, s.cfg.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, t := range tables {
		if !s.due(t.Path) {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res, err := s.CompactOnce(ctx, t)
			s.record(ctx, t.Path, res, err)
		}()
	}
}

// due reports whether a table is out of its failure backoff.
func (s *Scheduler) due(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.tables[path]
	return st == nil || !s.now().Before(st.next)
}

// record updates a table's failure count after a CompactOnce.
func (s *Scheduler) record(ctx context.Context, path string, res Result, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.tables[path]
	if st == nil {
		st = &tableState{}
		s.tables[path] = st
	}
	switch {
	case err == nil:
		st.failures, st.next = 0, time.Time{}
		if res.Jobs > 0 || res.Aborted > 0 {
			s.log.Info("table compacted", "table", path, "version", res.Version, "jobs", res.Jobs, "aborted", res.Aborted,
				"files_before", res.FilesBefore, "files_after", res.FilesAfter)
		}
	case errors.Is(err, ErrLeaseHeld):
		s.log.Debug("compaction skipped: lease held", "table", path, "err", err)
	case errors.Is(err, ErrDeletesRows):
		s.log.Debug("compaction skipped", "table", path, "err", err)
	case ctx.Err() != nil:
	default:
		st.failures++
		wait := failureBackoff(st.failures)
		st.next = s.now().Add(wait)
		if wait > 0 {
			s.metrics.backoffs.Inc()
		}
		s.log.Warn("compaction failed", "table", path, "failures", st.failures, "retry_in", wait, "err", err)
	}
}

// failureBackoff is the pause after n consecutive failures: none before
// backoffAfter failures, then 2^n minutes up to maxBackoff.
func failureBackoff(n int) time.Duration {
	if n < backoffAfter {
		return 0
	}
	if n > 7 {
		return maxBackoff
	}
	return min(maxBackoff, time.Duration(1<<n)*time.Minute)
}

// CompactOnce takes the table's lease and merges its small files until the
// planner has nothing left (or maxRounds rounds), renewing the lease after
// every job. It returns an error matching ErrLeaseHeld, without touching the
// table, if another instance is compacting it.
func (s *Scheduler) CompactOnce(ctx context.Context, t TableRef) (Result, error) {
	res := Result{Table: t.Path}
	table := s.format.Open(t.Path, committer.Options{Instance: s.instance, Now: s.now, Logger: s.log})
	snap, err := table.Snapshot(ctx)
	if err != nil {
		return res, fmt.Errorf("compact %s: %w", t.Path, err)
	}
	if t.Mode, err = partitioner.TableMode(snap.Metadata.Configuration, t.Mode); err != nil {
		return res, fmt.Errorf("compact %s: %w", t.Path, err)
	}
	if err := t.Mode.Validate(); err != nil {
		return res, fmt.Errorf("compact %s: %w", t.Path, err)
	}
	if deletesRows(snap) {
		return res, fmt.Errorf("compact %s: %w", t.Path, ErrDeletesRows)
	}
	res.FilesBefore, res.BytesBefore = countFiles(snap)
	res.FilesAfter, res.BytesAfter, res.Version = res.FilesBefore, res.BytesBefore, snap.Version
	opts := s.cfg.planOptions()
	if len(Plan(snap, t.Mode, opts)) == 0 {
		return res, nil
	}
	lease, err := AcquireLease(ctx, s.b, t.Path, s.instance, s.cfg.LeaseTTL, s.now())
	if err != nil {
		return res, fmt.Errorf("compact %s: %w", t.Path, err)
	}
	defer func() {
		// Release even when ctx is done, so the next owner need not wait
		// out the TTL.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := lease.Release(rctx); err != nil {
			s.log.Warn("release compaction lease", "table", t.Path, "err", err)
		}
	}()
	exec := ExecOptions{Mode: t.Mode, Compression: t.Compression, Now: s.now}
	for round := 0; round < maxRounds; round++ {
		// The snapshot taken before the lease may predate another
		// compactor's last commit; always plan from a fresh one.
		if snap, err = table.Update(ctx, snap); err != nil {
			return res, fmt.Errorf("compact %s: %w", t.Path, err)
		}
		jobs := Plan(snap, t.Mode, opts)
		if len(jobs) == 0 {
			break
		}
	jobs:
		for _, job := range jobs {
			if s.yield != nil {
				if err := s.yield(ctx); err != nil {
					return s.finish(res, snap), err
				}
			}
			start := time.Now()
			out, err := Execute(ctx, s.b, table, snap, job, exec)
			switch {
			case err == nil:
				snap = out.Snapshot
				res.Jobs++
				s.metrics.jobs.WithLabelValues("committed").Inc()
				s.metrics.inputFiles.Add(float64(len(job.Inputs)))
				s.metrics.bytesRead.Add(float64(out.BytesRead))
				s.metrics.bytesWritten.Add(float64(out.Add.Size))
				s.metrics.duration.Observe(time.Since(start).Seconds())
				s.log.Debug("compaction committed", "table", t.Path, "version", out.Version, "inputs", len(job.Inputs),
					"level", job.Level, "path", out.Add.Path, "bytes", out.Add.Size)
			case errors.Is(err, committer.ErrFileRemoved):
				res.Aborted++
				s.metrics.jobs.WithLabelValues("aborted").Inc()
				s.log.Info("compaction aborted: an input was removed meanwhile", "table", t.Path, "err", err)
				// The snapshot is stale: plan again from a fresh one.
				break jobs
			default:
				s.metrics.jobs.WithLabelValues("failed").Inc()
				return s.finish(res, snap), err
			}
			if err := lease.Renew(ctx, s.now()); err != nil {
				return s.finish(res, snap), fmt.Errorf("compact %s: %w", t.Path, err)
			}
		}
	}
	if snap, err = table.Update(ctx, snap); err != nil {
		return res, fmt.Errorf("compact %s: %w", t.Path, err)
	}
	return s.finish(res, snap), nil
}

// ErrDeletesRows is returned (wrapped) by CompactOnce for a table that
// deletes rows of the files it keeps (Delta deletion vectors: a mirror
// table). Compaction rewrites files whole and would bring deleted rows
// back, so it leaves such tables to their own writer, which compacts
// them; the table is unchanged.
var ErrDeletesRows = errors.New("the table deletes rows of its files (deletion vectors), so compaction, which rewrites files whole, leaves it to its own writer")

// deletesRows reports whether snap's table may hold deleted rows: a file
// has some, or the table allows them.
func deletesRows(snap *committer.Snapshot) bool {
	if snap.Metadata.Configuration["delta.enableDeletionVectors"] == "true" {
		return true
	}
	for _, a := range snap.Files {
		if a.Deleted != nil {
			return true
		}
	}
	return false
}

func (s *Scheduler) finish(res Result, snap *committer.Snapshot) Result {
	res.FilesAfter, res.BytesAfter = countFiles(snap)
	res.Version = snap.Version
	return res
}

func countFiles(snap *committer.Snapshot) (int, int64) {
	var n int64
	for _, a := range snap.Files {
		n += a.Size
	}
	return len(snap.Files), n
}
