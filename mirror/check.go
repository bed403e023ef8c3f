package mirror

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/tablefile"
)

// maxReported bounds the keys a Report lists of each kind; the counts are
// exact.
const maxReported = 20

// Report is what Check found.
type Report struct {
	ChangeLog, Mirror string
	// MirrorVersion is the mirror's version checked (V), ChangeLogVersion
	// the change-log version it holds (W).
	MirrorVersion, ChangeLogVersion int64
	// Rows is how many rows the view has.
	Rows int
	// Missing, Extra and Different count the view's keys the mirror lacks,
	// the mirror's keys the view lacks, and keys whose rows differ;
	// Duplicates the keys the mirror holds more than one visible row of.
	Missing, Extra, Different, Duplicates int
	// Problems describes the first of them, a line each, with the rows'
	// values.
	Problems []string
}

// OK reports whether the mirror equals the view.
func (r *Report) OK() bool {
	return r.Missing == 0 && r.Extra == 0 && r.Different == 0 && r.Duplicates == 0
}

func (r *Report) String() string {
	head := fmt.Sprintf("mirror %s at version %d holds change log %s at version %d: %d rows", r.Mirror, r.MirrorVersion, r.ChangeLog, r.ChangeLogVersion, r.Rows)
	if r.OK() {
		return head + ", equal to the view"
	}
	return fmt.Sprintf("%s; %d missing, %d extra, %d different, %d duplicated keys:\n  %s", head, r.Missing, r.Extra, r.Different, r.Duplicates, strings.Join(r.Problems, "\n  "))
}

