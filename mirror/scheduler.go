package mirror

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/compaction"
	"github.com/evodb/sink/objstore"
)

// LeaseKey is the key of a mirror's maintainer lease, relative to the
// change log's root: one maintainer per mirror across all sink instances.
// It lies outside _delta_log and data/, so neither Delta readers nor
// Vacuum look at it.
const LeaseKey = "_evodb/mirror.lease"

// FormatDelta is the table format (committer.Options.Format) of mirrors
// and of the change logs they follow.
const FormatDelta = "delta"

// TableRef names a mirror to maintain and how.
type TableRef struct {
	// ChangeLog and Mirror are the table roots in the store.
	ChangeLog, Mirror string
	// Key, MaxFiles, TargetFileRows and Compression are Options'.
	Key            []string
	MaxFiles       int
	TargetFileRows int
	Compression    string
	// Interval is the pause between steps once the mirror is up to date;
	// default 1s.
	Interval time.Duration
}

// SchedulerOptions configure a Scheduler; zero values take the defaults.
type SchedulerOptions struct {
	// Instance names this maintainer in leases and commits; default the
	// host name and process id. It must differ between sink instances.
	Instance string
	// LeaseTTL is how long a mirror's lease lasts unless renewed; it is
	// renewed once half of it has passed. Default 30s: a maintainer that
	// died is replaced within that.
	LeaseTTL time.Duration
	// Poll is how often the list of tables is read again; default 1s.
	Poll time.Duration
	// MaxBackoff bounds the pause after repeated failures of a mirror;
	// default 1m.
	MaxBackoff time.Duration
	// Yield, if set, is called before every step and may block until
	// ingestion has room (the sink's memory budget is not pausing
	// fetches), as compaction yields: a mirror is derived data and waits
	// for the change log.
	Yield      func(ctx context.Context) error
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Scheduler runs one maintainer per mirror, each under the mirror's
// lease, stepping it every TableRef.Interval, and at once again while it
// is behind.
type Scheduler struct {
	b       objstore.Bucket
	format  committer.Format
	opts    SchedulerOptions
	metrics *schedulerMetrics

	mu struct {
		sync.Mutex
		// running holds the mirrors whose loop runs, by mirror root.
		running map[string]bool
		// wake holds, by change-log root, the channels Nudge wakes the
		// loops of that change log's mirrors with: one slot each, so a
		// nudge is never lost while a step runs and never blocks.
		wake map[string][]chan struct{}
	}
}

type schedulerMetrics struct {
	steps      *prometheus.CounterVec
	rebuilds   prometheus.Counter
	errors     prometheus.Counter
	lagVersion *prometheus.GaugeVec
	lagSeconds prometheus.Histogram
	indexBytes *prometheus.GaugeVec
}

func newSchedulerMetrics(reg prometheus.Registerer) *schedulerMetrics {
	f := promauto.With(reg)
	return &schedulerMetrics{
		steps: f.NewCounterVec(prometheus.CounterOpts{
			Name: "evodb_mirror_steps_total",
			Help: "Mirror maintenance steps by result: applied, idle (up to date), conflict (another maintainer committed first), rebuilt, failed.",
		}, []string{"result"}),
		rebuilds: f.NewCounter(prometheus.CounterOpts{
			Name: "evodb_mirror_rebuilds_total",
			Help: "Mirrors rebuilt from a change-log snapshot (new mirror, expired history, replaced change log).",
		}),
		errors: f.NewCounter(prometheus.CounterOpts{
			Name: "evodb_mirror_errors_total",
			Help: "Failed mirror maintenance steps.",
		}),
		lagVersion: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "evodb_mirror_lag_versions",
			Help: "Change-log versions the mirror does not hold yet, as of its maintainer's last step.",
		}, []string{"table"}),
		lagSeconds: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "evodb_mirror_lag_seconds",
			Help:    "Time from a change-log commit to the mirror commit that makes it visible (the oldest change of each step).",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
		indexBytes: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "evodb_mirror_index_bytes",
			Help: "Memory of a mirror maintainer's key index.",
		}, []string{"table"}),
	}
}

