package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

func inspectCommand() command {
	const usage = "inspect [-c config.yaml] <store-url> [table]"
	return command{
		usage:   usage,
		summary: "show tables: versions, files, sizes, rows, LSN ranges, txn offsets",
		run: func(ctx context.Context, e *env, args []string) error {
			fs := newFlags(e, "inspect", usage)
			path := fs.String("c", "", "configuration file whose store.s3 settings (credentials) apply to an s3:// URL")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if fs.NArg() < 1 || fs.NArg() > 2 {
				return fmt.Errorf("%w: want a store URL and at most one table", errUsage)
			}
			var s3 objstore.S3Config
			if *path != "" {
				cfg, err := loadConfig(*path, e.lookupEnv)
				if err != nil {
					return err
				}
				s3 = cfg.Store.S3
			}
			bucket, err := objstore.Open(ctx, fs.Arg(0), s3)
			if err != nil {
				return err
			}
			if fs.NArg() == 2 {
				return inspectTable(ctx, e.stdout, bucket, fs.Arg(1))
			}
			return inspectAll(ctx, e.stdout, bucket)
		},
	}
}

// inspectAll prints one block per table.
func inspectAll(ctx context.Context, w io.Writer, b objstore.Bucket) error {
	paths, err := committer.ListTables(ctx, b)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		fmt.Fprintln(w, "no tables")
		return nil
	}
	for i, p := range paths {
		s, err := summarize(ctx, b, p)
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(w)
		}
		printSummary(w, s)
	}
	return nil
}

// printSummary prints a table's version, size and txn offsets.
func printSummary(w io.Writer, s *tableSummary) {
	name := s.Path
	if name == "" {
		name = "(root)"
	}
	fmt.Fprintf(w, "table %s\n", name)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  version\t%d\n", s.Version)
	fmt.Fprintf(tw, "  files\t%d\n", len(s.Files))
	fmt.Fprintf(tw, "  size\t%s (%d bytes)\n", humanBytes(s.Bytes), s.Bytes)
	fmt.Fprintf(tw, "  rows\t%d\n", s.Rows)
	fmt.Fprintf(tw, "  lsn\t%s\n", lsnRange(s.HasLSN, s.MinLSN, s.MaxLSN))
	tw.Flush()
	apps := make([]string, 0, len(s.Txns))
	for a := range s.Txns {
		apps = append(apps, a)
	}
	sort.Strings(apps)
	if len(apps) == 0 {
		return
	}
	fmt.Fprintln(w, "  txn offsets (source partition: last offset held):")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, a := range apps {
		fmt.Fprintf(tw, "    %s\t%d\n", a, s.Txns[a])
	}
	tw.Flush()
}

// inspectTable prints one table's summary and its files.
func inspectTable(ctx context.Context, w io.Writer, b objstore.Bucket, path string) error {
	s, err := summarize(ctx, b, path)
	if err != nil {
		return err
	}
	printSummary(w, s)
	if len(s.Files) == 0 {
		return nil
	}
	fmt.Fprintln(w, "  files:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "    PATH\tSIZE\tROWS\tLSN\tLEVEL\tSOURCES")
	for _, f := range s.Files {
		level := f.Level
		if level == "" {
			level = "-"
		}
		fmt.Fprintf(tw, "    %s\t%d\t%d\t%s\t%s\t%s\n", f.Path, f.Size, f.Rows, lsnRange(f.HasLSN, f.MinLSN, f.MaxLSN), level, f.Sources)
	}
	return tw.Flush()
}
