package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/evodb/sink/compaction"
	"github.com/evodb/sink/mirror"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/sink"
)

// httpShutdownTimeout bounds how long the metrics server waits for open
// requests after the sink has stopped.
const httpShutdownTimeout = 5 * time.Second

func runCommand() command {
	const usage = "run -c config.yaml"
	return command{
		usage:   usage,
		summary: "run the sink until SIGINT or SIGTERM",
		run: func(ctx context.Context, e *env, args []string) error {
			fs := newFlags(e, "run", usage)
			path := fs.String("c", "config.yaml", "configuration file (see config.example.yaml)")
			cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
			memProfile := fs.String("memprofile", "", "write a heap profile (live objects after a collection) to this file when the sink is told to stop, before its final flush")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if fs.NArg() > 0 {
				return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
			}
			cfg, err := loadConfig(*path, e.lookupEnv)
			if err != nil {
				return err
			}
			stop, err := startCPUProfile(*cpuProfile)
			if err != nil {
				return err
			}
			defer stop()
			if *memProfile != "" {
				done, written := make(chan struct{}), make(chan struct{})
				go func() {
					defer close(written)
					writeHeapProfileAtStop(ctx, done, *memProfile, e)
				}()
				// The profile is written before the process exits.
				defer func() { close(done); <-written }()
			}
			return runSink(ctx, e, cfg)
		},
	}
}

// startCPUProfile starts a CPU profile written to path ("" does nothing)
// and returns the function that stops and writes it.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// writeHeapProfileAtStop writes a heap profile to path once ctx is
// cancelled (the sink is told to stop), after a collection so it shows
// what is live: the state every table keeps between flushes, while the
// sink still holds it. It gives up when done closes first.
func writeHeapProfileAtStop(ctx context.Context, done <-chan struct{}, path string, e *env) {
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	runtime.GC()
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("heap").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "heap profile: %v\n", err)
	}
}

// runSink wires the store, metrics, HTTP server and sink of cfg and runs
// the sink until ctx is cancelled (then it returns nil once the final
// flush is committed) or it fails.
func runSink(ctx context.Context, e *env, cfg *fileConfig) error {
	log := newLogger(e.stderr, cfg.Log)
	e.useLogger(log, cfg.Log)
	setMemoryLimit(e, cfg.Memory.Budget)
	// Package initialisation leaves garbage the collector would otherwise
	// keep until the heap first reaches its goal (32 MB of it from the
	// Iceberg library's Substrait extensions, loaded whatever the tables'
	// format): collect it and give its pages back while the heap is small
	// and a collection cheap.
	debug.FreeOSMemory()
	if n, err := releaseExecutablePages(); err != nil {
		log.Warn("release the executable's pages read at start", "err", err)
	} else {
		log.Debug("released the executable's pages read at start", "bytes", n)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	bucket, err := objstore.Open(ctx, cfg.Store.URL, cfg.Store.S3)
	if err != nil {
		return err
	}
	// Store requests, errors and latency by operation, for every backend.
	bucket = objstore.WithMetrics(bucket, reg)
	tf, err := openFormat(ctx, cfg, bucket, cfg.Commit.CheckpointInterval)
	if err != nil {
		return err
	}
	// The mirror scheduler, once it runs, is woken by each commit the
	// sink lands, so a mirror follows its change log within a step
	// instead of an interval. The sink exists before the scheduler (which
	// takes its instance name and pause), hence the pointer.
	var mirrors atomic.Pointer[mirror.Scheduler]
	nudge := sink.WithCommitHook(func(ev sink.CommitEvent) {
		if m := mirrors.Load(); m != nil {
			m.Nudge(ev.Table)
		}
	})
	s, err := sink.New(cfg.Config, bucket, tf, sink.WithLogger(log), sink.WithRegisterer(reg), nudge)
	if err != nil {
		return err
	}

	var srv *http.Server
	serveErr := make(chan error, 1)
	if addr := cfg.HTTP.Addr; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen on http.addr %s: %w", addr, err)
		}
		srv = &http.Server{Handler: s.Handler(reg), ReadHeaderTimeout: 10 * time.Second}
		log.Info("serving metrics and health", "addr", ln.Addr().String())
		go func() { serveErr <- srv.Serve(ln) }()
	}

	log.Info("sink starting", "version", versionString(), "store", redactURL(cfg.Store.URL),
		"brokers", cfg.Kafka.Brokers, "group", cfg.Kafka.Group)
	compactDone := make(chan struct{})
	cctx, stopCompaction := context.WithCancel(ctx)
	if cfg.Compaction.Enabled {
		// Compaction runs beside ingestion, one job at a time by default,
		// and waits whenever the memory budget has paused fetching so it
		// never competes with flushes for the store.
		// Compaction commits with the format's default checkpoint
		// interval, as `sink compact` does.
		ctf, err := openFormat(ctx, cfg, bucket, 0)
		if err != nil {
			stopCompaction()
			return err
		}
		sched := compaction.NewScheduler(bucket, ctf, cfg.Compaction,
			compaction.WithLogger(log), compaction.WithRegisterer(reg),
			compaction.WithInstance(s.Instance()), compaction.WithYield(s.WaitUnpaused))
		go func() {
			defer close(compactDone)
			if err := sched.Run(cctx, func() []compaction.TableRef { return compactionTables(s) }); err != nil && !errors.Is(err, context.Canceled) {
				log.Warn("compaction scheduler stopped", "err", err)
			}
		}()
	} else {
		close(compactDone)
	}
	mirrorDone := make(chan struct{})
	mctx, stopMirrors := context.WithCancel(ctx)
	{
		// Mirror tables are kept beside their change logs by one
		// maintainer each across the group (a lease per mirror); every
		// member tries the tables it writes. The maintainer opens the
		// mirror with DeleteRows, which the change log's own writers and
		// compaction never do.
		mtf, err := openFormat(ctx, cfg, bucket, 0)
		if err != nil {
			stopCompaction()
			stopMirrors()
			return err
		}
		sched := mirror.NewScheduler(bucket, mtf, mirror.SchedulerOptions{Instance: s.Instance(), Logger: log, Registerer: reg, Yield: s.WaitUnpaused})
		mirrors.Store(sched)
		go func() {
			defer close(mirrorDone)
			if err := sched.Run(mctx, func() []mirror.TableRef { return mirrorTables(s) }); err != nil && !errors.Is(err, context.Canceled) {
				log.Warn("mirror scheduler stopped", "err", err)
			}
		}()
	}
	runErr := s.Run(ctx)
	stopCompaction()
	stopMirrors()
	<-compactDone
	<-mirrorDone
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("http server shutdown", "err", err)
		}
		cancel()
		if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("http server", "err", err)
		}
	}
	if runErr != nil {
		return runErr
	}
	log.Info("sink stopped; everything consumed is committed")
	return nil
}