// NewScheduler returns a scheduler over the tables f opens, whose data
// files lie in b.
func NewScheduler(b objstore.Bucket, f committer.Format, opts SchedulerOptions) *Scheduler {
	if opts.Instance == "" {
		host, _ := os.Hostname()
		opts.Instance = host + "-" + strconv.Itoa(os.Getpid())
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 30 * time.Second
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Scheduler{b: b, format: f, opts: opts, metrics: newSchedulerMetrics(opts.Registerer)}
	s.mu.running = map[string]bool{}
	s.mu.wake = map[string][]chan struct{}{}
	return s
}

// Nudge tells the maintainers of changeLog's mirrors in this process that
// the change log has a new commit, so that they step now instead of at
// their next interval: a sink calls it after each commit it lands (its
// commit hook), and a mirror's lag is then one step rather than up to an
// interval. It never blocks, and does nothing for a change log without a
// mirror here; a maintainer in another process still looks every
// interval.
func (s *Scheduler) Nudge(changeLog string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.mu.wake[changeLog] {
		select {
		case ch <- struct{}{}:
		default: // a nudge is pending already
		}
	}
}

// wakeup registers the channel that Nudge of ref's change log wakes ref's
// loop with, and returns it with the function that unregisters it.
func (s *Scheduler) wakeup(ref TableRef) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.mu.wake[ref.ChangeLog] = append(s.mu.wake[ref.ChangeLog], ch)
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		chans := s.mu.wake[ref.ChangeLog]
		for i, c := range chans {
			if c == ch {
				chans = append(chans[:i], chans[i+1:]...)
				break
			}
		}
		if len(chans) == 0 {
			delete(s.mu.wake, ref.ChangeLog)
		} else {
			s.mu.wake[ref.ChangeLog] = chans
		}
	}
}

