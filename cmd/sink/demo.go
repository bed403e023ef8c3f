package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/internal/workload"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/sink"
	"github.com/evodb/sink/tablefile"
)

// Demo topics, one per input format.
const (
	demoTopicEvoDB    = "demo.evodb"
	demoTopicDebezium = "demo.debezium"
	demoPartitions    = 6
)

// demoMarker marks a directory the demo created, so a re-run may replace
// it; the demo never deletes a directory without it.
const demoMarker = ".evodb-demo"

// demoOptions are the demo's flags.
type demoOptions struct {
	dir     string
	records int
	seed    uint64
	verbose bool
	// flushInterval is the tables' flush_interval.
	flushInterval time.Duration
}

// demoResult is what a demo run left: the tables, and the end offset of
// every partition it produced to (each offset below it holds one change).
type demoResult struct {
	produced   int
	tables     []*tableSummary
	endOffsets map[string]map[int32]int64
}

func demoCommand() command {
	const usage = "demo [-dir ./evodb-demo] [-records 20000] [-seed 1] [-v]"
	return command{
		usage:   usage,
		summary: "run a self-contained demo: in-process broker, generated CDC, local Delta tables",
		run: func(ctx context.Context, e *env, args []string) error {
			fs := newFlags(e, "demo", usage)
			var o demoOptions
			fs.StringVar(&o.dir, "dir", "./evodb-demo", "directory for the demo's tables (replaced if a previous demo made it)")
			fs.IntVar(&o.records, "records", 20_000, "number of changes to generate, half per input format")
			fs.Uint64Var(&o.seed, "seed", 1, "random seed of the generated changes")
			fs.BoolVar(&o.verbose, "v", false, "log what the sink does")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if o.records <= 0 {
				return fmt.Errorf("%w: -records must be positive", errUsage)
			}
			o.flushInterval = time.Second
			res, err := runDemo(ctx, e, o)
			if err != nil {
				return err
			}
			printDemo(e, o.dir, res)
			return nil
		},
	}
}

// prepareDemoDir creates dir, replacing a previous demo's directory: a
// fresh in-process broker restarts offsets at zero, which the sink would
// rightly refuse against tables that already hold later offsets.
func prepareDemoDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("demo directory: %w", err)
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(dir, demoMarker)); err != nil {
			return fmt.Errorf("demo directory %s exists and was not made by the demo; remove it or pick another -dir", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove previous demo: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("demo directory: %w", err)
	}
	marker := "This directory holds the Delta tables of an evodb-sink demo; `sink demo` replaces it.\n"
	if err := os.WriteFile(filepath.Join(dir, demoMarker), []byte(marker), 0o644); err != nil {
		return fmt.Errorf("demo directory: %w", err)
	}
	return nil
}

