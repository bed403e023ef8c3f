package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/compaction"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/partitioner"
)

func compactCommand() command {
	const usage = "compact -c config.yaml [table]"
	return command{
		usage:   usage,
		summary: "merge small files of every table (or one) once, and print file counts before and after",
		run: func(ctx context.Context, e *env, args []string) error {
			fs := newFlags(e, "compact", usage)
			path := fs.String("c", "config.yaml", "configuration file (see config.example.yaml)")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if fs.NArg() > 1 {
				return fmt.Errorf("%w: at most one table", errUsage)
			}
			cfg, err := loadConfig(*path, e.lookupEnv)
			if err != nil {
				return err
			}
			log := newLogger(e.stderr, cfg.Log)
			e.useLogger(log, cfg.Log)
			cc := cfg.Compaction // defaulted and validated by loadConfig
			bucket, err := objstore.Open(ctx, cfg.Store.URL, cfg.Store.S3)
			if err != nil {
				return err
			}
			tf, err := openFormat(ctx, cfg, bucket, 0)
			if err != nil {
				return err
			}
			paths, err := tablePaths(ctx, tf, fs.Args())
			if err != nil {
				return err
			}
			s := compaction.NewScheduler(bucket, tf, cc, compaction.WithLogger(log), compaction.WithInstance(cfg.Instance))
			var errs []error
			for _, p := range paths {
				ref, err := tableRef(ctx, tf, cfg, p)
				if err == nil {
					var res compaction.Result
					res, err = s.CompactOnce(ctx, ref)
					printCompaction(e.stdout, p, res, err)
				}
				if err != nil && !errors.Is(err, compaction.ErrDeletesRows) {
					errs = append(errs, fmt.Errorf("table %s: %w", p, err))
				}
			}
			return errors.Join(errs...)
		},
	}
}

// tablePaths returns the named table, or every table in the bucket. A
// named table that is not there is a noTableError naming the tables that
// are.
func tablePaths(ctx context.Context, tf committer.Format, args []string) ([]string, error) {
	paths, err := tf.ListTables(ctx)
	if err != nil || len(args) == 0 {
		return paths, err
	}
	if !slices.Contains(paths, args[0]) {
		return nil, withTables(noTableError{path: args[0]}, paths)
	}
	return args, nil
}

// tableRef sizes a table's compaction with the configuration of the table
// the log names: its partition mode (which the mode recorded in the table
// overrides, as in background compaction) and compression.
func tableRef(ctx context.Context, tf committer.Format, cfg *fileConfig, path string) (compaction.TableRef, error) {
	snap, err := tf.Open(path, committer.Options{}).Snapshot(ctx)
	if err != nil {
		return compaction.TableRef{}, fmt.Errorf("read table: %w", err)
	}
	tc := cfg.TableConfig(snap.Metadata.Name)
	mode, err := partitioner.ModeByName(tc.Mode)
	if err != nil {
		return compaction.TableRef{}, err
	}
	return compaction.TableRef{Path: path, Mode: mode, Compression: tc.Compression}, nil
}

// printCompaction prints one table's outcome.
func printCompaction(w io.Writer, path string, res compaction.Result, err error) {
	name := path
	if name == "" {
		name = "(root)"
	}
	switch {
	case errors.Is(err, compaction.ErrLeaseHeld), errors.Is(err, compaction.ErrDeletesRows):
		fmt.Fprintf(w, "table %s: skipped, %v\n", name, err)
	case err != nil:
		fmt.Fprintf(w, "table %s: failed after %d merges: %v\n", name, res.Jobs, err)
	default:
		fmt.Fprintf(w, "table %s: files %d -> %d, size %s -> %s, %d merges, version %d\n", name,
			res.FilesBefore, res.FilesAfter, humanBytes(res.BytesBefore), humanBytes(res.BytesAfter), res.Jobs, res.Version)
	}
}
