package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/mirror"
	"github.com/evodb/sink/tablefile"
)

// fileInfo is one active data file as inspect shows it.
type fileInfo struct {
	Path           string
	Size           int64
	Rows           int64
	MinLSN, MaxLSN uint64
	HasLSN         bool
	Level          string
	Sources        string
}

// tableSummary is what inspect and demo print of a table.
type tableSummary struct {
	Path           string
	Version        int64
	Files          []fileInfo // by path
	Bytes          int64
	Rows           int64
	MinLSN, MaxLSN uint64
	HasLSN         bool
	Txns           map[string]int64
	Snapshot       *committer.Snapshot
	// Deleted counts the rows of Rows that the files' deleted rows
	// (deletion vectors) hide from readers.
	Deleted int64
	// Mirror describes the table if it is a mirror table, nil otherwise.
	Mirror *mirrorSummary
}

// mirrorSummary is where a mirror table stands against its change log.
type mirrorSummary struct {
	// Of is the change log's path, Key the key columns.
	Of, Key string
	// Holds is the change-log version the mirror holds (W), -1 if none;
	// Latest the change log's latest version, -1 if it could not be read
	// (Err says why).
	Holds, Latest int64
	Err           error
}

// noTableError is a table path with no table under it.
type noTableError struct{ path string }

func (e noTableError) Error() string { return fmt.Sprintf("no table %q", e.path) }

func (e noTableError) Unwrap() error { return committer.ErrNoTable }

// withTables adds the tables a store holds to an error about a missing
// one, for a misspelt name.
func withTables(err error, paths []string) error {
	if len(paths) == 0 {
		return fmt.Errorf("%w; the store holds no tables", err)
	}
	return fmt.Errorf("%w; the store holds: %s", err, strings.Join(paths, ", "))
}

// summarize reads the latest snapshot of the table at path.
func summarize(ctx context.Context, tf committer.Format, path string) (*tableSummary, error) {
	snap, err := tf.Open(path, committer.Options{}).Snapshot(ctx)
	if err != nil {
		if errors.Is(err, committer.ErrNoTable) {
			// The committer's own text would repeat the path and "table".
			return nil, noTableError{path: path}
		}
		return nil, fmt.Errorf("read table %s: %w", path, err)
	}
	s := &tableSummary{Path: path, Version: snap.Version, Txns: snap.Txns, Snapshot: snap, MinLSN: math.MaxUint64}
	for _, a := range snap.Files {
		f := fileInfo{Path: a.Path, Size: a.Size, Rows: tablefile.Rows(a), Sources: tablefile.Sources(a)}
		if l, ok := tablefile.TagLevelOf(a); ok {
			f.Level = strconv.Itoa(l)
		}
		if lo, hi, ok := tablefile.TagLSNRange(a); ok {
			f.MinLSN, f.MaxLSN, f.HasLSN = lo, hi, true
			s.MinLSN, s.MaxLSN, s.HasLSN = min(s.MinLSN, lo), max(s.MaxLSN, hi), true
		}
		s.Files = append(s.Files, f)
		s.Bytes += f.Size
		s.Rows += f.Rows
		if a.Deleted != nil {
			s.Deleted += a.Deleted.Count
		}
	}
	if !s.HasLSN {
		s.MinLSN = 0
	}
	sort.Slice(s.Files, func(i, j int) bool { return s.Files[i].Path < s.Files[j].Path })
	if of := snap.Metadata.Configuration[mirror.ConfigMirrorOf]; of != "" {
		s.Mirror = mirrorOf(ctx, tf, snap, of)
	}
	return s, nil
}

// mirrorOf reads the change log a mirror table at snap derives from, to
// say how far behind it the mirror is.
func mirrorOf(ctx context.Context, tf committer.Format, snap *committer.Snapshot, of string) *mirrorSummary {
	m := &mirrorSummary{Of: of, Key: snap.Metadata.Configuration[mirror.ConfigMirrorKey], Holds: -1, Latest: -1}
	logSnap, err := tf.Open(of, committer.Options{}).Snapshot(ctx)
	if err != nil {
		m.Err = err
		return m
	}
	m.Latest = logSnap.Version
	if w, ok := snap.TxnVersion(mirror.AppID(logSnap.Metadata.ID)); ok {
		m.Holds = w
	}
	return m
}

// lsnRange formats a summary's LSN range.
func lsnRange(ok bool, lo, hi uint64) string {
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%d..%d", lo, hi)
}

// humanBytes formats a byte count with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
