package compaction

import (
	"context"
	"errors"
	"fmt"
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
	if snap, err = table.Update(ctx, snap); err != nil {
		return res, fmt.Errorf("vacuum %s: %w", tablePath, err)
	}
	for _, c := range cands {
		if _, active := snap.Files[c.rel]; active {
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