func (r *Report) problem(format string, args ...any) {
	if len(r.Problems) < 4*maxReported {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// Check compares the mirror at its latest version V, read with its
// deletion vectors, with the current-state view of the change log at W,
// the change-log version the mirror holds (the package rule), row for row
// and in every column. The view is computed here from the change log's
// files at W: the latest snapshot's if W is the change log's latest
// version, else the files its history adds and removes up to W (an error
// wrapping committer.ErrHistoryExpired if log cleanup deleted some of it).
// key overrides the key the mirror records (ConfigMirrorKey).
//
// A mirror that holds no version of the change log (a new mirror, or a
// replaced change log) is an error, not a report.
func Check(ctx context.Context, b objstore.Bucket, changeLog, mirror committer.Table, key []string) (*Report, error) {
	r := &Report{ChangeLog: changeLog.Root(), Mirror: mirror.Root()}
	logSnap, err := changeLog.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("check mirror %s: read change log %s: %w", mirror.Root(), changeLog.Root(), err)
	}
	snap, err := mirror.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("check mirror %s: %w", mirror.Root(), err)
	}
	r.MirrorVersion = snap.Version
	w, ok := snap.Txns[AppID(logSnap.Metadata.ID)]
	if !ok {
		return nil, fmt.Errorf("check mirror %s: it holds no version of change log %s (table id %s) yet", mirror.Root(), changeLog.Root(), logSnap.Metadata.ID)
	}
	r.ChangeLogVersion = w
	if len(key) == 0 {
		if k := snap.Metadata.Configuration[ConfigMirrorKey]; k != "" {
			key = strings.Split(k, ",")
		}
	}
	if key, err = KeyColumns(changeLog.Root(), key, logSnap.Metadata); err != nil {
		return nil, err
	}
	kr := keyer{cols: key}
	files, err := filesAt(ctx, changeLog, logSnap, w)
	if err != nil {
		return nil, fmt.Errorf("check mirror %s: %w", mirror.Root(), err)
	}

	// The view, computed directly from its definition.
	view := map[string]codec.Change{}
	for _, path := range files {
		_, rows, err := tablefile.ReadFile(ctx, b, changeLog.Root(), path)
		if err != nil {
			return nil, fmt.Errorf("check mirror %s: %w", mirror.Root(), err)
		}
		for _, ch := range rows {
			k := string(kr.keyOf(nil, &ch))
			if cur, ok := view[k]; !ok || orderOf(&ch).compare(orderOf(&cur)) > 0 {
				view[k] = ch
			}
		}
	}
	for k, ch := range view {
		if ch.Op == codec.OpDelete {
			delete(view, k)
		}
	}
	r.Rows = len(view)

	// The mirror as a reader sees it.
	del, ok := mirror.(committer.RowDeleter)
	if !ok {
		return nil, fmt.Errorf("check mirror %s: its table format cannot read deleted rows", mirror.Root())
	}
	got := map[string]codec.Change{}
	for _, path := range slices.Sorted(maps.Keys(snap.Files)) {
		a := snap.Files[path]
		deleted, err := del.DeletedRows(ctx, a)
		if err != nil {
			return nil, fmt.Errorf("check mirror %s: %w", mirror.Root(), err)
		}
		_, rows, err := tablefile.ReadFile(ctx, b, mirror.Root(), path)
		if err != nil {
			return nil, fmt.Errorf("check mirror %s: %w", mirror.Root(), err)
		}
		for i, ch := range rows {
			if _, gone := slices.BinarySearch(deleted, int64(i)); gone {
				continue
			}
			k := string(kr.keyOf(nil, &ch))
			if prev, dup := got[k]; dup {
				r.Duplicates++
				r.problem("duplicate key %s: %s and %s (%s row %d)", kr.describeKey(&ch), describe(&prev), describe(&ch), path, i)
				continue
			}
			got[k] = ch
		}
	}

	columns := columnNames(logSnap.Metadata.Schema, snap.Metadata.Schema)
	for _, k := range slices.Sorted(maps.Keys(view)) {
		want := view[k]
		have, ok := got[k]
		if !ok {
			r.Missing++
			r.problem("missing key %s: the view has %s", kr.describeKey(&want), describe(&want))
			continue
		}
		if d := diff(&want, &have, columns); d != "" {
			r.Different++
			r.problem("key %s differs: %s", kr.describeKey(&want), d)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := view[k]; !ok {
			have := got[k]
			r.Extra++
			r.problem("extra key %s: the mirror has %s", kr.describeKey(&have), describe(&have))
		}
	}
	return r, nil
}

// filesAt returns the data files of the change log at version w: the
// latest snapshot's when w is its version, else replayed from its history.
func filesAt(ctx context.Context, t committer.Table, latest *committer.Snapshot, w int64) ([]string, error) {
	if latest.Version == w {
		return slices.Sorted(maps.Keys(latest.Files)), nil
	}
	if w > latest.Version {
		return nil, fmt.Errorf("the mirror holds change-log version %d, past the change log's latest %d", w, latest.Version)
	}
	h, ok := t.(committer.History)
	if !ok {
		return nil, errors.New("the change log's format cannot list its commits")
	}
	changes, err := h.Changes(ctx, -1, w)
	if err != nil {
		return nil, fmt.Errorf("replay change log %s to version %d: %w", t.Root(), w, err)
	}
	files := map[string]bool{}
	for _, vc := range changes {
		for _, rm := range vc.Removes {
			delete(files, rm.Path)
		}
		for _, a := range vc.Adds {
			files[a.Path] = true
		}
	}
	return slices.Sorted(maps.Keys(files)), nil
}

// columnNames returns the data columns of both schemas, in order.
func columnNames(schemas ...*codec.Schema) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range schemas {
		if s == nil {
			continue
		}
		for _, c := range s.Columns() {
			if !seen[c.Name] {
				seen[c.Name] = true
				out = append(out, c.Name)
			}
		}
	}
	return out
}

// diff describes how have differs from want, in every metadata column and
// every data column ("" if they are equal).
func diff(want, have *codec.Change, columns []string) string {
	var d []string
	meta := func(name string, w, h any) {
		if w != h {
			d = append(d, fmt.Sprintf("%s %v, want %v", name, h, w))
		}
	}
	meta(codec.ColOp, want.Op, have.Op)
	meta(codec.ColLSN, want.LSN, have.LSN)
	meta(codec.ColTS, want.TS, have.TS)
	meta(codec.ColTopic, want.Topic, have.Topic)
	meta(codec.ColPartition, want.Partition, have.Partition)
	meta(codec.ColOffset, want.Offset, have.Offset)
	for _, c := range columns {
		w, h := fieldValue(want.Row, c), fieldValue(have.Row, c)
		if !w.Equal(h) {
			d = append(d, fmt.Sprintf("%s %#v, want %#v", c, h, w))
		}
	}
	return strings.Join(d, "; ")
}

// describe renders a row for a report: its metadata and its values.
func describe(ch *codec.Change) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "{%s lsn=%d partition=%d offset=%d", ch.Op, ch.LSN, ch.Partition, ch.Offset)
	for _, f := range ch.Row {
		fmt.Fprintf(&sb, " %s=%#v", f.Name, f.Value)
	}
	sb.WriteString("}")
	return sb.String()
}
