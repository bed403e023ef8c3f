package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/internal/bench"
	"github.com/evodb/sink/objstore"
)

func benchCommand() command {
	const usage = "bench [-tables 8,64,512] [-format evodb,debezium,avro,protobuf] [-records N] [-runs 3] [-brokers …] [-store s3://…] [-process] [-table-format delta|iceberg -catalog URL] [-peer python,kafka-delta-ingest -peer-bin PATH] [-json] [-json-out file] | bench -mirror update,insert [-mirror-rows 1000000] [-mirror-rate 2000] [-mirror-duration 30s] [-mirror-interval 1s] [-runs N] [-process] [-store …]"
	return command{
		usage:   usage,
		summary: "measure the sink beside consume-only and decode+encode-only baselines on a generated backlog",
		run: func(ctx context.Context, e *env, args []string) error {
			fs := newFlags(e, "bench", usage)
			tables := fs.String("tables", "8", "comma-separated table counts, one scenario each (8, 64, 512)")
			formats := fs.String("format", "evodb", "comma-separated input formats: evodb, debezium, debezium+schema, avro, protobuf (avro and protobuf carry the evodb rows of the same seed as plain records through an in-process schema registry; list evodb beside them to compare on the same rows)")
			records := fs.Int("records", 200_000, "records in each backlog")
			runs := fs.Int("runs", 3, "runs per scenario; figures are medians")
			seed := fs.Uint64("seed", 1, "random seed of the records")
			brokers := fs.String("brokers", "", "seed brokers of a real cluster (default: an in-process broker)")
			store := fs.String("store", "", "store URL, file:// or s3://bucket/prefix?endpoint=… (default: a temporary directory); S3 credentials come from the environment")
			tableFormat := fs.String("table-format", "delta", "the tables' format: delta, or iceberg (needs -process, an s3:// -store with an http:// endpoint and -catalog)")
			catalog := fs.String("catalog", "", "the Iceberg REST catalog's URL, for -table-format iceberg")
			process := fs.Bool("process", false, "run the sink as a child process (`sink run`) so CPU and peak RSS are its own")
			flushInterval := fs.Duration("flush-interval", 5*time.Second, "tables' flush_interval")
			budget := fs.Int64("memory", 128<<20, "memory.budget_bytes")
			mode := fs.String("mode", "standard", "partition mode: do-sqlite, standard or enterprise")
			latency := fs.Duration("latency", 15*time.Second, "duration of the paced phase at half the measured maximum (0 skips it)")
			warm := fs.Bool("warm", false, "after the backlog, measure the sink again on as many more records of the same tables, every table created and open (the warm: rows)")
			peer := fs.String("peer", "", "also run what a user would run instead, on the same records after the sink, and compare each output with the sink's value by value: a comma-separated list of python (a confluent-kafka consumer writing with deltalake) and kafka-delta-ingest (needs -peer-bin, -tables 1 and -format evodb); needs a filesystem store")
			peerPython := fs.String("peer-python", "python3", "the Python that runs the peer and the comparison, with confluent-kafka, deltalake and pyarrow (e2e/scripts/python.sh install)")
			peerBin := fs.String("peer-bin", "", "the kafka-delta-ingest binary of -peer kafka-delta-ingest (e2e/scripts/kafka-delta-ingest.sh install builds it)")
			cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the sink (the child process with -process, else this process) to this file; with several runs the last one is kept")
			memProfile := fs.String("memprofile", "", "with -process, write a heap profile of the sink child (live objects when it is told to stop) to this file; with several runs the last one is kept")
			mirrorWorkloads := fs.String("mirror", "", "measure mirror tables instead: comma-separated workloads, update (90 % updates of random keys) and insert (90 % inserts), each on a table loaded with -mirror-rows rows, with the mirror on and off (-runs pairs)")
			mirrorRows := fs.Int("mirror-rows", 1_000_000, "with -mirror, the table's rows before the measured phase")
			mirrorRate := fs.Float64("mirror-rate", 2000, "with -mirror, changes per second in the measured phase")
			mirrorDuration := fs.Duration("mirror-duration", 30*time.Second, "with -mirror, the measured phase's duration")
			mirrorInterval := fs.Duration("mirror-interval", time.Second, "with -mirror, tables.*.mirror.interval")
			asJSON := fs.Bool("json", false, "print the results as JSON instead of a table")
			jsonOut := fs.String("json-out", "", "also write the results as JSON to this file")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if fs.NArg() > 0 {
				return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
			}
			switch {
			case *tableFormat == "delta":
			case *tableFormat != bench.TableFormatIceberg:
				return fmt.Errorf("%w: -table-format %q is not one of delta, iceberg", errUsage, *tableFormat)
			case !*process || *catalog == "" || !strings.HasPrefix(*store, "s3://"):
				return fmt.Errorf("%w: -table-format iceberg needs -process, an s3:// -store and -catalog", errUsage)
			}
			if *records <= 0 || *runs <= 0 {
				return fmt.Errorf("%w: -records and -runs must be positive", errUsage)
			}
			var tableCounts []int
			for _, s := range splitList(*tables) {
				n, err := strconv.Atoi(s)
				if err != nil || n <= 0 {
					return fmt.Errorf("%w: -tables %q is not a list of positive numbers", errUsage, *tables)
				}
				tableCounts = append(tableCounts, n)
			}
			type format struct {
				f      codec.Format
				schema bool
			}
			var fmts []format
			for _, s := range splitList(*formats) {
				switch s {
				case "evodb":
					fmts = append(fmts, format{cdc.FormatEvoDB, false})
				case "debezium":
					fmts = append(fmts, format{cdc.FormatDebezium, false})
				case "debezium+schema":
					fmts = append(fmts, format{cdc.FormatDebezium, true})
				case "avro", "protobuf":
					fmts = append(fmts, format{codec.Format(s), false})
				default:
					return fmt.Errorf("%w: -format %q is not one of evodb, debezium, debezium+schema, avro, protobuf", errUsage, s)
				}
			}
			if *mirrorWorkloads != "" {
				return benchMirror(ctx, e, benchMirrorArgs{
					workloads: splitList(*mirrorWorkloads), rows: *mirrorRows, rate: *mirrorRate, duration: *mirrorDuration,
					interval: *mirrorInterval, flush: *flushInterval, budget: *budget, runs: *runs, seed: *seed,
					brokers: splitList(*brokers), store: *store, process: *process, cpuProfile: *cpuProfile,
					asJSON: *asJSON, jsonOut: *jsonOut, flushSet: flagSet(fs, "flush-interval"), budgetSet: flagSet(fs, "memory"),
				})
			}
			var sinkCmd []string
			if *process {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("locate the sink binary: %w", err)
				}
				sinkCmd = []string{exe, "run"}
				if *cpuProfile != "" {
					sinkCmd = append(sinkCmd, "-cpuprofile", *cpuProfile)
				}
				if *memProfile != "" {
					sinkCmd = append(sinkCmd, "-memprofile", *memProfile)
				}
			} else {
				stop, err := startCPUProfile(*cpuProfile)
				if err != nil {
					return err
				}
				defer stop()
			}
			tmp, err := os.MkdirTemp("", "evodb-bench-")
			if err != nil {
				return fmt.Errorf("temporary directory: %w", err)
			}
			defer os.RemoveAll(tmp)

			var results []*bench.Result
			for _, n := range tableCounts {
				for _, f := range fmts {
					var rs []*bench.Result
					for i := range *runs {
						cfg := bench.Config{
							Tables: n, Format: f.f, SchemaWrapper: f.schema, Records: *records, Seed: *seed,
							Brokers: splitList(*brokers), StoreURL: *store, S3: objstore.S3Config{},
							FlushInterval: *flushInterval, MemoryBudget: *budget, Mode: *mode,
							LatencyDuration: *latency, Warm: *warm, SinkCommand: sinkCmd, TempDir: tmp,
							Peers: splitList(*peer), PeerInterpreter: *peerPython, PeerBinary: *peerBin,
							TableFormat: *tableFormat, CatalogURI: *catalog,
							Log: func(format string, args ...any) {
								fmt.Fprintf(e.stderr, "bench [%d tables %s, run %d/%d]: %s\n", n, f.f, i+1, *runs, fmt.Sprintf(format, args...))
							},
						}
						r, err := bench.Run(ctx, cfg)
						if err != nil {
							return fmt.Errorf("%d tables %s run %d: %w", n, f.f, i+1, err)
						}
						rs = append(rs, r)
					}
					results = append(results, bench.Median(rs))
				}
			}
			if *jsonOut != "" {
				b, err := json.MarshalIndent(results, "", "  ")
				if err != nil {
					return fmt.Errorf("render results: %w", err)
				}
				if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
					return fmt.Errorf("write results: %w", err)
				}
			}
			if *asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(results)
			}
			return bench.WriteTable(e.stdout, results)
		},
	}
}

