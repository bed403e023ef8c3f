package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/compaction"
	"github.com/evodb/sink/objstore"
)

// minRetention is compaction.MinRetention as an operator writes it ("1h").
func minRetention() string {
	return strings.TrimSuffix(strings.TrimSuffix(compaction.MinRetention.String(), "0s"), "0m")
}

func vacuumCommand() command {
	const usage = "vacuum -c config.yaml [-retention 168h] [-dry-run] [-log] [table]"
	return command{
		usage:   usage,
		summary: "delete data files removed from the log or never committed, older than the retention",
		run: func(ctx context.Context, e *env, args []string) error {
			fs := newFlags(e, "vacuum", usage)
			path := fs.String("c", "config.yaml", "configuration file (see config.example.yaml)")
			retention := fs.Duration("retention", 0, "keep files removed or written more recently than this; at least "+minRetention()+" (default compaction.retention, 168h)")
			dryRun := fs.Bool("dry-run", false, "list what would be deleted, delete nothing")
			logs := fs.Bool("log", false, "also delete history older than the retention: Delta log entries before the latest checkpoint; Iceberg snapshots (with their manifests) and orphan manifests")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if fs.NArg() > 1 {
				return fmt.Errorf("%w: at most one table", errUsage)
			}
			// An explicit -retention 0s is not "the default": it would
			// be refused as too short, and so it is, here, before the
			// configuration is read.
			set := false
			fs.Visit(func(f *flag.Flag) { set = set || f.Name == "retention" })
			if set && *retention < compaction.MinRetention {
				return fmt.Errorf("%w: -retention %s is under the %s minimum", errUsage, *retention, minRetention())
			}
			cfg, err := loadConfig(*path, e.lookupEnv)
			if err != nil {
				return err
			}
			cc := cfg.Compaction // defaulted and validated by loadConfig
			if !set {
				*retention = cc.Retention
			}
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
			now := time.Now()
			var errs []error
			for _, p := range paths {
				if err := vacuumTable(ctx, e.stdout, bucket, tf, p, *retention, *dryRun, *logs, now); err != nil {
					errs = append(errs, fmt.Errorf("table %s: %w", p, err))
				}
			}
			return errors.Join(errs...)
		},
	}
}

// vacuumTable vacuums one table and prints what went (or would go).
func vacuumTable(ctx context.Context, w io.Writer, b objstore.Bucket, tf committer.Format, path string, retention time.Duration, dryRun, logs bool, now time.Time) error {
	name := path
	if name == "" {
		name = "(root)"
	}
	verb := "deleted"
	if dryRun {
		verb = "would delete"
	}
	res, err := compaction.Vacuum(ctx, b, tf, path, retention, dryRun, now)
	if err != nil {
		return err
	}
	for _, p := range res.Removed {
		fmt.Fprintf(w, "%s %s/%s (removed from the log)\n", verb, name, p)
	}
	for _, p := range res.Orphans {
		fmt.Fprintf(w, "%s %s/%s (not in the log)\n", verb, name, p)
	}
	fmt.Fprintf(w, "table %s: %s %d files (%s), kept %d\n", name, verb, len(res.Removed)+len(res.Orphans), humanBytes(res.Bytes), res.Kept)
	if !logs {
		return nil
	}
	lres, err := compaction.VacuumLog(ctx, tf, path, retention, dryRun, now)
	if err != nil {
		return err
	}
	for _, p := range lres.Deleted {
		fmt.Fprintf(w, "%s %s/%s\n", verb, name, p)
	}
	entries, oldest := cmp.Or(lres.Entries, "log entries"), cmp.Or(lres.OldestName, "checkpoint")
	fmt.Fprintf(w, "table %s: %s %d %s before %s %d\n", name, verb, len(lres.Deleted), entries, oldest, lres.Checkpoint)
	return nil
}