// redactURL hides any password in a store URL before it is logged.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid url)"
	}
	return u.Redacted()
}

// setMemoryLimit sets the collector's soft memory limit for a process
// with a memory budget of budget bytes (softMemoryLimit) and its growth
// target under it. The Go collector lets the heap grow to twice the live
// data before it collects; with a full memory budget that doubles the
// process's footprint. A soft limit a little above the budget makes the
// collector work harder instead. GOMEMLIMIT in the environment takes
// precedence over both, GOGC over the growth target.
func setMemoryLimit(e *env, budget int64) {
	if _, set := e.lookupEnv("GOMEMLIMIT"); set {
		return
	}
	debug.SetMemoryLimit(softMemoryLimit(budget))
	// With the limit in place the collector may let garbage grow further
	// between cycles: less CPU spent collecting, while the limit still
	// bounds the footprint.
	if _, set := e.lookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
}

// softMemoryLimit is the soft memory limit of a process with a memory
// budget of budget bytes: the budget plus memoryHeadroom.
func softMemoryLimit(budget int64) int64 { return budget + memoryHeadroom }

// memoryHeadroom is what the heap may hold beyond the memory budget before
// the garbage collector works to stay under it. The budget counts the
// buffers, the tables' state, fetched data as it is once decoded and the
// encoders, so the live heap stays within it; the headroom is for the
// runtime's own memory (5-8 MiB: stacks, the collector's metadata) and
// what the budget's estimates miss. A process is meant to stay within
// the budget plus 64 MiB: the limit counts only Go's memory, and the
// executable's resident pages, which releaseExecutablePages keeps to what
// the sink runs, take 25-40 MiB more (BENCHMARKS.md, "Memory at 2,048
// tables, a third time"). A limit derived from the pages resident at
// start would differ from this by a few MiB only, and those pages grow
// afterwards as code runs for the first time.
const memoryHeadroom = 16 << 20

// gcPercent is the collector's growth target under the memory limit.
const gcPercent = 400

// mirrorTables lists the mirrors of the tables this member writes, for
// the mirror scheduler.
func mirrorTables(s *sink.Sink) []mirror.TableRef {
	var refs []mirror.TableRef
	for _, t := range s.Tables() {
		if t.Mirror == nil {
			continue
		}
		refs = append(refs, mirror.TableRef{
			ChangeLog: t.Path, Mirror: t.Mirror.TablePath(t.Path), Key: t.Mirror.Key, Interval: t.Mirror.Interval,
			MaxFiles: t.Mirror.MaxFiles, TargetFileRows: t.Mirror.TargetFileRows, Compression: t.Compression,
		})
	}
	return refs
}

// compactionTables lists the tables this member writes, for the compaction
// scheduler. The lease makes it safe for every member to try every table.
func compactionTables(s *sink.Sink) []compaction.TableRef {
	var refs []compaction.TableRef
	for _, t := range s.Tables() {
		refs = append(refs, compaction.TableRef{Path: t.Path, Mode: t.Mode, Compression: t.Compression})
	}
	return refs
}