// runDemo starts an in-process broker and a sink writing to o.dir,
// produces o.records generated changes in both formats, waits until all are
// committed, and stops the sink gracefully.
func runDemo(ctx context.Context, e *env, o demoOptions) (*demoResult, error) {
	if err := prepareDemoDir(o.dir); err != nil {
		return nil, err
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(demoPartitions, demoTopicEvoDB, demoTopicDebezium))
	if err != nil {
		return nil, fmt.Errorf("start in-process broker: %w", err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	fmt.Fprintf(e.stdout, "in-process Kafka broker at %s, topics %s and %s (%d partitions each)\n",
		strings.Join(brokers, ","), demoTopicEvoDB, demoTopicDebezium, demoPartitions)

	bucket, err := objstore.NewFilesystem(o.dir)
	if err != nil {
		return nil, fmt.Errorf("open demo store: %w", err)
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))

	var committedRows, commits atomic.Int64
	committed := make(chan struct{}, 1)
	cfg := sink.Config{
		Instance: "demo",
		Kafka: sink.KafkaConfig{
			Brokers: brokers,
			Group:   "evodb-demo",
			Topics:  []string{demoTopicEvoDB, demoTopicDebezium},
			Formats: map[string]string{
				demoTopicEvoDB:    string(cdc.FormatEvoDB),
				demoTopicDebezium: string(cdc.FormatDebezium),
			},
		},
		Tables: sink.TablesConfig{Default: sink.TableConfig{
			Path:          "{db}/{schema}/{table}",
			FlushInterval: o.flushInterval,
		}},
		Memory:          sink.MemoryConfig{Budget: 64 << 20},
		ShutdownTimeout: 30 * time.Second,
	}
	s, err := sink.New(cfg, bucket, delta.NewFormat(bucket, delta.Options{CheckpointInterval: cfg.Commit.CheckpointInterval}), sink.WithLogger(log), sink.WithCommitHook(func(ev sink.CommitEvent) {
		if len(ev.FilesRemoved) == 0 {
			committedRows.Add(ev.Rows)
		}
		commits.Add(1)
		select {
		case committed <- struct{}{}:
		default:
		}
	}))
	if err != nil {
		return nil, err
	}
	sinkCtx, stopSink := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSink()
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(sinkCtx) }()
	fmt.Fprintf(e.stdout, "sink consuming into %s (flush_interval %s)\n", o.dir, o.flushInterval)

	produced, err := produceDemo(ctx, e, brokers, o)
	if err != nil {
		stopSink()
		<-runErr
		return nil, err
	}

	// Wait until every change is committed, printing progress each second.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start := time.Now()
	for committedRows.Load() < int64(produced) {
		select {
		case err := <-runErr:
			if err == nil {
				err = errors.New("sink stopped before committing every change")
			}
			return nil, err
		case <-ctx.Done():
			stopSink()
			if err := <-runErr; err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("demo interrupted with %d of %d changes committed: %w", committedRows.Load(), produced, ctx.Err())
		case <-tick.C:
			fmt.Fprintf(e.stdout, "committed %d/%d changes in %d table commits (%s)\n",
				committedRows.Load(), produced, commits.Load(), time.Since(start).Round(time.Second))
		case <-committed:
		}
	}
	fmt.Fprintf(e.stdout, "committed %d/%d changes in %d table commits; stopping the sink\n",
		committedRows.Load(), produced, commits.Load())

	res := &demoResult{produced: produced}
	if res.endOffsets, err = endOffsets(ctx, brokers); err != nil {
		stopSink()
		<-runErr
		return nil, err
	}
	stopSink()
	if err := <-runErr; err != nil {
		return nil, fmt.Errorf("stop sink: %w", err)
	}
	tf := delta.NewFormat(bucket, delta.Options{})
	paths, err := tf.ListTables(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		t, err := summarize(ctx, tf, p)
		if err != nil {
			return nil, err
		}
		res.tables = append(res.tables, t)
	}
	return res, nil
}

// produceDemo produces o.records changes, half evodb and half Debezium
// (with the Kafka Connect schema wrapper), to a few tables each.
func produceDemo(ctx context.Context, e *env, brokers []string, o demoOptions) (int, error) {
	cl, err := kgo.NewClient(append(workload.ProducerOptions(), kgo.SeedBrokers(brokers...))...)
	if err != nil {
		return 0, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	rng := rand.New(rand.NewPCG(o.seed, o.seed^0x5eed))
	evolve := max(o.records/20, 10)
	gens := []struct {
		g *workload.Generator
		n int
	}{
		{workload.New(workload.Config{
			Format: cdc.FormatEvoDB, Topic: demoTopicEvoDB, Partitions: demoPartitions,
			TableNames: []string{"users", "orders", "payments"}, EvolveAfter: evolve, Now: time.Now,
			DescriptiveColumns: true,
		}, rng), o.records / 2},
		{workload.New(workload.Config{
			Format: cdc.FormatDebezium, SchemaWrapper: true, Topic: demoTopicDebezium, Partitions: demoPartitions,
			TableNames: []string{"customers", "products", "shipments"}, EvolveAfter: evolve, Now: time.Now,
			DescriptiveColumns: true,
		}, rng), o.records - o.records/2},
	}
	printer := progressPrinter(e, "produced", o.records, time.Now())
	done := 0
	for _, gn := range gens {
		base := done
		err := workload.Produce(ctx, cl, gn.g, gn.n, func(n int) { printer(base + n) })
		if err != nil {
			return done, err
		}
		done += gn.n
		fmt.Fprintf(e.stdout, "produced %d %s changes to %s (tables %s)\n", gn.n, gn.g.Config().Format,
			gn.g.Config().Topic, strings.Join(gn.g.TableNames(), ", "))
	}
	return done, nil
}

// endOffsets returns the end offset of every demo partition.
func endOffsets(ctx context.Context, brokers []string) (map[string]map[int32]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, demoTopicEvoDB, demoTopicDebezium)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	out := map[string]map[int32]int64{}
	var firstErr error
	offs.Each(func(o kadm.ListedOffset) {
		if o.Err != nil && firstErr == nil {
			firstErr = fmt.Errorf("end offset of %s/%d: %w", o.Topic, o.Partition, o.Err)
		}
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = o.Offset
	})
	return out, firstErr
}

