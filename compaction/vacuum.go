package compaction

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/evodb/sink/committer/delta"
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
// version below one that log cleanup deleted (delta.MinLogRetention).
const MinRetention = delta.MinLogRetention // the messages below say "1h"

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
func Vacuum(ctx context.Context, b objstore.Bucket, tablePath string, retention time.Duration, dryRun bool, now time.Time) (VacuumResult, error) {
	res := VacuumResult{DryRun: dryRun}
	if retention < MinRetention {
		return res, fmt.Errorf("vacuum %s: retention %s is under the 1h minimum", tablePath, retention)
	}
	table := delta.Open(b, tablePath, delta.Options{})
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
		if r, ok := snap.Tombstone(rel); ok {
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
	// Checkpoint is the checkpoint version everything deleted lies before;
	// -1 if the table has none, and then nothing is deleted.
	Checkpoint int64
	Deleted    []string
	DryRun     bool
}

// VacuumLog deletes the table's JSON commits and checkpoints that lie before
// its latest checkpoint (the one _last_checkpoint names, which must exist)
// and were written more than retention before now. The latest checkpoint
// and everything after it are kept, so every reader still loads the latest
// version; so is version 0, by which tools find tables. Time travel to a
// deleted version is no longer possible, as with Delta's own log cleanup.
//
// Writers put the next version without reading the log first, which is
// safe only because no cleanup deletes a version written less than
// delta.MinLogRetention ago (the delta.Table doc has the proof):
// VacuumLog refuses a shorter retention, and judges age by the store's
// LastModified.
func VacuumLog(ctx context.Context, b objstore.Bucket, tablePath string, retention time.Duration, dryRun bool, now time.Time) (LogVacuumResult, error) {
	res := LogVacuumResult{Checkpoint: -1, DryRun: dryRun}
	if retention < MinRetention {
		return res, fmt.Errorf("vacuum log of %s: retention %s is under the 1h minimum, which writers rely on", tablePath, retention)
	}
	logDir := joinKey(tablePath, "_delta_log/")
	cp, err := lastCheckpoint(ctx, b, logDir)
	if err != nil || cp < 0 {
		return res, err
	}
	// Only trust a checkpoint that is really there.
	info, err := b.Head(ctx, logDir+fmt.Sprintf("%020d.checkpoint.parquet", cp))
	if errors.Is(err, objstore.ErrNotExist) || (err == nil && info.Size == 0) {
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("vacuum log of %s: %w", tablePath, err)
	}
	res.Checkpoint = cp
	cutoff := now.Add(-retention)
	var doomed []string
	err = b.List(ctx, logDir, func(o objstore.ObjectInfo) error {
		name := strings.TrimPrefix(o.Key, logDir)
		v, ok := logVersion(name)
		if !ok || v == 0 || v >= cp || o.LastModified.After(cutoff) {
			return nil
		}
		doomed = append(doomed, o.Key)
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("vacuum log of %s: list: %w", tablePath, err)
	}
	for _, k := range doomed {
		if !dryRun {
			if err := b.Delete(ctx, k); err != nil {
				return res, fmt.Errorf("vacuum log of %s: delete %s: %w", tablePath, k, err)
			}
		}
		res.Deleted = append(res.Deleted, strings.TrimPrefix(k, joinKey(tablePath, "")))
	}
	return res, nil
}

// logVersion parses "<20 digits>.json" and "<20 digits>.checkpoint.parquet".
func logVersion(name string) (int64, bool) {
	digits, ok := strings.CutSuffix(name, ".json")
	if !ok {
		digits, ok = strings.CutSuffix(name, ".checkpoint.parquet")
	}
	if !ok || len(digits) != 20 {
		return 0, false
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	return v, err == nil
}

// lastCheckpoint reads the version _last_checkpoint names, or -1.
func lastCheckpoint(ctx context.Context, b objstore.Bucket, logDir string) (int64, error) {
	rc, err := b.Get(ctx, logDir+"_last_checkpoint")
	if errors.Is(err, objstore.ErrNotExist) {
		return -1, nil
	}
	if err != nil {
		return -1, fmt.Errorf("read %s_last_checkpoint: %w", logDir, err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return -1, fmt.Errorf("read %s_last_checkpoint: %w", logDir, err)
	}
	var lc struct {
		Version *int64 `json:"version"`
	}
	if json.Unmarshal(data, &lc) != nil || lc.Version == nil || *lc.Version < 0 {
		return -1, nil
	}
	return *lc.Version, nil
}
