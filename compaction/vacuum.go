package compaction

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

// VacuumResult lists what Vacuum deleted, or would delete on a dry run.
type VacuumResult struct {
	// Removed are data files whose tombstone is older than the retention.
	Removed []string
	// Orphans are data files neither active nor tombstoned and older than
	// the retention: uploads never committed, and files removed so long ago
	// that checkpoints no longer carry their tombstones.
	Orphans []string
	// Bytes is the summed size of Removed and Orphans.
	Bytes int64
	// Kept counts data files that are active or too young to delete.
	Kept int
	// DryRun says nothing was deleted.
	DryRun bool
}

// MinRetention is the shortest retention Vacuum and VacuumLog accept: a
// writer between its upload and its commit, and a reader of an old version,
// must never lose a file under them, and a writer must never put a log
// version below one that log cleanup deleted (the Delta format's
// MinLogRetention, which a test holds equal to it).
const MinRetention = time.Hour // the messages below say "1h"

// Vacuum deletes the data files of the table at tablePath that no reader of
// a version within retention of now can need:
//
//   - a file tombstoned by a remove action whose deletionTimestamp is more
//     than retention before now;
//   - any other data/<file>.parquet object the current snapshot does not
//     reference whose LastModified is more than retention before now. That
//     covers orphans (uploads whose commit never landed: a crash, a lost
//     compaction race) and files removed so long ago that checkpoints have
//     already dropped their tombstones (the committer keeps tombstones for
//     its TombstoneRetention, one week by default).
//
// A file the snapshot references is never deleted, whatever its age; the
// snapshot is read again after listing so that a commit landing meanwhile
// protects its files too. Retention must cover the longest a reader may
// read an old version and the longest a writer may take between uploading a
// file and committing it; Vacuum refuses a retention under one hour. With
// dryRun it deletes nothing and reports what it would delete.
//
// Only objects directly under data/ are candidates: a key with a further
// slash belongs to something else, such as a table routed to
// "<tablePath>/data" (its data files and checkpoints lie under this
// table's data/ prefix), and is never this table's orphan.
//
// Deletion vector files (deletion_vector_<uuid>.bin directly under the
// table root, where the Delta committer puts them; a mirror table's
// deleted rows) follow the same rules, with the files that name them in
// place of the snapshot's and the tombstones' paths: one is kept while an
// active file's deleted rows (Add.Deleted.Path) or a removal younger than
// retention (Remove.Deleted.Path) name it, or it is younger than
// retention itself; one only removals older than retention name is
// Removed, one nothing names is an Orphan. A vector file in a
// subdirectory (Spark's randomized prefixes) is never a candidate: such a
// key may as well belong to a nested table. If the table's format cannot
// list every removal its snapshot keeps (removalLister), no deletion
// vector file is deleted.
func Vacuum(ctx context.Context, b objstore.Bucket, f committer.Format, tablePath string, retention time.Duration, dryRun bool, now time.Time) (VacuumResult, error) {
	res := VacuumResult{DryRun: dryRun}
	if retention < MinRetention {
		return res, fmt.Errorf("vacuum %s: retention %s is under the 1h minimum", tablePath, retention)
	}
	table := f.Open(tablePath, committer.Options{})
	m, ok := table.(committer.Maintainer)
	if !ok {
		return res, fmt.Errorf("vacuum %s: %w", tablePath, errNoMaintenance)
	}
	snap, err := table.Snapshot(ctx)
	if err != nil {
		return res, fmt.Errorf("vacuum %s: %w", tablePath, err)
	}
	cutoff := now.Add(-retention)
	prefix := joinKey(tablePath, "data/")
	type candidate struct {
		rel    string
		size   int64
		orphan bool
		vector bool // a deletion vector file
	}
	var cands []candidate
	err = b.List(ctx, prefix, func(o objstore.ObjectInfo) error {
		rel := strings.TrimPrefix(o.Key, joinKey(tablePath, ""))
		if !isDataFile(rel) {
			return nil
		}
		if _, active := snap.Files[rel]; active {
			res.Kept++
			return nil
		}
		if r, ok := m.Removed(snap, rel); ok {
			if r.DeletionTimestamp > cutoff.UnixMilli() || o.LastModified.After(cutoff) {
				res.Kept++
				return nil
			}
			cands = append(cands, candidate{rel: rel, size: o.Size})
			return nil
		}
		if o.LastModified.After(cutoff) {
			res.Kept++
			return nil
		}
		cands = append(cands, candidate{rel: rel, size: o.Size, orphan: true})
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("vacuum %s: list data files: %w", tablePath, err)
	}
	lister, canList := table.(removalLister)
	if canList {
		refs, ok := vectorRefs(snap, lister, cutoff)
		err = b.List(ctx, joinKey(tablePath, vectorPrefix), func(o objstore.ObjectInfo) error {
			rel := strings.TrimPrefix(o.Key, joinKey(tablePath, ""))
			if !isVectorFile(rel) {
				return nil
			}
			ref, named := refs[rel]
			if !ok || ref.active || ref.young || o.LastModified.After(cutoff) {
				res.Kept++
				return nil
			}
			cands = append(cands, candidate{rel: rel, size: o.Size, orphan: !named, vector: true})
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("vacuum %s: list deletion vector files: %w", tablePath, err)
		}
	}
	if snap, err = table.Update(ctx, snap); err != nil {
		return res, fmt.Errorf("vacuum %s: %w", tablePath, err)
	}
	var refs map[string]vectorRef
	refsOK := false
	if canList {
		refs, refsOK = vectorRefs(snap, lister, cutoff)
	}
	for _, c := range cands {
		if _, active := snap.Files[c.rel]; active && !c.vector {
			res.Kept++
			continue
		}
		// A commit that landed since the listing may name a vector file
		// again: removing a file with it as its deleted rows.
		if ref := refs[c.rel]; c.vector && (!refsOK || ref.active || ref.young) {
			res.Kept++
			continue
		}
		if !dryRun {
			if err := b.Delete(ctx, joinKey(tablePath, c.rel)); err != nil {
				return res, fmt.Errorf("vacuum %s: delete %s: %w", tablePath, c.rel, err)
			}
		}
		if c.orphan {
			res.Orphans = append(res.Orphans, c.rel)
		} else {
			res.Removed = append(res.Removed, c.rel)
		}
		res.Bytes += c.size
	}
	return res, nil
}

// removalLister is implemented by tables whose format can list every
// removal a snapshot keeps, a path once per set of deleted rows it was
// removed with (Delta: the tombstones, by path and deletion vector).
// Maintainer.Removed returns one removal per path, which misses the older
// deletion vectors of a file whose deleted rows changed while it stayed
// in the table: readers of older versions still read those. The bool is
// false when the format cannot list them.
type removalLister interface {
	Removals(s *committer.Snapshot) (iter.Seq[committer.Remove], bool)
}

// vectorPrefix is the start of a deletion vector file's name.
const vectorPrefix = "deletion_vector_"

// isVectorFile says whether rel, a key relative to the table root, names
// a deletion vector file directly under the root.
func isVectorFile(rel string) bool {
	name, ok := strings.CutPrefix(rel, vectorPrefix)
	return ok && !strings.Contains(name, "/") && strings.HasSuffix(name, ".bin")
}

// vectorRef says what names a deletion vector file.
type vectorRef struct {
	// active: an active file's deleted rows are in it.
	active bool
	// young: a removal at or after the cutoff names it.
	young bool
}

// vectorRefs returns, by key relative to the table root, the deletion
// vector files s names: in its active files' deleted rows, and in the
// removals it keeps (removed at or after cutoff: young). ok is false when
// the format cannot list its removals.
func vectorRefs(s *committer.Snapshot, l removalLister, cutoff time.Time) (map[string]vectorRef, bool) {
	removals, ok := l.Removals(s)
	if !ok {
		return nil, false
	}
	refs := map[string]vectorRef{}
	for _, a := range s.Files {
		if a.Deleted != nil && a.Deleted.Path != "" {
			r := refs[a.Deleted.Path]
			r.active = true
			refs[a.Deleted.Path] = r
		}
	}
	for r := range removals {
		if r.Deleted == nil || r.Deleted.Path == "" {
			continue
		}
		ref := refs[r.Deleted.Path]
		ref.young = ref.young || r.DeletionTimestamp >= cutoff.UnixMilli()
		refs[r.Deleted.Path] = ref
	}
	return refs, true
}

// isDataFile says whether rel, a key relative to the table root, names one
// of the files this sink writes for the table: "data/<file>.parquet".
func isDataFile(rel string) bool {
	name, ok := strings.CutPrefix(rel, "data/")
	return ok && name != "" && !strings.Contains(name, "/") && strings.HasSuffix(name, ".parquet")
}

// LogVacuumResult lists the log objects VacuumLog deleted, or would delete.
type LogVacuumResult struct {
	// Checkpoint is the version everything deleted from the history lies
	// before (Delta: the latest checkpoint; Iceberg: the oldest retained
	// snapshot); -1 if the table has none, and then nothing is deleted.
	Checkpoint int64
	Deleted    []string
	DryRun     bool
	// Entries and OldestName are committer.ExpireResult's: what Deleted
	// and Checkpoint are, in the table format's words.
	Entries, OldestName string
}

// errNoMaintenance refuses to vacuum a table whose format keeps no
// removed files or history to clean up from outside.
var errNoMaintenance = errors.New("the table's format does not support vacuum")

// VacuumLog deletes the table's history that no reader or writer can need
// any more: for Delta, the JSON commits and checkpoints that lie before its
// latest checkpoint (the one _last_checkpoint names, which must exist) and
// were written more than retention before now; the latest checkpoint,
// everything after it and version 0 are kept. Time travel to a deleted
// version is no longer possible, as with Delta's own log cleanup.
//
// Writers put the next version without reading the log first, which is
// safe only because no cleanup deletes a version written less than
// MinRetention ago (the delta.Table doc has the proof): VacuumLog refuses
// a shorter retention, and judges age by the store's LastModified.
func VacuumLog(ctx context.Context, f committer.Format, tablePath string, retention time.Duration, dryRun bool, now time.Time) (LogVacuumResult, error) {
	res := LogVacuumResult{Checkpoint: -1, DryRun: dryRun}
	if retention < MinRetention {
		return res, fmt.Errorf("vacuum log of %s: retention %s is under the 1h minimum, which writers rely on", tablePath, retention)
	}
	m, ok := f.Open(tablePath, committer.Options{}).(committer.Maintainer)
	if !ok {
		return res, fmt.Errorf("vacuum log of %s: %w", tablePath, errNoMaintenance)
	}
	er, err := m.ExpireHistory(ctx, retention, dryRun, now)
	res.Checkpoint, res.Deleted = er.Oldest, er.Deleted
	res.Entries, res.OldestName = er.Entries, er.OldestName
	return res, err
}