// benchMirrorArgs are the flags of `sink bench -mirror`.
type benchMirrorArgs struct {
	workloads           []string
	rows                int
	rate                float64
	duration, interval  time.Duration
	flush               time.Duration
	budget              int64
	runs                int
	seed                uint64
	brokers             []string
	store               string
	process             bool
	cpuProfile          string
	asJSON              bool
	jsonOut             string
	flushSet, budgetSet bool
}

// benchMirror runs `sink bench -mirror`: per workload, -runs pairs of
// runs with the mirror on and off over the same records.
func benchMirror(ctx context.Context, e *env, a benchMirrorArgs) error {
	cfg := bench.MirrorConfig{
		Rows: a.rows, Rate: a.rate, Duration: a.duration, Interval: a.interval, Runs: a.runs, Seed: a.seed,
		Brokers: a.brokers, StoreURL: a.store,
	}
	// The throughput scenarios' defaults suit a backlog; a mirror run
	// takes its own unless the flags are given.
	if a.flushSet {
		cfg.FlushInterval = a.flush
	}
	if a.budgetSet {
		cfg.MemoryBudget = a.budget
	}
	if a.process {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("locate the sink binary: %w", err)
		}
		cfg.SinkCommand = []string{exe, "run"}
		cfg.CPUProfile = a.cpuProfile
	} else {
		stop, err := startCPUProfile(a.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	tmp, err := os.MkdirTemp("", "evodb-bench-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	cfg.TempDir = tmp
	var results []*bench.MirrorResult
	for _, w := range a.workloads {
		c := cfg
		c.Workload = w
		c.Log = func(format string, args ...any) {
			fmt.Fprintf(e.stderr, "bench [mirror %s]: %s\n", w, fmt.Sprintf(format, args...))
		}
		if c.CPUProfile != "" && len(a.workloads) > 1 {
			c.CPUProfile = strings.TrimSuffix(c.CPUProfile, ".prof") + "-" + w + ".prof"
		}
		r, err := bench.RunMirror(ctx, c)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if a.jsonOut != "" {
		b, err := json.MarshalIndent(results, "", "  ")
		if err != nil {
			return fmt.Errorf("render results: %w", err)
		}
		if err := os.WriteFile(a.jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write results: %w", err)
		}
	}
	if a.asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	return bench.WriteMirrorTable(e.stdout, results)
}

// flagSet reports whether the command line set the flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
