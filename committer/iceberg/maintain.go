package iceberg

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/iceberg-go/table"

	"github.com/evodb/sink/committer"
)

// MinRetention is the shortest retention ExpireHistory accepts, as for
// Delta's log: an ambiguous commit is resolved by finding its id in a
// retained snapshot, and a reader of an old snapshot must not lose it, so
// no snapshot younger than this is expired.
const MinRetention = time.Hour

// Removed returns the removal of path if a retained snapshot other than
// s's current one still references it (a file compaction replaced, which
// readers of those snapshots may still read), with the time of the first
// snapshot that no longer did. It reads the manifests of the retained
// snapshots once per Snapshot. If they cannot be read, every path counts as
// removed just now, so vacuum keeps it.
func (t *Table) Removed(s *committer.Snapshot, path string) (committer.Remove, bool) {
	ss := st(s)
	if ss == nil {
		return committer.Remove{}, false
	}
	ss.removedOnce.Do(func() {
		ss.removed, ss.removedErr = t.removedFiles(context.Background(), s)
	})
	if ss.removedErr != nil {
		return committer.Remove{Path: path, DeletionTimestamp: t.opts.Now().UnixMilli()}, true
	}
	r, ok := ss.removed[path]
	return r, ok
}

// removedFiles lists the files the retained snapshots reference that s
// does not hold, each with the time of the first snapshot after the last
// one referencing it.
func (t *Table) removedFiles(ctx context.Context, s *committer.Snapshot) (map[string]committer.Remove, error) {
	tbl := st(s).tbl
	snaps := slices.Clone(tbl.Metadata().Snapshots())
	slices.SortFunc(snaps, func(a, b table.Snapshot) int { return int(a.SequenceNumber - b.SequenceNumber) })
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, err
	}
	lastRef := map[string]int{}
	for i, sn := range snaps {
		mfs, err := sn.Manifests(fs)
		if err != nil {
			return nil, fmt.Errorf("read manifest list %s: %w", sn.ManifestList, err)
		}
		for _, m := range mfs {
			ents, err := readEntries(fs, m)
			if err != nil {
				return nil, err
			}
			for _, e := range ents {
				lastRef[t.relPath(e.DataFile().FilePath())] = i
			}
		}
	}
	out := map[string]committer.Remove{}
	for p, i := range lastRef {
		if _, live := s.Files[p]; live || i+1 >= len(snaps) {
			continue
		}
		out[p] = committer.Remove{Path: p, DeletionTimestamp: snaps[i+1].TimestampMs}
	}
	return out, nil
}

// ExpireHistory expires the table's snapshots older than retention
// before now, except the current one and the newest one carrying this
// package's state (whose summary holds the txn map when another engine
// appended since). The catalog drops them from the metadata and iceberg-go
// then deletes the manifest lists, manifests and data files only they
// referenced. Result.Deleted are the expired snapshots' manifest lists,
// relative to the root; Result.Oldest is the oldest retained snapshot's
// version, -1 without snapshots. It refuses a retention under
// MinRetention.
func (t *Table) ExpireHistory(ctx context.Context, retention time.Duration, dryRun bool, now time.Time) (committer.ExpireResult, error) {
	res := committer.ExpireResult{Oldest: -1, DryRun: dryRun, Entries: "metadata files", OldestName: "snapshot"}
	if retention < MinRetention {
		return res, fmt.Errorf("expire snapshots of %s: retention %s is under the 1h minimum, which ambiguous commits rely on", t.root, retention)
	}
	var lastErr error
	for range 5 {
		s, err := t.load(ctx)
		if err != nil {
			return res, fmt.Errorf("expire snapshots of %s: %w", t.root, err)
		}
		tbl := st(s).tbl
		md := tbl.Metadata()
		cur := md.CurrentSnapshot()
		if cur == nil {
			return res, nil
		}
		cutoff := now.Add(-retention).UnixMilli()
		// Keep the newest snapshot of ours: the txn map is in its summary.
		byID := map[int64]*table.Snapshot{}
		snaps := md.Snapshots()
		for i := range snaps {
			byID[snaps[i].SnapshotID] = &snaps[i]
		}
		for sn := cur; sn != nil; {
			if sn.Summary != nil && sn.Summary.Properties[sumCommitID] != "" {
				cutoff = min(cutoff, sn.TimestampMs)
				break
			}
			if sn.ParentSnapshotID == nil {
				break
			}
			sn = byID[*sn.ParentSnapshotID]
		}
		var doomed []string
		oldest := cur.SequenceNumber
		for _, sn := range snaps {
			if sn.SnapshotID != cur.SnapshotID && sn.TimestampMs < cutoff {
				doomed = append(doomed, t.relPath(sn.ManifestList))
				continue
			}
			oldest = min(oldest, sn.SequenceNumber)
		}
		res.Oldest, res.Deleted = oldest, doomed
		if dryRun || len(doomed) == 0 {
			return t.deleteOrphanMetadata(ctx, tbl, res, retention)
		}
		tx := tbl.NewTransaction()
		age := time.Since(time.UnixMilli(cutoff))
		if err := tx.ExpireSnapshots(table.WithOlderThan(max(age, 0)), table.WithRetainLast(1)); err != nil {
			return res, fmt.Errorf("expire snapshots of %s: %w", t.root, err)
		}
		tbl, err = tx.Commit(ctx)
		if err == nil {
			return t.deleteOrphanMetadata(ctx, tbl, res, retention)
		}
		if !errors.Is(err, table.ErrCommitFailed) {
			return res, fmt.Errorf("expire snapshots of %s: %w", t.root, err)
		}
		lastErr = err
	}
	return res, fmt.Errorf("expire snapshots of %s: %w", t.root, lastErr)
}

// deleteOrphanMetadata deletes (or, dry, lists) the manifests and manifest
// lists under the table's metadata/ that no retained snapshot references
// and that are older than retention: those of commits the catalog refused
// (a lost race writes its manifests before the catalog decides) or whose
// outcome was unknown and that never landed. The age bound spares the
// files of a commit in flight. Data files are Vacuum's; old metadata.json
// files are deleted by the catalog as commits land
// (write.metadata.delete-after-commit.enabled).
func (t *Table) deleteOrphanMetadata(ctx context.Context, tbl *table.Table, res committer.ExpireResult, retention time.Duration) (committer.ExpireResult, error) {
	or, err := tbl.DeleteOrphanFiles(ctx, table.WithLocation(t.location+"/metadata"),
		table.WithFilesOlderThan(retention), table.WithDryRun(res.DryRun))
	if err != nil {
		return res, fmt.Errorf("delete orphan manifests of %s: %w", t.root, err)
	}
	for _, p := range or.OrphanFileLocations {
		if strings.HasSuffix(p, ".metadata.json") {
			continue
		}
		res.Deleted = append(res.Deleted, t.relPath(p))
	}
	return res, nil
}