// Run maintains the mirrors tables returns (read again every Poll) until
// ctx is done, then returns nil once every maintainer has stopped and
// released its lease.
func (s *Scheduler) Run(ctx context.Context, tables func() []TableRef) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ticker := time.NewTicker(s.opts.Poll)
	defer ticker.Stop()
	for {
		for _, ref := range tables() {
			s.mu.Lock()
			started := s.mu.running[ref.Mirror]
			s.mu.running[ref.Mirror] = true
			s.mu.Unlock()
			if !started {
				wg.Go(func() { s.maintain(ctx, ref) })
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// maintain steps one mirror until ctx is done, holding its lease while it
// does.
func (s *Scheduler) maintain(ctx context.Context, ref TableRef) {
	log := s.opts.Logger.With("table", ref.Mirror, "change_log", ref.ChangeLog)
	interval := ref.Interval
	if interval <= 0 {
		interval = time.Second
	}
	// Mirrors are Delta tables of Delta change logs: a Format serving
	// several formats opens them in Delta, whose tables list their
	// history and delete rows.
	copts := committer.Options{Instance: s.opts.Instance, Now: s.opts.Now, Logger: s.opts.Logger, Format: FormatDelta}
	mopts := copts
	mopts.DeleteRows = true
	m, err := New(s.b, s.format.Open(ref.ChangeLog, copts), s.format.Open(ref.Mirror, mopts), Options{
		Key: ref.Key, MaxFiles: ref.MaxFiles, TargetFileRows: ref.TargetFileRows, Compression: ref.Compression,
		Now: s.opts.Now, Logger: s.opts.Logger, Instance: s.opts.Instance,
	})
	if err != nil {
		log.Error("mirror cannot be maintained", "err", err)
		s.metrics.errors.Inc()
		return
	}
	var lease *compaction.Lease
	defer func() {
		if lease == nil {
			return
		}
		// Release even when ctx is done, so the next owner need not wait
		// out the TTL.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := lease.Release(rctx); err != nil {
			log.Warn("release mirror lease", "err", err)
		}
	}()
	wake, unregister := s.wakeup(ref)
	defer unregister()
	failures := 0
	for {
		wait := interval
		var err error
		lease, err = s.holdLease(ctx, lease, ref)
		switch {
		case errors.Is(err, compaction.ErrLeaseHeld):
			// Another instance maintains the mirror: look again when its
			// lease would run out, but at least every quarter TTL, so a
			// lease released early is taken soon without a request per
			// interval meanwhile.
			log.Debug("mirror maintained elsewhere: lease held", "err", err)
			var held *compaction.LeaseHeldError
			if errors.As(err, &held) {
				wait = max(interval, min(held.Expires.Sub(s.opts.Now()), s.opts.LeaseTTL/4))
			}
		case err != nil:
			log.Warn("mirror lease", "err", err)
		default:
			if s.opts.Yield != nil {
				if err := s.opts.Yield(ctx); err != nil {
					return
				}
			}
			res, err := m.Step(ctx)
			s.record(ref, m, res, err)
			switch {
			case err != nil && ctx.Err() != nil:
				return
			case err != nil:
				failures++
				wait = min(s.opts.MaxBackoff, interval<<min(failures, 10))
				log.Warn("mirror step failed", "failures", failures, "retry_in", wait, "err", err)
			default:
				failures = 0
				if res.To < res.ChangeLogVersion || res.Conflict {
					wait = 0 // behind: go on at once
				}
			}
		}
		if wait > 0 {
			timer := time.NewTimer(wait)
			for waiting := true; waiting; {
				select {
				case <-ctx.Done():
					timer.Stop()
					return
				case <-timer.C:
					waiting = false
				case <-wake:
					// A commit to the change log: step now. A
					// maintainer backing off after failures, or whose
					// lease another instance holds, waits its time out
					// all the same.
					if failures == 0 && lease != nil {
						timer.Stop()
						waiting = false
					}
				}
			}
		} else if ctx.Err() != nil {
			return
		}
	}
}

// holdLease returns the mirror's lease, taking it if l is nil and
// renewing it once half its TTL has passed. A lease lost to another
// owner is given up (nil, and the error).
func (s *Scheduler) holdLease(ctx context.Context, l *compaction.Lease, ref TableRef) (*compaction.Lease, error) {
	now := s.opts.Now()
	if l == nil {
		return compaction.AcquireLeaseAt(ctx, s.b, joinKey(ref.ChangeLog, LeaseKey), s.opts.Instance, s.opts.LeaseTTL, now)
	}
	if l.Expires().Sub(now) > s.opts.LeaseTTL/2 {
		return l, nil
	}
	if err := l.Renew(ctx, now); err != nil {
		return nil, err
	}
	return l, nil
}

// record counts a step in the metrics.
func (s *Scheduler) record(ref TableRef, m *Maintainer, res StepResult, err error) {
	result := "idle"
	switch {
	case err != nil:
		result = "failed"
		s.metrics.errors.Inc()
	case res.Conflict:
		result = "conflict"
	case res.Rebuilt:
		result = "rebuilt"
		s.metrics.rebuilds.Inc()
	case res.To > res.From:
		result = "applied"
	}
	s.metrics.steps.WithLabelValues(result).Inc()
	if err == nil && res.ChangeLogVersion >= 0 {
		s.metrics.lagVersion.WithLabelValues(ref.Mirror).Set(float64(res.ChangeLogVersion - res.To))
	}
	if err == nil && res.To > res.From && res.SourceTime > 0 {
		s.metrics.lagSeconds.Observe(s.opts.Now().Sub(time.UnixMilli(res.SourceTime)).Seconds())
	}
	s.metrics.indexBytes.WithLabelValues(ref.Mirror).Set(float64(m.IndexBytes()))
}

func joinKey(root, rel string) string {
	if root == "" {
		return rel
	}
	return root + "/" + rel
}