// duckdbPython is a Python command line that loads DuckDB's Delta
// extension from the duckdb-extension-delta package by its file path (a
// plain LOAD looks only in DuckDB's own extension directory, and INSTALL
// needs DuckDB's extension server) and runs the SQL given as its argument.
const duckdbPython = `python -c "import sys, pathlib, duckdb, duckdb_extension_delta as d; c = duckdb.connect(); ` +
	`c.load_extension(str(next(pathlib.Path(d.__file__).parent.glob('extensions/*/delta.duckdb_extension')))); ` +
	`c.sql(sys.argv[1]).show()"`

// printDemo prints each table with a query that reads it, and the commands
// that run such queries with nothing but pip-installed packages.
func printDemo(e *env, dir string, res *demoResult) {
	var rows int64
	for _, t := range res.tables {
		rows += t.Rows
	}
	fmt.Fprintf(e.stdout, "\n%d tables holding %d rows for the %d changes produced:\n", len(res.tables), rows, res.produced)
	var first, firstLoc string
	for _, t := range res.tables {
		loc := demoLocation(dir, t.Path)
		fmt.Fprintf(e.stdout, "\n  %s\n    version %d, %d files (%s), %d rows, lsn %s\n", t.Path, t.Version, len(t.Files),
			humanBytes(t.Bytes), t.Rows, lsnRange(t.HasLSN, t.MinLSN, t.MaxLSN))
		q := fmt.Sprintf("SELECT %s FROM delta_scan('%s') ORDER BY _lsn DESC LIMIT 5", strings.Join(demoColumns(t), ", "), loc)
		fmt.Fprintf(e.stdout, "    %s\n", q)
		if first == "" || t.Path == "users" {
			first, firstLoc = q, loc
		}
	}
	if first == "" {
		return
	}
	// Every table is a change log; the current state is the latest change
	// per key without the deleted keys (docs/current-state.md).
	current := fmt.Sprintf("SELECT * EXCLUDE (rn) FROM (SELECT *, row_number() OVER (PARTITION BY id ORDER BY _lsn DESC) AS rn "+
		"FROM delta_scan('%s')) WHERE rn = 1 AND _op <> 'DELETE' ORDER BY id LIMIT 5", firstLoc)
	fmt.Fprintf(e.stdout, "\nEach table is a change log: one row per insert, update and delete.\n")
	fmt.Fprintf(e.stdout, "Run a query above with DuckDB after `pip install duckdb duckdb-extension-delta`:\n  %s \"%s\"\n", duckdbPython, first)
	fmt.Fprintf(e.stdout, "The current state (latest change per id, deleted ids left out):\n  %s \"%s\"\n", duckdbPython, current)
	fmt.Fprintf(e.stdout, "The duckdb CLI runs the same SQL after INSTALL delta; LOAD delta; and delta-rs reads the tables too:\n")
	// count_rows on the dataset, not num_rows of to_pyarrow_table: with
	// delta-rs 1.6 the latter aborts the interpreter at exit now and then
	// (after printing), which a newcomer would take for a broken table.
	fmt.Fprintf(e.stdout, "  python -c \"import deltalake; print(deltalake.DeltaTable('%s').to_pyarrow_dataset().count_rows())\"\n", firstLoc)
	fmt.Fprintf(e.stdout, "\nInspect them with: go run ./cmd/sink inspect file://%s\n", filepath.ToSlash(dir))
}

// demoLocation is the path of a demo table as a query names it: relative
// paths start with "./" so readers do not take them for URLs.
func demoLocation(dir, tablePath string) string {
	loc := filepath.Join(dir, filepath.FromSlash(tablePath))
	if !filepath.IsAbs(loc) && !strings.HasPrefix(loc, ".") {
		loc = "." + string(filepath.Separator) + loc
	}
	return loc
}

// demoColumns are the columns the demo's example query selects: the key,
// the table's first three other columns and the change's operation and
// source time, so the rows printed read like the table they come from.
func demoColumns(t *tableSummary) []string {
	cols := []string{"id"}
	if t.Snapshot != nil {
		if schema, err := tablefile.TableSchema(t.Snapshot); err == nil {
			for _, c := range schema.Columns() {
				if c.Name == "id" || c.Name == "note" {
					continue
				}
				if cols = append(cols, c.Name); len(cols) == 4 {
					break
				}
			}
		}
	}
	return append(cols, codec.ColOp, codec.ColTS)
}
