package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

func inspectCommand() command {
	const usage = "inspect [-c config.yaml] [<store-url or directory>] [table]"
	return command{
		usage:   usage,
		summary: "show tables: versions, files, sizes, rows, LSN ranges, txn offsets",
		run: func(ctx context.Context, e *env, args []string) error {
			fs := newFlags(e, "inspect", usage)
			path := fs.String("c", "", "configuration file: its store.url is the default store, its store.s3 settings (endpoint, region, credentials) apply to an s3:// URL, and its catalog lists the Iceberg tables (without it, only Delta tables are found)")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			args = fs.Args()
			var (
				s3       objstore.S3Config
				storeURL string
				cfg      *fileConfig
			)
			if *path != "" {
				var err error
				if cfg, err = loadConfig(*path, e.lookupEnv); err != nil {
					return err
				}
				s3, storeURL = cfg.Store.S3, cfg.Store.URL
			}
			// Without -c the first argument is the store. With -c it is
			// the store only if it looks like one, else it is a table of
			// the configured store.
			if len(args) > 0 && (*path == "" || looksLikeStore(args[0])) {
				storeURL, args = args[0], args[1:]
			}
			switch {
			case storeURL == "":
				return fmt.Errorf("%w: want a store URL or directory, or -c config.yaml", errUsage)
			case len(args) > 1:
				return fmt.Errorf("%w: want a store URL or directory and at most one table", errUsage)
			}
			storeURL, err := storeFromArg(storeURL)
			if err != nil {
				return err
			}
			bucket, err := objstore.Open(ctx, storeURL, s3)
			var tf committer.Format
			if err == nil {
				// The configuration's catalog applies to its own store only.
				if cfg != nil && storeURL != cfg.Store.URL {
					cfg = nil
				}
				tf, err = openFormat(ctx, cfg, bucket, 0)
			}
			if err == nil {
				if len(args) == 1 {
					err = inspectTable(ctx, e.stdout, tf, args[0])
				} else {
					err = inspectAll(ctx, e.stdout, tf, cfg == nil || cfg.Catalog.URI == "")
				}
			}
			if err != nil && *path == "" && lacksSettings(storeURL, err) {
				return hinted{hint: "pass -c config.yaml to use the configuration's store.s3 settings: " +
					"an s3:// URL alone carries no credentials, and no endpoint or region unless its query sets them", err: err}
			}
			return err
		},
	}
}

// lacksSettings reports whether err, from a store named by URL alone, may
// come from what only a configuration file carries: an s3:// URL without
// an endpoint (a self-hosted or R2 store read as AWS), or no accepted
// credentials.
func lacksSettings(storeURL string, err error) bool {
	u, perr := url.Parse(storeURL)
	if perr != nil || u.Scheme != "s3" || errors.Is(err, committer.ErrNoTable) {
		return false
	}
	return !u.Query().Has("endpoint") || errors.Is(err, objstore.ErrNoCredentials) || errors.Is(err, objstore.ErrAccessDenied)
}

// looksLikeStore reports whether an inspect argument names a store rather
// than a table: a URL, or a path that starts like one.
func looksLikeStore(arg string) bool {
	return strings.Contains(arg, "://") || strings.HasPrefix(arg, "/") || strings.HasPrefix(arg, ".")
}

// storeFromArg turns an inspect argument into a store URL: a URL is used
// as is, a plain path names a directory of tables, which must exist
// (inspect never creates a store).
func storeFromArg(arg string) (string, error) {
	if !strings.Contains(arg, "://") {
		abs, err := filepath.Abs(arg)
		if err != nil {
			return "", err
		}
		arg = "file://" + filepath.ToSlash(abs)
	}
	u, err := url.Parse(arg)
	if err != nil || u.Scheme != "file" {
		// objstore.Open reports a malformed URL with the forms it takes.
		return arg, nil
	}
	dir := u.Host + u.Path
	if u.Host == "localhost" {
		dir = u.Path
	}
	if info, err := os.Stat(dir); err != nil || !info.IsDir() {
		return "", fmt.Errorf("store %s: no directory %s", arg, dir)
	}
	return arg, nil
}

// noIcebergHint says where Iceberg tables are when inspect lists a store
// without a catalog: their entries are in the catalog, and the store
// alone shows no table in them.
const noIcebergHint = "no Delta tables (Iceberg tables are listed through their catalog: pass -c config.yaml with a catalog section)"

// inspectAll prints one block per table. deltaOnly says tf knows no
// catalog, so a store holding only Iceberg tables shows none.
func inspectAll(ctx context.Context, w io.Writer, tf committer.Format, deltaOnly bool) error {
	paths, err := tf.ListTables(ctx)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		if deltaOnly {
			fmt.Fprintln(w, noIcebergHint)
		} else {
			fmt.Fprintln(w, "no tables")
		}
		return nil
	}
	for i, p := range paths {
		s, err := summarize(ctx, tf, p)
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
	if s.Deleted > 0 {
		fmt.Fprintf(tw, "  rows\t%d visible, %d deleted (deletion vectors)\n", s.Rows-s.Deleted, s.Deleted)
	} else {
		fmt.Fprintf(tw, "  rows\t%d\n", s.Rows)
	}
	fmt.Fprintf(tw, "  lsn\t%s\n", lsnRange(s.HasLSN, s.MinLSN, s.MaxLSN))
	if m := s.Mirror; m != nil {
		fmt.Fprintf(tw, "  mirror of\t%s (key %s)\n", m.Of, m.Key)
		switch {
		case m.Err != nil:
			fmt.Fprintf(tw, "  holds\tunknown: read the change log: %v\n", m.Err)
		case m.Holds < 0:
			fmt.Fprintf(tw, "  holds\tno version of the change log yet (it is at version %d)\n", m.Latest)
		default:
			fmt.Fprintf(tw, "  holds\tchange-log version %d of %d (%d behind)\n", m.Holds, m.Latest, max(m.Latest-m.Holds, 0))
		}
	}
	tw.Flush()
	apps := make([]string, 0, len(s.Txns))
	for a := range s.Txns {
		apps = append(apps, a)
	}
	sortAppIDs(apps)
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

// sortAppIDs sorts txn app ids (".../<topic>/<partition>") by everything
// before the partition, then by partition number, so partition 10 follows
// partition 9.
func sortAppIDs(ids []string) {
	split := func(id string) (string, int64, bool) {
		i := strings.LastIndexByte(id, '/')
		n, err := strconv.ParseInt(id[i+1:], 10, 32)
		return id[:i+1], n, err == nil
	}
	sort.Slice(ids, func(i, j int) bool {
		pi, ni, oki := split(ids[i])
		pj, nj, okj := split(ids[j])
		if pi != pj || !oki || !okj {
			return ids[i] < ids[j]
		}
		return ni < nj
	})
}

// inspectTable prints one table's summary and its files.
func inspectTable(ctx context.Context, w io.Writer, tf committer.Format, path string) error {
	s, err := summarize(ctx, tf, path)
	if errors.Is(err, committer.ErrNoTable) {
		if paths, lerr := tf.ListTables(ctx); lerr == nil {
			return withTables(err, paths)
		}
	}
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
